//! The fault settings, the checks they must pass, and their JSON form for
//! the control API (`GET /faults` shows [`Faults`] as JSON, `POST /faults`
//! takes a [`FaultsPatch`] with any subset of its fields).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest latency or jitter accepted: longer than any client timeout our
/// tests use, short enough that a typo (`30s` for `30ms`) is noticed.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Largest body of an injected HTTP answer; real error bodies are a few
/// hundred bytes, and the whole answer is held in memory per request.
pub const MAX_BURST_BODY_BYTES: usize = 1024 * 1024;

/// What the proxy does to the traffic it forwards, now. As JSON:
/// `{"latency_ms", "jitter_ms", "bandwidth_bytes_per_s", "refuse", "stall",
/// "http_burst"}` (see [`HttpBurstJson`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Faults {
    /// Added round trip: half on the way up, half on the way down.
    #[serde(rename = "latency_ms", serialize_with = "whole_millis")]
    pub latency: Duration,
    /// Each chunk's one-way delay varies uniformly within ±jitter (never
    /// below zero, never reordering a direction).
    #[serde(rename = "jitter_ms", serialize_with = "whole_millis")]
    pub jitter: Duration,
    /// Bytes per second, per direction, per connection; `None` = unlimited.
    #[serde(rename = "bandwidth_bytes_per_s")]
    pub bandwidth: Option<u64>,
    /// New connections are accepted and reset at once.
    pub refuse: bool,
    /// No bytes move on any connection until this is cleared.
    pub stall: bool,
    /// In HTTP mode: requests answered by the proxy instead of the upstream.
    pub http_burst: Option<HttpBurst>,
}

/// An HTTP answer the proxy gives instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "HttpBurstJson")]
pub struct HttpBurst {
    /// 400-599.
    pub status: u16,
    /// Which requests get it.
    pub mode: BurstMode,
    pub body: String,
    pub content_type: String,
}

/// Which requests an [`HttpBurst`] answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BurstMode {
    /// The next N requests (across all connections); the burst is cleared
    /// when N reaches 0.
    Count(u64),
    /// Each request, independently, with this probability (0.0-1.0).
    Probability(f64),
}

impl HttpBurst {
    /// A burst answering the next `count` requests with `status` and an
    /// empty `text/plain` body.
    pub fn count(status: u16, count: u64) -> Self {
        Self {
            status,
            mode: BurstMode::Count(count),
            body: String::new(),
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
        }
    }

    /// A burst answering each request with `status` with `probability`.
    pub fn probability(status: u16, probability: f64) -> Self {
        Self {
            mode: BurstMode::Probability(probability),
            ..Self::count(status, 0)
        }
    }

    /// The same burst with this body and content type.
    pub fn with_body(mut self, content_type: &str, body: &str) -> Self {
        content_type.clone_into(&mut self.content_type);
        body.clone_into(&mut self.body);
        self
    }
}

const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Settings the proxy refuses to apply.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultsError {
    #[error("{field} must be at most {max:?}")]
    DelayTooLong { field: &'static str, max: Duration },
    #[error("bandwidth must be at least 1 byte per second (use none for unlimited)")]
    ZeroBandwidth,
    #[error("http_burst status must be 400-599, not {0}")]
    Status(u16),
    #[error("http_burst probability must be between 0 and 1, not {0}")]
    Probability(f64),
    #[error("http_burst needs exactly one of count and probability")]
    CountOrProbability,
    #[error("http_burst body is larger than {MAX_BURST_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("http_burst content_type must be one line of visible text")]
    ContentType,
    #[error("invalid JSON: {0}")]
    Json(String),
}

impl Faults {
    /// Checks every field; the proxy only ever runs with settings that pass.
    pub fn validate(&self) -> Result<(), FaultsError> {
        for (field, value) in [("latency", self.latency), ("jitter", self.jitter)] {
            if value > MAX_DELAY {
                return Err(FaultsError::DelayTooLong {
                    field,
                    max: MAX_DELAY,
                });
            }
        }
        if self.bandwidth == Some(0) {
            return Err(FaultsError::ZeroBandwidth);
        }
        if let Some(burst) = &self.http_burst {
            if !(400..=599).contains(&burst.status) {
                return Err(FaultsError::Status(burst.status));
            }
            if let BurstMode::Probability(p) = burst.mode {
                if !(0.0..=1.0).contains(&p) {
                    return Err(FaultsError::Probability(p));
                }
            }
            if burst.body.len() > MAX_BURST_BODY_BYTES {
                return Err(FaultsError::BodyTooLarge);
            }
            if burst.content_type.chars().any(|c| c.is_control()) {
                return Err(FaultsError::ContentType);
            }
        }
        Ok(())
    }

    /// Applies a control-API patch; fields it leaves out keep their value.
    pub fn apply(&mut self, patch: FaultsPatch) -> Result<(), FaultsError> {
        if let Some(ms) = patch.latency_ms {
            self.latency = Duration::from_millis(ms);
        }
        if let Some(ms) = patch.jitter_ms {
            self.jitter = Duration::from_millis(ms);
        }
        if let Some(bandwidth) = patch.bandwidth_bytes_per_s {
            self.bandwidth = bandwidth;
        }
        if let Some(refuse) = patch.refuse {
            self.refuse = refuse;
        }
        if let Some(stall) = patch.stall {
            self.stall = stall;
        }
        if let Some(burst) = patch.http_burst {
            self.http_burst = burst.map(HttpBurst::try_from).transpose()?;
        }
        self.validate()
    }
}

/// Durations in the control API are whole milliseconds.
fn whole_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// A change to the settings: absent fields are left alone; `null` clears
/// `bandwidth_bytes_per_s` (unlimited) and `http_burst` (none).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub latency_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub bandwidth_bytes_per_s: Option<Option<u64>>,
    pub refuse: Option<bool>,
    pub stall: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub http_burst: Option<Option<HttpBurstJson>>,
}

impl FaultsPatch {
    /// Reads a patch from a `POST /faults` body.
    pub fn from_json(body: &[u8]) -> Result<Self, FaultsError> {
        serde_json::from_slice(body).map_err(|e| FaultsError::Json(e.to_string()))
    }
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An [`HttpBurst`] as JSON: `count` (requests left) or `probability`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpBurstJson {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_content_type() -> String {
    DEFAULT_CONTENT_TYPE.to_owned()
}

impl TryFrom<HttpBurstJson> for HttpBurst {
    type Error = FaultsError;

    fn try_from(json: HttpBurstJson) -> Result<Self, FaultsError> {
        let mode = match (json.count, json.probability) {
            (Some(count), None) => BurstMode::Count(count),
            (None, Some(p)) => BurstMode::Probability(p),
            _ => return Err(FaultsError::CountOrProbability),
        };
        Ok(Self {
            status: json.status,
            mode,
            body: json.body,
            content_type: json.content_type,
        })
    }
}

impl From<HttpBurst> for HttpBurstJson {
    fn from(burst: HttpBurst) -> Self {
        let (count, probability) = match burst.mode {
            BurstMode::Count(n) => (Some(n), None),
            BurstMode::Probability(p) => (None, Some(p)),
        };
        Self {
            status: burst.status,
            count,
            probability,
            body: burst.body,
            content_type: burst.content_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(json: &str) -> Result<Faults, FaultsError> {
        let mut faults = Faults {
            latency: Duration::from_millis(30),
            bandwidth: Some(1000),
            ..Faults::default()
        };
        faults.apply(FaultsPatch::from_json(json.as_bytes())?)?;
        Ok(faults)
    }

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let faults = patched(r#"{"jitter_ms": 5, "stall": true}"#).unwrap();
        assert_eq!(faults.latency, Duration::from_millis(30));
        assert_eq!(faults.jitter, Duration::from_millis(5));
        assert_eq!(faults.bandwidth, Some(1000));
        assert!(faults.stall);
    }

    #[test]
    fn null_bandwidth_means_unlimited() {
        assert_eq!(
            patched(r#"{"bandwidth_bytes_per_s": null}"#)
                .unwrap()
                .bandwidth,
            None
        );
    }

    #[test]
    fn a_burst_patch_takes_count_or_probability() {
        let faults = patched(
            r#"{"http_burst": {"status": 400, "count": 2, "content_type": "application/x-amz-json-1.1",
                "body": "{\"__type\":\"ProvisionedThroughputExceededException\"}"}}"#,
        )
        .unwrap();
        let burst = faults.http_burst.unwrap();
        assert_eq!(burst.mode, BurstMode::Count(2));
        assert_eq!(burst.content_type, "application/x-amz-json-1.1");

        let faults = patched(r#"{"http_burst": {"status": 503, "probability": 0.25}}"#).unwrap();
        assert_eq!(
            faults.http_burst.unwrap().mode,
            BurstMode::Probability(0.25)
        );
        assert_eq!(
            patched(r#"{"http_burst": {"status": 503}}"#),
            Err(FaultsError::CountOrProbability)
        );
        assert_eq!(patched(r#"{"http_burst": null}"#).unwrap().http_burst, None);
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        assert_eq!(
            patched(r#"{"bandwidth_bytes_per_s": 0}"#),
            Err(FaultsError::ZeroBandwidth)
        );
        assert_eq!(
            patched(r#"{"http_burst": {"status": 200, "count": 1}}"#),
            Err(FaultsError::Status(200))
        );
        assert_eq!(
            patched(r#"{"http_burst": {"status": 503, "probability": 1.5}}"#),
            Err(FaultsError::Probability(1.5))
        );
        assert!(matches!(
            patched(r#"{"latency_ms": 600000}"#),
            Err(FaultsError::DelayTooLong { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_rejected_so_typos_show() {
        assert!(matches!(
            patched(r#"{"latency": 5}"#),
            Err(FaultsError::Json(_))
        ));
    }

    #[test]
    fn the_json_form_shows_every_field() {
        let view = serde_json::to_value(Faults {
            http_burst: Some(HttpBurst::count(503, 3)),
            ..Faults::default()
        })
        .unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "latency_ms": 0, "jitter_ms": 0, "bandwidth_bytes_per_s": null,
                "refuse": false, "stall": false,
                "http_burst": {"status": 503, "count": 3, "body": "",
                               "content_type": "text/plain; charset=utf-8"}
            })
        );
    }
}
