//! Azure Event Hubs namespace and event hub names, checked against Azure's
//! naming rules.

use super::error::SubscriptionError;

/// Event Hubs namespace names: 6 to 50 characters, alphanumerics and
/// hyphens, starting with a letter and ending with a letter or number
/// ("Naming rules and restrictions for Azure resources", Microsoft.EventHub
/// `namespaces`, <https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsofteventhub>).
pub const NAMESPACE_LEN: std::ops::RangeInclusive<usize> = 6..=50;
/// Event hub names: 1 to 256 characters, alphanumerics, periods, hyphens
/// and underscores, starting and ending with a letter or number (same page,
/// `namespaces / eventhubs`).
pub const MAX_HUB_LEN: usize = 256;

/// See [`NAMESPACE_LEN`].
pub fn validate_namespace(namespace: &str) -> Result<(), SubscriptionError> {
    let error = |reason| {
        Err(SubscriptionError::Namespace {
            value: namespace.to_owned(),
            reason,
        })
    };
    if namespace.contains('.') {
        return error("give the namespace name, not its host name");
    }
    if !NAMESPACE_LEN.contains(&namespace.len()) {
        return error("must be 6 to 50 characters");
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return error("may hold only letters, digits and hyphens");
    }
    if !namespace.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return error("must start with a letter");
    }
    if !namespace.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return error("must end with a letter or digit");
    }
    Ok(())
}

/// See [`MAX_HUB_LEN`].
pub fn validate_hub(hub: &str) -> Result<(), SubscriptionError> {
    let error = |reason| {
        Err(SubscriptionError::Hub {
            value: hub.to_owned(),
            reason,
        })
    };
    if hub.is_empty() || hub.len() > MAX_HUB_LEN {
        return error("must be 1 to 256 characters");
    }
    if !hub
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return error("may hold only letters, digits, `.`, `-` and `_`");
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !hub.starts_with(alnum) || !hub.ends_with(alnum) {
        return error("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_hubs_names_follow_the_azure_rules() {
        for good in ["contoso", "a-1-b2", &"n".repeat(50)] {
            validate_namespace(good).unwrap();
        }
        let cases = [
            ("short", "6 to 50"),
            ("contoso.servicebus.windows.net", "host name"),
            ("1contoso", "start with a letter"),
            ("contoso-", "end with a letter or digit"),
            ("cont_oso", "letters, digits and hyphens"),
        ];
        for (namespace, expected) in cases {
            let error = validate_namespace(namespace).unwrap_err().to_string();
            assert!(error.contains(expected), "{namespace}: {error}");
            assert!(
                error.contains(&format!("namespace `{namespace}`")),
                "{error}"
            );
        }
        assert!(validate_namespace(&"n".repeat(51)).is_err());

        for good in ["h", "device.events_v2-eu", &"h".repeat(256)] {
            validate_hub(good).unwrap();
        }
        let cases = [
            ("", "1 to 256"),
            ("-hub", "start and end"),
            ("hub_", "start and end"),
            ("hub/x", "letters, digits"),
        ];
        for (hub, expected) in cases {
            let error = validate_hub(hub).unwrap_err().to_string();
            assert!(error.contains(expected), "{hub}: {error}");
        }
        assert!(validate_hub(&"h".repeat(257)).is_err());
    }
}
