//! What can be wrong with a stream record, and where.
//!
//! Every [`TwinError`] is permanent: the same record always fails the same
//! way, so retrying it cannot help. The caller sends it to the dead-letter
//! place with its message (which never holds more than a short excerpt of
//! the offending value: logs must not carry payloads).

use std::fmt;

use aws_lambda_events::event::dynamodb::StreamViewType;

/// Longest excerpt of an offending text kept in an error, in bytes.
const EXCERPT_BYTES: usize = 64;

/// A stream record that cannot be turned into events.
///
/// Displays as `stream record {eventID}: {attribute}: {what is wrong}`, e.g.
/// `stream record 1a2b: NewImage.datapoint.value: expected N or S, found BOOL`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream record {stream_event_id}: {}{kind}", AttributePrefix(.attribute.as_deref()))]
pub struct TwinError {
    stream_event_id: String,
    attribute: Option<String>,
    kind: TwinErrorKind,
}

impl TwinError {
    pub(super) fn new(
        stream_event_id: &str,
        attribute: Option<String>,
        kind: TwinErrorKind,
    ) -> Self {
        TwinError {
            stream_event_id: stream_event_id.to_owned(),
            attribute,
            kind,
        }
    }

    /// The stream record's `eventID`.
    pub fn stream_event_id(&self) -> &str {
        &self.stream_event_id
    }

    /// Where the problem is: an attribute path such as
    /// `NewImage.datapoint.value`, `Keys.sk` or `OldImage`, or a field of the
    /// record itself (`eventName`, `StreamViewType`,
    /// `ApproximateCreationDateTime`).
    pub fn attribute(&self) -> Option<&str> {
        self.attribute.as_deref()
    }

    pub fn kind(&self) -> &TwinErrorKind {
        &self.kind
    }
}

struct AttributePrefix<'a>(Option<&'a str>);

impl fmt::Display for AttributePrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(attribute) => write!(f, "{attribute}: "),
            None => Ok(()),
        }
    }
}

/// What is wrong. Texts quoted from the record are cut to 64 bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwinErrorKind {
    /// A required attribute (or image) is absent or `NULL`.
    #[error("required attribute is missing")]
    MissingAttribute,
    /// An attribute has another DynamoDB type than the schema says.
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// `base_type` is not one of the vendor's base types.
    #[error("`{0}` is not a base type (boolean, integer, decimal, float, string, message, file)")]
    UnknownBaseType(String),
    /// The record cannot be diffed: the stream does not carry old images
    /// (`StreamViewType` other than `NEW_AND_OLD_IMAGES`, or absent), or a
    /// `MODIFY` record comes without its `OldImage`.
    #[error("{}", NoOldImageReason(.view.as_ref()))]
    NoOldImage { view: Option<StreamViewType> },
    /// A datapoint value longer than [`super::MAX_VALUE_BYTES`].
    #[error("value of {bytes} bytes is longer than the limit of {limit} bytes")]
    ValueTooLarge { bytes: usize, limit: usize },
    /// A time attribute that is not a UTC ISO-8601 time between 1970 and
    /// 9999, or an `ApproximateCreationDateTime` outside that range.
    #[error("`{text}` is not a UTC time between 1970 and 9999 like 2020-08-28T09:45:36Z")]
    BadTimestamp { text: String },
    /// An `N` attribute (or a numeric property's value) that is not the
    /// number the schema needs.
    #[error("`{text}` is not {expected}")]
    InvalidNumber {
        text: String,
        expected: &'static str,
    },
    /// A `SequenceNumber` that is not 1 to 40 decimal digits.
    #[error("`{0}` is not a stream sequence number (1 to 40 decimal digits)")]
    BadSequenceNumber(String),
    /// `eventName` other than `INSERT`, `MODIFY`, `REMOVE`.
    #[error("`{0}` is not an event name (INSERT, MODIFY, REMOVE)")]
    UnknownEventName(String),
    /// `ApproximateCreationDateTime` absent (the Lambda event library reads
    /// an absent one as the epoch, so the epoch itself counts as absent).
    #[error("missing: every DynamoDB stream record has its creation time, and events take their time from it")]
    MissingCreationTime,
    /// An ack names a datapoint that is neither the item's new nor its old
    /// `datapoint`, so the ack's datapoint fields are unknown.
    #[error(
        "the ack is for datapoint `{id}`, which is neither the new nor the old image's datapoint"
    )]
    AckedDatapointUnknown { id: String },
}

struct NoOldImageReason<'a>(Option<&'a StreamViewType>);

impl fmt::Display for NoOldImageReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(StreamViewType::NewAndOldImages) => {
                f.write_str("a MODIFY record without its old image cannot be diffed")
            }
            Some(view) => write!(
                f,
                "stream view type {view} carries no old images; the twin table's stream must be NEW_AND_OLD_IMAGES"
            ),
            None => f.write_str(
                "stream view type is absent; the twin table's stream must be NEW_AND_OLD_IMAGES",
            ),
        }
    }
}

/// At most [`EXCERPT_BYTES`] of `text`, cut on a character boundary, with
/// `...` when cut.
pub(crate) fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + 3);
    cut.push_str(&text[..end]);
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_long_texts_on_a_char_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(40);
        let cut = excerpt(&long);
        assert!(cut.ends_with("..."));
        assert_eq!(cut.len(), 64 + 3);
    }

    #[test]
    fn display_names_record_attribute_and_problem() {
        let err = TwinError::new(
            "1a2b",
            Some("NewImage.datapoint.value".into()),
            TwinErrorKind::WrongType {
                expected: "N or S",
                found: "BOOL",
            },
        );
        assert_eq!(
            err.to_string(),
            "stream record 1a2b: NewImage.datapoint.value: expected N or S, found BOOL"
        );
        let err = TwinError::new("1a2b", None, TwinErrorKind::MissingAttribute);
        assert_eq!(
            err.to_string(),
            "stream record 1a2b: required attribute is missing"
        );
    }
}
