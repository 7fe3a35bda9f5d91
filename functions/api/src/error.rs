//! [`ApiError`]: every refusal of the API, as `{"error": {"code": "...",
//! "message": "..."}}` with an HTTP status. Codes are stable (clients match
//! on them, `docs/api.md` lists them); messages name the field and never
//! hold a secret.

use serde_json::{json, Value};

/// One refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The request field it is about, when there is one.
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// 400: the request is not what the route takes.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401: no usable token.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(401, code, message)
    }

    /// 403: a token, but no OEM in it.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// 409: the state does not allow it.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    /// 502: a dependency (AWS, a customer endpoint) failed.
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(502, code, message)
    }

    /// The response body.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}
