//! One request in, one response out. The core is pure: [`scope`] turns a
//! request into the caller's OEM and a route (or a refusal), [`owned`]
//! lets a caller reach only its OEM's subscriptions. [`Api::handle`]
//! then asks [`Services`] (the AWS adapters, shared with `dplctl` through
//! `dpl`) and renders JSON.
//!
//! Every response is JSON; a refusal is `{"error": {"code", "message"}}`
//! ([`ApiError`]). A request body, which may hold a secret, is never
//! logged; logs carry the method, the route, the OEM and the status.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use dpl::streams::subscription::{Subscription, SubscriptionId};
use dpl::Timestamp;
use serde_json::Value;

use crate::auth::{caller, dev_caller, AuthMode, Caller};
use crate::error::ApiError;
use crate::routes::{route, Route};
use crate::services::Services;

/// The largest request body read: a create request with its secret fits
/// many times over (Secrets Manager values are at most 64 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The caller and the route of `request` at `now_seconds`, or why it is
/// refused: the token is checked before the route, so that an
/// unauthenticated caller learns nothing of the API.
pub fn scope(
    auth: &AuthMode,
    request: &ApiGatewayV2httpRequest,
    now_seconds: i64,
) -> Result<(Caller, Route), ApiError> {
    let caller = match auth {
        AuthMode::DevHs256 { claim, secret } => {
            let header = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            dev_caller(claim, secret, header, now_seconds)?
        }
        _ => caller(
            auth,
            request.request_context.authorizer.as_ref(),
            now_seconds,
        )?,
    };
    let route = route(request.request_context.http.method.as_str(), &path(request))?;
    Ok((caller, route))
}

/// The request's path without its stage (HTTP API payload 2.0 `rawPath`
/// starts with the stage name unless the stage is `$default`).
pub fn path(request: &ApiGatewayV2httpRequest) -> String {
    let raw = request
        .raw_path
        .clone()
        .or_else(|| request.request_context.http.path.clone())
        .unwrap_or_else(|| "/".into());
    match request.request_context.stage.as_deref() {
        Some(stage) if stage != "$default" => {
            let prefix = format!("/{stage}");
            match raw.strip_prefix(&prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    if rest.is_empty() {
                        "/".into()
                    } else {
                        rest.into()
                    }
                }
                _ => raw,
            }
        }
        _ => raw,
    }
}

/// `found` if it is the caller's; another OEM's subscription is answered
/// exactly as a missing one, so that its existence does not leak.
pub fn owned(
    caller: &Caller,
    id: &SubscriptionId,
    found: Option<Subscription>,
) -> Result<Subscription, ApiError> {
    match found {
        Some(subscription) if subscription.oem_id == caller.oem_id => Ok(subscription),
        _ => Err(stream_not_found(id)),
    }
}

pub fn stream_not_found(id: &SubscriptionId) -> ApiError {
    ApiError::not_found("stream_not_found", format!("no stream {id}")).with_field("id")
}

/// A subscription id from the path.
pub fn parse_id(text: &str) -> Result<SubscriptionId, ApiError> {
    text.parse().map_err(|e: dpl::streams::SubscriptionError| {
        ApiError::invalid("invalid_id", e.to_string()).with_field("id")
    })
}

/// The request body as JSON (an absent body is `{}`).
pub fn body_json(request: &ApiGatewayV2httpRequest) -> Result<Value, ApiError> {
    let Some(body) = request.body.as_deref() else {
        return Ok(Value::Object(Default::default()));
    };
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| ApiError::invalid("invalid_body", "the body is not valid base64"))?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    // The parser's message names the line and column, never the content.
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            format!(
                "the body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// A typed body; the error names the member (serde: "unknown field
/// `oem_id`", "missing field `name`"), and, for a type mismatch, what
/// was expected rather than the value given.
pub fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        let message = match text.find("invalid type") {
            Some(_) => match text.find(", expected") {
                Some(at) => format!("invalid type{}", &text[at..]),
                None => "invalid type".into(),
            },
            None => text,
        };
        ApiError::invalid("invalid_body", message)
    })
}

/// A JSON response.
pub fn respond(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// The function: configuration and adapters, built once.
pub struct Api {
    pub auth: AuthMode,
    pub services: Services,
}

impl Api {
    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let now = Timestamp::now();
        let method = request.request_context.http.method.to_string();
        let path = path(&request);
        // The console's pages need no token: they hold no data, and ask
        // the API (with the token) for everything they show.
        if method == "GET" {
            if let Some(asset) = crate::console::asset(&path) {
                tracing::info!(method = %method, path = %path, status = 200, "console");
                return crate::console::respond(asset);
            }
        }
        let (status, body, oem) = match scope(&self.auth, &request, now.millis() / 1000) {
            Err(error) => (error.status, error.body(), None),
            Ok((caller, route)) => {
                // On the heap: the routes' futures (SDK calls, delivery)
                // together are too large for a thread's stack in debug builds.
                let result = Box::pin(self.services.serve(&caller, route, &request, now)).await;
                match result {
                    Ok((status, body)) => (status, body, Some(caller.oem_id)),
                    Err(error) => (error.status, error.body(), Some(caller.oem_id)),
                }
            }
        };
        tracing::info!(
            method = %method,
            path = %path,
            oem = oem.as_deref().unwrap_or("-"),
            status,
            "request"
        );
        respond(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, claims: Option<Value>) -> ApiGatewayV2httpRequest {
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {},
            "requestContext": {
                "stage": "$default",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        if let Some(claims) = claims {
            event["requestContext"]["authorizer"] = serde_json::json!({"jwt": {"claims": claims}});
        }
        serde_json::from_value(event).unwrap()
    }

    fn jwt() -> AuthMode {
        AuthMode::Jwt {
            claim: "oem_id".into(),
        }
    }

    #[test]
    fn the_token_is_checked_before_the_route() {
        let e = scope(&jwt(), &request("GET", "/nope", None), 0).unwrap_err();
        assert_eq!(e.code, "unauthenticated");
        let claims = serde_json::json!({"oem_id": "a1", "exp": "100"});
        let e = scope(&jwt(), &request("GET", "/nope", Some(claims.clone())), 0).unwrap_err();
        assert_eq!(e.code, "route_not_found");
        let (caller, route) = scope(&jwt(), &request("GET", "/streams", Some(claims)), 0).unwrap();
        assert_eq!((caller.oem_id.as_str(), route), ("a1", Route::ListStreams));
    }

    #[test]
    fn locally_the_bearer_token_itself_is_checked() {
        let secret = "a-local-secret-of-at-least-32-chars";
        let auth = AuthMode::DevHs256 {
            claim: "oem_id".into(),
            secret: secret.into(),
        };
        let mut r = request("GET", "/streams", None);
        assert_eq!(scope(&auth, &r, 0).unwrap_err().code, "unauthenticated");
        let token =
            crate::auth::dev::mint(secret, &serde_json::json!({"oem_id": "a1", "exp": 100}));
        r.headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert_eq!(scope(&auth, &r, 0).unwrap().0.oem_id, "a1");
        assert_eq!(scope(&auth, &r, 100).unwrap_err().code, "token_expired");
        let forged = crate::auth::dev::mint(
            "another-secret",
            &serde_json::json!({"oem_id": "a1", "exp": 100}),
        );
        r.headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {forged}")).unwrap(),
        );
        assert_eq!(scope(&auth, &r, 0).unwrap_err().code, "invalid_token");
        // Claims put in the request context by a caller are not trusted.
        let mut r = request(
            "GET",
            "/streams",
            Some(serde_json::json!({"oem_id": "a1", "exp": "100"})),
        );
        r.headers.remove("authorization");
        assert_eq!(scope(&auth, &r, 0).unwrap_err().code, "unauthenticated");
    }

    #[tokio::test]
    async fn the_console_is_served_without_a_token_and_the_api_is_not() {
        // No AWS call is made: clients are built, never used.
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        let config = crate::Config::from_lookup(|name| match name {
            "SUBSCRIPTIONS_TABLE" | "DELIVERY_STATE_TABLE" | "BUCKET" => Some("x".into()),
            _ => None,
        })
        .unwrap();
        let api = Api {
            auth: jwt(),
            services: Services::new(&aws, &config),
        };
        let page = api.handle(request("GET", "/", None)).await;
        assert_eq!(page.status_code, 200);
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let script = api.handle(request("GET", "/console/app.js", None)).await;
        assert_eq!(script.status_code, 200);
        for (method, path) in [
            ("GET", "/streams"),
            ("POST", "/"),
            ("GET", "/console/nope.js"),
        ] {
            let refused = api.handle(request(method, path, None)).await;
            assert_eq!(refused.status_code, 401, "{method} {path}");
        }
    }

    #[test]
    fn a_named_stage_is_not_part_of_the_path() {
        let mut r = request("GET", "/prod/streams", None);
        r.request_context.stage = Some("prod".into());
        assert_eq!(path(&r), "/streams");
        r.raw_path = Some("/production".into());
        assert_eq!(path(&r), "/production");
    }

    #[test]
    fn another_oems_subscription_is_not_found() {
        use dpl::streams::subscription::{Credentials, Destination, Filters, SubscriptionSpec};
        let id = SubscriptionId::from_bits(1);
        let sub = Subscription::new(
            id.clone(),
            SubscriptionSpec {
                oem_id: "other".into(),
                name: "n".into(),
                description: String::new(),
                destination: Destination::Kinesis {
                    stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s"
                        .parse()
                        .unwrap(),
                },
                credentials: Credentials::AssumeRole {
                    role_arn: "arn:aws:iam::123456789012:role/r".into(),
                    external_id: Some("dpl-x1".into()),
                },
                filters: Filters::all(),
            },
            Timestamp::from_millis(0).unwrap(),
        )
        .unwrap();
        let mine = Caller {
            oem_id: "mine".into(),
        };
        let theirs = Caller {
            oem_id: "other".into(),
        };
        let e = owned(&mine, &id, Some(sub.clone())).unwrap_err();
        assert_eq!(e, owned(&mine, &id, None).unwrap_err());
        assert_eq!((e.status, e.code), (404, "stream_not_found"));
        assert_eq!(owned(&theirs, &id, Some(sub)).unwrap().oem_id, "other");
    }

    #[test]
    fn bodies_name_the_member_and_never_echo_values() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            name: String,
        }
        let e = body::<B>(serde_json::json!({"oem_id": "x", "name": "n"})).unwrap_err();
        assert!(
            e.message.contains("unknown field `oem_id`"),
            "{}",
            e.message
        );
        let e = body::<B>(serde_json::json!({})).unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        let e = body::<B>(serde_json::json!({"name": 12345})).unwrap_err();
        assert!(!e.message.contains("12345"), "{}", e.message);
        assert!(e.message.contains("expected a string"), "{}", e.message);
    }
}
