//! The sample events in `events/api/` are HTTP API (payload 2.0) requests
//! the handler routes as their names say; the refused ones are refused
//! with their code (`cargo lambda invoke api --data-file events/api/...`).

use api::auth::AuthMode;
use api::handler::scope;
use api::routes::Route;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

fn sample(name: &str) -> ApiGatewayV2httpRequest {
    let path = format!("{}/../../events/api/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// 2026-12-01, before the samples' exp (2100) and after the expired one's.
const NOW: i64 = 1_796_000_000;

#[test]
fn samples_route_as_named_or_are_refused() {
    let auth = AuthMode::Jwt {
        claim: "oem_id".into(),
    };
    let id = || "sub-0000000000000001".to_owned();
    let cases = [
        ("list-streams.json", Route::ListStreams),
        ("create-stream.json", Route::CreateStream),
        ("test-stream.json", Route::TestStream(id())),
        ("export-hours.json", Route::ListExports),
        (
            "export-url.json",
            Route::ExportUrl {
                event_type: "datapoint".into(),
                hour: "2020-08-28T09".into(),
            },
        ),
        ("refresh-credentials.json", Route::RefreshCredentials),
        ("status.json", Route::Status),
    ];
    for (name, route) in cases {
        let (caller, got) = scope(&auth, &sample(name), NOW).unwrap();
        assert_eq!((caller.oem_id.as_str(), got), ("abcd1234", route), "{name}");
    }
    let refused = [
        ("expired-token.json", "token_expired"),
        ("missing-claim.json", "missing_claim"),
    ];
    for (name, code) in refused {
        assert_eq!(
            scope(&auth, &sample(name), NOW).unwrap_err().code,
            code,
            "{name}"
        );
    }
    let hours = sample("export-hours.json");
    assert_eq!(hours.query_string_parameters.first("hours"), Some("24"));
}
