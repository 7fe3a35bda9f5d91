//! Customer credentials: the [`SecretStore`] port, its Secrets Manager
//! adapter [`SecretsManager`], an in-memory adapter [`InMemorySecrets`],
//! the [`SecretString`] that never prints, and the two secret formats:
//! [`AccessKeys`] (Kinesis) and the Event Hubs connection string
//! ([`check_connection_string`]).
//!
//! A subscription's secret is named `dpl/streams/{subscription id}`
//! ([`secret_name`]), so that IAM policies can allow exactly
//! `secretsmanager:*` on `arn:...:secret:dpl/streams/*`.
//!
//! No error, `Debug` or `Display` here ever holds secret material: JSON
//! errors report line and column, connection string errors name the part.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::subscription::SubscriptionId;
use crate::eventhubs::connection::{ConnectionString, ConnectionStringError};

/// Where subscription secrets are named.
pub const SECRET_NAME_PREFIX: &str = "dpl/streams/";

/// Largest `SecretString` Secrets Manager stores: 65,536 bytes (Secrets
/// Manager user guide, "Quotas": "Secret value size").
pub const MAX_SECRET_BYTES: usize = 65_536;

/// Access key ids are 16 to 128 word characters (IAM API reference,
/// `AccessKey`, `AccessKeyId`).
pub const ACCESS_KEY_ID_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// The description every subscription secret gets.
pub const SECRET_DESCRIPTION: &str = "Credentials of a dpl stream subscription";

/// `dpl/streams/{id}`.
pub fn secret_name(id: &SubscriptionId) -> String {
    format!("{SECRET_NAME_PREFIX}{id}")
}

/// A secret value. `Debug` and `Display` print `<redacted>`; read it with
/// [`SecretString::expose`], only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be stored, read, deleted or understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} does not exist")]
    NotFound(String),
    #[error("secret {0} already exists")]
    AlreadyExists(String),
    #[error("secret value is empty")]
    Empty,
    #[error("secret value is {len} bytes: Secrets Manager stores at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("access key secret: {0}")]
    AccessKeys(String),
    #[error(transparent)]
    ConnectionString(#[from] ConnectionStringError),
    /// The connection string is valid but for another namespace or hub.
    #[error("connection string {part} is `{found}`, but the subscription's is `{expected}`")]
    ConnectionStringMismatch {
        part: &'static str,
        expected: String,
        found: String,
    },
    #[error("{operation} {id}: {message}")]
    Service {
        operation: &'static str,
        id: String,
        message: String,
        retryable: bool,
    },
}

impl SecretError {
    /// Whether the same call may succeed later (throttling, timeouts).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SecretError::Service {
                retryable: true,
                ..
            }
        )
    }
}

fn check_size(value: &SecretString) -> Result<(), SecretError> {
    if value.expose().trim().is_empty() {
        return Err(SecretError::Empty);
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            len: value.len(),
            max: MAX_SECRET_BYTES,
        });
    }
    Ok(())
}

/// Kinesis credentials stored as `{"access_key_id": "...",
/// "secret_access_key": "..."}` (exactly these two string fields).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeys {
    access_key_id: String,
    secret_access_key: SecretString,
}

impl AccessKeys {
    pub const ACCESS_KEY_ID: &'static str = "access_key_id";
    pub const SECRET_ACCESS_KEY: &'static str = "secret_access_key";

    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
    ) -> Result<Self, SecretError> {
        let access_key_id = access_key_id.into();
        let id_ok = ACCESS_KEY_ID_LEN.contains(&access_key_id.len())
            && access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(SecretError::AccessKeys(format!(
                "{} is not 16 to 128 letters and digits",
                Self::ACCESS_KEY_ID
            )));
        }
        let secret = secret_access_key.expose();
        if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::AccessKeys(format!(
                "{} is empty or holds whitespace",
                Self::SECRET_ACCESS_KEY
            )));
        }
        Ok(Self {
            access_key_id,
            secret_access_key,
        })
    }

    /// Reads the JSON object; errors name fields and positions, never values.
    pub fn parse(secret: &SecretString) -> Result<Self, SecretError> {
        let error = |reason: String| SecretError::AccessKeys(reason);
        let value: serde_json::Value = serde_json::from_str(secret.expose()).map_err(|e| {
            error(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let serde_json::Value::Object(fields) = value else {
            return Err(error(format!(
                "not a JSON object with {} and {}",
                Self::ACCESS_KEY_ID,
                Self::SECRET_ACCESS_KEY
            )));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| *k != Self::ACCESS_KEY_ID && *k != Self::SECRET_ACCESS_KEY)
        {
            return Err(error(format!(
                "unknown field `{unknown}` (expected {} and {})",
                Self::ACCESS_KEY_ID,
                Self::SECRET_ACCESS_KEY
            )));
        }
        let field = |name: &str| match fields.get(name) {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(error(format!("{name} is not a string"))),
            None => Err(error(format!("{name} is missing"))),
        };
        Self::new(
            field(Self::ACCESS_KEY_ID)?,
            SecretString(field(Self::SECRET_ACCESS_KEY)?),
        )
    }

    /// The JSON stored in Secrets Manager.
    pub fn to_secret(&self) -> SecretString {
        let json = serde_json::json!({
            Self::ACCESS_KEY_ID: self.access_key_id,
            Self::SECRET_ACCESS_KEY: self.secret_access_key.expose(),
        });
        SecretString(json.to_string())
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        self.secret_access_key.expose()
    }
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .finish()
    }
}

/// Parses an Event Hubs connection string and checks that it is for
/// `namespace` (its endpoint host is `{namespace}.` followed by the cloud's
/// domain) and, when it names an event hub (`EntityPath`), for `hub`.
pub fn check_connection_string(
    secret: &SecretString,
    namespace: &str,
    hub: &str,
) -> Result<ConnectionString, SecretError> {
    check_size(secret)?;
    let parsed = ConnectionString::parse(secret.expose())?;
    let host = parsed.namespace_host();
    let host_namespace = host.split('.').next().unwrap_or_default();
    if !host_namespace.eq_ignore_ascii_case(namespace) {
        return Err(SecretError::ConnectionStringMismatch {
            part: "namespace",
            expected: namespace.to_owned(),
            found: host_namespace.to_owned(),
        });
    }
    if let Some(path) = parsed.entity_path() {
        if path != hub {
            return Err(SecretError::ConnectionStringMismatch {
                part: "EntityPath",
                expected: hub.to_owned(),
                found: path.to_owned(),
            });
        }
    }
    Ok(parsed)
}

/// What subscriptions need from a secret store.
pub trait SecretStore {
    /// Creates the secret `name` holding `value`; returns its id (the ARN,
    /// which every other call accepts, as it accepts the name).
    /// [`SecretError::AlreadyExists`] if the name is taken.
    fn put(
        &self,
        name: &str,
        value: &SecretString,
    ) -> impl Future<Output = Result<String, SecretError>> + Send;

    /// The current value of secret `id` (ARN or name).
    fn get(&self, id: &str) -> impl Future<Output = Result<SecretString, SecretError>> + Send;

    /// Deletes secret `id` at once, without a recovery window: a deleted
    /// subscription's credentials must not linger. `NotFound` if absent.
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), SecretError>> + Send;
}

/// Secrets Manager as a [`SecretStore`].
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

/// Error codes worth retrying (Secrets Manager API reference, common errors).
const RETRYABLE_CODES: [&str; 3] = [
    "ThrottlingException",
    "InternalServiceError",
    "ServiceUnavailable",
];

fn service<E, R>(operation: &'static str, id: &str, error: SdkError<E, R>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let code = match &error {
        SdkError::ServiceError(e) => e.err().code().map(str::to_owned),
        _ => None,
    };
    match code.as_deref() {
        Some("ResourceNotFoundException") => return SecretError::NotFound(id.to_owned()),
        Some("ResourceExistsException") => return SecretError::AlreadyExists(id.to_owned()),
        _ => {}
    }
    let retryable = match &error {
        SdkError::ServiceError(_) => code.is_some_and(|c| RETRYABLE_CODES.contains(&c.as_str())),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    SecretError::Service {
        operation,
        id: id.to_owned(),
        message: DisplayErrorContext(&error).to_string(),
        retryable,
    }
}

impl SecretsManager {
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(sdk))
    }

    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

impl SecretStore for SecretsManager {
    async fn put(&self, name: &str, value: &SecretString) -> Result<String, SecretError> {
        check_size(value)?;
        let output = self
            .client
            .create_secret()
            .name(name)
            .description(SECRET_DESCRIPTION)
            .secret_string(value.expose())
            .send()
            .await
            .map_err(|e| service("put", name, e))?;
        Ok(output.arn.unwrap_or_else(|| name.to_owned()))
    }

    async fn get(&self, id: &str) -> Result<SecretString, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| service("get", id, e))?;
        output
            .secret_string
            .map(SecretString)
            .ok_or_else(|| SecretError::Service {
                operation: "get",
                id: id.to_owned(),
                message: "the secret holds binary data, not a string".to_owned(),
                retryable: false,
            })
    }

    async fn delete(&self, id: &str) -> Result<(), SecretError> {
        self.client
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(|e| service("delete", id, e))?;
        Ok(())
    }
}

/// Secrets in a map, for tests. Ids are fake ARNs
/// (`arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}`); both
/// ARN and name are accepted.
#[derive(Debug, Default)]
pub struct InMemorySecrets {
    secrets: Mutex<BTreeMap<String, SecretString>>,
}

impl InMemorySecrets {
    const ARN_PREFIX: &'static str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:";

    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `name` = `value` for each pair.
    pub fn with<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let store = Self::new();
        store.lock().extend(
            secrets
                .into_iter()
                .map(|(name, value)| (name.to_owned(), SecretString::new(value))),
        );
        store
    }

    /// The names held, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SecretString>> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(id: &str) -> &str {
        id.strip_prefix(Self::ARN_PREFIX).unwrap_or(id)
    }
}

impl SecretStore for InMemorySecrets {
    async fn put(&self, name: &str, value: &SecretString) -> Result<String, SecretError> {
        check_size(value)?;
        let mut secrets = self.lock();
        if secrets.contains_key(name) {
            return Err(SecretError::AlreadyExists(name.to_owned()));
        }
        secrets.insert(name.to_owned(), value.clone());
        Ok(format!("{}{name}", Self::ARN_PREFIX))
    }

    async fn get(&self, id: &str) -> Result<SecretString, SecretError> {
        self.lock()
            .get(Self::name(id))
            .cloned()
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }

    async fn delete(&self, id: &str) -> Result<(), SecretError> {
        self.lock()
            .remove(Self::name(id))
            .map(|_| ())
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn json(text: &str) -> SecretString {
        SecretString::new(text)
    }

    #[test]
    fn secret_strings_never_print() {
        let secret = SecretString::new(SECRET);
        assert_eq!(format!("{secret}"), "<redacted>");
        assert!(!format!("{secret:?}").contains(SECRET));
        let keys = AccessKeys::new(KEY_ID, secret).unwrap();
        let debug = format!("{keys:?}");
        assert!(debug.contains(KEY_ID) && !debug.contains(SECRET), "{debug}");
    }

    #[test]
    fn access_keys_round_trip_through_json() {
        let keys = AccessKeys::new(KEY_ID, SecretString::new(SECRET)).unwrap();
        let parsed = AccessKeys::parse(&keys.to_secret()).unwrap();
        assert_eq!(parsed, keys);
        assert_eq!(
            (parsed.access_key_id(), parsed.secret_access_key()),
            (KEY_ID, SECRET)
        );
    }

    #[test]
    fn bad_access_key_json_is_explained_without_its_values() {
        let cases = [
            (format!("{{\"access_key_id\": \"{KEY_ID}\", \"secret_access_key\": \"{SECRET}\""), "not JSON (line 1"),
            (format!("[\"{SECRET}\"]"), "not a JSON object"),
            (format!("{{\"access_key_id\": \"{KEY_ID}\"}}"), "secret_access_key is missing"),
            (format!("{{\"access_key_id\": \"{KEY_ID}\", \"secret_access_key\": 42}}"), "secret_access_key is not a string"),
            (
                format!("{{\"access_key_id\": \"{KEY_ID}\", \"secret_access_key\": \"{SECRET}\", \"token\": \"{SECRET}\"}}"),
                "unknown field `token`",
            ),
            (format!("{{\"access_key_id\": \"short\", \"secret_access_key\": \"{SECRET}\"}}"), "access_key_id is not 16"),
            (format!("{{\"access_key_id\": \"{KEY_ID}\", \"secret_access_key\": \"{SECRET} x\"}}"), "holds whitespace"),
        ];
        for (text, expected) in cases {
            let error = AccessKeys::parse(&json(&text)).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "expected {expected:?} in {error:?}"
            );
            assert!(!error.contains(SECRET), "{error}");
        }
    }

    #[test]
    fn connection_strings_must_be_for_the_subscriptions_hub() {
        let key = "c2VjcmV0LWtleS1ub3QtdG8tcHJpbnQ=";
        let good = format!(
            "Endpoint=sb://contoso-events.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={key};EntityPath=devices"
        );
        let parsed = check_connection_string(&json(&good), "contoso-events", "devices").unwrap();
        assert_eq!(parsed.key_name(), "send");
        let unscoped = good.replace(";EntityPath=devices", "");
        check_connection_string(&json(&unscoped), "contoso-events", "other").unwrap();
        let cases = [
            (
                good.as_str(),
                "other-events",
                "devices",
                "namespace is `contoso-events`",
            ),
            (
                good.as_str(),
                "contoso-events",
                "telemetry",
                "EntityPath is `devices`",
            ),
            (
                "Endpoint=sb://contoso-events.servicebus.windows.net/",
                "contoso-events",
                "devices",
                "no SharedAccessKeyName",
            ),
            ("garbage", "contoso-events", "devices", "segment 1"),
            ("", "contoso-events", "devices", "empty"),
        ];
        for (text, namespace, hub, expected) in cases {
            let error = check_connection_string(&json(text), namespace, hub)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "expected {expected:?} in {error:?}"
            );
            assert!(!error.contains(key), "{error}");
        }
    }

    #[test]
    fn secret_names_sit_under_the_iam_prefix() {
        assert_eq!(
            secret_name(&SubscriptionId::from_bits(1)),
            "dpl/streams/sub-0000000000000001"
        );
    }

    #[tokio::test]
    async fn memory_secrets_accept_name_or_arn() {
        let store = InMemorySecrets::new();
        let arn = store.put("dpl/streams/a", &json("v")).await.unwrap();
        assert!(arn.ends_with(":secret:dpl/streams/a"));
        assert_eq!(store.get(&arn).await.unwrap().expose(), "v");
        assert_eq!(store.get("dpl/streams/a").await.unwrap().expose(), "v");
        assert_eq!(
            store.put("dpl/streams/a", &json("w")).await,
            Err(SecretError::AlreadyExists("dpl/streams/a".to_owned()))
        );
        assert_eq!(
            store.put("dpl/streams/b", &json(" ")).await,
            Err(SecretError::Empty)
        );
        store.delete(&arn).await.unwrap();
        assert!(matches!(
            store.get(&arn).await,
            Err(SecretError::NotFound(_))
        ));
    }
}
