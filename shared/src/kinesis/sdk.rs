//! [`PutRecordsApi`] for `aws_sdk_kinesis::Client`: builds the request and
//! translates the answer and the SDK's errors into ours, judging nothing
//! (that is [`super::retry`]'s job).

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::{Entry, EntryResult, PutError, PutRecordsApi};

impl PutRecordsApi for aws_sdk_kinesis::Client {
    /// `stream` is a stream name or a stream ARN.
    async fn put_records(
        &self,
        stream: &str,
        entries: &[&Entry],
    ) -> Result<Vec<EntryResult>, PutError> {
        let records = entries
            .iter()
            .map(|entry| request_entry(entry))
            .collect::<Result<Vec<_>, _>>()?;
        let request = self.put_records();
        // Customer streams are named by ARN (they may sit in another
        // account); the DPL stream by name.
        let request = if stream.starts_with("arn:") {
            request.stream_arn(stream)
        } else {
            request.stream_name(stream)
        };
        let output = request
            .set_records(Some(records))
            .send()
            .await
            .map_err(put_error)?;
        Ok(entry_results(&output))
    }
}

fn request_entry(entry: &Entry) -> Result<PutRecordsRequestEntry, PutError> {
    PutRecordsRequestEntry::builder()
        .partition_key(entry.partition_key())
        .data(Blob::new(entry.data()))
        .build()
        .map_err(|error| PutError::Construction(error.to_string()))
}

/// One result per entry of the answer, in order.
pub fn entry_results(output: &PutRecordsOutput) -> Vec<EntryResult> {
    output
        .records()
        .iter()
        .map(|record| match record.error_code() {
            None => EntryResult::Accepted,
            Some(code) => EntryResult::failed(code, record.error_message().unwrap_or_default()),
        })
        .collect()
}

/// The SDK's error, as data: kind, HTTP status and AWS error code.
pub fn put_error(error: SdkError<PutRecordsError, HttpResponse>) -> PutError {
    let text = DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::TimeoutError(_) => PutError::Timeout(text),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => PutError::Timeout(text),
        SdkError::DispatchFailure(_) => PutError::Dispatch(text),
        SdkError::ConstructionFailure(_) => PutError::Construction(text),
        SdkError::ServiceError(service) => PutError::Service {
            status: service.raw().status().as_u16(),
            code: service.err().code().unwrap_or("Unknown").to_owned(),
            message: service.err().message().unwrap_or_default().to_owned(),
        },
        _ => PutError::Response(text),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::types::PutRecordsResultEntry;

    use super::*;

    #[test]
    fn entry_results_follow_the_answer_in_order() {
        let output = PutRecordsOutput::builder()
            .records(
                PutRecordsResultEntry::builder()
                    .sequence_number("1")
                    .shard_id("shardId-000000000000")
                    .build(),
            )
            .records(
                PutRecordsResultEntry::builder()
                    .error_code("ProvisionedThroughputExceededException")
                    .error_message("Rate exceeded for shard shardId-000000000000")
                    .build(),
            )
            .failed_record_count(1)
            .build()
            .unwrap();
        assert_eq!(
            entry_results(&output),
            vec![
                EntryResult::Accepted,
                EntryResult::failed(
                    "ProvisionedThroughputExceededException",
                    "Rate exceeded for shard shardId-000000000000"
                ),
            ]
        );
    }
}
