//! What delivery reports about a subscription ([`Health`]); written by the
//! delivery engine, never by configuration changes.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest [`LastError::message`] kept; longer messages are cut (our limit,
/// well under DynamoDB's 400 KB item size).
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// The last delivery failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub at: Timestamp,
    /// At most [`MAX_ERROR_MESSAGE_LEN`] characters ([`truncate_message`]).
    /// Must never hold secret material.
    pub message: String,
}

/// Cuts `message` to [`MAX_ERROR_MESSAGE_LEN`] characters.
pub fn truncate_message(message: &str) -> String {
    match message.char_indices().nth(MAX_ERROR_MESSAGE_LEN) {
        Some((end, _)) => message[..end].to_owned(),
        None => message.to_owned(),
    }
}

/// What delivery reports; written by the delivery engine, never by
/// configuration changes.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    pub last_success: Option<Timestamp>,
    pub last_error: Option<LastError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX_ERROR_MESSAGE_LEN + 5);
        assert_eq!(
            truncate_message(&message).chars().count(),
            MAX_ERROR_MESSAGE_LEN
        );
        assert_eq!(truncate_message("short"), "short");
    }
}
