//! The whole run: stack, customers, fleet, the four stream functions behind
//! local event source mappings, then the hourly export.
//!
//! **Time.** An event's `timestamp` is its stream record's
//! `ApproximateCreationDateTime`, which moto stamps with the real time of
//! the write, in whole seconds; an activation's is its `activated_at`. So
//! that the fleet's own times (`activated_at`, `connection_changed_at`,
//! datapoint `created_at`, ...) agree with that clock, the `--hours`
//! simulated hours play in compressed real time from the start of the run
//! ([`Playback`]) and each twin item is written when its time comes
//! ([`twins::play`]): every row's dates then fall in the hour folder of its
//! event, but for the second the stream's stamp may add at an hour's edge.
//! The export then runs for every hour that holds an event (read from the
//! DPL stream), as an operator's `HourRequest` (`dplctl export --hour`)
//! would, including the current, unfinished hour.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context};
use aws_config::SdkConfig;
use dpl::export::s3::S3Store;
use dpl::export::Layout;
use dpl::streams::build::{engine, DestinationSettings};
use dpl::streams::function::StreamConfig;
use dpl::streams::Transport;
use dpl::{DplRecord, Timestamp};
use hourly_export::handler::Summary;
use hourly_export::request::{HourRequest, Request};
use twin_events::dead_letter::SqsDeadLetters;

use crate::customers::{self, Customers};
use crate::esm::{DynamoDbStream, KinesisStream, Mapping, OnFailure, Settings, Stats};
use crate::fleet::{self, Fleet, Playback};
use crate::functions::{EventStore, StreamFunction, TwinEvents};
use crate::stack::{Function, Stack};
use crate::twins;

/// Per-attempt limit of one AWS call in the demo (as the functions set it).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Options {
    pub devices: usize,
    pub hours: u32,
    pub seed: u64,
    /// Resource names are `{prefix}-{LogicalId}`.
    pub prefix: String,
}

/// Where the run is, for a progress bar.
pub trait Progress {
    /// A new phase of `total` steps.
    fn phase(&self, message: &str, total: u64);
    fn advance(&self, steps: u64);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// What the run did, and the handles to look at what it wrote.
pub struct Outcome {
    pub aws: SdkConfig,
    pub stack: Stack,
    pub fleet: Fleet,
    pub customers: Customers,
    /// Every record on the DPL stream, shard by shard, in stream order.
    pub dpl_records: Vec<DplRecord>,
    /// Their data, as on the stream.
    pub dpl_data: Vec<Vec<u8>>,
    /// Each mapping's name and what it did.
    pub mappings: Vec<(String, Stats)>,
    pub exports: Vec<Summary>,
    pub bucket: String,
    pub layout: Layout,
    /// Messages on the twin-events dead-letter queue.
    pub dead_letters: usize,
    /// How long after its time a twin write was made, at most.
    pub write_trail: Duration,
}

impl Outcome {
    pub fn store(&self) -> S3Store {
        S3Store::from_sdk_config(&self.aws, &self.bucket)
    }

    /// Records given up by any mapping (sent to an on-failure queue).
    pub fn given_up(&self) -> usize {
        self.mappings.iter().map(|(_, s)| s.given_up).sum()
    }
}

/// The AWS configuration, refusing anything but a local emulator.
pub async fn local_aws() -> anyhow::Result<SdkConfig> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if !(endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:")) {
        bail!(
            "AWS_ENDPOINT_URL must point at a local moto server on 127.0.0.1 (found {endpoint:?}): \
             run `make demo`, or `scripts/with-moto.sh cargo run -p demo`"
        );
    }
    Ok(dpl::sdk::load(ATTEMPT_TIMEOUT).await)
}

fn budget(function: &Function, margin: Duration) -> Duration {
    Duration::from_secs(function.timeout_seconds).saturating_sub(margin)
}

fn on_failure(
    stack: &Stack,
    aws: &SdkConfig,
    function: &Function,
    kind: &str,
) -> anyhow::Result<Option<OnFailure>> {
    let source = function.event_source(kind)?;
    source
        .on_failure_arn
        .as_deref()
        .map(|arn| {
            Ok(OnFailure {
                sqs: aws_sdk_sqs::Client::new(aws),
                queue_url: stack.queue_url(arn)?,
            })
        })
        .transpose()
}

/// Runs the demo pipeline (see the module docs).
pub async fn run(options: &Options, progress: &dyn Progress) -> anyhow::Result<Outcome> {
    // The SDK and handler futures are large: keep them off the stack.
    Box::pin(run_boxed(options, progress)).await
}

async fn run_boxed(options: &Options, progress: &dyn Progress) -> anyhow::Result<Outcome> {
    anyhow::ensure!(options.devices > 0, "--devices must be at least 1");
    anyhow::ensure!((1..=24).contains(&options.hours), "--hours must be 1 to 24");
    let aws = local_aws().await?;

    progress.phase("creating the resources of template.yaml", 1);
    let prefix = options.prefix.clone();
    let stack = tokio::task::spawn_blocking(move || Stack::create(&Stack::repo_root(), &prefix))
        .await
        .context("creating the resources")??;
    progress.advance(1);

    let twin_fn = stack.function("twin-events")?;
    let store_fn = stack.function("event-store")?;
    let export_fn = stack.function("hourly-export")?;
    let kinesis_fn = stack.function("stream-kinesis")?;
    let hubs_fn = stack.function("stream-eventhubs")?;

    progress.phase("creating the customers' subscriptions", 1);
    let kinesis_config = StreamConfig::from_lookup(Transport::Kinesis, |n| kinesis_fn.var(n))?;
    let customers =
        customers::create(&aws, &options.prefix, &kinesis_config.subscriptions_table).await?;
    progress.advance(1);

    let fleet = fleet::simulate(
        options.devices,
        options.hours,
        Playback::for_fleet(Timestamp::now(), options.devices),
        options.seed,
    );
    let twins_table = stack.resource("TwinsTable")?.reference.clone();
    progress.phase(
        "writing twin changes to the twins table, each at its time",
        fleet.writes.len() as u64,
    );
    let write_trail = twins::play(
        &aws_sdk_dynamodb::Client::new(&aws),
        &twins_table,
        &fleet.writes,
        |n| progress.advance(n as u64),
    )
    .await?;

    // twin-events behind the twins table's stream.
    let twin_config = twin_events::Config::from_lookup(|n| twin_fn.var(n))?;
    let source = twin_fn.event_source("DynamoDB")?;
    let mut twin_mapping = Mapping::new(
        "twin-events",
        DynamoDbStream::open(
            aws_sdk_dynamodbstreams::Client::new(&aws),
            &source.source_arn,
            &stack.region,
        )
        .await?,
        TwinEvents {
            handler: twin_events::Handler::new(
                aws_sdk_kinesis::Client::new(&aws),
                SqsDeadLetters::new(
                    aws_sdk_sqs::Client::new(&aws),
                    &twin_config.dead_letter_queue_url,
                ),
                &twin_config,
            ),
            budget: budget(twin_fn, twin_config.deadline_margin),
        },
        Settings::from_template(source),
    );
    twin_mapping.on_failure = on_failure(&stack, &aws, twin_fn, "DynamoDB")?;
    progress.phase(
        "twin-events: twins table stream -> DPL stream",
        fleet.writes.len() as u64,
    );
    twin_mapping.drain(&|n| progress.advance(n as u64)).await?;

    let dpl_arn = stack.resource("DplStream")?.attributes["Arn"].clone();
    let dpl_data = read_dpl_stream(&aws, &dpl_arn, &stack.region).await?;
    let dpl_records = dpl_data
        .iter()
        .map(|data| DplRecord::from_json(data))
        .collect::<Result<Vec<_>, _>>()
        .context("a DPL stream record that is not a DPL record")?;

    // The three functions behind the DPL stream, each with its own mapping.
    let store_config = event_store::Config::from_lookup(|n| store_fn.var(n))?;
    let store = S3Store::from_sdk_config(&aws, &store_config.storage.bucket);
    let kinesis_client = || aws_sdk_kinesis::Client::new(&aws);
    let mut store_mapping = Mapping::new(
        "event-store",
        KinesisStream::open(kinesis_client(), &dpl_arn, &stack.region).await?,
        EventStore {
            handler: event_store::Handler::new(store.clone(), &store_config),
        },
        Settings::from_template(store_fn.event_source("Kinesis")?),
    );
    store_mapping.on_failure = on_failure(&stack, &aws, store_fn, "Kinesis")?;

    let mut kinesis_mapping = Mapping::new(
        "stream-kinesis",
        KinesisStream::open(kinesis_client(), &dpl_arn, &stack.region).await?,
        StreamFunction {
            engine: engine(&kinesis_config, &aws, &DestinationSettings::default()),
            budget: budget(kinesis_fn, kinesis_config.deadline_margin),
        },
        Settings::from_template(kinesis_fn.event_source("Kinesis")?),
    );
    kinesis_mapping.on_failure = on_failure(&stack, &aws, kinesis_fn, "Kinesis")?;

    // Not in the template: the local endpoint stands in for Azure, as
    // EVENTHUBS_ENDPOINT_URL does for the function in local runs.
    let hubs_config = StreamConfig::from_lookup(Transport::EventHubs, |n| hubs_fn.var(n))?;
    let hubs_settings = DestinationSettings {
        eventhubs_endpoint_url: Some(format!("http://{}", customers.hubs.addr())),
        concurrency: hubs_config.concurrency,
    };
    let mut hubs_mapping = Mapping::new(
        "stream-eventhubs",
        KinesisStream::open(kinesis_client(), &dpl_arn, &stack.region).await?,
        StreamFunction {
            engine: engine(&hubs_config, &aws, &hubs_settings),
            budget: budget(hubs_fn, hubs_config.deadline_margin),
        },
        Settings::from_template(hubs_fn.event_source("Kinesis")?),
    );
    hubs_mapping.on_failure = on_failure(&stack, &aws, hubs_fn, "Kinesis")?;

    progress.phase(
        "event-store, stream-kinesis, stream-eventhubs: DPL stream -> staging, customers",
        3 * dpl_records.len() as u64,
    );
    let advance = |n: usize| progress.advance(n as u64);
    let (a, b, c) = tokio::join!(
        Box::pin(store_mapping.drain(&advance)),
        Box::pin(kinesis_mapping.drain(&advance)),
        Box::pin(hubs_mapping.drain(&advance)),
    );
    a?;
    b?;
    c?;

    // The hours that hold events, exported as an operator run would.
    let hours: BTreeSet<Timestamp> = dpl_records
        .iter()
        .map(|r| r.dpl_event.time().hour_start())
        .collect();
    let export_config = hourly_export::Config::from_lookup(|n| export_fn.var(n))?;
    let export = hourly_export::Handler::new(store, &export_config)?;
    progress.phase(
        "hourly-export: staging -> CSV per OEM, type and hour",
        hours.len() as u64,
    );
    let mut exports = Vec::new();
    for hour in &hours {
        let request = Request::Hour(HourRequest {
            hour: hour.iso_seconds().to_string()[..13].to_owned(),
            oem_id: None,
            event_type: None,
            force: false,
            allow_shrink: false,
            range: None,
        });
        let summary = export
            .process(&request)
            .await
            .with_context(|| format!("hourly-export of {}", hour.iso_seconds()))?
            .summary()
            .context("an hour request answers with a summary")?;
        exports.push(summary);
        progress.advance(1);
    }

    let dead_letters = queue_depth(&aws, &twin_config.dead_letter_queue_url).await?;
    Ok(Outcome {
        mappings: vec![
            (twin_mapping.name.clone(), twin_mapping.stats.clone()),
            (store_mapping.name.clone(), store_mapping.stats.clone()),
            (kinesis_mapping.name.clone(), kinesis_mapping.stats.clone()),
            (hubs_mapping.name.clone(), hubs_mapping.stats.clone()),
        ],
        bucket: export_config.storage.bucket.clone(),
        layout: export_config.storage.layout.clone(),
        aws,
        stack,
        fleet,
        customers,
        dpl_records,
        dpl_data,
        exports,
        dead_letters,
        write_trail,
    })
}

/// The data of every record of the DPL stream, shard after shard.
pub async fn read_dpl_stream(
    aws: &SdkConfig,
    arn: &str,
    region: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    use crate::esm::Source;
    let mut stream = KinesisStream::open(aws_sdk_kinesis::Client::new(aws), arn, region).await?;
    let mut out = Vec::new();
    for shard in 0..stream.shard_ids().len() {
        loop {
            let page = stream.read(shard, 10_000).await?;
            if page.is_empty() {
                break;
            }
            out.extend(page.into_iter().map(|record| record.kinesis.data.0));
        }
    }
    Ok(out)
}

async fn queue_depth(aws: &SdkConfig, url: &str) -> anyhow::Result<usize> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let answer = aws_sdk_sqs::Client::new(aws)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}"))?;
    Ok(answer
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
