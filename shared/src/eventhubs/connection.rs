//! The Event Hubs connection string: where to send and which key signs.
//!
//! Format (Azure portal, "Shared access policies"):
//! `Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName={name};SharedAccessKey={key};EntityPath={hub}`.
//! Keys are matched case-insensitively and in any order; empty segments
//! (a trailing `;`) are ignored. The key never appears in `Debug` output or
//! in an error message: errors name the part that is missing or bad, not
//! its value.

use std::fmt;

/// A parsed connection string. The key is a secret: `Debug` redacts it and
/// there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    namespace_host: String,
    key_name: String,
    key: String,
    entity_path: Option<String>,
}

/// Why a connection string was refused. Never carries the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// A required part (`Endpoint`, `SharedAccessKeyName`,
    /// `SharedAccessKey`) is absent.
    #[error("connection string has no {0}")]
    Missing(&'static str),
    /// A required part is present but empty.
    #[error("connection string has an empty {0}")]
    Empty(&'static str),
    /// A part appears twice.
    #[error("connection string has {0} twice")]
    Duplicate(&'static str),
    /// A segment is not `Name=Value`. Carries the segment's position, not
    /// its text (which might be a key).
    #[error("connection string segment {0} is not Name=Value")]
    Malformed(usize),
    /// `Endpoint` is not `sb://{host}/`.
    #[error("connection string Endpoint must be sb://{{namespace}}.servicebus.windows.net/: {0}")]
    BadEndpoint(&'static str),
    /// `EntityPath` is present but not a single path segment.
    #[error("connection string EntityPath must be one path segment (the event hub name)")]
    BadEntityPath,
}

const ENDPOINT: &str = "Endpoint";
const KEY_NAME: &str = "SharedAccessKeyName";
const KEY: &str = "SharedAccessKey";
const ENTITY_PATH: &str = "EntityPath";

impl ConnectionString {
    /// Parses a connection string. Unknown keys (e.g. `UseDevelopmentEmulator`)
    /// are ignored.
    pub fn parse(s: &str) -> Result<ConnectionString, ConnectionStringError> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut entity_path = None;
        for (index, segment) in s.split(';').enumerate() {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            // The key is base64 and may end in '=': split on the first '='.
            let (name, value) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::Malformed(index + 1))?;
            let (slot, label) = match name.trim() {
                n if n.eq_ignore_ascii_case(ENDPOINT) => (&mut endpoint, ENDPOINT),
                n if n.eq_ignore_ascii_case(KEY_NAME) => (&mut key_name, KEY_NAME),
                n if n.eq_ignore_ascii_case(KEY) => (&mut key, KEY),
                n if n.eq_ignore_ascii_case(ENTITY_PATH) => (&mut entity_path, ENTITY_PATH),
                "" => return Err(ConnectionStringError::Malformed(index + 1)),
                _ => continue,
            };
            if slot.is_some() {
                return Err(ConnectionStringError::Duplicate(label));
            }
            *slot = Some(value.trim().to_owned());
        }
        let endpoint = required(endpoint, ENDPOINT)?;
        let key_name = required(key_name, KEY_NAME)?;
        let key = required(key, KEY)?;
        let namespace_host = parse_endpoint(&endpoint)?;
        let entity_path = match entity_path {
            None => None,
            Some(p) if p.is_empty() => return Err(ConnectionStringError::Empty(ENTITY_PATH)),
            Some(p) if p.contains(['/', '?', '#']) || p.chars().any(char::is_whitespace) => {
                return Err(ConnectionStringError::BadEntityPath)
            }
            Some(p) => Some(p),
        };
        Ok(ConnectionString {
            namespace_host,
            key_name,
            key,
            entity_path,
        })
    }

    /// Builds one from parts (tests, local endpoint). Same checks as `parse`
    /// on the host and names.
    pub fn new(
        namespace_host: &str,
        key_name: &str,
        key: &str,
        entity_path: Option<&str>,
    ) -> Result<ConnectionString, ConnectionStringError> {
        let mut s = format!(
            "Endpoint=sb://{namespace_host}/;SharedAccessKeyName={key_name};SharedAccessKey={key}"
        );
        if let Some(hub) = entity_path {
            s.push_str(";EntityPath=");
            s.push_str(hub);
        }
        ConnectionString::parse(&s)
    }

    /// The namespace's host, e.g. `myns.servicebus.windows.net`.
    pub fn namespace_host(&self) -> &str {
        &self.namespace_host
    }

    /// The name of the shared access policy (`skn` of the SAS token).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The event hub, when the string is scoped to one.
    pub fn entity_path(&self) -> Option<&str> {
        self.entity_path.as_deref()
    }

    /// The signing key. Crate-private: only the SAS signer reads it.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("namespace_host", &self.namespace_host)
            .field("key_name", &self.key_name)
            .field("key", &"<redacted>")
            .field("entity_path", &self.entity_path)
            .finish()
    }
}

fn required(value: Option<String>, label: &'static str) -> Result<String, ConnectionStringError> {
    match value {
        None => Err(ConnectionStringError::Missing(label)),
        Some(v) if v.is_empty() => Err(ConnectionStringError::Empty(label)),
        Some(v) => Ok(v),
    }
}

/// `sb://{host}/` → `{host}`. Accepts a missing trailing slash.
fn parse_endpoint(endpoint: &str) -> Result<String, ConnectionStringError> {
    let scheme_len = "sb://".len();
    let rest = match endpoint.get(..scheme_len) {
        Some(scheme) if scheme.eq_ignore_ascii_case("sb://") => &endpoint[scheme_len..],
        _ => {
            return Err(ConnectionStringError::BadEndpoint(
                "the scheme is not sb://",
            ))
        }
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() {
        return Err(ConnectionStringError::BadEndpoint("the host is empty"));
    }
    if host.contains('/') {
        return Err(ConnectionStringError::BadEndpoint(
            "it has a path after the host",
        ));
    }
    let valid = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if !valid {
        return Err(ConnectionStringError::BadEndpoint(
            "the host has invalid characters",
        ));
    }
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_VALUE: &str = "c2VjcmV0LWtleS12YWx1ZQ==";

    fn full() -> String {
        format!(
            "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY_VALUE};EntityPath=events"
        )
    }

    #[test]
    fn portal_connection_string_is_parsed() {
        let c = ConnectionString::parse(&full()).unwrap();
        assert_eq!(c.namespace_host(), "myns.servicebus.windows.net");
        assert_eq!(c.key_name(), "send");
        assert_eq!(c.key(), KEY_VALUE);
        assert_eq!(c.entity_path(), Some("events"));
    }

    #[test]
    fn keys_are_order_and_case_insensitive_and_trailing_semicolon_ignored() {
        let s = format!(
            "entitypath=events; sharedaccesskey={KEY_VALUE};ENDPOINT=sb://myns.servicebus.windows.net;SharedAccessKeyName=send;"
        );
        assert_eq!(
            ConnectionString::parse(&s).unwrap(),
            ConnectionString::parse(&full()).unwrap()
        );
    }

    #[test]
    fn entity_path_is_optional_and_unknown_keys_are_ignored() {
        let s = format!(
            "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY_VALUE};UseDevelopmentEmulator=false"
        );
        assert_eq!(ConnectionString::parse(&s).unwrap().entity_path(), None);
    }

    #[test]
    fn missing_and_empty_parts_are_named() {
        let cases: &[(&str, ConnectionStringError)] = &[
            (
                "SharedAccessKeyName=a;SharedAccessKey=k",
                ConnectionStringError::Missing("Endpoint"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKey=k",
                ConnectionStringError::Missing("SharedAccessKeyName"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=a",
                ConnectionStringError::Missing("SharedAccessKey"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=",
                ConnectionStringError::Empty("SharedAccessKey"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=;SharedAccessKey=k",
                ConnectionStringError::Empty("SharedAccessKeyName"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=k;EntityPath=",
                ConnectionStringError::Empty("EntityPath"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=k;SharedAccessKey=j",
                ConnectionStringError::Duplicate("SharedAccessKey"),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;garbage;SharedAccessKey=k",
                ConnectionStringError::Malformed(2),
            ),
            (
                "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=k;EntityPath=a/b",
                ConnectionStringError::BadEntityPath,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &ConnectionString::parse(input).unwrap_err(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn endpoint_must_be_sb_scheme_with_a_bare_host() {
        for endpoint in [
            "https://n.servicebus.windows.net/",
            "n.servicebus.windows.net",
            "sb:///",
            "sb://n.servicebus.windows.net/path",
            "sb://n servicebus/",
        ] {
            let s = format!("Endpoint={endpoint};SharedAccessKeyName=a;SharedAccessKey=k");
            assert!(
                matches!(
                    ConnectionString::parse(&s),
                    Err(ConnectionStringError::BadEndpoint(_))
                ),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_key() {
        let c = ConnectionString::parse(&full()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains(KEY_VALUE), "{debug}");
        assert!(debug.contains("<redacted>"));
        let bad = format!("Endpoint=http://x/;SharedAccessKeyName=a;SharedAccessKey={KEY_VALUE}");
        let err = ConnectionString::parse(&bad).unwrap_err();
        assert!(!err.to_string().contains(KEY_VALUE));
        assert!(!format!("{err:?}").contains(KEY_VALUE));
        let malformed = format!("Endpoint=sb://n/;{KEY_VALUE}");
        let err = ConnectionString::parse(&malformed).unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn new_builds_the_same_value_as_parse() {
        let c = ConnectionString::new(
            "myns.servicebus.windows.net",
            "send",
            KEY_VALUE,
            Some("events"),
        )
        .unwrap();
        assert_eq!(c, ConnectionString::parse(&full()).unwrap());
    }
}
