//! The adapter of [`SendBatchApi`] for the Event Hubs REST API, on the HTTP
//! stack the AWS SDK already brings: hyper 1 (legacy client, HTTP/1.1) and
//! rustls with the aws-lc-rs provider and the platform's roots. Plain
//! `http://` works too, for the local endpoint (`tools/eventhubs-local`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::client::SendBatchApi;
use super::connection::ConnectionString;
use super::limits::{API_VERSION, BATCH_CONTENT_TYPE};
use super::retry::{response_outcome, SendError};
use super::sas::TokenCache;

/// One request (connect, send, answer) gets at most this long; then it
/// counts as a retryable timeout. The REST reference documents a server-side
/// `timeout` of 60 s by default; a Lambda's budget is tighter, and a batch of
/// 1 MB goes through in well under a second on a healthy link.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections kept per host unless [`HttpSender::with_pool`] says
/// otherwise.
pub const DEFAULT_IDLE_CONNECTIONS: usize = 32;

/// Error bodies are read up to this many bytes (to spot ServerBusy).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Why an [`HttpSender`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSenderError {
    #[error("event hubs base URL {0:?} is not an http(s) URL without query")]
    BadBaseUrl(String),
    #[error("event hub name {0:?} is not one path segment")]
    BadHub(String),
    #[error("TLS roots could not be loaded: {0}")]
    Tls(String),
}

/// Sends batches to one event hub over HTTPS (or HTTP for a local endpoint).
pub struct HttpSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    connector: HttpsConnector<HttpConnector>,
    url: Uri,
    tokens: TokenCache,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender")
            .field("url", &self.url)
            .field("tokens", &self.tokens)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSender {
    /// A sender to `hub` of the connection's namespace. `base_url` replaces
    /// `https://{namespace host}` (tests, local runs: e.g.
    /// `http://127.0.0.1:5000/{namespace host}` for `eventhubs-local`); the
    /// SAS token always signs `https://{namespace host}/{hub}`.
    pub fn new(
        connection: ConnectionString,
        hub: &str,
        base_url: Option<&str>,
    ) -> Result<HttpSender, HttpSenderError> {
        if hub.is_empty() || hub.contains(['/', '?', '#', ' ']) {
            return Err(HttpSenderError::BadHub(hub.to_owned()));
        }
        let base = match base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("https://{}", connection.namespace_host()),
        };
        let url: Uri = format!("{base}/{hub}/messages?api-version={API_VERSION}")
            .parse()
            .map_err(|_| HttpSenderError::BadBaseUrl(base.clone()))?;
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpSenderError::BadBaseUrl(base)),
        };
        if base.contains('?') || url.host().is_none() {
            return Err(HttpSenderError::BadBaseUrl(base));
        }
        let connector = connector(https)?;
        let client = pooled(connector.clone(), DEFAULT_IDLE_CONNECTIONS);
        Ok(HttpSender {
            client,
            connector,
            url,
            tokens: TokenCache::new(connection, hub),
            attempt_timeout: ATTEMPT_TIMEOUT,
        })
    }

    /// The same, keeping up to `idle` connections open for reuse (as many as
    /// requests go out at once, so that none is opened twice).
    pub fn with_pool(mut self, idle: usize) -> Self {
        self.client = pooled(self.connector.clone(), idle);
        self
    }

    /// The same with another per-request timeout.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Where batches are posted.
    pub fn url(&self) -> &Uri {
        &self.url
    }

    async fn attempt(&self, body: Bytes) -> Result<(), SendError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = self.tokens.token(now);
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(AUTHORIZATION, token.header_value())
            .header(CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(Full::new(body))
            .map_err(|e| SendError::Transport(format!("request could not be built: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SendError::Transport(describe(&e)))?;
        let status = response.status();
        if status.as_u16() == 201 {
            return Ok(());
        }
        // Read (a bounded part of) the error body to spot ServerBusy: the
        // body, not the reason phrase, which hyper does not hand us (its
        // `canonical_reason` is the status's standard phrase, whatever the
        // server sent).
        let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        response_outcome(status.as_u16(), &body)
    }
}

impl SendBatchApi for HttpSender {
    async fn send_batch(&self, body: Bytes) -> Result<(), SendError> {
        match tokio::time::timeout(self.attempt_timeout, self.attempt(body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SendError::Timeout(self.attempt_timeout)),
        }
    }
}

/// A client keeping up to `idle` connections per host.
fn pooled(
    connector: HttpsConnector<HttpConnector>,
    idle: usize,
) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle)
        .build(connector)
}

/// The hyper error and its causes, without the request (no headers, so no
/// token, are ever part of these).
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls with aws-lc-rs (the provider the AWS SDK uses) and the platform's
/// roots. Without roots, only `http://` can work: allowed for an `http`
/// base URL, an error for `https`.
fn connector(https: bool) -> Result<HttpsConnector<HttpConnector>, HttpSenderError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(builder) => builder,
        Err(error) if https => return Err(HttpSenderError::Tls(error.to_string())),
        Err(_) => {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpSenderError::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    Ok(builder.https_or_http().enable_http1().build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> ConnectionString {
        ConnectionString::new("myns.servicebus.windows.net", "send", "k3y", Some("events")).unwrap()
    }

    #[tokio::test]
    async fn default_url_is_the_namespace_and_a_base_url_replaces_it() {
        let sender = HttpSender::new(connection(), "events", None).unwrap();
        assert_eq!(
            sender.url().to_string(),
            "https://myns.servicebus.windows.net/events/messages?api-version=2014-01"
        );
        let local = HttpSender::new(
            connection(),
            "events",
            Some("http://127.0.0.1:5000/myns.servicebus.windows.net/"),
        )
        .unwrap();
        assert_eq!(
            local.url().to_string(),
            "http://127.0.0.1:5000/myns.servicebus.windows.net/events/messages?api-version=2014-01"
        );
        assert!(!format!("{local:?}").contains("k3y"));
    }

    #[tokio::test]
    async fn bad_base_urls_and_hubs_are_refused() {
        for base in ["ftp://x", "not a url", "http://x/?q=1", "/relative"] {
            assert!(
                matches!(
                    HttpSender::new(connection(), "events", Some(base)),
                    Err(HttpSenderError::BadBaseUrl(_))
                ),
                "{base}"
            );
        }
        assert!(matches!(
            HttpSender::new(connection(), "a/b", None),
            Err(HttpSenderError::BadHub(_))
        ));
    }
}
