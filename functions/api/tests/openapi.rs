//! `docs/openapi.yaml` documents exactly the routes the handler serves
//! (`api::routes::ROUTES`): the same set of method and path, each with the
//! error response.

use std::collections::BTreeSet;

use api::routes::ROUTES;
use serde_yaml::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[test]
fn the_openapi_document_has_exactly_the_served_routes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        let path = path.as_str().unwrap();
        for method in METHODS {
            let operation = &item[method];
            if operation.is_null() {
                continue;
            }
            assert_eq!(
                operation["responses"]["default"]["$ref"], "#/components/responses/Error",
                "{method} {path} documents no error"
            );
            documented.insert((method.to_uppercase(), path.to_owned()));
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented, not served"
    );
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served, not documented"
    );
}

#[test]
fn every_error_code_the_api_uses_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .unwrap();
    let src: String = ["auth.rs", "handler.rs", "routes.rs", "services.rs"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(format!("{}/src/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        })
        .collect();
    // Codes are the first string argument of the ApiError constructors.
    let mut codes = BTreeSet::new();
    for ctor in [
        "ApiError::invalid(",
        "ApiError::unauthenticated(",
        "ApiError::forbidden(",
        "ApiError::not_found(",
        "ApiError::conflict(",
        "ApiError::upstream(",
    ] {
        for part in src.split(ctor).skip(1) {
            let code = part.trim_start().trim_start_matches('"');
            let code: String = code
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !code.is_empty() {
                codes.insert(code);
            }
        }
    }
    assert!(codes.len() > 15, "{codes:?}");
    for code in &codes {
        assert!(
            doc.contains(code.as_str()),
            "error code {code} is not in docs/openapi.yaml"
        );
    }
}
