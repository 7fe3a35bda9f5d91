//! Which route a method and path are (pure). [`ROUTES`] is the list the
//! OpenAPI document (`docs/openapi.yaml`) is checked against.

use crate::error::ApiError;

/// Every route of the JSON API: method and path template.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/streams"),
    ("POST", "/streams"),
    ("GET", "/streams/{id}"),
    ("PATCH", "/streams/{id}"),
    ("DELETE", "/streams/{id}"),
    ("POST", "/streams/{id}/enable"),
    ("POST", "/streams/{id}/disable"),
    ("POST", "/streams/{id}/test"),
    ("POST", "/streams/{id}/redrive"),
    ("POST", "/streams/{id}/replay"),
    ("GET", "/exports"),
    ("GET", "/exports/{type}/{hour}/url"),
    ("GET", "/exports/credentials"),
    ("POST", "/exports/credentials"),
    ("POST", "/exports/credentials/refresh"),
    ("DELETE", "/exports/credentials"),
    ("GET", "/status"),
];

/// A request's route, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ListStreams,
    CreateStream,
    ShowStream(String),
    UpdateStream(String),
    DeleteStream(String),
    EnableStream(String),
    DisableStream(String),
    TestStream(String),
    RedriveStream(String),
    ReplayStream(String),
    ListExports,
    ExportUrl { event_type: String, hour: String },
    ShowCredentials,
    CreateCredentials,
    RefreshCredentials,
    RevokeCredentials,
    Status,
}

/// The parameters of `path` if it fits `template` (`{name}` matches one
/// non-empty segment).
fn fit(template: &str, path: &str) -> Option<Vec<String>> {
    let want: Vec<&str> = template.trim_matches('/').split('/').collect();
    let got: Vec<&str> = path
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .collect();
    if want.len() != got.len() {
        return None;
    }
    let mut params = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        if w.starts_with('{') {
            if g.is_empty() {
                return None;
            }
            params.push((*g).to_owned());
        } else if w != g {
            return None;
        }
    }
    Some(params)
}

/// The route of `method` on `path`: `route_not_found` (404) when no
/// template fits the path, `method_not_allowed` (405) when one fits with
/// another method.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let mut path_known = false;
    for (m, template) in ROUTES {
        let Some(mut params) = fit(template, path) else {
            continue;
        };
        path_known = true;
        if !m.eq_ignore_ascii_case(method) {
            continue;
        }
        let mut take = || params.remove(0);
        return Ok(match (*m, *template) {
            ("GET", "/streams") => Route::ListStreams,
            ("POST", "/streams") => Route::CreateStream,
            ("GET", "/streams/{id}") => Route::ShowStream(take()),
            ("PATCH", "/streams/{id}") => Route::UpdateStream(take()),
            ("DELETE", "/streams/{id}") => Route::DeleteStream(take()),
            ("POST", "/streams/{id}/enable") => Route::EnableStream(take()),
            ("POST", "/streams/{id}/disable") => Route::DisableStream(take()),
            ("POST", "/streams/{id}/test") => Route::TestStream(take()),
            ("POST", "/streams/{id}/redrive") => Route::RedriveStream(take()),
            ("POST", "/streams/{id}/replay") => Route::ReplayStream(take()),
            ("GET", "/exports") => Route::ListExports,
            ("GET", "/exports/{type}/{hour}/url") => {
                let event_type = take();
                Route::ExportUrl {
                    event_type,
                    hour: take(),
                }
            }
            ("GET", "/exports/credentials") => Route::ShowCredentials,
            ("POST", "/exports/credentials") => Route::CreateCredentials,
            ("POST", "/exports/credentials/refresh") => Route::RefreshCredentials,
            ("DELETE", "/exports/credentials") => Route::RevokeCredentials,
            ("GET", "/status") => Route::Status,
            _ => unreachable!("every entry of ROUTES has an arm"),
        });
    }
    if path_known {
        Err(ApiError::new(
            405,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ))
    } else {
        Err(ApiError::not_found(
            "route_not_found",
            format!("no route {method} {path}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_is_served() {
        for (method, template) in ROUTES {
            let path = template
                .replace("{id}", "sub-0000000000000001")
                .replace("{type}", "datapoint")
                .replace("{hour}", "2020-08-28T09");
            assert!(route(method, &path).is_ok(), "{method} {template}");
        }
    }

    #[test]
    fn paths_carry_their_parameters() {
        assert_eq!(
            route("POST", "/streams/sub-1/test").unwrap(),
            Route::TestStream("sub-1".into())
        );
        assert_eq!(
            route("GET", "/exports/location/2020-08-28T09/url").unwrap(),
            Route::ExportUrl {
                event_type: "location".into(),
                hour: "2020-08-28T09".into()
            }
        );
        // Fixed segments win over parameters listed after them.
        assert_eq!(
            route("GET", "/exports/credentials").unwrap(),
            Route::ShowCredentials
        );
        assert_eq!(route("get", "/streams/").unwrap(), Route::ListStreams);
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        let e = route("GET", "/nope").unwrap_err();
        assert_eq!((e.status, e.code), (404, "route_not_found"));
        let e = route("PUT", "/streams").unwrap_err();
        assert_eq!((e.status, e.code), (405, "method_not_allowed"));
        assert!(route("GET", "/streams//test").is_err());
    }
}
