//! Shared Access Signature tokens for the Event Hubs REST API.
//!
//! Source: "Authenticate access to Event Hubs resources using shared access
//! signatures" and "Generate a SAS token" (Azure docs), summed up in
//! `shared/reference/limits.md`:
//!
//! ```text
//! SharedAccessSignature sr={enc(uri)}&sig={enc(base64(HMAC-SHA256(key, enc(uri) + "\n" + se)))}&se={se}&skn={key name}
//! ```
//!
//! `uri` is the resource the token grants, `https://{ns}.servicebus.windows.net/{hub}`;
//! `se` is the expiry in seconds since the epoch; the HMAC key is the UTF-8
//! bytes of the key as printed in the connection string (not base64-decoded);
//! `enc` is `application/x-www-form-urlencoded` escaping, as Python's
//! `urllib.parse.quote_plus` in the docs' sample (every byte but ASCII
//! letters, digits and `-_.~` is `%XX`, upper-case hex).
//!
//! Tokens are secrets: [`SasToken`]'s `Debug` redacts the signature.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use super::connection::ConnectionString;

/// How long a token we sign stays valid. One hour: long enough that a Lambda
/// invocation signs once, short enough that a leaked token soon dies. (The
/// docs' samples use 1 hour to ~3 hours; the service sets no minimum.)
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// A cached token is replaced once it has less than this left, so that no
/// request (with its retries, bounded by the Lambda's 15 min) carries a token
/// that expires in flight.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The scheme word that starts the `Authorization` header value.
pub const SCHEME: &str = "SharedAccessSignature";

/// `quote_plus`'s safe set: letters, digits and `-_.~` stay as they are.
const FORM_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Escapes a token field the way the docs' sample does.
pub fn form_encode(text: &str) -> String {
    utf8_percent_encode(text, FORM_ENCODE).to_string()
}

/// The resource a token for one event hub is signed for:
/// `https://{namespace host}/{hub}`. Always the real Azure URI, whatever
/// base URL the requests go to.
pub fn resource_uri(namespace_host: &str, hub: &str) -> String {
    format!("https://{namespace_host}/{hub}")
}

/// `base64(HMAC-SHA256(key, encoded_uri + "\n" + expiry))`, not yet
/// URL-encoded. `encoded_uri` is the `sr` field as it appears in the token.
pub fn signature(key: &str, encoded_uri: &str, expiry: u64) -> String {
    let mac = mac(key, encoded_uri, expiry);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn mac(key: &str, encoded_uri: &str, expiry: u64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(encoded_uri.as_bytes());
    mac.update(b"\n");
    mac.update(expiry.to_string().as_bytes());
    mac
}

/// A signed token: the `Authorization` header value and its expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    header: String,
    expires_at: u64,
}

impl SasToken {
    /// Signs a token for `resource_uri` (see [`resource_uri`]) valid until
    /// `expiry` (seconds since the epoch). Pure: the caller picks the expiry.
    pub fn sign(key_name: &str, key: &str, resource_uri: &str, expiry: u64) -> SasToken {
        let sr = form_encode(resource_uri);
        let sig = form_encode(&signature(key, &sr, expiry));
        let skn = form_encode(key_name);
        SasToken {
            header: format!("{SCHEME} sr={sr}&sig={sig}&se={expiry}&skn={skn}"),
            expires_at: expiry,
        }
    }

    /// The `Authorization` header value. A secret: never log it.
    pub fn header_value(&self) -> &str {
        &self.header
    }

    /// Seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the token should be replaced at `now` (seconds since the
    /// epoch): it has less than `margin` left.
    pub fn is_due(&self, now: u64, margin: Duration) -> bool {
        now.saturating_add(margin.as_secs()) >= self.expires_at
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("header", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Signs tokens for one event hub and reuses each until it is due
/// ([`REFRESH_MARGIN`] before its expiry). Thread-safe.
pub struct TokenCache {
    connection: ConnectionString,
    resource_uri: String,
    lifetime: Duration,
    margin: Duration,
    current: Mutex<Option<SasToken>>,
}

impl TokenCache {
    /// A cache for `hub` in the namespace of `connection`, with
    /// [`TOKEN_LIFETIME`] and [`REFRESH_MARGIN`].
    pub fn new(connection: ConnectionString, hub: &str) -> TokenCache {
        TokenCache::with_lifetime(connection, hub, TOKEN_LIFETIME, REFRESH_MARGIN)
    }

    /// The same with other durations (tests). `margin` is capped at
    /// `lifetime` (a fresh token is then always due, i.e. never reused).
    pub fn with_lifetime(
        connection: ConnectionString,
        hub: &str,
        lifetime: Duration,
        margin: Duration,
    ) -> TokenCache {
        let resource_uri = resource_uri(connection.namespace_host(), hub);
        TokenCache {
            connection,
            resource_uri,
            lifetime,
            margin: margin.min(lifetime),
            current: Mutex::new(None),
        }
    }

    /// The resource URI the tokens sign.
    pub fn resource_uri(&self) -> &str {
        &self.resource_uri
    }

    /// A token valid at `now` (seconds since the epoch) for at least the
    /// refresh margin: the cached one, or a new one.
    pub fn token(&self, now: u64) -> SasToken {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match current.as_ref() {
            Some(token) if !token.is_due(now, self.margin) => token.clone(),
            _ => {
                let token = SasToken::sign(
                    self.connection.key_name(),
                    self.connection.key(),
                    &self.resource_uri,
                    now.saturating_add(self.lifetime.as_secs()),
                );
                *current = Some(token.clone());
                token
            }
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("connection", &self.connection)
            .field("resource_uri", &self.resource_uri)
            .field("lifetime", &self.lifetime)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

/// Why an `Authorization` value is not a SAS token one can check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasParseError {
    #[error("the authorization is not a SharedAccessSignature")]
    NotSas,
    #[error("the SharedAccessSignature has no {0}")]
    Missing(&'static str),
    #[error("the SharedAccessSignature has {0} twice")]
    Duplicate(&'static str),
    #[error("the SharedAccessSignature field {0} is not valid percent-encoded UTF-8")]
    BadEncoding(&'static str),
    #[error("the SharedAccessSignature expiry is not a number of seconds")]
    BadExpiry,
}

/// The fields of a received token, for checking it (the local endpoint,
/// tests). `sr_encoded` is kept as sent: it is what was signed.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedSas {
    pub sr_encoded: String,
    /// `sr` decoded: the resource URI.
    pub resource: String,
    /// `sig` decoded: the base64 signature.
    pub signature: String,
    pub expiry: u64,
    /// `skn` decoded.
    pub key_name: String,
}

impl fmt::Debug for ParsedSas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSas")
            .field("resource", &self.resource)
            .field("signature", &"<redacted>")
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .finish()
    }
}

impl ParsedSas {
    /// Reads `SharedAccessSignature sr=..&sig=..&se=..&skn=..` (fields in
    /// any order; unknown fields ignored).
    pub fn parse(header: &str) -> Result<ParsedSas, SasParseError> {
        let fields = header
            .trim()
            .strip_prefix(SCHEME)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(SasParseError::NotSas)?
            .trim();
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in fields.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (slot, label) = match name {
                "sr" => (&mut sr, "sr"),
                "sig" => (&mut sig, "sig"),
                "se" => (&mut se, "se"),
                "skn" => (&mut skn, "skn"),
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SasParseError::Duplicate(label));
            }
        }
        let sr_encoded = sr.ok_or(SasParseError::Missing("sr"))?;
        let decode = |value: &str, label| {
            // Form encoding: '+' is a space.
            percent_decode_str(&value.replace('+', " "))
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| SasParseError::BadEncoding(label))
        };
        Ok(ParsedSas {
            sr_encoded: sr_encoded.to_owned(),
            resource: decode(sr_encoded, "sr")?,
            signature: decode(sig.ok_or(SasParseError::Missing("sig"))?, "sig")?,
            expiry: se
                .ok_or(SasParseError::Missing("se"))?
                .parse()
                .map_err(|_| SasParseError::BadExpiry)?,
            key_name: decode(skn.ok_or(SasParseError::Missing("skn"))?, "skn")?,
        })
    }

    /// Whether the signature is the HMAC of this token's `sr` and `se`
    /// under `key`. Constant-time in the signature.
    pub fn is_signed_by(&self, key: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.signature) else {
            return false;
        };
        mac(key, &self.sr_encoded, self.expiry)
            .verify_slice(&sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS12YWx1ZQ==";
    const URI: &str = "https://myns.servicebus.windows.net/events";
    const EXPIRY: u64 = 1_700_000_000;

    /// Computed independently with Python 3's standard library, following
    /// the docs' sample (`quote_plus` for `sr` and `sig`):
    ///
    /// ```python
    /// import hmac, hashlib, base64, urllib.parse
    /// uri = urllib.parse.quote_plus("https://myns.servicebus.windows.net/events")
    /// key = "c2VjcmV0LWtleS12YWx1ZQ=="
    /// expiry = "1700000000"
    /// sig = base64.b64encode(hmac.HMAC(key.encode(), (uri + "\n" + expiry).encode(),
    ///                                  hashlib.sha256).digest()).decode()
    /// print("SharedAccessSignature sr={}&sig={}&se={}&skn={}".format(
    ///     uri, urllib.parse.quote_plus(sig), expiry, "send"))
    /// ```
    const GOLDEN: &str = "SharedAccessSignature sr=https%3A%2F%2Fmyns.servicebus.windows.net%2Fevents&sig=kvpZ9Pptd%2BVn%2FYUy5t5GKkYSH5CoaYwfF4OBeWUAQ%2Fw%3D&se=1700000000&skn=send";
    const GOLDEN_SIGNATURE: &str = "kvpZ9Pptd+Vn/YUy5t5GKkYSH5CoaYwfF4OBeWUAQ/w=";

    fn connection() -> ConnectionString {
        ConnectionString::new("myns.servicebus.windows.net", "send", KEY, Some("events")).unwrap()
    }

    #[test]
    fn token_matches_the_independently_computed_golden() {
        let token = SasToken::sign("send", KEY, URI, EXPIRY);
        assert_eq!(token.header_value(), GOLDEN);
        assert_eq!(token.expires_at(), EXPIRY);
        assert_eq!(signature(KEY, &form_encode(URI), EXPIRY), GOLDEN_SIGNATURE);
    }

    #[test]
    fn resource_uri_is_the_https_hub_uri() {
        assert_eq!(resource_uri("myns.servicebus.windows.net", "events"), URI);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = SasToken::sign("send", KEY, URI, EXPIRY);
        let debug = format!("{token:?}");
        assert!(!debug.contains("kvpZ9"), "{debug}");
        let parsed = ParsedSas::parse(GOLDEN).unwrap();
        assert!(!format!("{parsed:?}").contains("kvpZ9"));
        let cache = TokenCache::new(connection(), "events");
        cache.token(EXPIRY);
        assert!(!format!("{cache:?}").contains(KEY));
    }

    #[test]
    fn golden_token_parses_and_verifies_and_a_tampered_one_does_not() {
        let parsed = ParsedSas::parse(GOLDEN).unwrap();
        assert_eq!(parsed.resource, URI);
        assert_eq!(parsed.signature, GOLDEN_SIGNATURE);
        assert_eq!(parsed.expiry, EXPIRY);
        assert_eq!(parsed.key_name, "send");
        assert!(parsed.is_signed_by(KEY));
        assert!(!parsed.is_signed_by("another key"));
        let later = GOLDEN.replace("se=1700000000", "se=1700000001");
        assert!(!ParsedSas::parse(&later).unwrap().is_signed_by(KEY));
        let other_hub = GOLDEN.replace("%2Fevents", "%2Fother");
        assert!(!ParsedSas::parse(&other_hub).unwrap().is_signed_by(KEY));
    }

    #[test]
    fn malformed_authorizations_are_named() {
        assert_eq!(ParsedSas::parse("Bearer x"), Err(SasParseError::NotSas));
        assert_eq!(
            ParsedSas::parse("SharedAccessSignaturesr=a"),
            Err(SasParseError::NotSas)
        );
        assert_eq!(
            ParsedSas::parse("SharedAccessSignature sig=a&se=1&skn=k"),
            Err(SasParseError::Missing("sr"))
        );
        assert_eq!(
            ParsedSas::parse("SharedAccessSignature sr=a&sig=b&se=soon&skn=k"),
            Err(SasParseError::BadExpiry)
        );
        assert_eq!(
            ParsedSas::parse("SharedAccessSignature sr=a&sr=a&sig=b&se=1&skn=k"),
            Err(SasParseError::Duplicate("sr"))
        );
    }

    #[test]
    fn cache_reuses_a_token_until_the_refresh_margin() {
        let cache = TokenCache::new(connection(), "events");
        let first = cache.token(EXPIRY);
        assert_eq!(first.expires_at(), EXPIRY + TOKEN_LIFETIME.as_secs());
        let reuse_until = first.expires_at() - REFRESH_MARGIN.as_secs() - 1;
        assert_eq!(cache.token(reuse_until), first);
        let renewed = cache.token(reuse_until + 1);
        assert_ne!(renewed, first);
        assert_eq!(
            renewed.expires_at(),
            reuse_until + 1 + TOKEN_LIFETIME.as_secs()
        );
        assert!(ParsedSas::parse(renewed.header_value())
            .unwrap()
            .is_signed_by(KEY));
    }

    #[test]
    fn named_durations_leave_a_useful_window() {
        // A token is used for at least lifetime - margin before renewal.
        assert!(TOKEN_LIFETIME > REFRESH_MARGIN);
        // A renewed token outlives the longest Lambda invocation (15 min).
        assert!(REFRESH_MARGIN >= Duration::from_secs(15 * 60));
    }
}
