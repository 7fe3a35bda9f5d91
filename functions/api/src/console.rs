//! The web console: static HTML, CSS and a little JavaScript, built into
//! the binary (`include_str!`, no build step) and served by the function
//! without a token. The pages hold no data: the script asks the JSON API,
//! with the token the user signs in with, for everything it shows.
//!
//! Pages (hash routes of `index.html`): `#streams`, the DataStream page
//! (the OEM's streams with status and health, the Create Stream form with
//! the vendor's fields, enable / disable / delete / test), and `#export`,
//! the Data Export page (download credentials with Refresh, the hour
//! folders with download links).

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};

/// One static file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("../console/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../console/app.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../console/style.css"),
};

/// The console paths and their files.
pub const ASSETS: [(&str, Asset); 3] = [
    ("/", INDEX),
    ("/console/app.js", SCRIPT),
    ("/console/style.css", STYLE),
];

/// The file at `path`, if it is one of the console's.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

/// The response serving `asset`; the pages load nothing from elsewhere
/// (Content-Security-Policy).
pub fn respond(asset: Asset) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(asset.content_type));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 200;
    response.headers = headers;
    response.body = Some(Body::Text(asset.body.to_owned()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_their_script_and_style_and_nothing_else() {
        let index = asset("/").unwrap().body;
        assert!(
            index.contains(r#"src="console/app.js""#)
                || index.contains(r#"src="./console/app.js""#)
        );
        assert!(index.contains("console/style.css"));
        assert!(!index.contains("http://") && !index.contains("https://"));
        assert_eq!(
            asset("/console/app.js").unwrap().content_type,
            SCRIPT.content_type
        );
        assert!(asset("/streams").is_none() && asset("/console/../x").is_none());
    }

    #[test]
    fn both_pages_and_the_create_form_fields_are_there() {
        let index = asset("/").unwrap().body;
        for id in ["page-streams", "page-export", "create-form", "signin"] {
            assert!(index.contains(&format!(r#"id="{id}""#)), "{id}");
        }
        // The vendor's Create Stream fields, named as the API's members.
        for name in [
            "name",
            "description",
            "transport",
            "stream_arn",
            "role_arn",
            "external_id",
            "access_key_id",
            "secret_access_key",
            "namespace",
            "hub",
            "connection_string",
            "event_types",
            "models",
            "properties",
        ] {
            assert!(index.contains(&format!(r#"name="{name}""#)), "{name}");
        }
        let script = asset("/console/app.js").unwrap().body;
        for call in [
            "/streams",
            "/enable",
            "/disable",
            "/test",
            "/exports",
            "/exports/credentials",
            "/refresh",
            "/url",
        ] {
            assert!(script.contains(call), "{call}");
        }
    }
}
