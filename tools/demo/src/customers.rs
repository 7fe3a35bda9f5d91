//! The two example customers and their subscriptions, created through the
//! library calls `dplctl streams create` makes (`Subscription::new`
//! validation, the secret in Secrets Manager as `dpl/streams/{id}`, then
//! the subscription item):
//!
//! - Acme Home (OEM `0dfc7900`): every event, to a Kinesis stream in the
//!   customer's account (eu-west-1), written with a role we assume;
//! - Breeze Air (OEM `1a2b3c4d`): connectivity, and the datapoints and acks
//!   of `fan_speed` and `pm25` only, to an event hub, here the local Event
//!   Hubs endpoint (`tools/eventhubs-local`) on 127.0.0.1, its connection
//!   string in Secrets Manager.

use anyhow::Context;
use aws_config::{Region, SdkConfig};
use base64::Engine;
use dpl::streams::secrets::{
    check_connection_string, secret_name, SecretStore, SecretString, SecretsManager,
};
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};
use dpl::streams::{
    Credentials, Destination, Filters, Selection, Subscription, SubscriptionId, SubscriptionSpec,
};
use dpl::{EventType, Timestamp};
use eventhubs_local::{HubKey, LocalEventHubs};

use crate::fleet::OEMS;

/// The customer's AWS account (moto keeps one backend per account).
pub const CUSTOMER_ACCOUNT: &str = "210987654321";
pub const CUSTOMER_REGION: &str = "eu-west-1";
pub const EXTERNAL_ID: &str = "dpl-0dfc7900";
pub const NAMESPACE: &str = "breeze-air-events";
pub const HUB: &str = "devices";

/// The customers' endpoints and subscriptions.
pub struct Customers {
    pub kinesis: Subscription,
    pub stream_name: String,
    pub eventhubs: Subscription,
    pub hubs: LocalEventHubs,
}

/// A Kinesis client acting as the customer: in the stream's region, with
/// the role the subscription names (moto's STS hands out the account's
/// credentials).
pub async fn customer_kinesis(
    aws: &SdkConfig,
    role_arn: &str,
) -> anyhow::Result<aws_sdk_kinesis::Client> {
    let sts = assume_role(aws, role_arn).await;
    let config = aws_sdk_kinesis::config::Builder::from(aws)
        .region(Region::new(CUSTOMER_REGION))
        .credentials_provider(sts)
        .build();
    Ok(aws_sdk_kinesis::Client::from_conf(config))
}

/// Credentials of `role_arn`, assumed with the SDK's own provider (the one
/// `KinesisDestinations` uses).
async fn assume_role(aws: &SdkConfig, role_arn: &str) -> aws_config::sts::AssumeRoleProvider {
    aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("dpl-demo-customer")
        .external_id(EXTERNAL_ID)
        .configure(aws)
        .build()
        .await
}

pub fn role_arn() -> String {
    format!("arn:aws:iam::{CUSTOMER_ACCOUNT}:role/dpl-delivery-writer")
}

/// Creates the customer stream and the local event hub, and both
/// subscriptions in `subscriptions_table`.
pub async fn create(
    aws: &SdkConfig,
    prefix: &str,
    subscriptions_table: &str,
) -> anyhow::Result<Customers> {
    let store = DynamoSubscriptions::from_sdk_config(aws, subscriptions_table);
    let secrets = SecretsManager::from_sdk_config(aws);
    let now = Timestamp::now();

    let stream_name = format!("{prefix}-acme-home-events");
    let customer = customer_kinesis(aws, &role_arn()).await?;
    customer
        .create_stream()
        .stream_name(&stream_name)
        .shard_count(2)
        .send()
        .await
        .context("creating the customer's Kinesis stream")?;
    let spec = SubscriptionSpec {
        oem_id: OEMS[0].id.into(),
        name: "Acme Home, all events".into(),
        description: "Every device event to Acme's analytics stream".into(),
        destination: Destination::Kinesis {
            stream_arn: format!(
                "arn:aws:kinesis:{CUSTOMER_REGION}:{CUSTOMER_ACCOUNT}:stream/{stream_name}"
            )
            .parse()?,
        },
        credentials: Credentials::AssumeRole {
            role_arn: role_arn(),
            external_id: Some(EXTERNAL_ID.into()),
        },
        filters: Filters::all(),
    };
    let kinesis = Subscription::new(SubscriptionId::generate(), spec, now)?;
    store
        .create(&kinesis)
        .await
        .context("storing the Kinesis subscription")?;

    // A fresh key each run; it lives in the endpoint and in the secret only.
    let mut key = [0u8; 32];
    key.iter_mut().for_each(|b| *b = fastrand::u8(..));
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let hub_key = HubKey::new(NAMESPACE, HUB, "send", &key);
    let hubs = LocalEventHubs::start(vec![hub_key.clone()])
        .await
        .context("starting the local Event Hubs endpoint")?;
    let id = SubscriptionId::generate();
    let spec = SubscriptionSpec {
        oem_id: OEMS[1].id.into(),
        name: "Breeze Air, connectivity and air quality".into(),
        description: String::new(),
        destination: Destination::EventHubs {
            namespace: NAMESPACE.into(),
            hub: HUB.into(),
        },
        credentials: Credentials::ConnectionStringSecret {
            secret_id: secret_name(&id),
        },
        filters: Filters {
            event_types: Selection::only([
                EventType::Connectivity,
                EventType::Datapoint,
                EventType::DatapointAck,
            ]),
            properties: Selection::only(["fan_speed".to_owned(), "pm25".to_owned()]),
            ..Filters::all()
        },
    };
    // Checked before anything is written, as dplctl does.
    let mut eventhubs = Subscription::new(id.clone(), spec, now)?;
    let connection = SecretString::new(hub_key.connection_string());
    check_connection_string(&connection, NAMESPACE, HUB)?;
    let secret_id = secrets
        .put(&secret_name(&id), &connection)
        .await
        .context("storing the connection string")?;
    eventhubs.credentials = Credentials::ConnectionStringSecret { secret_id };
    store
        .create(&eventhubs)
        .await
        .context("storing the Event Hubs subscription")?;

    Ok(Customers {
        kinesis,
        stream_name,
        eventhubs,
        hubs,
    })
}

/// Every record of a customer's Kinesis stream, as the customer reads it
/// (`GetShardIterator` `TRIM_HORIZON`, then `GetRecords`): shard id and
/// record, shard after shard.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream_name: &str,
) -> anyhow::Result<Vec<(String, aws_sdk_kinesis::types::Record)>> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = client
        .list_shards()
        .stream_name(stream_name)
        .send()
        .await
        .with_context(|| format!("ListShards {stream_name}"))?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream_name)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .context("GetShardIterator")?
            .shard_iterator;
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .context("GetRecords")?;
            if page.records().is_empty() {
                break;
            }
            out.extend(
                page.records()
                    .iter()
                    .map(|r| (shard.shard_id().to_owned(), r.clone())),
            );
            iterator = page.next_shard_iterator;
        }
    }
    Ok(out)
}
