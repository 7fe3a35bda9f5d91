//! `dplctl streams` end to end on the AWS emulator (moto server): the built
//! binary against a fresh DynamoDB table and Secrets Manager, through
//! create -> list -> show -> disable -> enable -> delete, and the refusals.
//! Every output is checked for the secret values: none may appear.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use dpl::position::{Position, SequenceNumber};
use dpl::streams::cursor::Cursor;
use dpl::streams::dead_letter::DeadLetter;
use dpl::streams::delivery::Delivery;
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::Timestamp;
use serde_json::Value;

mod common;
use common::{create_state_table, create_table, kinesis_eu, nanos, sdk, stream_records, ROLE_ARN};

const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzTOPSECRETzz";
const SAS_KEY: &str = "c2FzLWtleS10aGF0LW11c3QtbmV2ZXItYmUtcHJpbnRlZA==";
const STREAM_ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ayla-events";

fn access_key_json() -> String {
    format!(
        r#"{{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "{SECRET_ACCESS_KEY}"}}"#
    )
}

fn connection_string() -> String {
    format!(
        "Endpoint=sb://contoso-events.servicebus.windows.net/;SharedAccessKeyName=send;\
         SharedAccessKey={SAS_KEY};EntityPath=devices\n"
    )
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary, collecting every output to check for secrets at the end.
struct Cli {
    table: String,
    state_table: String,
    outputs: Vec<String>,
}

impl Cli {
    fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dplctl"))
            .arg("streams")
            .args(args)
            .env("SUBSCRIPTIONS_TABLE", &self.table)
            .env("DELIVERY_STATE_TABLE", &self.state_table)
            .env("RUST_BACKTRACE", "0")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dplctl runs");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        let run = Run {
            ok: status.success(),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        };
        self.outputs
            .push(format!("$ {args:?}\n{}{}", run.stdout, run.stderr));
        run
    }

    fn ok(&mut self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.run(args, stdin);
        assert!(run.ok, "{args:?} failed: {}{}", run.stdout, run.stderr);
        run.stdout
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&mut self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.run(args, stdin);
        assert!(!run.ok, "{args:?} succeeded: {}", run.stdout);
        run.stderr
    }

    fn json(&mut self, args: &[&str], stdin: Option<&str>) -> Value {
        let stdout = self.ok(args, stdin);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

async fn secret_names(secrets: &aws_sdk_secretsmanager::Client) -> Vec<String> {
    let mut names = Vec::new();
    let mut pages = secrets.list_secrets().into_paginator().send();
    while let Some(page) = pages.next().await {
        names.extend(
            page.unwrap()
                .secret_list()
                .iter()
                .filter_map(|s| s.name().map(str::to_owned)),
        );
    }
    names.sort();
    names
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn streams_crud_on_the_emulator_never_prints_a_secret() {
    let aws = sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let nanos = nanos();
    let table = format!("subscriptions-{}-{nanos}", std::process::id());
    let state_table = format!("state-{}-{nanos}", std::process::id());
    create_table(&dynamo, &table).await;
    create_state_table(&dynamo, &state_table).await;
    let mut cli = Cli {
        table: table.clone(),
        state_table: state_table.clone(),
        outputs: Vec::new(),
    };
    let oem = format!("oem{nanos}");

    // create: Kinesis with an access key from stdin.
    let keys = access_key_json();
    let kinesis = cli.json(
        &[
            "create",
            "--oem",
            &oem,
            "--name",
            "to Kinesis",
            "--transport",
            "kinesis",
            "--stream-arn",
            STREAM_ARN,
            "--access-key-file",
            "-",
            "--event-types",
            "datapoint,datapointack",
            "--properties",
            "temp,hum",
            "--json",
        ],
        Some(&keys),
    );
    let kinesis_id = id_of(&kinesis);
    assert_eq!(kinesis["credentials"]["type"], "access_key_secret");
    let kinesis_secret = kinesis["credentials"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        kinesis_secret.contains(&format!(":secret:dpl/streams/{kinesis_id}")),
        "{kinesis_secret}"
    );
    assert_eq!(
        kinesis["filters"]["properties"],
        serde_json::json!(["hum", "temp"])
    );
    let stored = secrets
        .get_secret_value()
        .secret_id(&kinesis_secret)
        .send()
        .await
        .unwrap();
    assert!(stored.secret_string().unwrap().contains(SECRET_ACCESS_KEY));

    // create: Event Hubs with a connection string from a file.
    let file = std::env::temp_dir().join(format!("dplctl-cs-{nanos}"));
    std::fs::write(&file, connection_string()).unwrap();
    let hubs = cli.json(
        &[
            "--table",
            &table,
            "create",
            "--oem",
            &oem,
            "--name",
            "to Azure",
            "--transport",
            "eventhubs",
            "--namespace",
            "contoso-events",
            "--hub",
            "devices",
            "--connection-string-file",
            file.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    std::fs::remove_file(&file).unwrap();
    let hubs_id = id_of(&hubs);
    let hubs_secret = hubs["credentials"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = secrets
        .get_secret_value()
        .secret_id(&hubs_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.secret_string().unwrap(), connection_string().trim());

    // create: assumed role, disabled, another OEM; text output.
    let other_oem = format!("other{nanos}");
    let shown = cli.ok(
        &[
            "create",
            "--oem",
            &other_oem,
            "--name",
            "role",
            "--transport",
            "kinesis",
            "--stream-arn",
            STREAM_ARN,
            "--role-arn",
            ROLE_ARN,
            "--external-id",
            "dpl-x1",
            "--disabled",
        ],
        None,
    );
    assert!(shown.contains("status:       disabled"), "{shown}");
    assert!(
        shown.contains(&format!("role arn:     {ROLE_ARN}")),
        "{shown}"
    );

    // list: a table, all or one OEM's; JSON.
    let listed = cli.ok(&["list"], None);
    let header = listed.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("LAST SUCCESS"),
        "{listed}"
    );
    for id in [&kinesis_id, &hubs_id] {
        let row = listed.lines().find(|l| l.starts_with(id.as_str())).unwrap();
        assert!(
            row.contains(&oem) && row.contains("enabled") && row.contains("never"),
            "{row}"
        );
    }
    assert!(
        listed.contains("eventhubs") && listed.contains("disabled"),
        "{listed}"
    );
    let mine = cli.json(&["list", "--oem", &oem, "--json"], None);
    let mut ids: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = [kinesis_id.as_str(), hubs_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);

    // show: everything but the secret's value.
    let shown = cli.ok(&["show", &kinesis_id], None);
    for expected in [
        format!("id:           {kinesis_id}"),
        format!("stream arn:   {STREAM_ARN}"),
        "credentials:  access_key_secret".to_owned(),
        format!("secret:       {kinesis_secret} (value not shown)"),
        "event types:  datapoint,datapointack".to_owned(),
        "properties:   hum,temp".to_owned(),
        "delivery:     live".to_owned(),
        "dead letters: 0".to_owned(),
    ] {
        assert!(shown.contains(&expected), "{expected:?} not in\n{shown}");
    }
    let shown = cli.json(&["show", &hubs_id, "--json"], None);
    assert_eq!(shown["destination"]["namespace"], "contoso-events");
    assert_eq!(shown["status"], "enabled");
    assert_eq!(shown["delivery"]["behind_shards"], 0);
    // The fields in the model's order (id first), the delivery state last.
    let raw = cli.ok(&["show", &hubs_id, "--json"], None);
    let fields: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
        .collect();
    assert_eq!(fields.first(), Some(&"id"), "{raw}");
    assert_eq!(fields.last(), Some(&"delivery"), "{raw}");

    // disable, enable.
    assert_eq!(
        cli.ok(&["disable", &hubs_id], None).trim(),
        format!("{hubs_id} disabled")
    );
    assert_eq!(
        cli.json(&["show", &hubs_id, "--json"], None)["status"],
        "disabled"
    );
    cli.ok(&["enable", &hubs_id], None);
    assert_eq!(
        cli.json(&["show", &hubs_id, "--json"], None)["status"],
        "enabled"
    );

    // Refusals: clear messages, nothing written.
    let before = secret_names(&secrets).await;
    let kinesis_args = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "create",
            "--oem",
            "o",
            "--name",
            "n",
            "--transport",
            "kinesis",
            "--role-arn",
            ROLE_ARN,
            "--external-id",
            "dpl-test",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cases: Vec<(Vec<String>, Option<String>, &str)> = vec![
        (
            kinesis_args(&["--stream-arn", "arn:aws:kinesis:eu-west-1:1234:stream/x"]),
            None,
            "account id `1234` is not 12 digits",
        ),
        (
            kinesis_args(&[
                "--stream-arn",
                STREAM_ARN,
                "--event-types",
                "datapoint,connection",
            ]),
            None,
            "`connection` is not an event type",
        ),
        (
            kinesis_args(&[
                "--stream-arn",
                STREAM_ARN,
                "--event-types",
                "location",
                "--properties",
                "temp",
            ]),
            None,
            "properties can never match",
        ),
        (
            [
                "create",
                "--oem",
                "o",
                "--name",
                "n",
                "--transport",
                "eventhubs",
                "--namespace",
                "contoso-events",
                "--hub",
                "devices",
                "--connection-string-file",
                "-",
            ]
            .map(str::to_owned)
            .to_vec(),
            Some(format!(
                "Endpoint=sb://contoso-events.servicebus.windows.net/;SharedAccessKey={SAS_KEY}"
            )),
            "connection string has no SharedAccessKeyName",
        ),
        (
            [
                "create",
                "--oem",
                "o",
                "--name",
                "n",
                "--transport",
                "kinesis",
                "--stream-arn",
                STREAM_ARN,
                "--access-key-file",
                "-",
            ]
            .map(str::to_owned)
            .to_vec(),
            Some(format!(
                r#"{{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "{SECRET_ACCESS_KEY}""#
            )),
            "access key secret: not JSON",
        ),
        (
            [
                "create",
                "--oem",
                "o",
                "--name",
                " ",
                "--transport",
                "kinesis",
                "--stream-arn",
                STREAM_ARN,
                "--role-arn",
                ROLE_ARN,
                "--external-id",
                "dpl-test",
            ]
            .map(str::to_owned)
            .to_vec(),
            None,
            "name is empty",
        ),
    ];
    for (args, stdin, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = cli.fails(&args, stdin.as_deref());
        assert!(stderr.contains(expected), "{expected:?} not in {stderr:?}");
        assert!(stderr.starts_with("Error: "), "{stderr}");
    }

    // A failed DynamoDB write deletes the secret just made.
    let stderr = cli.fails(
        &[
            "--table",
            "no-such-table",
            "create",
            "--oem",
            "o",
            "--name",
            "n",
            "--transport",
            "kinesis",
            "--stream-arn",
            STREAM_ARN,
            "--access-key-file",
            "-",
        ],
        Some(&keys),
    );
    assert!(stderr.contains("was deleted again"), "{stderr}");
    assert_eq!(secret_names(&secrets).await, before);

    // A subscription behind on a shard, with a dead letter: `show` says so,
    // `list` too.
    let state = DynamoState::new(dynamo.clone(), &state_table);
    let sub_id: dpl::streams::SubscriptionId = kinesis_id.parse().unwrap();
    let seq = SequenceNumber::parse("42").unwrap();
    let since = Timestamp::from_millis(Timestamp::now().millis() - 90_000).unwrap();
    let cursor = Cursor::behind(
        sub_id.clone(),
        "shardId-000000000000",
        &seq,
        since,
        &seq,
        since,
    );
    state.create(&cursor).await.unwrap();
    let record = dpl::examples::seed_record(
        dpl::EventType::Location,
        &oem,
        "m",
        "AC000W000000009",
        "p",
        1,
    );
    let delivery = Delivery::new(
        Position::new("shardId-000000000000", "41").unwrap(),
        since,
        &record,
    );
    let letter = DeadLetter::new(&delivery, "413 Request Entity Too Large", since);
    state.add_dead_letters(&sub_id, &[letter]).await.unwrap();
    let shown = cli.ok(&["show", &kinesis_id], None);
    for expected in [
        "delivery:     behind on 1 shard for 1m 3",
        "  shardId-000000000000: catching up at 42, oldest event waiting 1m 3",
        "dead letters: 1",
        "413 Request Entity Too Large",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }
    let listed = cli.ok(&["list", "--oem", &oem], None);
    let row = listed
        .lines()
        .find(|l| l.starts_with(kinesis_id.as_str()))
        .unwrap();
    assert!(row.contains("behind on 1 shard for 1m 3"), "{row}");

    // delete: needs --yes, removes item, secret, cursors and dead letters.
    let stderr = cli.fails(&["delete", &kinesis_id], None);
    assert!(
        stderr.contains("pass --yes") && stderr.contains(&kinesis_secret),
        "{stderr}"
    );
    let deleted = cli.ok(&["delete", &kinesis_id, "--yes"], None);
    assert!(
        deleted.contains(&format!("deleted {kinesis_id} and its secret")),
        "{deleted}"
    );
    assert!(deleted.contains("2 cursors and dead letters"), "{deleted}");
    assert!(state.cursors_of(&sub_id).await.unwrap().is_empty());
    assert_eq!(state.count_dead_letters(&sub_id).await.unwrap(), 0);
    let stderr = cli.fails(&["show", &kinesis_id], None);
    assert!(stderr.contains("does not exist"), "{stderr}");
    let gone = secrets
        .get_secret_value()
        .secret_id(&kinesis_secret)
        .send()
        .await;
    assert!(gone.is_err(), "the secret outlived its subscription");
    cli.ok(&["delete", &hubs_id, "--yes"], None);
    let listed = cli.json(&["list", "--oem", &oem, "--json"], None);
    assert_eq!(listed, serde_json::json!([]));

    // Errors without a table name, or with a bad id.
    let run = Command::new(env!("CARGO_BIN_EXE_dplctl"))
        .args(["streams", "list"])
        .env_remove("SUBSCRIPTIONS_TABLE")
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("pass --table or set SUBSCRIPTIONS_TABLE")
    );
    let stderr = cli.fails(&["show", "sub-nothex"], None);
    assert!(stderr.contains("subscription id `sub-nothex`"), "{stderr}");

    for output in &cli.outputs {
        assert!(
            !output.contains(SECRET_ACCESS_KEY),
            "secret printed:\n{output}"
        );
        assert!(!output.contains(SAS_KEY), "secret printed:\n{output}");
    }
}

/// The DynamoDB adapter's health updates, which the CLI does not make:
/// they set only their own attributes, keep the later time, and never
/// create an item.
#[tokio::test(flavor = "current_thread")]
async fn health_updates_never_clobber_configuration() {
    use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore, SubscriptionStoreError};
    use dpl::streams::{
        Credentials, Destination, Filters, Status, Subscription, SubscriptionId, SubscriptionSpec,
    };

    let aws = sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let nanos = nanos();
    let table = format!("health-{}-{nanos}", std::process::id());
    create_table(&dynamo, &table).await;
    let store = DynamoSubscriptions::new(dynamo, &table);
    let at = |ms| Timestamp::from_millis(ms).unwrap();
    let subscription = Subscription::new(
        SubscriptionId::generate(),
        SubscriptionSpec {
            oem_id: "0dfc7900".to_owned(),
            name: "health".to_owned(),
            description: "kept".to_owned(),
            destination: Destination::Kinesis {
                stream_arn: STREAM_ARN.parse().unwrap(),
            },
            credentials: Credentials::AssumeRole {
                role_arn: ROLE_ARN.to_owned(),
                external_id: Some("dpl-test".to_owned()),
            },
            filters: Filters::all(),
        },
        at(1_000),
    )
    .unwrap();
    let id = &subscription.id;
    store.create(&subscription).await.unwrap();
    assert_eq!(
        store.create(&subscription).await,
        Err(SubscriptionStoreError::AlreadyExists(id.clone()))
    );

    store.record_success(id, at(5_000)).await.unwrap();
    store.record_success(id, at(4_000)).await.unwrap(); // older: ignored
    store
        .record_error(id, at(6_000), "throttled")
        .await
        .unwrap();
    store.record_error(id, at(5_500), "older").await.unwrap();
    store.set_status(id, Status::Disabled).await.unwrap();

    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.health.last_success, Some(at(5_000)));
    let last_error = stored.health.last_error.clone().unwrap();
    assert_eq!(
        (last_error.at, last_error.message.as_str()),
        (at(6_000), "throttled")
    );
    assert_eq!(stored.status, Status::Disabled);
    let mut configuration = stored.clone();
    configuration.health = subscription.health.clone();
    configuration.status = subscription.status;
    assert_eq!(configuration, subscription);

    store.delete(id).await.unwrap();
    let gone = Err(SubscriptionStoreError::NotFound(id.clone()));
    assert_eq!(store.record_success(id, at(9_000)).await, gone);
    assert_eq!(store.record_error(id, at(9_000), "x").await, gone);
    assert_eq!(store.set_status(id, Status::Enabled).await, gone);
    assert_eq!(store.delete(id).await, gone);
    assert_eq!(store.get(id).await.unwrap(), None);
    assert!(
        store.list(None).await.unwrap().subscriptions.is_empty(),
        "health recreated the item"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn test_and_redrive_reach_the_customer_stream_or_say_why_not() {
    let aws = sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let nanos = nanos();
    let table = format!("subscriptions-td-{nanos}");
    let state_table = format!("state-td-{nanos}");
    create_table(&dynamo, &table).await;
    create_state_table(&dynamo, &state_table).await;
    let stream = format!("customer-{nanos}");
    kinesis_eu(&aws)
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let mut cli = Cli {
        table,
        state_table: state_table.clone(),
        outputs: Vec::new(),
    };
    let create = |cli: &mut Cli, stream: &str| {
        let arn = format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}");
        let created = cli.json(
            &[
                "create",
                "--oem",
                "oemtest1",
                "--name",
                stream,
                "--transport",
                "kinesis",
                "--stream-arn",
                &arn,
                "--role-arn",
                ROLE_ARN,
                "--external-id",
                "dplctl-test-1",
                "--json",
            ],
            None,
        );
        id_of(&created)
    };

    let id = create(&mut cli, &stream);
    let out = cli.ok(&["test", &id], None);
    assert!(out.contains("delivered one datapoint event"), "{out}");
    assert_eq!(stream_records(&aws, &stream).await.len(), 1);

    let missing = create(&mut cli, &format!("missing-{nanos}"));
    let err = cli.fails(&["test", &missing], None);
    assert!(err.contains("ResourceNotFound"), "{err}");

    let state = DynamoState::new(dynamo.clone(), &state_table);
    let deliveries: Vec<Delivery> = (0..3)
        .map(|n| {
            let record = dpl::examples::seed_record(
                dpl::EventType::Location,
                "oemtest1",
                "m",
                "AC000W000000009",
                "p",
                n,
            );
            Delivery::new(
                Position::new("shardId-000000000000", &(100 + n).to_string()).unwrap(),
                Timestamp::now(),
                &record,
            )
        })
        .collect();
    // Three events the stream refused for good (say, while its owner had
    // a policy refusing them), redriven after the fix.
    let sub_id = id.parse().unwrap();
    let letters: Vec<DeadLetter> = deliveries
        .iter()
        .map(|d| DeadLetter::new(d, "refused", Timestamp::now()))
        .collect();
    state.add_dead_letters(&sub_id, &letters).await.unwrap();
    let out = cli.ok(&["redrive", &id], None);
    assert!(
        out.contains("3 dead letters delivered, 0 refused again; none left"),
        "{out}"
    );
    let records = stream_records(&aws, &stream).await;
    assert_eq!(records.len(), 4);
    assert_eq!(
        records[1..],
        deliveries
            .iter()
            .map(|d| d.payload.clone())
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(state.count_dead_letters(&sub_id).await.unwrap(), 0);
}
