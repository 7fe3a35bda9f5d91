//! Storing and removing a subscription with its secret, in the one order
//! both `dplctl streams create|delete` and the HTTP API use: the secret
//! first and the item second on create (a failed item deletes the secret
//! again); the item, then its delivery state, then its secret on delete.

use super::request::CreatePlan;
use super::secrets::{SecretError, SecretStore};
use super::state::DeliveryState;
use super::store::{SubscriptionStore, SubscriptionStoreError};
use super::subscription::{Credentials, Subscription};

/// Why a create or delete did not finish. Messages say what is left over
/// and what to do about it; none holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageError {
    #[error("storing the secret: {0}")]
    Secret(SecretError),
    #[error("storing the subscription: {error}{cleanup}")]
    Store {
        error: SubscriptionStoreError,
        /// What became of the secret stored first (empty without one).
        cleanup: String,
    },
    #[error("deleting the subscription: {0}")]
    Delete(SubscriptionStoreError),
    #[error("subscription {id} deleted, but not its cursors and dead letters: {message}")]
    State { id: String, message: String },
    #[error(
        "subscription {id} deleted, but not its secret {secret}: delete it by hand ({message})"
    )]
    SecretLeft {
        id: String,
        secret: String,
        message: String,
    },
}

/// Stores the plan's secret (the subscription then names it by ARN) and
/// the subscription; returns the subscription as stored.
pub async fn create(
    store: &impl SubscriptionStore,
    secrets: &impl SecretStore,
    plan: CreatePlan,
) -> Result<Subscription, ManageError> {
    let CreatePlan {
        mut subscription,
        secret,
    } = plan;
    let mut stored_secret = None;
    if let Some((name, value)) = secret {
        let arn = secrets
            .put(&name, &value)
            .await
            .map_err(ManageError::Secret)?;
        match &mut subscription.credentials {
            Credentials::AccessKeySecret { secret_id }
            | Credentials::ConnectionStringSecret { secret_id } => *secret_id = arn.clone(),
            Credentials::AssumeRole { .. } => {}
        }
        stored_secret = Some(arn);
    }
    if let Err(error) = store.create(&subscription).await {
        let cleanup = match stored_secret {
            None => String::new(),
            Some(arn) => match secrets.delete(&arn).await {
                Ok(()) => format!(" (its secret {arn} was deleted again)"),
                Err(e) => {
                    format!("; deleting its secret {arn} failed too ({e}): delete it by hand")
                }
            },
        };
        return Err(ManageError::Store { error, cleanup });
    }
    Ok(subscription)
}

/// What a delete removed besides the item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Cursors and dead letters removed.
    pub forgotten: usize,
    /// The secret deleted with it, if it had one.
    pub secret: Option<String>,
}

/// Deletes the subscription, its delivery state (a later subscription
/// never inherits it) and its secret (one already gone is fine).
pub async fn delete(
    store: &impl SubscriptionStore,
    state: &impl DeliveryState,
    secrets: &impl SecretStore,
    subscription: &Subscription,
) -> Result<Deleted, ManageError> {
    let id = &subscription.id;
    store.delete(id).await.map_err(ManageError::Delete)?;
    let forgotten = state.forget(id).await.map_err(|e| ManageError::State {
        id: id.to_string(),
        message: e.to_string(),
    })?;
    let secret = subscription.credentials.secret_id().map(str::to_owned);
    if let Some(secret) = &secret {
        match secrets.delete(secret).await {
            Ok(()) | Err(SecretError::NotFound(_)) => {}
            Err(e) => {
                return Err(ManageError::SecretLeft {
                    id: id.to_string(),
                    secret: secret.clone(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(Deleted { forgotten, secret })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::request::{plan, CreateRequest, Naming};
    use crate::streams::secrets::{InMemorySecrets, SecretString};
    use crate::streams::state::memory::InMemoryState;
    use crate::streams::store::memory::InMemorySubscriptions;
    use crate::streams::subscription::SubscriptionId;
    use crate::Timestamp;

    fn with_keys() -> CreatePlan {
        let request = CreateRequest {
            oem_id: "o".into(),
            name: "n".into(),
            description: String::new(),
            transport: "kinesis".into(),
            stream_arn: Some("arn:aws:kinesis:eu-west-1:123456789012:stream/s".into()),
            namespace: None,
            hub: None,
            role_arn: None,
            external_id: None,
            access_key: Some(
                r#"{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "s3cr3t"}"#,
            ),
            connection_string: None,
            event_types: "*".into(),
            models: "*".into(),
            properties: "*".into(),
            dsns: "*".into(),
            disabled: false,
            event_id_in_payload: false,
        };
        plan(
            request,
            SubscriptionId::from_bits(9),
            Timestamp::from_millis(0).unwrap(),
            Naming::Json,
            |_, v| Ok(SecretString::new(v)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_item_takes_its_secret_back() {
        let store = InMemorySubscriptions::new();
        let secrets = InMemorySecrets::new();
        let created = create(&store, &secrets, with_keys()).await.unwrap();
        assert_eq!(secrets.names().len(), 1);
        // The same id again: the item is refused, its new secret deleted.
        let again = create(&store, &InMemorySecrets::new(), with_keys()).await;
        assert!(
            matches!(&again, Err(ManageError::Store { cleanup, .. }) if cleanup.contains("deleted again")),
            "{again:?}"
        );
        let state = InMemoryState::new();
        let deleted = delete(&store, &state, &secrets, &created).await.unwrap();
        assert!(deleted.secret.is_some());
        assert!(secrets.names().is_empty());
        assert!(store.get(&created.id).await.unwrap().is_none());
    }
}
