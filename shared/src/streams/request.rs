//! A request to create a subscription, checked the one way both `dplctl
//! streams create` and the HTTP API (`functions/api`) check it: the same
//! rules in the same order, with messages that name the field as the
//! caller spelled it ([`Naming::Flags`]: `--stream-arn`; [`Naming::Json`]:
//! `stream_arn`).
//!
//! Secret material is read last, after everything else was checked
//! (`dplctl` reads it from a file or stdin), and is never part of an error.

use super::secrets::{check_connection_string, secret_name, AccessKeys, SecretString};
use super::subscription::{
    Credentials, Destination, Filters, Selection, Status, Subscription, SubscriptionError,
    SubscriptionId, SubscriptionSpec, Transport,
};
use crate::time::Timestamp;

/// A field of a create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    OemId,
    Name,
    Description,
    Transport,
    StreamArn,
    Namespace,
    Hub,
    RoleArn,
    ExternalId,
    AccessKey,
    ConnectionString,
    EventTypes,
    Models,
    Properties,
    Dsns,
    /// A check across fields (the credentials against the transport).
    Credentials,
}

/// How messages spell fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `dplctl` flags: `--stream-arn`, `--access-key-file`.
    Flags,
    /// JSON members of the HTTP API: `stream_arn`, `access_key`.
    Json,
}

impl Field {
    /// The JSON member name.
    pub fn json(self) -> &'static str {
        match self {
            Field::OemId => "oem_id",
            Field::Name => "name",
            Field::Description => "description",
            Field::Transport => "transport",
            Field::StreamArn => "stream_arn",
            Field::Namespace => "namespace",
            Field::Hub => "hub",
            Field::RoleArn => "role_arn",
            Field::ExternalId => "external_id",
            Field::AccessKey => "access_key",
            Field::ConnectionString => "connection_string",
            Field::EventTypes => "event_types",
            Field::Models => "models",
            Field::Properties => "properties",
            Field::Dsns => "dsns",
            Field::Credentials => "credentials",
        }
    }

    /// The `dplctl streams create` flag.
    pub fn flag(self) -> &'static str {
        match self {
            Field::OemId => "--oem",
            Field::Name => "--name",
            Field::Description => "--description",
            Field::Transport => "--transport",
            Field::StreamArn => "--stream-arn",
            Field::Namespace => "--namespace",
            Field::Hub => "--hub",
            Field::RoleArn => "--role-arn",
            Field::ExternalId => "--external-id",
            Field::AccessKey => "--access-key-file",
            Field::ConnectionString => "--connection-string-file",
            Field::EventTypes => "--event-types",
            Field::Models => "--models",
            Field::Properties => "--properties",
            Field::Dsns => "--dsns",
            Field::Credentials => "--role-arn",
        }
    }

    fn named(self, naming: Naming) -> &'static str {
        match naming {
            Naming::Flags => self.flag(),
            Naming::Json => self.json(),
        }
    }

    /// The field a [`SubscriptionError`] is about.
    pub fn of(error: &SubscriptionError) -> Field {
        use SubscriptionError as E;
        match error {
            E::UnknownTransport(_) => Field::Transport,
            E::StreamArn(_) => Field::StreamArn,
            E::RoleArn { .. } => Field::RoleArn,
            E::ExternalId { .. } => Field::ExternalId,
            E::Required { field, .. } if *field == "external_id" => Field::ExternalId,
            E::Namespace { .. } => Field::Namespace,
            E::Hub { .. } => Field::Hub,
            E::UnknownEventType(_) => Field::EventTypes,
            E::Empty { field }
            | E::Required { field, .. }
            | E::TooLong { field, .. }
            | E::Invalid { field, .. }
            | E::EmptySelection { field }
            | E::SelectionItem { field, .. }
            | E::NeverMatches { field, .. } => match *field {
                "oem_id" => Field::OemId,
                "name" => Field::Name,
                "description" => Field::Description,
                "event_types" => Field::EventTypes,
                "models" => Field::Models,
                "properties" => Field::Properties,
                "dsns" => Field::Dsns,
                _ => Field::Credentials,
            },
            E::CredentialsMismatch { .. } | E::InvalidId(_) | E::UnknownStatus(_) => {
                Field::Credentials
            }
        }
    }
}

/// Why a create request is refused: the field, and a message naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CreateError {
    pub field: Field,
    pub message: String,
}

impl CreateError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl From<SubscriptionError> for CreateError {
    fn from(error: SubscriptionError) -> Self {
        CreateError::new(Field::of(&error), error.to_string())
    }
}

/// What creating a subscription takes. `S` is where a secret comes from:
/// a file for `dplctl`, the value itself for the API.
#[derive(Debug, Clone)]
pub struct CreateRequest<S> {
    pub oem_id: String,
    pub name: String,
    pub description: String,
    /// `kinesis` or `eventhubs`.
    pub transport: String,
    pub stream_arn: Option<String>,
    pub namespace: Option<String>,
    pub hub: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// `{"access_key_id": "...", "secret_access_key": "..."}`.
    pub access_key: Option<S>,
    pub connection_string: Option<S>,
    /// `*` or a comma-separated list, each of the four.
    pub event_types: String,
    pub models: String,
    pub properties: String,
    pub dsns: String,
    pub disabled: bool,
    /// Kinesis: carry `event_id` as the data's last field (off: the
    /// vendor's payload byte for byte).
    pub event_id_in_payload: bool,
}

/// A checked subscription and the secret to store first, if any (under
/// the name [`secret_name`] gives; the subscription names it until the
/// store answers with its ARN).
#[derive(Debug)]
pub struct CreatePlan {
    pub subscription: Subscription,
    pub secret: Option<(String, SecretString)>,
}

/// Checks `request` and builds what creating it writes; `read` turns a
/// secret source into its value (called last, once at most). Makes no call.
pub fn plan<S>(
    request: CreateRequest<S>,
    id: SubscriptionId,
    now: Timestamp,
    naming: Naming,
    read: impl FnOnce(Field, S) -> Result<SecretString, CreateError>,
) -> Result<CreatePlan, CreateError> {
    let n = |field: Field| field.named(naming);
    let transport: Transport = request.transport.parse()?;
    let destination = match transport {
        Transport::Kinesis => {
            if request.namespace.is_some() || request.hub.is_some() {
                return Err(CreateError::new(
                    Field::Namespace,
                    format!(
                        "{} and {} are for {} eventhubs",
                        n(Field::Namespace),
                        n(Field::Hub),
                        n(Field::Transport)
                    ),
                ));
            }
            let arn = request.stream_arn.as_deref().ok_or_else(|| {
                CreateError::new(
                    Field::StreamArn,
                    format!(
                        "{} kinesis needs {}",
                        n(Field::Transport),
                        n(Field::StreamArn)
                    ),
                )
            })?;
            Destination::Kinesis {
                stream_arn: arn.parse().map_err(SubscriptionError::from)?,
            }
        }
        Transport::EventHubs => {
            if request.stream_arn.is_some() {
                return Err(CreateError::new(
                    Field::StreamArn,
                    format!(
                        "{} is for {} kinesis",
                        n(Field::StreamArn),
                        n(Field::Transport)
                    ),
                ));
            }
            let needs = |field: Field| {
                CreateError::new(
                    field,
                    format!("{} eventhubs needs {}", n(Field::Transport), n(field)),
                )
            };
            Destination::EventHubs {
                namespace: request
                    .namespace
                    .clone()
                    .ok_or_else(|| needs(Field::Namespace))?,
                hub: request.hub.clone().ok_or_else(|| needs(Field::Hub))?,
            }
        }
    };
    if request.external_id.is_some() && request.role_arn.is_none() {
        return Err(CreateError::new(
            Field::ExternalId,
            format!("{} needs {}", n(Field::ExternalId), n(Field::RoleArn)),
        ));
    }
    let name = secret_name(&id);
    let given = [
        request.role_arn.is_some(),
        request.access_key.is_some(),
        request.connection_string.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(CreateError::new(
            Field::Credentials,
            format!(
                "give exactly one of {} or {} (kinesis), {} (eventhubs)",
                n(Field::RoleArn),
                n(Field::AccessKey),
                n(Field::ConnectionString)
            ),
        ));
    }
    let credentials = if let Some(role_arn) = &request.role_arn {
        Credentials::AssumeRole {
            role_arn: role_arn.clone(),
            external_id: request.external_id.clone(),
        }
    } else if request.access_key.is_some() {
        Credentials::AccessKeySecret {
            secret_id: name.clone(),
        }
    } else {
        Credentials::ConnectionStringSecret {
            secret_id: name.clone(),
        }
    };
    let filters = Filters {
        event_types: Selection::parse_event_types(&request.event_types)?,
        models: Selection::parse_names("models", &request.models)?,
        properties: Selection::parse_names("properties", &request.properties)?,
        dsns: Selection::parse_names("dsns", &request.dsns)?,
    };
    let spec = SubscriptionSpec {
        oem_id: request.oem_id,
        name: request.name,
        description: request.description,
        destination,
        credentials,
        filters,
    };
    let mut subscription = Subscription::new(id, spec, now)?;
    if request.disabled {
        subscription.status = Status::Disabled;
    }
    subscription.event_id_in_payload = request.event_id_in_payload;
    subscription.validate()?;
    let secret = if let Some(source) = request.access_key {
        let keys = AccessKeys::parse(&read(Field::AccessKey, source)?)
            .map_err(|e| CreateError::new(Field::AccessKey, e.to_string()))?;
        Some((name, keys.to_secret()))
    } else if let Some(source) = request.connection_string {
        let text = read(Field::ConnectionString, source)?;
        let value = SecretString::new(text.expose().trim());
        if let Destination::EventHubs { namespace, hub } = &subscription.destination {
            check_connection_string(&value, namespace, hub)
                .map_err(|e| CreateError::new(Field::ConnectionString, e.to_string()))?;
        }
        Some((name, value))
    } else {
        None
    };
    Ok(CreatePlan {
        subscription,
        secret,
    })
}

/// What an update may change: the name, the description and the filters
/// (a new destination or new credentials is a new subscription).
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub models: Option<String>,
    pub properties: Option<String>,
    pub dsns: Option<String>,
}

impl UpdateRequest {
    /// `subscription` with the change applied, checked as a new one is.
    pub fn apply(&self, subscription: &Subscription) -> Result<Subscription, CreateError> {
        let mut updated = subscription.clone();
        if let Some(name) = &self.name {
            updated.name = name.clone();
        }
        if let Some(description) = &self.description {
            updated.description = description.clone();
        }
        if let Some(text) = &self.event_types {
            updated.filters.event_types = Selection::parse_event_types(text)?;
        }
        if let Some(text) = &self.models {
            updated.filters.models = Selection::parse_names("models", text)?;
        }
        if let Some(text) = &self.properties {
            updated.filters.properties = Selection::parse_names("properties", text)?;
        }
        if let Some(text) = &self.dsns {
            updated.filters.dsns = Selection::parse_names("dsns", text)?;
        }
        updated.validate()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/s";
    const ROLE: &str = "arn:aws:iam::123456789012:role/r";

    fn request() -> CreateRequest<&'static str> {
        CreateRequest {
            oem_id: "o".into(),
            name: "n".into(),
            description: String::new(),
            transport: "kinesis".into(),
            stream_arn: Some(ARN.into()),
            namespace: None,
            hub: None,
            role_arn: Some(ROLE.into()),
            external_id: Some("dpl-x1".into()),
            access_key: None,
            connection_string: None,
            event_types: "*".into(),
            models: "*".into(),
            properties: "*".into(),
            dsns: "*".into(),
            disabled: false,
            event_id_in_payload: false,
        }
    }

    fn planned(
        request: CreateRequest<&'static str>,
        naming: Naming,
    ) -> Result<CreatePlan, CreateError> {
        plan(
            request,
            SubscriptionId::from_bits(7),
            Timestamp::from_millis(0).unwrap(),
            naming,
            |_, value| Ok(SecretString::new(value)),
        )
    }

    #[test]
    fn messages_name_flags_or_json_members() {
        let mut no_arn = request();
        no_arn.stream_arn = None;
        let flags = planned(no_arn.clone(), Naming::Flags).unwrap_err();
        assert_eq!(flags.message, "--transport kinesis needs --stream-arn");
        let json = planned(no_arn, Naming::Json).unwrap_err();
        assert_eq!(json.message, "transport kinesis needs stream_arn");
        assert_eq!(json.field, Field::StreamArn);
    }

    #[test]
    fn errors_of_the_model_keep_their_field() {
        let mut bad = request();
        bad.event_types = "datapoints".into();
        assert_eq!(
            planned(bad, Naming::Json).unwrap_err().field,
            Field::EventTypes
        );
        let mut bad = request();
        bad.name = " ".into();
        let error = planned(bad, Naming::Json).unwrap_err();
        assert_eq!(
            (error.field, error.message.as_str()),
            (Field::Name, "name is empty")
        );
        let mut bad = request();
        bad.transport = "azure".into();
        assert_eq!(
            planned(bad, Naming::Json).unwrap_err().field,
            Field::Transport
        );
    }

    #[test]
    fn secrets_are_read_last_and_never_in_errors() {
        let mut both = request();
        both.access_key = Some("{}");
        let error = plan(
            both,
            SubscriptionId::from_bits(7),
            Timestamp::from_millis(0).unwrap(),
            Naming::Json,
            |_, _| panic!("read before the checks"),
        )
        .unwrap_err();
        assert_eq!(error.field, Field::Credentials);
        let mut keys = request();
        keys.role_arn = None;
        keys.external_id = None;
        keys.access_key = Some(r#"{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "sss"}"#);
        let error = planned(keys, Naming::Json).unwrap_err();
        assert_eq!(error.field, Field::AccessKey);
        assert!(!error.message.contains("sss"), "{error}");
    }

    #[test]
    fn an_update_changes_name_and_filters_and_is_checked() {
        let subscription = planned(request(), Naming::Json).unwrap().subscription;
        let update = UpdateRequest {
            name: Some("renamed".into()),
            event_types: Some("datapoint,location".into()),
            ..UpdateRequest::default()
        };
        let updated = update.apply(&subscription).unwrap();
        assert_eq!(updated.name, "renamed");
        assert_eq!(
            updated.filters.event_types.to_string(),
            "datapoint,location"
        );
        assert_eq!(updated.id, subscription.id);
        let bad = UpdateRequest {
            name: Some(String::new()),
            ..UpdateRequest::default()
        };
        assert_eq!(bad.apply(&subscription).unwrap_err().field, Field::Name);
    }
}
