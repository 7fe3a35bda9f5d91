//! Failures moto cannot produce, through the real SQS client and its
//! adapter (aws-smithy-mocks): a `SendMessageBatch` answer that fails some
//! entries, an entry rejected as the sender's fault, a call that fails.

use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::error::ErrorMetadata;
use aws_sdk_sqs::operation::send_message_batch::{
    SendMessageBatchError, SendMessageBatchInput, SendMessageBatchOutput,
};
use aws_sdk_sqs::types::error::QueueDoesNotExist;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_sdk_sqs::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use hourly_export::fan_out::{send_tasks, FanOutError};
use hourly_export::sqs::SqsTaskQueue;

const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/tasks";

/// How the mocked queue answers an entry on a given call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Taken,
    /// `InternalError`, not the sender's fault.
    Failed,
    /// `InvalidMessageContents`, the sender's fault.
    Rejected,
}

/// Every call's entries, as (id, body).
type Calls = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// An SQS client whose `SendMessageBatch` call number `n` answers each
/// entry with `script(n, body)`.
fn mocked_sqs(script: impl Fn(usize, &str) -> Entry + Send + Sync + 'static) -> (Client, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let rule = mock!(Client::send_message_batch).then_compute_response(
        move |input: &SendMessageBatchInput| {
            let entries: Vec<(String, String)> = input
                .entries()
                .iter()
                .map(|e| (e.id().to_owned(), e.message_body().to_owned()))
                .collect();
            let mut seen = seen.lock().unwrap();
            let call = seen.len();
            seen.push(entries.clone());
            let mut output = SendMessageBatchOutput::builder()
                .set_successful(Some(vec![]))
                .set_failed(Some(vec![]));
            for (id, body) in &entries {
                output = match script(call, body) {
                    Entry::Taken => output.successful(
                        SendMessageBatchResultEntry::builder()
                            .id(id)
                            .message_id(format!("m-{call}-{id}"))
                            .md5_of_message_body("0")
                            .build()
                            .unwrap(),
                    ),
                    failed => output.failed(
                        BatchResultErrorEntry::builder()
                            .id(id)
                            .sender_fault(failed == Entry::Rejected)
                            .code(if failed == Entry::Rejected {
                                "InvalidMessageContents"
                            } else {
                                "InternalError"
                            })
                            .message("as scripted")
                            .build()
                            .unwrap(),
                    ),
                };
            }
            MockResponse::Output(output.build().unwrap())
        },
    );
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    (client, calls)
}

fn bodies(n: usize) -> Vec<String> {
    (0..n)
        .map(|n| {
            format!(r#"{{"hour":"2020-08-28T09","oem_id":"oem-{n}","event_type":"location"}}"#)
        })
        .collect()
}

fn bodies_of(call: &[(String, String)]) -> Vec<&str> {
    call.iter().map(|(_, body)| body.as_str()).collect()
}

#[tokio::test]
async fn only_the_failed_entries_of_a_batch_are_resent() {
    let all = bodies(12);
    let (unlucky_3, unlucky_7) = (all[3].clone(), all[7].clone());
    // Call 0 fails oem-3 and oem-7; call 1 (their resend) fails oem-7
    // again; then everything is taken.
    let (client, calls) = mocked_sqs(move |call, body| match call {
        0 if body == unlucky_3 || body == unlucky_7 => Entry::Failed,
        1 if body == unlucky_7 => Entry::Failed,
        _ => Entry::Taken,
    });
    let queue = SqsTaskQueue::new(client, QUEUE_URL);
    assert_eq!(send_tasks(&queue, all.clone()).await.unwrap(), 12);

    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 4, "first batch, two resends, second batch");
    assert_eq!(
        bodies_of(&calls[0]),
        &all.iter().map(String::as_str).collect::<Vec<_>>()[..10]
    );
    assert_eq!(bodies_of(&calls[1]), [&all[3], &all[7]]);
    assert_eq!(bodies_of(&calls[2]), [&all[7]]);
    assert_eq!(bodies_of(&calls[3]), [&all[10], &all[11]]);
    // A resent entry keeps its id, so its answer is matched to it.
    assert_eq!(calls[1][0].0, calls[0][3].0);
}

#[tokio::test]
async fn an_entry_that_keeps_failing_fails_the_invocation_after_the_others_went_out() {
    let all = bodies(3);
    let stuck = all[1].clone();
    let (client, calls) = mocked_sqs(move |_, body| {
        if body == stuck {
            Entry::Failed
        } else {
            Entry::Taken
        }
    });
    let queue = SqsTaskQueue::new(client, QUEUE_URL);
    let err = send_tasks(&queue, all.clone()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FanOutError::Unsent {
                unsent: 1,
                total: 3,
                ..
            }
        ),
        "{err}"
    );
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), hourly_export::fan_out::SEND_ATTEMPTS as usize);
    assert!(calls[1..].iter().all(|c| bodies_of(c) == [&all[1]]));
}

#[tokio::test]
async fn an_entry_rejected_as_the_senders_fault_is_not_resent() {
    let all = bodies(2);
    let bad = all[0].clone();
    let (client, calls) = mocked_sqs(move |_, body| {
        if body == bad {
            Entry::Rejected
        } else {
            Entry::Taken
        }
    });
    let queue = SqsTaskQueue::new(client, QUEUE_URL);
    let err = send_tasks(&queue, all).await.unwrap_err();
    assert!(err.to_string().contains("InvalidMessageContents"), "{err}");
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_call_ends_the_fan_out_with_the_service_error() {
    let rule = mock!(Client::send_message_batch).then_error(|| {
        SendMessageBatchError::QueueDoesNotExist(
            QueueDoesNotExist::builder()
                .message("The specified queue does not exist.")
                .meta(
                    ErrorMetadata::builder()
                        .code("AWS.SimpleQueueService.NonExistentQueue")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let queue = SqsTaskQueue::new(client, QUEUE_URL);
    let err = send_tasks(&queue, bodies(25)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FanOutError::Call {
                sent: 0,
                total: 25,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(
        rule.num_calls(),
        1,
        "no further batches after a failed call"
    );
}
