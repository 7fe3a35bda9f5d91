//! `dplctl streams`: create, list, show, enable, disable and delete customer
//! stream subscriptions (DynamoDB table + Secrets Manager). See
//! `docs/streams.md`.
//!
//! Secret material (an access key, a connection string) is read from a file
//! or stdin, never from a flag (shell history, `ps`), and never printed:
//! outputs show the secret's id only.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use dpl::streams::cursor::{Cursor, CursorState};
use dpl::streams::dead_letter::DeadLetter;
use dpl::streams::manage;
use dpl::streams::request::{CreateError, CreatePlan, CreateRequest, Naming};
use dpl::streams::secrets::{SecretString, SecretsManager, MAX_SECRET_BYTES};
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::streams::store::{DynamoSubscriptions, Listing, SubscriptionStore};
use dpl::streams::subscription::{Credentials, Destination, Status, Subscription, SubscriptionId};
use dpl::streams::summary::{duration_text, DeliverySummary};
use dpl::streams::Transport;
use dpl::Timestamp;

/// Where the table name comes from when `--table` is not given.
pub const TABLE_VAR: &str = "SUBSCRIPTIONS_TABLE";

/// Where the delivery state table comes from when `--state-table` is not
/// given (the stream functions' variable of the same name).
pub const STATE_TABLE_VAR: &str = dpl::streams::function::DELIVERY_STATE_TABLE_VAR;

/// Dead letters `show` lists (the count is always exact).
const SHOWN_DEAD_LETTERS: usize = 10;

/// Per-attempt limit of one DynamoDB or Secrets Manager call.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Args)]
pub struct StreamsArgs {
    /// DynamoDB table of the subscriptions (default: $SUBSCRIPTIONS_TABLE).
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// DynamoDB table of the delivery state: cursors of subscriptions behind,
    /// dead letters (default: $DELIVERY_STATE_TABLE). `list` shows delivery
    /// columns only with it; `show`, `redrive` and `delete` need it.
    #[arg(long, global = true)]
    pub state_table: Option<String>,
    #[command(subcommand)]
    pub command: StreamsCommand,
}

#[derive(Subcommand)]
pub enum StreamsCommand {
    /// Create a subscription (enabled unless --disabled), storing its
    /// secret, if any, in Secrets Manager.
    Create(Box<CreateArgs>),
    /// List subscriptions: id, OEM, name, transport, status, delivery (live or
    /// behind, with --state-table), dead letters, last success.
    List {
        /// Only this OEM's subscriptions.
        #[arg(long)]
        oem: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one subscription (secrets by id only, never their value).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume delivery.
    Enable { id: String },
    /// Pause delivery.
    Disable { id: String },
    /// Send one sample event (the seed's datapoint, with the
    /// subscription's OEM) to the destination, whatever the filters and
    /// status, and report exactly what failed.
    Test { id: String },
    /// Send the subscription's dead letters (events its destination refused
    /// for good) again, after a fix; each is removed once accepted. Events
    /// missed during an outage need no redrive: the stream functions catch
    /// up by themselves.
    Redrive {
        id: String,
        /// The DPL stream, to read back dead letters whose payload was too
        /// large to keep (default: $DPL_STREAM_NAME).
        #[arg(long)]
        dpl_stream: Option<String>,
    },
    /// Send the subscription's events of past hours again, from the stored
    /// events (staging objects of its OEM), in event-time order, through
    /// its destination; only the events it accepts now (status, filters).
    Replay {
        /// The subscription (`sub-...`).
        #[arg(long)]
        subscription: String,
        /// First hour, UTC: `2020-08-28T09`.
        #[arg(long)]
        from: String,
        /// Last hour, inclusive (same form as --from).
        #[arg(long)]
        to: String,
        /// Count the events that would be sent, per type; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// The bucket holding the staging objects (default: $BUCKET).
        /// Staging is kept `StagingRetentionDays` (3 by default): older
        /// hours have nothing to replay.
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Delete a subscription, its secret, its cursors and its dead letters,
    /// at once and for good.
    Delete {
        id: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The OEM whose events are delivered.
    #[arg(long)]
    pub oem: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// `kinesis` or `eventhubs`.
    #[arg(long)]
    pub transport: String,
    /// Kinesis: arn:aws:kinesis:REGION:ACCOUNT:stream/NAME.
    #[arg(long)]
    pub stream_arn: Option<String>,
    /// Event Hubs: the namespace name (not its host name).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Event Hubs: the event hub.
    #[arg(long)]
    pub hub: Option<String>,
    /// Kinesis: a role in the customer's account that we assume.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Kinesis, required with --role-arn: the external id the role's trust
    /// policy requires (`sts:ExternalId`; docs/streams.md, "Trust policy").
    #[arg(long, requires = "role_arn")]
    pub external_id: Option<String>,
    /// Kinesis: a file (`-` for stdin) holding
    /// {"access_key_id": "...", "secret_access_key": "..."}.
    #[arg(long)]
    pub access_key_file: Option<PathBuf>,
    /// Event Hubs: a file (`-` for stdin) holding the connection string.
    #[arg(long)]
    pub connection_string_file: Option<PathBuf>,
    /// `*` or a comma-separated list of event types.
    #[arg(long, default_value = "*")]
    pub event_types: String,
    /// `*` or a comma-separated list of OEM models.
    #[arg(long, default_value = "*")]
    pub models: String,
    /// `*` or a comma-separated list of property names (datapoint and
    /// datapointack events only).
    #[arg(long, default_value = "*")]
    pub properties: String,
    /// `*` or a comma-separated list of DSNs.
    #[arg(long, default_value = "*")]
    pub dsns: String,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Kinesis: add "event_id" as the last field of every record's data, so
    /// that the consumer can deduplicate (default: the vendor's payload,
    /// byte for byte; event hub messages carry event_id as a property).
    #[arg(long)]
    pub event_id_in_payload: bool,
    /// Print the created subscription as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The table: `--table`, else `$SUBSCRIPTIONS_TABLE`.
pub(crate) fn table_name(flag: Option<String>, env: Option<String>) -> anyhow::Result<String> {
    flag.or(env)
        .filter(|t| !t.trim().is_empty())
        .with_context(|| format!("no subscriptions table: pass --table or set {TABLE_VAR}"))
}

/// The delivery state table: `--state-table`, else `$DELIVERY_STATE_TABLE`.
pub(crate) fn state_table_name(
    flag: Option<String>,
    env: Option<String>,
) -> anyhow::Result<String> {
    flag.or(env)
        .filter(|t| !t.trim().is_empty())
        .with_context(|| {
            format!("no delivery state table: pass --state-table or set {STATE_TABLE_VAR}")
        })
}

/// Names, on stderr, every subscription item that does not decode: the
/// others are still listed.
pub(crate) fn warn_corrupt(listing: &Listing) {
    for corrupt in &listing.corrupt {
        eprintln!("warning: {corrupt} (left out)");
    }
}

/// A subscription's delivery state, read from the state table.
pub(crate) async fn delivery_summary(
    state: &impl DeliveryState,
    id: &SubscriptionId,
) -> anyhow::Result<DeliverySummary> {
    let cursors = state.cursors_of(id).await?;
    let dead_letters = state.count_dead_letters(id).await?;
    Ok(DeliverySummary::new(&cursors, dead_letters))
}

struct Clients {
    store: DynamoSubscriptions,
    secrets: SecretsManager,
    /// `None` without a delivery state table.
    state: Option<DynamoState>,
}

async fn clients(table: String, state_table: Option<String>) -> Clients {
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    Clients {
        store: DynamoSubscriptions::from_sdk_config(&aws, table),
        secrets: SecretsManager::from_sdk_config(&aws),
        state: state_table.map(|t| DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), t)),
    }
}

impl Clients {
    fn state(&self) -> anyhow::Result<&DynamoState> {
        self.state.as_ref().with_context(|| {
            format!("no delivery state table: pass --state-table or set {STATE_TABLE_VAR}")
        })
    }
}

pub async fn run(args: StreamsArgs) -> anyhow::Result<()> {
    let table = table_name(args.table, std::env::var(TABLE_VAR).ok())?;
    let state_table = state_table_name(args.state_table, std::env::var(STATE_TABLE_VAR).ok()).ok();
    match args.command {
        StreamsCommand::Create(create_args) => {
            // Everything is checked, the secret read included, before any call.
            let plan = plan(*create_args, SubscriptionId::generate(), Timestamp::now())?;
            let clients = clients(table, state_table).await;
            create(&clients, plan).await
        }
        StreamsCommand::List { oem, json } => {
            let clients = clients(table, state_table).await;
            let listing = clients.store.list(oem.as_deref()).await?;
            warn_corrupt(&listing);
            let subscriptions = listing.subscriptions;
            if json {
                println!("{}", serde_json::to_string_pretty(&subscriptions)?);
                return Ok(());
            }
            let mut deliveries = Vec::new();
            if let Some(state) = &clients.state {
                for subscription in &subscriptions {
                    deliveries.push(delivery_summary(state, &subscription.id).await?);
                }
            }
            print!(
                "{}",
                table_text(&subscriptions, &deliveries, Timestamp::now())
            );
            Ok(())
        }
        StreamsCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            let clients = clients(table, state_table).await;
            let subscription = get(&clients.store, &id).await?;
            let state = clients.state()?;
            let delivery = Delivery {
                cursors: state.cursors_of(&id).await?,
                dead_letters: state.dead_letters(&id, SHOWN_DEAD_LETTERS).await?,
                dead_letter_count: state.count_dead_letters(&id).await?,
            };
            print_subscription(&subscription, &delivery, json)
        }
        StreamsCommand::Test { id } => {
            let id = parse_id(&id)?;
            let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
            let store = DynamoSubscriptions::from_sdk_config(&aws, table);
            crate::delivery::test(&aws, &get(&store, &id).await?).await
        }
        StreamsCommand::Redrive { id, dpl_stream } => {
            let state_table = state_table.with_context(|| {
                format!("no delivery state table: pass --state-table or set {STATE_TABLE_VAR}")
            })?;
            let dpl_stream = dpl_stream
                .or_else(|| std::env::var(dpl::streams::function::DPL_STREAM_VAR).ok())
                .unwrap_or_default();
            let id = parse_id(&id)?;
            let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
            let store = DynamoSubscriptions::from_sdk_config(&aws, table);
            let subscription = get(&store, &id).await?;
            let tables = crate::delivery::Tables {
                store,
                state_table,
                dpl_stream,
            };
            crate::delivery::redrive(&aws, tables, &subscription).await
        }
        StreamsCommand::Replay {
            subscription,
            from,
            to,
            dry_run,
            bucket,
        } => {
            let id = parse_id(&subscription)?;
            let hours = crate::hour_range(&from, Some(&to), ("--from", "--to"))?;
            let bucket = bucket
                .or_else(|| std::env::var(dpl::export::config::BUCKET_VAR).ok())
                .filter(|b| !b.trim().is_empty())
                .context("no bucket: pass --bucket or set BUCKET")?;
            let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
            let store = DynamoSubscriptions::from_sdk_config(&aws, table);
            let subscription = get(&store, &id).await?;
            crate::replay::run(&aws, &bucket, &subscription, &hours, dry_run).await
        }
        StreamsCommand::Enable { id } => set_status(table, &id, Status::Enabled).await,
        StreamsCommand::Disable { id } => set_status(table, &id, Status::Disabled).await,
        StreamsCommand::Delete { id, yes } => {
            let id = parse_id(&id)?;
            let clients = clients(table, state_table).await;
            clients.state()?;
            let subscription = get(&clients.store, &id).await?;
            if !yes {
                bail!(
                    "this deletes subscription {id} ({:?}){}: pass --yes to confirm",
                    subscription.name,
                    match subscription.credentials.secret_id() {
                        Some(secret) => format!(" and its secret {secret}"),
                        None => String::new(),
                    }
                );
            }
            delete(&clients, &subscription).await
        }
    }
}

fn parse_id(text: &str) -> anyhow::Result<SubscriptionId> {
    Ok(text.parse()?)
}

async fn get(store: &impl SubscriptionStore, id: &SubscriptionId) -> anyhow::Result<Subscription> {
    store
        .get(id)
        .await?
        .with_context(|| format!("subscription {id} does not exist"))
}

async fn set_status(table: String, id: &str, status: Status) -> anyhow::Result<()> {
    let id = parse_id(id)?;
    let clients = clients(table, None).await;
    clients.store.set_status(&id, status).await?;
    println!("{id} {status}");
    Ok(())
}

/// A checked subscription, and the secret to store first, if any.
struct Plan {
    subscription: Subscription,
    secret: Option<(String, SecretString)>,
    /// Print the result as JSON.
    json: bool,
}

/// Builds and checks everything `create` will write, reading the secret
/// material from its file; makes no call. The checks are
/// [`dpl::streams::request::plan`]'s, shared with the HTTP API.
fn plan(args: CreateArgs, id: SubscriptionId, now: Timestamp) -> anyhow::Result<Plan> {
    let request = CreateRequest {
        oem_id: args.oem,
        name: args.name,
        description: args.description,
        transport: args.transport,
        stream_arn: args.stream_arn,
        namespace: args.namespace,
        hub: args.hub,
        role_arn: args.role_arn,
        external_id: args.external_id,
        access_key: args.access_key_file,
        connection_string: args.connection_string_file,
        event_types: args.event_types,
        models: args.models,
        properties: args.properties,
        dsns: args.dsns,
        disabled: args.disabled,
        event_id_in_payload: args.event_id_in_payload,
    };
    let planned = dpl::streams::request::plan(request, id, now, Naming::Flags, |field, path| {
        read_secret(&path, field.flag()).map_err(|e| CreateError::new(field, format!("{e:#}")))
    })?;
    Ok(Plan {
        subscription: planned.subscription,
        secret: planned.secret,
        json: args.json,
    })
}

/// The whole of `path` (`-`: stdin), at most [`MAX_SECRET_BYTES`].
fn read_secret(path: &std::path::Path, flag: &str) -> anyhow::Result<SecretString> {
    let mut bytes = Vec::new();
    let limit = MAX_SECRET_BYTES as u64 + 1;
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{flag} -: reading stdin"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("{flag} {}", path.display()))?;
    }
    if bytes.len() > MAX_SECRET_BYTES {
        bail!("{flag}: more than {MAX_SECRET_BYTES} bytes");
    }
    // The error names the flag only: the bytes may be a secret.
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{flag}: the file is not UTF-8"))?;
    Ok(SecretString::new(text))
}

async fn create(clients: &Clients, plan: Plan) -> anyhow::Result<()> {
    let Plan {
        subscription,
        secret,
        json,
    } = plan;
    let plan = CreatePlan {
        subscription,
        secret,
    };
    let subscription = manage::create(&clients.store, &clients.secrets, plan).await?;
    if subscription.status == Status::Enabled {
        eprintln!("created {}", subscription.id);
    } else {
        eprintln!("created {} (disabled)", subscription.id);
    }
    // A new subscription is live everywhere, with no dead letters.
    let delivery = Delivery {
        cursors: Vec::new(),
        dead_letters: Vec::new(),
        dead_letter_count: 0,
    };
    print_subscription(&subscription, &delivery, json)
}

async fn delete(clients: &Clients, subscription: &Subscription) -> anyhow::Result<()> {
    let id = &subscription.id;
    let deleted = manage::delete(
        &clients.store,
        clients.state()?,
        &clients.secrets,
        subscription,
    )
    .await?;
    if deleted.forgotten > 0 {
        println!(
            "removed {id}'s {} cursors and dead letters",
            deleted.forgotten
        );
    }
    match deleted.secret {
        Some(secret) => println!("deleted {id} and its secret {secret}"),
        None => println!("deleted {id}"),
    }
    Ok(())
}

/// A subscription's delivery state, as `show` prints it.
struct Delivery {
    cursors: Vec<Cursor>,
    /// The oldest [`SHOWN_DEAD_LETTERS`].
    dead_letters: Vec<DeadLetter>,
    dead_letter_count: u64,
}

fn print_subscription(
    subscription: &Subscription,
    delivery: &Delivery,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        /// The subscription's fields in their order, then its delivery.
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            subscription: &'a Subscription,
            delivery: DeliverySummary,
        }
        let shown = Shown {
            subscription,
            delivery: DeliverySummary::new(&delivery.cursors, delivery.dead_letter_count),
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        print!("{}", show_text(subscription, delivery, Timestamp::now()));
    }
    Ok(())
}

fn time(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "never".to_owned(), |t| t.iso_seconds().to_string())
}

/// `show`: every field, secrets by id, and the delivery state: each shard
/// the subscription is behind on, and its dead letters.
fn show_text(s: &Subscription, delivery: &Delivery, now: Timestamp) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", s.id.to_string()),
        ("oem", s.oem_id.clone()),
        ("name", s.name.clone()),
        ("description", s.description.clone()),
        ("status", s.status.to_string()),
        ("transport", s.transport().to_string()),
    ];
    match &s.destination {
        Destination::Kinesis { stream_arn } => lines.push(("stream arn", stream_arn.to_string())),
        Destination::EventHubs { namespace, hub } => {
            lines.push(("namespace", namespace.clone()));
            lines.push(("hub", hub.clone()));
        }
    }
    if s.transport() == Transport::Kinesis {
        lines.push((
            "payload",
            if s.event_id_in_payload {
                "vendor payload + event_id".to_owned()
            } else {
                "vendor payload".to_owned()
            },
        ));
    }
    lines.push(("credentials", s.credentials.kind().to_owned()));
    match &s.credentials {
        Credentials::AssumeRole {
            role_arn,
            external_id,
        } => {
            lines.push(("role arn", role_arn.clone()));
            if let Some(external_id) = external_id {
                lines.push(("external id", external_id.clone()));
            }
        }
        Credentials::AccessKeySecret { secret_id }
        | Credentials::ConnectionStringSecret { secret_id } => {
            lines.push(("secret", format!("{secret_id} (value not shown)")));
        }
    }
    let f = &s.filters;
    lines.extend([
        ("event types", f.event_types.to_string()),
        ("models", f.models.to_string()),
        ("properties", f.properties.to_string()),
        ("dsns", f.dsns.to_string()),
        ("created", s.created_at.iso_seconds().to_string()),
        ("last success", time(s.health.last_success)),
        (
            "last error",
            match &s.health.last_error {
                Some(e) => format!("{} {}", e.at.iso_seconds(), e.message),
                None => "none".to_owned(),
            },
        ),
    ]);
    let summary = DeliverySummary::new(&delivery.cursors, delivery.dead_letter_count);
    lines.push(("delivery", summary.line(now)));
    let mut text: String = lines
        .into_iter()
        .map(|(label, value)| {
            let line = format!("{:<13} {value}", format!("{label}:"));
            format!("{}\n", line.trim_end())
        })
        .collect();
    for cursor in &delivery.cursors {
        let waited = duration_text((now.millis() - cursor.since.millis()).max(0) / 1_000);
        let what = match cursor.state {
            CursorState::Behind => format!(
                "catching up {}, oldest event waiting {waited}{}",
                cursor.bound,
                cursor
                    .behind_ms
                    .map(|ms| format!(
                        ", last read {} behind the tip",
                        duration_text((ms / 1_000) as i64)
                    ))
                    .unwrap_or_default()
            ),
            CursorState::HandedBack => format!("handed back to the live path {}", cursor.bound),
        };
        text.push_str(&format!("  {}: {what}\n", cursor.shard));
    }
    text.push_str(&format!("dead letters: {}\n", delivery.dead_letter_count));
    for letter in &delivery.dead_letters {
        text.push_str(&format!(
            "  {} {} {} DSN {} at {}: {}\n",
            letter.position,
            letter.event_type,
            letter.event_id,
            letter.dsn,
            letter.at.iso_seconds(),
            letter.reason
        ));
    }
    if delivery.dead_letter_count > delivery.dead_letters.len() as u64 {
        text.push_str("  ...\n");
    }
    text
}

/// `list`: one row per subscription, columns padded to their widest cell;
/// `deliveries` (one per subscription, or none without a state table) fill
/// the delivery columns.
fn table_text(
    subscriptions: &[Subscription],
    deliveries: &[DeliverySummary],
    now: Timestamp,
) -> String {
    let header = [
        "ID",
        "OEM",
        "NAME",
        "TRANSPORT",
        "STATUS",
        "DELIVERY",
        "DEAD LETTERS",
        "LAST SUCCESS",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = std::iter::once(header)
        .chain(subscriptions.iter().enumerate().map(|(n, s)| {
            let delivery = deliveries.get(n);
            [
                s.id.to_string(),
                s.oem_id.clone(),
                s.name.clone(),
                s.transport().to_string(),
                s.status.to_string(),
                delivery.map_or_else(|| "-".into(), |d| d.line(now)),
                delivery.map_or_else(|| "-".into(), |d| d.dead_letters.to_string()),
                time(s.health.last_success),
            ]
        }))
        .collect();
    crate::status::aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Create {
        #[command(flatten)]
        args: CreateArgs,
    }

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/s";
    const ROLE: &str = "arn:aws:iam::123456789012:role/r";

    fn plan_of(args: &[&str]) -> anyhow::Result<Plan> {
        let base = ["create", "--oem", "o", "--name", "n"];
        let parsed = Create::try_parse_from(base.iter().chain(args))?;
        plan(
            parsed.args,
            SubscriptionId::from_bits(7),
            Timestamp::from_millis(0)?,
        )
    }

    #[test]
    fn the_table_comes_from_the_flag_then_the_environment() {
        let name = |flag: Option<&str>, env: Option<&str>| {
            table_name(flag.map(str::to_owned), env.map(str::to_owned))
        };
        assert_eq!(name(Some("a"), Some("b")).unwrap(), "a");
        assert_eq!(name(None, Some("b")).unwrap(), "b");
        let error = name(None, Some(" ")).unwrap_err().to_string();
        assert!(
            error.contains("pass --table or set SUBSCRIPTIONS_TABLE"),
            "{error}"
        );
    }

    #[test]
    fn a_role_plan_has_no_secret() {
        let plan = plan_of(&[
            "--transport",
            "kinesis",
            "--stream-arn",
            ARN,
            "--role-arn",
            ROLE,
            "--external-id",
            "dpl-x1",
            "--disabled",
        ])
        .unwrap();
        assert!(plan.secret.is_none());
        assert_eq!(plan.subscription.status, Status::Disabled);
        assert_eq!(plan.subscription.id.to_string(), "sub-0000000000000007");
    }

    #[test]
    fn the_event_id_in_the_payload_is_opt_in_and_kinesis_only() {
        let kinesis = [
            "--transport",
            "kinesis",
            "--stream-arn",
            ARN,
            "--role-arn",
            ROLE,
            "--external-id",
            "dpl-x1",
        ];
        assert!(!plan_of(&kinesis).unwrap().subscription.event_id_in_payload);
        let opted = [&kinesis[..], &["--event-id-in-payload"]].concat();
        assert!(plan_of(&opted).unwrap().subscription.event_id_in_payload);
    }

    #[test]
    fn a_role_without_an_external_id_is_refused() {
        let error = plan_of(&[
            "--transport",
            "kinesis",
            "--stream-arn",
            ARN,
            "--role-arn",
            ROLE,
        ])
        .err()
        .expect("refused")
        .to_string();
        assert!(error.contains("external_id is required"), "{error}");
    }

    #[test]
    fn flags_that_do_not_fit_the_transport_are_refused() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--transport", "kinesis", "--role-arn", ROLE],
                "needs --stream-arn",
            ),
            (
                &[
                    "--transport",
                    "kinesis",
                    "--stream-arn",
                    ARN,
                    "--hub",
                    "h",
                    "--role-arn",
                    ROLE,
                ],
                "--namespace and --hub are for --transport eventhubs",
            ),
            (
                &[
                    "--transport",
                    "eventhubs",
                    "--stream-arn",
                    ARN,
                    "--namespace",
                    "contoso",
                ],
                "--stream-arn is for --transport kinesis",
            ),
            (
                &["--transport", "eventhubs", "--namespace", "contoso-events"],
                "needs --hub",
            ),
            (
                &["--transport", "kinesis", "--stream-arn", ARN],
                "exactly one of",
            ),
            (
                &[
                    "--transport",
                    "kinesis",
                    "--stream-arn",
                    ARN,
                    "--role-arn",
                    ROLE,
                    "--access-key-file",
                    "-",
                ],
                "exactly one of",
            ),
            (
                &["--transport", "azure"],
                "transport `azure` is not kinesis or eventhubs",
            ),
            (
                &[
                    "--transport",
                    "kinesis",
                    "--stream-arn",
                    ARN,
                    "--external-id",
                    "x1",
                ],
                "--role-arn",
            ),
        ];
        for (args, expected) in cases {
            let error = match plan_of(args) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                error.contains(expected),
                "{args:?}: {expected:?} not in {error:?}"
            );
        }
    }

    #[test]
    fn list_columns_are_aligned() {
        let plan = plan_of(&[
            "--transport",
            "kinesis",
            "--stream-arn",
            ARN,
            "--role-arn",
            ROLE,
            "--external-id",
            "dpl-x1",
        ])
        .unwrap();
        let mut long = plan.subscription.clone();
        long.name = "a much longer name".to_owned();
        let behind = DeliverySummary {
            behind_shards: 2,
            behind_since: Some(Timestamp::from_millis(0).unwrap()),
            dead_letters: 3,
            ..DeliverySummary::default()
        };
        let now = Timestamp::from_millis(125_000).unwrap();
        let text = table_text(
            &[plan.subscription, long],
            &[DeliverySummary::default(), behind],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = |line: &str| line.find("kinesis").unwrap();
        assert_eq!(column(lines[1]), column(lines[2]));
        assert_eq!(lines[0].find("TRANSPORT").unwrap(), column(lines[1]));
        assert!(lines[1].contains("  live  "), "{}", lines[1]);
        assert!(
            lines[2].contains("behind on 2 shards for 2m 5s  3  "),
            "{}",
            lines[2]
        );
    }
}
