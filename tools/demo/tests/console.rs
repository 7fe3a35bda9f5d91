//! `make demo`'s console: the api function under `cargo lambda watch` on
//! the emulator, run as the demo binary, with a token per example OEM;
//! each OEM's token lists its own streams and no other OEM's.
//!
//! Needs `AWS_ENDPOINT_URL` (`scripts/with-moto.sh`); fails without it.

use std::time::{SystemTime, UNIX_EPOCH};

use demo::console::Console;
use demo::fleet::OEMS;
use demo::stack::Stack;
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};
use dpl::streams::subscription::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec,
};
use dpl::Timestamp;

#[tokio::test(flavor = "multi_thread")]
async fn the_console_answers_each_example_oem_with_its_own_streams() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1"),
        "run through scripts/with-moto.sh (got {endpoint:?})"
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = Stack::repo_root();
    let stack = Stack::create(&root, &format!("console{}", nanos % 1_000_000_000)).unwrap();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = stack
        .function("api")
        .unwrap()
        .var("SUBSCRIPTIONS_TABLE")
        .unwrap();
    let subscription = Subscription::new(
        SubscriptionId::generate(),
        SubscriptionSpec {
            oem_id: OEMS[0].id.into(),
            name: "Acme to Kinesis".into(),
            description: String::new(),
            destination: Destination::Kinesis {
                stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/acme"
                    .parse()
                    .unwrap(),
            },
            credentials: Credentials::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/dpl-delivery-acme".into(),
                external_id: Some("acme-console".into()),
            },
            filters: Filters::all(),
        },
        Timestamp::now(),
    )
    .unwrap();
    DynamoSubscriptions::from_sdk_config(&aws, table)
        .create(&subscription)
        .await
        .unwrap();

    let console = Console::start(&root, &stack, env!("CARGO_BIN_EXE_demo").as_ref())
        .await
        .unwrap();
    let seen = console.check().await.unwrap();
    assert_eq!(seen.len(), OEMS.len());
    assert_eq!(seen[0].stream_oems, [OEMS[0].id]);
    assert!(seen[1].stream_oems.is_empty(), "{seen:?}");
    let text = console.text(&seen);
    assert!(
        text.contains("http://127.0.0.1:") && text.contains("/lambda-url/_/"),
        "{text}"
    );
    for sign_in in &console.sign_ins {
        assert!(text.contains(&sign_in.token), "{text}");
    }
}
