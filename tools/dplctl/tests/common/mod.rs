//! Helpers shared by the dplctl tests that run against the shared moto
//! server of `scripts/with-moto.sh`.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;

pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/dpl-stream-writer";

/// The SDK configuration for the local moto server; fails, rather than
/// skips, without `AWS_ENDPOINT_URL` on loopback.
pub async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test -p dplctl`"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A number for names no other test run uses.
pub fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The subscriptions table, as `template.yaml` declares it.
pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) {
    dpl::streams::state::dynamo::create_table(dynamo, table, &[dpl::streams::store::attr::ID])
        .await
        .unwrap();
}

/// The delivery state table (cursors, dead letters), as `template.yaml`
/// declares it.
#[allow(dead_code)] // not every test binary uses it
pub async fn create_state_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) {
    dpl::streams::state::dynamo::create_table(
        dynamo,
        table,
        &dpl::streams::state::item::TABLE_KEYS,
    )
    .await
    .unwrap();
}

/// A Kinesis client in eu-west-1, the customer streams' region.
pub fn kinesis_eu(aws: &aws_config::SdkConfig) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(aws)
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Every record of a one-shard moto stream in eu-west-1, in order.
pub async fn stream_records(aws: &aws_config::SdkConfig, stream: &str) -> Vec<Vec<u8>> {
    let kinesis = kinesis_eu(aws);
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator;
    let mut records = Vec::new();
    while let Some(it) = iterator {
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap();
        if page.records().is_empty() {
            break;
        }
        records.extend(page.records().iter().map(|r| r.data().as_ref().to_vec()));
        iterator = page.next_shard_iterator;
    }
    records
}
