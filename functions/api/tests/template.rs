//! `template.yaml` deploys the API as the function expects: the binary,
//! every variable `Config` reads, the URL lifetime's range, the HTTP API's
//! JWT authorizer from the issuer and audience parameters (or IAM, by
//! condition), and download users created only with their boundary.

use std::collections::HashMap;

use api::config::{
    Config, AUTH_MODE_VAR, DELIVERY_STATE_TABLE_VAR, DOWNLOAD_URL_SECONDS_VAR, DPL_STREAM_VAR,
    IAM_ROLE_PREFIX_VAR, OEM_CLAIM_VAR, SUBSCRIPTIONS_TABLE_VAR,
};
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap()
}

#[test]
fn the_function_gets_every_variable_it_reads() {
    let t = template();
    let function = &t["Resources"]["ApiFunction"];
    assert_eq!(function["Type"], "AWS::Serverless::Function");
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"], "api");
    let vars = &function["Properties"]["Environment"]["Variables"];
    for name in [
        SUBSCRIPTIONS_TABLE_VAR,
        DELIVERY_STATE_TABLE_VAR,
        DPL_STREAM_VAR,
        "BUCKET",
        AUTH_MODE_VAR,
        OEM_CLAIM_VAR,
        IAM_ROLE_PREFIX_VAR,
        DOWNLOAD_URL_SECONDS_VAR,
        dpl::export::access::BOUNDARY_VAR,
    ] {
        assert!(!vars[name].is_null(), "{name} is not set");
    }
    // The mode is jwt or iam by the ApiAuthorization condition.
    let mode = yaml(&vars[AUTH_MODE_VAR]);
    assert!(
        mode.contains("UseJwtAuth") && mode.contains("jwt") && mode.contains("iam"),
        "{mode}"
    );
    assert_eq!(t["Parameters"]["ApiOemClaim"]["Default"], "oem_id");
}

#[test]
fn the_url_lifetime_parameter_is_what_the_function_takes() {
    let p = &template()["Parameters"]["ApiDownloadUrlSeconds"];
    let read = |seconds: u64| {
        let vars = HashMap::from([
            ("SUBSCRIPTIONS_TABLE", "s".to_owned()),
            ("DELIVERY_STATE_TABLE", "d".to_owned()),
            ("BUCKET", "b".to_owned()),
            (DOWNLOAD_URL_SECONDS_VAR, seconds.to_string()),
        ]);
        Config::from_lookup(|n| vars.get(n).cloned())
    };
    let (min, max) = (
        p["MinValue"].as_u64().unwrap(),
        p["MaxValue"].as_u64().unwrap(),
    );
    assert!(read(min).is_ok() && read(max).is_ok());
    assert!(read(min - 1).is_err() && read(max + 1).is_err());
    let default = p["Default"].as_u64().unwrap();
    assert_eq!(
        read(default).unwrap().download_url_expiry.as_secs(),
        default
    );
}

#[test]
fn the_http_api_needs_the_jwt_authorizer_of_the_parameters_or_iam() {
    let t = template();
    assert_eq!(
        yaml(&t["Conditions"]["UseJwtAuth"]).trim(),
        "!Equals\n- !Ref 'ApiAuthorization'\n- JWT".replace('\'', "")
    );
    let rule = yaml(&t["Rules"]["JwtAuthNeedsIssuerAndAudience"]);
    assert!(
        rule.contains("ApiJwtIssuer") && rule.contains("ApiJwtAudience"),
        "{rule}"
    );
    let api = &t["Resources"]["OemApi"];
    assert_eq!(api["Type"], "AWS::Serverless::HttpApi");
    let body = &api["Properties"]["DefinitionBody"];
    let schemes = yaml(&body["components"]["securitySchemes"]);
    for expected in [
        "UseJwtAuth",
        "type: jwt",
        "issuer: !Ref ApiJwtIssuer",
        "- !Ref ApiJwtAudience",
        "x-amazon-apigateway-authtype: awsSigv4",
    ] {
        assert!(schemes.contains(expected), "{expected} not in {schemes}");
    }
    // Every API route is behind the authorizer: the proxy, whose security
    // is never empty; only the console's static files (GET) need no token,
    // and are exactly the files the function serves.
    let paths = body["paths"].as_mapping().unwrap();
    let mut open: Vec<&str> = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        if path == "/{proxy+}" {
            continue;
        }
        let item = item.as_mapping().unwrap();
        assert_eq!(item.len(), 1, "{path}: GET only");
        assert_eq!(yaml(&body["paths"][path]["get"]["security"]).trim(), "[]");
        open.push(path);
    }
    assert_eq!(open, ["/", "/console/{file}"]);
    for (served, _) in api::console::ASSETS {
        let fits = served == "/"
            || served
                .strip_prefix("/console/")
                .is_some_and(|f| !f.contains('/'));
        assert!(fits, "{served} is not reachable without a token");
    }
    let any = &body["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"];
    let security = yaml(&any["security"]);
    assert!(
        security.contains("OemJwt: []") && security.contains("sigv4: []"),
        "{security}"
    );
    assert_eq!(
        any["x-amazon-apigateway-integration"]["payloadFormatVersion"],
        "2.0"
    );
    let permission = &t["Resources"]["ApiFunctionInvokedByOemApi"];
    assert_eq!(
        permission["Properties"]["Principal"],
        "apigateway.amazonaws.com"
    );
    assert!(yaml(&permission["Properties"]["SourceArn"]).contains("${OemApi}/*"));
}

#[test]
fn download_users_are_created_only_within_their_boundary() {
    let t = template();
    let statements = t["Resources"]["ApiFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap()
        .clone();
    let iam: Vec<&Value> = statements
        .iter()
        .filter(|s| yaml(&s["Action"]).contains("iam:"))
        .collect();
    assert!(!iam.is_empty());
    for statement in &iam {
        assert!(
            yaml(&statement["Resource"]).contains(":user/dpl-export-*"),
            "{statement:?}"
        );
        let actions = yaml(&statement["Action"]);
        if actions.contains("iam:CreateUser") || actions.contains("iam:PutUserPolicy") {
            assert!(
                yaml(&statement["Condition"])
                    .contains("iam:PermissionsBoundary: !Ref ExportUserBoundary"),
                "{statement:?}"
            );
        }
    }
    assert!(statements.iter().all(|s| !yaml(&s["Action"]).contains('*')));
    let boundary = yaml(&t["Resources"]["ExportUserBoundary"]["Properties"]["PolicyDocument"]);
    assert!(
        boundary.contains("exports/*") && !boundary.contains("staging"),
        "{boundary}"
    );
}
