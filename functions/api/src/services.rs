//! The routes' work on AWS, every call scoped to the caller's OEM. The
//! logic is `dpl`'s, the same `dplctl` runs: subscriptions
//! ([`dpl::streams::request`], [`dpl::streams::manage`],
//! [`dpl::streams::operate`]), download access ([`dpl::export::access`]),
//! manifests and URLs ([`dpl::export::s3`]), status ([`dpl::status`]).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use dpl::export::access::{self, AccessError, ExportAccess, NewKey};
use dpl::export::config::StorageConfig;
use dpl::export::keys::parse_hour;
use dpl::export::s3::{manifests_since, presigned_url, S3Store, UrlError};
use dpl::export::Partition;
use dpl::status::{recent_hours, subscription_status, summarize, MAX_STATUS_HOURS};
use dpl::streams::archive::StagingArchive;
use dpl::streams::manage::{self, ManageError};
use dpl::streams::operate::{self, OperateError, RedriveTables};
use dpl::streams::request::{plan, CreateError, CreateRequest, Naming, UpdateRequest};
use dpl::streams::secrets::{SecretString, SecretsManager};
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore, SubscriptionStoreError};
use dpl::streams::subscription::{Status, Subscription, SubscriptionId};
use dpl::streams::summary::DeliverySummary;
use dpl::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::config::Config;
use crate::error::ApiError;
use crate::handler::{body, body_json, owned, parse_id};
use crate::routes::Route;

/// An HTTP API integration answers within 30 seconds at most (API Gateway
/// Developer Guide, "Amazon API Gateway quotas", HTTP APIs: maximum
/// integration timeout 30 seconds); the function's own work stops well
/// before.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);
const REDRIVE_BUDGET: Duration = Duration::from_secs(20);

/// The most hours one replay request sends (the 30-second limit above;
/// longer ranges: several requests, or `dplctl streams replay`).
pub const MAX_REPLAY_HOURS: i64 = 24;

/// Dead letters `GET /streams/{id}` lists (the count is always exact).
const SHOWN_DEAD_LETTERS: usize = 10;

/// Hours `GET /exports` and `GET /status` cover by default.
const DEFAULT_HOURS: u32 = 24;

const HOUR_MS: i64 = 3_600_000;

/// The AWS adapters, built once per container.
pub struct Services {
    aws: SdkConfig,
    store: DynamoSubscriptions,
    state: DynamoState,
    state_table: String,
    secrets: SecretsManager,
    access: ExportAccess,
    s3: S3Store,
    storage: StorageConfig,
    aws_partition: &'static str,
    dpl_stream: String,
    url_expiry: Duration,
}

impl Services {
    pub fn new(aws: &SdkConfig, config: &Config) -> Self {
        let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
        Self {
            aws: aws.clone(),
            store: DynamoSubscriptions::from_sdk_config(aws, &config.subscriptions_table),
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(aws), &config.state_table),
            state_table: config.state_table.clone(),
            secrets: SecretsManager::from_sdk_config(aws),
            access: ExportAccess::from_sdk_config(aws)
                .with_boundary(config.export_user_boundary.clone()),
            s3: S3Store::from_sdk_config(aws, &config.storage.bucket),
            storage: config.storage.clone(),
            aws_partition: access::partition(&region),
            dpl_stream: config.dpl_stream.clone(),
            url_expiry: config.download_url_expiry,
        }
    }

    /// Does `route` for `caller`; the answer's status and body.
    pub async fn serve(
        &self,
        caller: &Caller,
        route: Route,
        request: &ApiGatewayV2httpRequest,
        now: Timestamp,
    ) -> Result<(u16, Value), ApiError> {
        let query = |name: &str| {
            request
                .query_string_parameters
                .first(name)
                .map(str::to_owned)
        };
        match route {
            Route::ListStreams => self.list(caller, now).await.map(ok),
            Route::CreateStream => {
                let body: CreateBody = body(body_json(request)?)?;
                self.create(caller, body, now).await.map(|v| (201, v))
            }
            Route::ShowStream(id) => self.show(caller, &id, now).await.map(ok),
            Route::UpdateStream(id) => {
                let body: UpdateBody = body(body_json(request)?)?;
                self.update(caller, &id, body, now).await.map(ok)
            }
            Route::DeleteStream(id) => self.delete(caller, &id).await.map(ok),
            Route::EnableStream(id) => self.set_status(caller, &id, Status::Enabled).await.map(ok),
            Route::DisableStream(id) => {
                self.set_status(caller, &id, Status::Disabled).await.map(ok)
            }
            Route::TestStream(id) => self.test(caller, &id).await.map(ok),
            Route::RedriveStream(id) => self.redrive(caller, &id).await.map(ok),
            Route::ReplayStream(id) => {
                let body: ReplayBody = body(body_json(request)?)?;
                self.replay(caller, &id, body).await.map(ok)
            }
            Route::ListExports => {
                let hours = hours_param(query("hours"))?;
                self.exports(caller, now, hours).await.map(ok)
            }
            Route::ExportUrl { event_type, hour } => {
                self.url(caller, &event_type, &hour).await.map(ok)
            }
            Route::ShowCredentials => self.credentials(caller).await.map(ok),
            Route::CreateCredentials => self.create_credentials(caller).await.map(|v| (201, v)),
            Route::RefreshCredentials => self.refresh_credentials(caller).await.map(ok),
            Route::RevokeCredentials => self.revoke_credentials(caller).await.map(ok),
            Route::Status => {
                let hours = hours_param(query("hours"))?;
                self.status(caller, now, hours).await.map(ok)
            }
        }
    }

    async fn owned(&self, caller: &Caller, id: &str) -> Result<Subscription, ApiError> {
        let id = parse_id(id)?;
        let found = self.store.get(&id).await.map_err(store_error)?;
        owned(caller, &id, found)
    }

    async fn summary(&self, id: &SubscriptionId) -> Result<DeliverySummary, ApiError> {
        let cursors = self.state.cursors_of(id).await.map_err(state_error)?;
        let dead_letters = self
            .state
            .count_dead_letters(id)
            .await
            .map_err(state_error)?;
        Ok(DeliverySummary::new(&cursors, dead_letters))
    }

    /// A subscription as the API shows it: its fields (secrets by id
    /// only) and its health.
    async fn view(&self, subscription: &Subscription, now: Timestamp) -> Result<Value, ApiError> {
        let summary = self.summary(&subscription.id).await?;
        Ok(stream_view(subscription, &summary, now))
    }

    async fn list(&self, caller: &Caller, now: Timestamp) -> Result<Value, ApiError> {
        let listing = self
            .store
            .list(Some(&caller.oem_id))
            .await
            .map_err(store_error)?;
        for corrupt in &listing.corrupt {
            tracing::warn!(error = %corrupt, "subscription item left out");
        }
        let mut streams = Vec::new();
        // The store filters by OEM; the check is kept as defense in depth.
        for subscription in listing
            .subscriptions
            .iter()
            .filter(|s| s.oem_id == caller.oem_id)
        {
            streams.push(self.view(subscription, now).await?);
        }
        Ok(json!({ "streams": streams }))
    }

    async fn create(
        &self,
        caller: &Caller,
        body: CreateBody,
        now: Timestamp,
    ) -> Result<Value, ApiError> {
        let access_key = body.access_key.map(|v| SecretString::new(v.to_string()));
        let request = CreateRequest {
            oem_id: caller.oem_id.clone(),
            name: body.name,
            description: body.description,
            transport: body.transport,
            stream_arn: body.stream_arn,
            namespace: body.namespace,
            hub: body.hub,
            role_arn: body.role_arn,
            external_id: body.external_id,
            access_key,
            connection_string: body.connection_string.map(SecretString::new),
            event_types: body.event_types,
            models: body.models,
            properties: body.properties,
            dsns: body.dsns,
            disabled: body.disabled,
            event_id_in_payload: body.event_id_in_payload,
        };
        let planned = plan(
            request,
            SubscriptionId::generate(),
            now,
            Naming::Json,
            |_, v| Ok(v),
        )
        .map_err(field_error)?;
        let subscription = manage::create(&self.store, &self.secrets, planned)
            .await
            .map_err(manage_error)?;
        tracing::info!(id = %subscription.id, oem = %caller.oem_id, "stream created");
        Ok(stream_view(&subscription, &DeliverySummary::default(), now))
    }

    async fn show(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let cursors = self
            .state
            .cursors_of(&subscription.id)
            .await
            .map_err(state_error)?;
        let letters = self
            .state
            .dead_letters(&subscription.id, SHOWN_DEAD_LETTERS)
            .await
            .map_err(state_error)?;
        let count = self
            .state
            .count_dead_letters(&subscription.id)
            .await
            .map_err(state_error)?;
        let mut view = stream_view(&subscription, &DeliverySummary::new(&cursors, count), now);
        view["cursors"] = cursors
            .iter()
            .map(|c| {
                json!({
                    "shard": c.shard.to_string(),
                    "state": format!("{:?}", c.state).to_lowercase(),
                    "since": c.since.iso_seconds().to_string(),
                    "behind_ms": c.behind_ms,
                })
            })
            .collect();
        view["dead_letters"] = letters
            .iter()
            .map(|l| {
                json!({
                    "position": l.position.to_string(),
                    "event_type": l.event_type.as_str(),
                    "event_id": l.event_id.to_string(),
                    "dsn": l.dsn,
                    "at": l.at.iso_seconds().to_string(),
                    "reason": l.reason,
                })
            })
            .collect();
        Ok(view)
    }

    async fn update(
        &self,
        caller: &Caller,
        id: &str,
        body: UpdateBody,
        now: Timestamp,
    ) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let update = UpdateRequest {
            name: body.name,
            description: body.description,
            event_types: body.event_types,
            models: body.models,
            properties: body.properties,
            dsns: body.dsns,
        };
        let updated = update.apply(&subscription).map_err(field_error)?;
        self.store
            .update_details(&updated)
            .await
            .map_err(store_error)?;
        self.view(&updated, now).await
    }

    async fn set_status(
        &self,
        caller: &Caller,
        id: &str,
        status: Status,
    ) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        self.store
            .set_status(&subscription.id, status)
            .await
            .map_err(store_error)?;
        Ok(json!({"id": subscription.id.to_string(), "status": status.as_str()}))
    }

    async fn delete(&self, caller: &Caller, id: &str) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let deleted = manage::delete(&self.store, &self.state, &self.secrets, &subscription)
            .await
            .map_err(manage_error)?;
        Ok(json!({
            "id": subscription.id.to_string(),
            "deleted": true,
            "secret_deleted": deleted.secret.is_some(),
            "delivery_state_removed": deleted.forgotten,
        }))
    }

    async fn test(&self, caller: &Caller, id: &str) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let destinations = operate::destinations(&self.aws, subscription.transport(), None);
        let tested = operate::test(&destinations, &subscription, TEST_TIMEOUT)
            .await
            .map_err(operate_error)?;
        Ok(json!({
            "id": subscription.id.to_string(),
            "delivered": true,
            "event_type": tested.event_type,
            "event_id": tested.event_id,
            "partition_key": tested.dsn,
            "target": tested.target,
        }))
    }

    async fn redrive(&self, caller: &Caller, id: &str) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let tables = RedriveTables {
            store: self.store.clone(),
            state_table: self.state_table.clone(),
            dpl_stream: self.dpl_stream.clone(),
        };
        let destinations = operate::destinations(&self.aws, subscription.transport(), None);
        let redriven = operate::redrive(
            &self.aws,
            tables,
            destinations,
            &subscription,
            Instant::now() + REDRIVE_BUDGET,
        )
        .await;
        Ok(json!({
            "id": subscription.id.to_string(),
            "delivered": redriven.delivered,
            "refused": redriven.refused,
            "remaining": redriven.remaining,
            "error": redriven.error,
        }))
    }

    async fn replay(&self, caller: &Caller, id: &str, body: ReplayBody) -> Result<Value, ApiError> {
        let subscription = self.owned(caller, id).await?;
        let hours = hour_range(&body.from, &body.to)?;
        let archive = StagingArchive::new(
            self.s3.clone(),
            self.storage.layout.clone(),
            std::env::temp_dir(),
        );
        let destinations = operate::destinations(&self.aws, subscription.transport(), None);
        let replayed = operate::replay(
            &archive,
            &destinations,
            &subscription,
            &hours,
            body.dry_run,
            |_, _| {},
        )
        .await
        .map_err(operate_error)?;
        let per_type: serde_json::Map<String, Value> = replayed
            .per_type
            .iter()
            .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
            .collect();
        Ok(json!({
            "id": subscription.id.to_string(),
            "from": hours.first().map(|h| h.folder_name().to_string()),
            "to": hours.last().map(|h| h.folder_name().to_string()),
            "hours": hours.len(),
            "dry_run": body.dry_run,
            "read": replayed.read,
            "sent": if body.dry_run { 0 } else { replayed.total() },
            "matching": replayed.total(),
            "per_type": per_type,
        }))
    }

    async fn manifest_hours(
        &self,
        caller: &Caller,
        now: Timestamp,
        count: u32,
    ) -> Result<Vec<dpl::status::HourStatus>, ApiError> {
        let hours = recent_hours(now, count)
            .map_err(|e| ApiError::invalid("invalid_hours", e.to_string()).with_field("hours"))?;
        let oldest = *hours.last().expect("at least one hour");
        let manifests = manifests_since(&self.s3, &self.storage.layout, &caller.oem_id, oldest)
            .await
            .map_err(|e| ApiError::upstream("storage_error", e.to_string()))?;
        let mine: Vec<_> = manifests
            .into_iter()
            .filter(|m| m.oem_id == caller.oem_id)
            .collect();
        Ok(summarize(&hours, &mine))
    }

    async fn exports(
        &self,
        caller: &Caller,
        now: Timestamp,
        count: u32,
    ) -> Result<Value, ApiError> {
        let summary = self.manifest_hours(caller, now, count).await?;
        let hours: Vec<Value> = summary
            .iter()
            .map(|h| {
                let files: Vec<Value> = h
                    .partitions
                    .iter()
                    .map(|(key, counts)| {
                        let event_type = key.rsplit('/').next().unwrap_or(key);
                        json!({"type": event_type, "rows": counts.rows, "bytes": counts.bytes})
                    })
                    .collect();
                json!({
                    "hour": h.hour,
                    "files": files,
                    "rows": h.rows,
                    "bytes": h.bytes,
                })
            })
            .collect();
        Ok(json!({"oem_id": caller.oem_id, "hours": hours}))
    }

    async fn url(&self, caller: &Caller, event_type: &str, hour: &str) -> Result<Value, ApiError> {
        let event_type = access::parse_type(event_type).map_err(|e| {
            ApiError::invalid("invalid_type", format!("type {e}")).with_field("type")
        })?;
        let hour_start = parse_hour(hour).map_err(|e| {
            ApiError::invalid("invalid_hour", format!("hour: {e}")).with_field("hour")
        })?;
        let partition = Partition {
            hour: hour_start,
            oem_id: caller.oem_id.clone(),
            event_type,
        };
        let key = self.storage.layout.export_key(&partition);
        let url = presigned_url(&self.s3, &key, self.url_expiry)
            .await
            .map_err(|e| match e {
                UrlError::NotExported { .. } => ApiError::not_found(
                    "not_exported",
                    format!(
                        "nothing exported for {} in {}",
                        dpl::csv::export_name(event_type),
                        hour_start.folder_name()
                    ),
                ),
                UrlError::Service { .. } => ApiError::upstream("storage_error", e.to_string()),
            })?;
        Ok(json!({
            "url": url,
            "expires_in": self.url_expiry.as_secs(),
            "key": key,
        }))
    }

    fn user(&self, caller: &Caller) -> Result<String, ApiError> {
        access::user_name(&caller.oem_id).map_err(access_error)
    }

    fn policy(&self, caller: &Caller) -> String {
        access::read_policy(
            self.aws_partition,
            &self.storage.bucket,
            &self.storage.layout,
            &caller.oem_id,
        )
    }

    async fn credentials(&self, caller: &Caller) -> Result<Value, ApiError> {
        let user = self.user(caller)?;
        let keys = self.access.keys(&user).await.map_err(access_error)?;
        Ok(json!({
            "user": user,
            "access_key_ids": keys,
            "bucket": self.storage.bucket,
            "prefix": format!("{}/{}/", self.storage.layout.exports, caller.oem_id),
        }))
    }

    fn key_view(&self, caller: &Caller, key: &NewKey) -> Value {
        json!({
            "user": key.user,
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret_access_key,
            "bucket": self.storage.bucket,
            "prefix": format!("{}/{}/", self.storage.layout.exports, caller.oem_id),
            "note": "The secret access key is shown this once and stored nowhere.",
        })
    }

    async fn create_credentials(&self, caller: &Caller) -> Result<Value, ApiError> {
        let user = self.user(caller)?;
        let key = self
            .access
            .create(&user, &self.policy(caller), &caller.oem_id)
            .await
            .map_err(access_error)?;
        Ok(self.key_view(caller, &key))
    }

    async fn refresh_credentials(&self, caller: &Caller) -> Result<Value, ApiError> {
        let user = self.user(caller)?;
        let (key, old) = self
            .access
            .refresh(&user, &self.policy(caller), &caller.oem_id)
            .await
            .map_err(access_error)?;
        let mut view = self.key_view(caller, &key);
        view["deleted_access_key_ids"] = json!(old);
        Ok(view)
    }

    async fn revoke_credentials(&self, caller: &Caller) -> Result<Value, ApiError> {
        let user = self.user(caller)?;
        self.access
            .revoke(&user, &caller.oem_id)
            .await
            .map_err(access_error)?;
        Ok(json!({"user": user, "revoked": true}))
    }

    async fn status(&self, caller: &Caller, now: Timestamp, count: u32) -> Result<Value, ApiError> {
        let listing = self
            .store
            .list(Some(&caller.oem_id))
            .await
            .map_err(store_error)?;
        let mut subscriptions = Vec::new();
        for subscription in listing
            .subscriptions
            .iter()
            .filter(|s| s.oem_id == caller.oem_id)
        {
            let summary = self.summary(&subscription.id).await?;
            subscriptions.push(subscription_status(subscription, &summary, now));
        }
        let exports = self.manifest_hours(caller, now, count).await?;
        Ok(json!({
            "now": now.iso_seconds().to_string(),
            "oem_id": caller.oem_id,
            "subscriptions": subscriptions,
            "exports": exports,
        }))
    }
}

fn ok(value: Value) -> (u16, Value) {
    (200, value)
}

/// A subscription and its health, as every stream route shows it.
pub fn stream_view(
    subscription: &Subscription,
    summary: &DeliverySummary,
    now: Timestamp,
) -> Value {
    let mut view = serde_json::to_value(subscription).unwrap_or_else(|_| json!({}));
    view["transport"] = json!(subscription.transport().as_str());
    view["health"] = serde_json::to_value(subscription_status(subscription, summary, now))
        .unwrap_or_else(|_| json!({}));
    view
}

/// `?hours=N`: 1 to [`MAX_STATUS_HOURS`], default 24.
pub fn hours_param(text: Option<String>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_HOURS);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_STATUS_HOURS).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "invalid_hours",
            format!("hours {text:?}: a whole number of hours, 1 to {MAX_STATUS_HOURS}"),
        )
        .with_field("hours")),
    }
}

/// Every hour from `from` to `to` inclusive, at most [`MAX_REPLAY_HOURS`].
pub fn hour_range(from: &str, to: &str) -> Result<Vec<Timestamp>, ApiError> {
    let first = parse_hour(from)
        .map_err(|e| ApiError::invalid("invalid_hour", format!("from: {e}")).with_field("from"))?;
    let last = parse_hour(to)
        .map_err(|e| ApiError::invalid("invalid_hour", format!("to: {e}")).with_field("to"))?;
    let count = (last.millis() - first.millis()) / HOUR_MS + 1;
    if count < 1 {
        return Err(
            ApiError::invalid("invalid_range", format!("to {to} is before from {from}"))
                .with_field("to"),
        );
    }
    if count > MAX_REPLAY_HOURS {
        return Err(ApiError::invalid(
            "invalid_range",
            format!("{count} hours: at most {MAX_REPLAY_HOURS} hours per request"),
        )
        .with_field("to"));
    }
    (0..count)
        .map(|n| {
            Timestamp::from_millis(first.millis() + n * HOUR_MS)
                .map_err(|e| ApiError::invalid("invalid_range", e.to_string()).with_field("to"))
        })
        .collect()
}

fn field_error(error: CreateError) -> ApiError {
    ApiError::invalid("invalid_field", error.message).with_field(error.field.json())
}

fn store_error(error: SubscriptionStoreError) -> ApiError {
    match error {
        SubscriptionStoreError::NotFound(id) => crate::handler::stream_not_found(&id),
        SubscriptionStoreError::AlreadyExists(_) => {
            ApiError::conflict("stream_exists", error.to_string())
        }
        _ => ApiError::upstream("storage_error", error.to_string()),
    }
}

fn state_error(error: dpl::streams::state::StateError) -> ApiError {
    ApiError::upstream("storage_error", error.to_string())
}

fn manage_error(error: ManageError) -> ApiError {
    match &error {
        ManageError::Secret(e) => match e {
            dpl::streams::secrets::SecretError::Service { .. } => {
                ApiError::upstream("storage_error", error.to_string())
            }
            _ => ApiError::invalid("invalid_field", e.to_string()).with_field("credentials"),
        },
        _ => ApiError::upstream("storage_error", error.to_string()),
    }
}

fn operate_error(error: OperateError) -> ApiError {
    match &error {
        OperateError::Disabled(_) => ApiError::conflict("stream_disabled", error.to_string()),
        OperateError::Unreachable { .. } | OperateError::NotDelivered { .. } => {
            ApiError::upstream("delivery_failed", error.to_string())
        }
        OperateError::Archive { .. } => ApiError::upstream("storage_error", error.to_string()),
        OperateError::Stopped(_) => ApiError::upstream("delivery_failed", error.to_string()),
    }
}

fn access_error(error: AccessError) -> ApiError {
    match &error {
        AccessError::BadOem(_) => ApiError::forbidden("invalid_claim", error.to_string()),
        AccessError::Exists { .. } => ApiError::conflict(
            "credentials_exist",
            format!("{error}: refresh them for a new key"),
        ),
        AccessError::NoUser { .. } => ApiError::not_found(
            "no_credentials",
            format!("{error}: create the credentials first"),
        ),
        AccessError::TooManyKeys { .. } => ApiError::conflict(
            "too_many_keys",
            format!("{error}: revoke and create the credentials again"),
        ),
        AccessError::Collides { .. } => ApiError::conflict("oem_collides", error.to_string()),
        AccessError::NotOwned(_) => ApiError::forbidden("not_owned", error.to_string()),
        AccessError::Service { .. } => ApiError::upstream("iam_error", error.to_string()),
    }
}

fn all() -> String {
    "*".into()
}

/// `POST /streams`: the vendor's Create Stream form. The OEM is the
/// caller's, never a member of the body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub transport: String,
    pub stream_arn: Option<String>,
    pub namespace: Option<String>,
    pub hub: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// `{"access_key_id": "...", "secret_access_key": "..."}`, checked as
    /// `dplctl` checks its `--access-key-file`.
    pub access_key: Option<Value>,
    pub connection_string: Option<String>,
    #[serde(default = "all")]
    pub event_types: String,
    #[serde(default = "all")]
    pub models: String,
    #[serde(default = "all")]
    pub properties: String,
    #[serde(default = "all")]
    pub dsns: String,
    #[serde(default)]
    pub disabled: bool,
    /// Kinesis: carry `event_id` as the data's last field.
    #[serde(default)]
    pub event_id_in_payload: bool,
}

/// `PATCH /streams/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub models: Option<String>,
    pub properties: Option<String>,
    pub dsns: Option<String>,
}

/// `POST /streams/{id}/replay`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ranges_are_bounded_and_forwards() {
        assert_eq!(
            hour_range("2020-08-28T23", "2020-08-29T01").unwrap().len(),
            3
        );
        let e = hour_range("2020-08-28T09", "2020-08-28T08").unwrap_err();
        assert_eq!((e.code, e.field), ("invalid_range", Some("to")));
        let e = hour_range("2020-08-01T00", "2020-08-03T00").unwrap_err();
        assert!(e.message.contains("at most 24 hours"), "{}", e.message);
        let e = hour_range("yesterday", "2020-08-03T00").unwrap_err();
        assert_eq!(e.field, Some("from"));
    }

    #[test]
    fn hours_default_to_a_day_and_are_bounded() {
        assert_eq!(hours_param(None).unwrap(), 24);
        assert_eq!(hours_param(Some("3".into())).unwrap(), 3);
        for bad in ["0", "-1", "x", "9000"] {
            assert_eq!(
                hours_param(Some(bad.into())).unwrap_err().code,
                "invalid_hours"
            );
        }
    }
}
