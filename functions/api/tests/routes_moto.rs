//! Every route of the HTTP API on the AWS emulator (moto server), through
//! the real SDK clients: what the caller's OEM may do, and that another
//! OEM's token, a token without the OEM claim, an expired token or no
//! token at all is refused. Every response is checked for the secrets given
//! on create: none may come back.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::time::{SystemTime, UNIX_EPOCH};

use api::auth::AuthMode;
use api::routes::ROUTES;
use api::services::Services;
use api::{Api, Config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use dpl::export::{Layout, Manifest, Partition};
use dpl::{EventType, Timestamp};
use serde_json::{json, Value};

const OEM_A: &str = "oemaaaa1";
const OEM_B: &str = "oembbbb2";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/dpl-stream-writer";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzAPISECRETzz";

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test -p api`"
    );
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Claims of a valid token of `oem`, as the JWT authorizer passes them.
fn token(oem: &str) -> Value {
    json!({"sub": format!("user-of-{oem}"), "oem_id": oem, "exp": (now_seconds() + 600).to_string(),
           "iss": "https://issuer.example", "aud": "dpl-console"})
}

/// An API Gateway HTTP API event (payload format 2.0).
fn event(
    method: &str,
    path: &str,
    claims: Option<Value>,
    body: Option<Value>,
) -> ApiGatewayV2httpRequest {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path, ""),
    };
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": params,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "requestId": "r",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "isBase64Encoded": false
    });
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    serde_json::from_value(event).unwrap()
}

struct Fixture {
    api: Api,
    aws: aws_config::SdkConfig,
    bucket: String,
    /// Every response body, checked for secrets at the end.
    bodies: Vec<String>,
}

impl Fixture {
    async fn new() -> Self {
        let aws = sdk().await;
        let n = nanos();
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let (table, state_table, bucket) = (
            format!("subs-api-{n}"),
            format!("state-api-{n}"),
            format!("bucket-api-{n}"),
        );
        dpl::streams::state::dynamo::create_table(
            &dynamo,
            &table,
            &[dpl::streams::store::attr::ID],
        )
        .await
        .unwrap();
        dpl::streams::state::dynamo::create_table(
            &dynamo,
            &state_table,
            &dpl::streams::state::item::TABLE_KEYS,
        )
        .await
        .unwrap();
        s3(&aws)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        // Download users are bounded by a managed policy, as deployed (moto
        // keeps no boundary of users: tests/boundary.rs checks the request).
        let boundary = aws_sdk_iam::Client::new(&aws)
            .create_policy()
            .policy_name(format!("dpl-export-boundary-{n}"))
            .policy_document(
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": "s3:GetObject", "Resource": "*"}]}"#,
            )
            .send()
            .await
            .unwrap()
            .policy
            .unwrap()
            .arn
            .unwrap();
        let vars = [
            ("SUBSCRIPTIONS_TABLE", table.as_str()),
            ("DELIVERY_STATE_TABLE", state_table.as_str()),
            ("BUCKET", bucket.as_str()),
            ("EXPORT_USER_BOUNDARY_ARN", boundary.as_str()),
        ];
        let config = Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let api = Api {
            auth: config.auth.clone(),
            services: Services::new(&aws, &config),
        };
        Self {
            api,
            aws,
            bucket,
            bodies: Vec::new(),
        }
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        claims: Option<Value>,
        body: Option<Value>,
    ) -> (i64, Value) {
        let response = self.api.handle(event(method, path, claims, body)).await;
        let text = match response.body {
            Some(Body::Text(text)) => text,
            other => panic!("{method} {path}: not a text body: {other:?}"),
        };
        assert_eq!(
            response.headers.get("content-type").unwrap(),
            "application/json"
        );
        self.bodies.push(format!("{method} {path}: {text}"));
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (response.status_code, value)
    }

    async fn as_oem(
        &mut self,
        oem: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (i64, Value) {
        self.call(method, path, Some(token(oem)), body).await
    }

    /// The call must be refused with `status` and `code`.
    async fn refused(
        &mut self,
        oem: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: i64,
        code: &str,
    ) {
        let (got, value) = self.as_oem(oem, method, path, body).await;
        assert_eq!(
            (got, value["error"]["code"].as_str().unwrap_or_default()),
            (status, code),
            "{method} {path} as {oem}: {value}"
        );
        assert!(value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    fn assert_no_secret(&self, secrets: &[&str]) {
        for body in &self.bodies {
            for secret in secrets {
                assert!(!body.contains(secret), "a secret came back: {body}");
            }
        }
    }
}

fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn kinesis_eu(aws: &aws_config::SdkConfig) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(aws)
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

async fn records(aws: &aws_config::SdkConfig, stream: &str) -> usize {
    let kinesis = kinesis_eu(aws);
    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let page = kinesis
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    page.records().len()
}

fn concrete(template: &str) -> String {
    template
        .replace("{id}", "sub-0000000000000001")
        .replace("{type}", "datapoint")
        .replace("{hour}", "2020-08-28T09")
}

#[tokio::test(flavor = "current_thread")]
async fn every_route_refuses_a_missing_token_claim_or_an_expired_token() {
    let mut f = Fixture::new().await;
    for (method, template) in ROUTES {
        let path = concrete(template);
        let (status, body) = f.call(method, &path, None, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{method} {path}"
        );
        let no_oem = json!({"sub": "u", "exp": (now_seconds() + 600).to_string()});
        let (status, body) = f.call(method, &path, Some(no_oem), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("missing_claim")),
            "{method} {path}"
        );
        let mut expired = token(OEM_A);
        expired["exp"] = json!((now_seconds() - 1).to_string());
        let (status, body) = f.call(method, &path, Some(expired), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("token_expired")),
            "{method} {path}"
        );
    }
    // The OEM claim is configurable: with `tenant`, an `oem_id` claim does not do.
    f.api.auth = AuthMode::Jwt {
        claim: "tenant".into(),
    };
    let (status, _) = f.as_oem(OEM_A, "GET", "/streams", None).await;
    assert_eq!(status, 403);
    let mut claims = token(OEM_A);
    claims["tenant"] = json!(OEM_B);
    let (status, body) = f.call("GET", "/status", Some(claims), None).await;
    assert_eq!(
        (status, body["oem_id"].as_str()),
        (200, Some(OEM_B)),
        "{body}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn streams_are_managed_by_their_own_oem_only() {
    let mut f = Fixture::new().await;
    let stream = format!("customer-api-{}", nanos());
    kinesis_eu(&f.aws)
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let arn = format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}");

    // Create: validated as dplctl validates, the OEM from the token.
    let create = json!({"name": "Acme, all events", "transport": "kinesis", "stream_arn": arn,
                        "role_arn": ROLE_ARN, "external_id": "acme-42"});
    let (status, created) = f
        .as_oem(OEM_A, "POST", "/streams", Some(create.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["oem_id"], OEM_A);
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["health"]["delivery"], "live");
    let id = created["id"].as_str().unwrap().to_owned();

    let mut no_arn = create.clone();
    no_arn.as_object_mut().unwrap().remove("stream_arn");
    let (status, error) = f.as_oem(OEM_A, "POST", "/streams", Some(no_arn)).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "invalid_field");
    assert_eq!(error["error"]["field"], "stream_arn");
    assert_eq!(
        error["error"]["message"],
        "transport kinesis needs stream_arn"
    );
    let mut other_oem = create.clone();
    other_oem["oem_id"] = json!(OEM_B);
    let (status, error) = f.as_oem(OEM_A, "POST", "/streams", Some(other_oem)).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `oem_id`"),
        "{error}"
    );
    let mut bad_types = create.clone();
    bad_types["event_types"] = json!("datapoint,weather");
    let (_, error) = f.as_oem(OEM_A, "POST", "/streams", Some(bad_types)).await;
    assert_eq!(error["error"]["field"], "event_types", "{error}");

    // With an access key: the secret goes to Secrets Manager, never back.
    let keys = json!({"name": "with keys", "transport": "kinesis", "stream_arn": arn,
                      "access_key": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                                     "secret_access_key": SECRET_ACCESS_KEY},
                      "event_types": "datapoint,location", "models": "AY001MRT1"});
    let (status, with_keys) = f.as_oem(OEM_A, "POST", "/streams", Some(keys)).await;
    assert_eq!(status, 201, "{with_keys}");
    let keys_id = with_keys["id"].as_str().unwrap().to_owned();
    assert_eq!(
        with_keys["credentials"]["type"], "access_key_secret",
        "{with_keys}"
    );
    let secret_id = with_keys["credentials"]["secret_id"].as_str().unwrap();
    assert!(secret_id.contains("dpl/streams/"), "{with_keys}");

    // List and show: A sees its two, B none of them.
    let (_, list) = f.as_oem(OEM_A, "GET", "/streams", None).await;
    let ids: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&id.as_str()) && ids.contains(&keys_id.as_str()));
    let (status, list) = f.as_oem(OEM_B, "GET", "/streams", None).await;
    assert_eq!(
        (status, list["streams"].as_array().unwrap().len()),
        (200, 0)
    );
    let (status, shown) = f
        .as_oem(OEM_A, "GET", &format!("/streams/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["health"]["dead_letters"], 0);
    assert_eq!(shown["dead_letters"], json!([]));

    // Every stream route of another OEM's stream: not found, as if absent.
    let stream_routes: [(&str, String, Option<Value>); 9] = [
        ("GET", format!("/streams/{id}"), None),
        (
            "PATCH",
            format!("/streams/{id}"),
            Some(json!({"name": "taken over"})),
        ),
        ("POST", format!("/streams/{id}/disable"), None),
        ("POST", format!("/streams/{id}/enable"), None),
        ("POST", format!("/streams/{id}/test"), None),
        ("POST", format!("/streams/{id}/redrive"), None),
        (
            "POST",
            format!("/streams/{id}/replay"),
            Some(json!({"from": "2020-08-28T09", "to": "2020-08-28T09"})),
        ),
        ("DELETE", format!("/streams/{id}"), None),
        ("GET", "/streams/sub-00000000000000ff".to_owned(), None),
    ];
    for (method, path, body) in &stream_routes {
        f.refused(OEM_B, method, path, body.clone(), 404, "stream_not_found")
            .await;
    }
    f.refused(OEM_A, "GET", "/streams/nope", None, 400, "invalid_id")
        .await;
    let (_, shown) = f
        .as_oem(OEM_A, "GET", &format!("/streams/{id}"), None)
        .await;
    assert_eq!(
        (shown["name"].as_str(), shown["status"].as_str()),
        (Some("Acme, all events"), Some("enabled"))
    );

    // Update: name and filters, checked.
    let (status, updated) = f
        .as_oem(
            OEM_A,
            "PATCH",
            &format!("/streams/{id}"),
            Some(json!({"name": "Acme renamed", "event_types": "datapoint"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let (_, shown) = f
        .as_oem(OEM_A, "GET", &format!("/streams/{id}"), None)
        .await;
    assert_eq!(shown["name"], "Acme renamed");
    assert_eq!(
        shown["filters"]["event_types"],
        json!(["datapoint"]),
        "{shown}"
    );
    f.refused(
        OEM_A,
        "PATCH",
        &format!("/streams/{id}"),
        Some(json!({"name": ""})),
        400,
        "invalid_field",
    )
    .await;
    f.refused(
        OEM_A,
        "PATCH",
        &format!("/streams/{id}"),
        Some(json!({"stream_arn": arn})),
        400,
        "invalid_body",
    )
    .await;

    // Disable, replay refused while disabled, enable.
    let (status, disabled) = f
        .as_oem(OEM_A, "POST", &format!("/streams/{id}/disable"), None)
        .await;
    assert_eq!(
        (status, disabled["status"].as_str()),
        (200, Some("disabled"))
    );
    let (_, shown) = f
        .as_oem(OEM_A, "GET", &format!("/streams/{id}"), None)
        .await;
    assert_eq!(shown["status"], "disabled");
    f.refused(
        OEM_A,
        "POST",
        &format!("/streams/{id}/replay"),
        Some(json!({"from": "2020-08-28T09", "to": "2020-08-28T10"})),
        409,
        "stream_disabled",
    )
    .await;
    let (status, _) = f
        .as_oem(OEM_A, "POST", &format!("/streams/{id}/enable"), None)
        .await;
    assert_eq!(status, 200);

    // Test: one sample event on the customer stream; a missing stream says why.
    let (status, tested) = f
        .as_oem(OEM_A, "POST", &format!("/streams/{id}/test"), None)
        .await;
    assert_eq!(
        (status, tested["delivered"].as_bool()),
        (200, Some(true)),
        "{tested}"
    );
    assert_eq!(tested["event_type"], "datapoint");
    assert_eq!(records(&f.aws, &stream).await, 1);
    let missing = json!({"name": "gone", "transport": "kinesis",
                         "stream_arn": "arn:aws:kinesis:eu-west-1:123456789012:stream/absent-stream",
                         "role_arn": ROLE_ARN, "external_id": "acme-43"});
    let (_, gone) = f.as_oem(OEM_A, "POST", "/streams", Some(missing)).await;
    let gone_id = gone["id"].as_str().unwrap().to_owned();
    let (status, failed) = f
        .as_oem(OEM_A, "POST", &format!("/streams/{gone_id}/test"), None)
        .await;
    assert_eq!(status, 502, "{failed}");
    assert_eq!(failed["error"]["code"], "delivery_failed");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ResourceNotFound"),
        "{failed}"
    );

    // Redrive and replay (nothing dead-lettered, nothing staged).
    let (status, redriven) = f
        .as_oem(OEM_A, "POST", &format!("/streams/{id}/redrive"), None)
        .await;
    assert_eq!(
        (
            status,
            redriven["delivered"].as_u64(),
            redriven["remaining"].as_bool()
        ),
        (200, Some(0), Some(false)),
        "{redriven}"
    );
    let (status, replayed) = f
        .as_oem(
            OEM_A,
            "POST",
            &format!("/streams/{id}/replay"),
            Some(json!({"from": "2020-08-28T09", "to": "2020-08-28T11", "dry_run": true})),
        )
        .await;
    assert_eq!(
        (
            status,
            replayed["hours"].as_u64(),
            replayed["read"].as_u64()
        ),
        (200, Some(3), Some(0)),
        "{replayed}"
    );
    f.refused(
        OEM_A,
        "POST",
        &format!("/streams/{id}/replay"),
        Some(json!({"from": "2020-08-28T09", "to": "2020-08-29T12"})),
        400,
        "invalid_range",
    )
    .await;

    // Delete: the item and its secret.
    let secrets = aws_sdk_secretsmanager_names(&f.aws).await;
    assert!(secrets.iter().any(|s| s.contains(&keys_id)), "{secrets:?}");
    let (status, deleted) = f
        .as_oem(OEM_A, "DELETE", &format!("/streams/{keys_id}"), None)
        .await;
    assert_eq!(
        (status, deleted["secret_deleted"].as_bool()),
        (200, Some(true)),
        "{deleted}"
    );
    f.refused(
        OEM_A,
        "GET",
        &format!("/streams/{keys_id}"),
        None,
        404,
        "stream_not_found",
    )
    .await;
    let secrets = aws_sdk_secretsmanager_names(&f.aws).await;
    assert!(!secrets.iter().any(|s| s.contains(&keys_id)), "{secrets:?}");

    // Status: A's subscriptions only.
    let (_, status_a) = f.as_oem(OEM_A, "GET", "/status?hours=2", None).await;
    assert_eq!(
        status_a["subscriptions"].as_array().unwrap().len(),
        2,
        "{status_a}"
    );
    assert_eq!(status_a["exports"].as_array().unwrap().len(), 2);
    let (_, status_b) = f.as_oem(OEM_B, "GET", "/status", None).await;
    assert_eq!(status_b["subscriptions"], json!([]));

    f.assert_no_secret(&[SECRET_ACCESS_KEY]);
}

/// The names of the stored secrets.
async fn aws_sdk_secretsmanager_names(aws: &aws_config::SdkConfig) -> Vec<String> {
    let listed = aws_sdk_secretsmanager::Client::new(aws)
        .list_secrets()
        .send()
        .await
        .unwrap();
    listed
        .secret_list()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn exports_and_credentials_are_the_callers_own() {
    let mut f = Fixture::new().await;
    let layout = Layout::default();
    let hour = Timestamp::from_millis(Timestamp::now().hour_start().millis() - 3_600_000).unwrap();
    let partition = |oem: &str| Partition {
        hour,
        oem_id: oem.into(),
        event_type: EventType::Datapoint,
    };
    let client = s3(&f.aws);
    let put = |key: String, body: Vec<u8>| {
        let client = client.clone();
        let bucket = f.bucket.clone();
        async move {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    put(layout.export_key(&partition(OEM_A)), b"a,row\n".to_vec()).await;
    let manifest = Manifest {
        format_version: 1,
        oem_id: OEM_A.into(),
        event_type: "datapoint".into(),
        hour: hour.folder_name().to_string(),
        export_key: layout.export_key(&partition(OEM_A)),
        export_etag: String::new(),
        rows: 1,
        bytes: 6,
        sha256: String::new(),
        duplicates_dropped: 0,
        staging: Vec::new(),
    };
    put(
        layout.manifest_key(&partition(OEM_A)),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;

    // Hours and files with the manifests' counts: A's only.
    let (status, listed) = f.as_oem(OEM_A, "GET", "/exports?hours=3", None).await;
    assert_eq!(status, 200, "{listed}");
    let hours = listed["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    assert_eq!(hours[0]["hour"], hour.folder_name().to_string());
    assert_eq!(
        hours[0]["files"],
        json!([{"type": "datapoint", "rows": 1, "bytes": 6}])
    );
    let (_, listed_b) = f.as_oem(OEM_B, "GET", "/exports?hours=3", None).await;
    assert!(
        listed_b["hours"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["files"] == json!([])),
        "{listed_b}"
    );
    f.refused(OEM_A, "GET", "/exports?hours=0", None, 400, "invalid_hours")
        .await;

    // A short-lived download URL of A's file; B's hour has no file.
    // `2020-08-28-09`, as manifest keys name hours (`2020-08-28T09` does too).
    let label = dpl::export::keys::HourLabel(hour).to_string();
    let (status, url) = f
        .as_oem(
            OEM_A,
            "GET",
            &format!("/exports/datapoint/{label}/url"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{label}: {url}");
    let link = url["url"].as_str().unwrap();
    assert!(
        link.contains("X-Amz-Expires=300") && link.contains(&format!("exports/{OEM_A}/datapoint/")),
        "{link}"
    );
    assert_eq!(url["expires_in"], 300);
    f.refused(
        OEM_B,
        "GET",
        &format!("/exports/datapoint/{label}/url"),
        None,
        404,
        "not_exported",
    )
    .await;
    f.refused(
        OEM_A,
        "GET",
        &format!("/exports/weather/{label}/url"),
        None,
        400,
        "invalid_type",
    )
    .await;
    f.refused(
        OEM_A,
        "GET",
        "/exports/datapoint/today/url",
        None,
        400,
        "invalid_hour",
    )
    .await;

    // Credentials: created once with the secret shown once, refreshed, revoked.
    f.refused(
        OEM_A,
        "GET",
        "/exports/credentials",
        None,
        404,
        "no_credentials",
    )
    .await;
    let (status, created) = f.as_oem(OEM_A, "POST", "/exports/credentials", None).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"], format!("dpl-export-{OEM_A}"));
    let first_secret = created["secret_access_key"].as_str().unwrap().to_owned();
    let first_id = created["access_key_id"].as_str().unwrap().to_owned();
    f.refused(
        OEM_A,
        "POST",
        "/exports/credentials",
        None,
        409,
        "credentials_exist",
    )
    .await;
    let (status, shown) = f.as_oem(OEM_A, "GET", "/exports/credentials", None).await;
    assert_eq!(
        (status, shown["access_key_ids"].clone()),
        (200, json!([first_id]))
    );
    assert!(shown.get("secret_access_key").is_none());
    // B has none, and cannot refresh or revoke A's.
    f.refused(
        OEM_B,
        "GET",
        "/exports/credentials",
        None,
        404,
        "no_credentials",
    )
    .await;
    f.refused(
        OEM_B,
        "POST",
        "/exports/credentials/refresh",
        None,
        404,
        "no_credentials",
    )
    .await;
    f.refused(
        OEM_B,
        "DELETE",
        "/exports/credentials",
        None,
        404,
        "no_credentials",
    )
    .await;
    let (status, refreshed) = f
        .as_oem(OEM_A, "POST", "/exports/credentials/refresh", None)
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(refreshed["access_key_id"], json!(first_id));
    assert_eq!(refreshed["deleted_access_key_ids"], json!([first_id]));
    let second_secret = refreshed["secret_access_key"].as_str().unwrap().to_owned();
    let (status, _) = f
        .as_oem(OEM_A, "DELETE", "/exports/credentials", None)
        .await;
    assert_eq!(status, 200);
    f.refused(
        OEM_A,
        "GET",
        "/exports/credentials",
        None,
        404,
        "no_credentials",
    )
    .await;

    // The secrets came back exactly once each: in the create and refresh answers.
    let showing = |secret: &str| f.bodies.iter().filter(|b| b.contains(secret)).count();
    assert_eq!((showing(&first_secret), showing(&second_secret)), (1, 1));

    // Status: the last hours' export counts of A.
    let (_, status_a) = f.as_oem(OEM_A, "GET", "/status?hours=3", None).await;
    assert_eq!(status_a["exports"][0]["rows"], 1, "{status_a}");
    let (_, status_b) = f.as_oem(OEM_B, "GET", "/status?hours=3", None).await;
    assert_eq!(status_b["exports"][0]["rows"], 0, "{status_b}");
}
