//! Failures of `PutRecords` and what to do about them, in one place:
//! which entries of an answer failed ([`failed_entries`]), whether a failure
//! is worth retrying ([`is_retryable`], [`is_retryable_entry_code`]) and how
//! long to wait before the next round ([`DEFAULT_BACKOFF`], full jitter).

use std::time::Duration;

/// Error codes of single entries in a `PutRecords` answer.
///
/// API Reference, `PutRecordsResultEntry.ErrorCode`: "ErrorCodes can be
/// either ProvisionedThroughputExceededException or InternalFailure."
pub const PROVISIONED_THROUGHPUT_EXCEEDED: &str = "ProvisionedThroughputExceededException";
pub const INTERNAL_FAILURE: &str = "InternalFailure";

/// Request-level error codes that mean "slow down" or "try again": the
/// throttling errors of `PutRecords` (API Reference, Errors) and the
/// generic transient ones of all AWS APIs ("Common Errors").
const RETRYABLE_REQUEST_CODES: &[&str] = &[
    PROVISIONED_THROUGHPUT_EXCEEDED,
    "KMSThrottlingException",
    "LimitExceededException",
    "ThrottlingException",
    INTERNAL_FAILURE,
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The answer for one entry of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryResult {
    Accepted,
    Failed { code: String, message: String },
}

impl EntryResult {
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One failed entry of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedEntry<'a> {
    /// Position of the entry in the request.
    pub position: usize,
    pub code: &'a str,
    pub message: &'a str,
}

/// Why a whole `PutRecords` call failed. SDK errors are translated into this
/// by [`super::sdk`] without judging them; [`is_retryable`] judges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    #[error("PutRecords timed out: {0}")]
    Timeout(String),
    #[error("PutRecords could not be sent: {0}")]
    Dispatch(String),
    #[error("PutRecords failed with {code} (HTTP {status}): {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    #[error("PutRecords answer could not be read: {0}")]
    Response(String),
    #[error("PutRecords request could not be built: {0}")]
    Construction(String),
    #[error("PutRecords answered {answered} results for {sent} entries")]
    AnswerMismatch { sent: usize, answered: usize },
}

/// Whether a failed call may succeed if sent again. Transport failures and
/// throttling are retried; a missing stream, a denied permission or a bad
/// request are not: they need an operator, and waiting only delays the
/// report. An unreadable answer is retried although some of its entries may
/// have been written (the consumers deduplicate by event id): losing them
/// would be worse.
pub fn is_retryable(error: &PutError) -> bool {
    match error {
        PutError::Timeout(_) | PutError::Dispatch(_) | PutError::Response(_) => true,
        PutError::Service { status, code, .. } => {
            *status >= 500 || RETRYABLE_REQUEST_CODES.contains(&code.as_str())
        }
        PutError::Construction(_) | PutError::AnswerMismatch { .. } => false,
    }
}

/// Whether a failed entry may succeed if sent again: yes for the two
/// documented codes, both transient. An undocumented code is not retried
/// blindly: publishing stops and the record goes back to the event source,
/// whose own retries (and an operator, alerted by the log) take over.
pub fn is_retryable_entry_code(code: &str) -> bool {
    matches!(code, PROVISIONED_THROUGHPUT_EXCEEDED | INTERNAL_FAILURE)
}

/// The failed entries of an answer, in request order.
pub fn failed_entries(results: &[EntryResult]) -> Vec<FailedEntry<'_>> {
    results
        .iter()
        .enumerate()
        .filter_map(|(position, result)| match result {
            EntryResult::Accepted => None,
            EntryResult::Failed { code, message } => Some(FailedEntry {
                position,
                code,
                message,
            }),
        })
        .collect()
}

pub use crate::backoff::Backoff;

/// 50 ms doubling up to 2 s: a Kinesis shard's write quota is per second
/// ("1 MB or 1,000 records per second per shard"), so waits beyond a second
/// or two only burn the deadline.
pub const DEFAULT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_entries_are_those_with_an_error_code() {
        let results = [
            EntryResult::Accepted,
            EntryResult::failed(PROVISIONED_THROUGHPUT_EXCEEDED, "Rate exceeded for shard"),
            EntryResult::Accepted,
            EntryResult::failed(INTERNAL_FAILURE, "Internal service failure."),
        ];
        assert_eq!(
            failed_entries(&results),
            vec![
                FailedEntry {
                    position: 1,
                    code: PROVISIONED_THROUGHPUT_EXCEEDED,
                    message: "Rate exceeded for shard"
                },
                FailedEntry {
                    position: 3,
                    code: INTERNAL_FAILURE,
                    message: "Internal service failure."
                },
            ]
        );
        assert!(failed_entries(&[EntryResult::Accepted]).is_empty());
        assert!(failed_entries(&[]).is_empty());
    }

    #[test]
    fn throttling_and_transport_failures_are_retried_configuration_errors_are_not() {
        let service = |status, code: &str| PutError::Service {
            status,
            code: code.into(),
            message: String::new(),
        };
        for retryable in [
            PutError::Timeout("attempt timeout".into()),
            PutError::Dispatch("connection reset".into()),
            PutError::Response("truncated body".into()),
            service(400, PROVISIONED_THROUGHPUT_EXCEEDED),
            service(400, "KMSThrottlingException"),
            service(500, INTERNAL_FAILURE),
            service(503, "Unknown"),
        ] {
            assert!(is_retryable(&retryable), "{retryable}");
        }
        for fatal in [
            service(400, "ResourceNotFoundException"),
            service(400, "AccessDeniedException"),
            service(400, "KMSAccessDeniedException"),
            service(400, "ValidationException"),
            PutError::Construction("missing partition key".into()),
            PutError::AnswerMismatch {
                sent: 3,
                answered: 2,
            },
        ] {
            assert!(!is_retryable(&fatal), "{fatal}");
        }
        assert!(is_retryable_entry_code(PROVISIONED_THROUGHPUT_EXCEEDED));
        assert!(is_retryable_entry_code(INTERNAL_FAILURE));
        assert!(!is_retryable_entry_code("KMSAccessDeniedException"));
    }
}
