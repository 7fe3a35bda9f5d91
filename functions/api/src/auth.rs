//! Who is calling: the OEM every request is scoped to (pure).
//!
//! With the JWT authorizer (the default), API Gateway has validated the
//! token's signature, issuer, audience, `exp` and `nbf` before the function
//! runs, and passes the token's claims in
//! `requestContext.authorizer.jwt.claims`, every value as a string
//! (API Gateway Developer Guide, "Controlling access to HTTP APIs with JWT
//! authorizers"; payload format 2.0). The OEM is the claim named by
//! `OEM_CLAIM` (`oem_id` by default). `exp` is checked again here, as
//! defense in depth against a misconfigured route.
//!
//! With IAM authorization the caller signs with AWS credentials of a role
//! `{IAM_ROLE_PREFIX}{oem}` (one role per OEM, `dpl-oem-` by default); the
//! OEM is the role's name past the prefix, read from
//! `requestContext.authorizer.iam.userArn`
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`). The role's trust
//! policy decides who may act for the OEM; the session name, which the
//! caller picks, is ignored.

use aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use dpl::export::keys::check_oem_id;

use crate::error::ApiError;

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// The OEM is in this claim of the JWT.
    Jwt { claim: String },
    /// The OEM is the name of the caller's IAM role past this prefix.
    Iam { role_prefix: String },
    /// Local runs only (`cargo lambda watch`, `make demo`): no API Gateway
    /// in front, so the function checks the bearer token itself, an HS256
    /// JWT signed with this secret ([`dev`]), then reads `claim` as
    /// [`AuthMode::Jwt`] does. The template never selects it.
    DevHs256 { claim: String, secret: String },
}

/// The caller: the OEM whose streams, exports and credentials it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub oem_id: String,
}

/// The caller of a request with `authorizer`, at `now_seconds` (Unix time).
pub fn caller(
    mode: &AuthMode,
    authorizer: Option<&ApiGatewayRequestAuthorizer>,
    now_seconds: i64,
) -> Result<Caller, ApiError> {
    let oem_id = match mode {
        AuthMode::DevHs256 { .. } => {
            return Err(ApiError::unauthenticated(
                "unauthenticated",
                "no bearer token in the request",
            ))
        }
        AuthMode::Jwt { claim } => {
            let claims = authorizer
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| &jwt.claims)
                .ok_or_else(|| {
                    ApiError::unauthenticated(
                        "unauthenticated",
                        "no JWT claims in the request: send a bearer token",
                    )
                })?;
            let exp = claims.get("exp").ok_or_else(|| {
                ApiError::unauthenticated("invalid_token", "the token has no exp claim")
            })?;
            // A NumericDate: seconds since the epoch, possibly with a
            // fraction (RFC 7519, section 2).
            let exp: f64 = exp.trim().parse().map_err(|_| {
                ApiError::unauthenticated("invalid_token", "the token's exp claim is not a number")
            })?;
            if exp <= now_seconds as f64 {
                return Err(ApiError::unauthenticated(
                    "token_expired",
                    "the token has expired (exp): sign in again",
                ));
            }
            let oem = claims
                .get(claim)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "missing_claim",
                        format!("the token has no {claim} claim: it names no OEM"),
                    )
                })?;
            oem.to_owned()
        }
        AuthMode::Iam { role_prefix } => {
            let arn = authorizer
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.as_deref())
                .ok_or_else(|| {
                    ApiError::unauthenticated(
                        "unauthenticated",
                        "no IAM caller in the request: sign it with SigV4",
                    )
                })?;
            oem_of_role(arn, role_prefix).ok_or_else(|| {
                ApiError::forbidden(
                    "not_an_oem_role",
                    format!(
                        "the caller is not an assumed role named {role_prefix}OEM: it names no OEM"
                    ),
                )
            })?
        }
    };
    check_oem_id(&oem_id).map_err(|_| {
        ApiError::forbidden("invalid_claim", "the token's OEM id is not a valid OEM id")
    })?;
    Ok(Caller { oem_id })
}

/// The caller of a local request whose `Authorization` header is
/// `header` ([`AuthMode::DevHs256`]); other modes read the authorizer.
pub fn dev_caller(
    claim: &str,
    secret: &str,
    header: Option<&str>,
    now_seconds: i64,
) -> Result<Caller, ApiError> {
    let token = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            ApiError::unauthenticated("unauthenticated", "no bearer token in the request")
        })?;
    let claims = dev::verify(secret, token.trim())?;
    let authorizer: ApiGatewayRequestAuthorizer =
        serde_json::from_value(serde_json::json!({"jwt": {"claims": claims}}))
            .map_err(|_| ApiError::unauthenticated("invalid_token", "the token's claims"))?;
    caller(
        &AuthMode::Jwt {
            claim: claim.to_owned(),
        },
        Some(&authorizer),
        now_seconds,
    )
}

/// HS256 JWTs (RFC 7519 with an HMAC-SHA256 JWS, RFC 7515) for local runs:
/// [`dev::mint`] makes the demo's tokens, [`dev::verify`] checks them.
/// Claims come out as strings, as API Gateway passes them.
pub mod dev {
    use std::collections::HashMap;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use crate::error::ApiError;

    fn sign(secret: &str, input: &str) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A token with `claims` (a JSON object), signed with `secret`.
    pub fn mint(secret: &str, claims: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(sign(secret, &input));
        format!("{input}.{signature}")
    }

    /// The claims of `token` if `secret` signed it (HS256 only).
    pub fn verify(secret: &str, token: &str) -> Result<HashMap<String, String>, ApiError> {
        let bad =
            |why: &str| ApiError::unauthenticated("invalid_token", format!("the token {why}"));
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("is not a JWT (three base64url parts)"));
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| bad("header is not base64url JSON"))?;
        if header["alg"] != "HS256" {
            return Err(bad("is not signed with HS256"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| bad("signature is not base64url"))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(format!("{}.{payload}", token.split('.').next().unwrap_or_default()).as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| bad("signature does not verify"))?;
        let claims: serde_json::Map<String, serde_json::Value> = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| bad("payload is not a base64url JSON object"))?;
        Ok(claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn tokens_verify_with_their_secret_only() {
            let token = mint(
                "s3cret-s3cret-s3cret-s3cret-s3cret",
                &serde_json::json!({"oem_id": "a1", "exp": 5}),
            );
            let claims = verify("s3cret-s3cret-s3cret-s3cret-s3cret", &token).unwrap();
            assert_eq!(
                (claims["oem_id"].as_str(), claims["exp"].as_str()),
                ("a1", "5")
            );
            assert_eq!(
                verify("another-secret", &token).unwrap_err().code,
                "invalid_token"
            );
            let mut forged: Vec<&str> = token.split('.').collect();
            let other = mint("x", &serde_json::json!({"oem_id": "b2", "exp": 5}));
            forged[1] = other.split('.').nth(1).unwrap();
            assert!(verify("s3cret-s3cret-s3cret-s3cret-s3cret", &forged.join(".")).is_err());
            assert!(verify("s", "a.b").is_err());
        }
    }
}

/// `abcd1234` of `arn:aws:sts::123456789012:assumed-role/dpl-oem-abcd1234/s`.
fn oem_of_role(arn: &str, prefix: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let resource = parts.nth(2)?;
    let mut path = resource.split('/');
    if service != "sts" || path.next()? != "assumed-role" {
        return None;
    }
    let oem = path.next()?.strip_prefix(prefix)?;
    path.next()?;
    (!oem.is_empty()).then(|| oem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_700_000_000;

    fn jwt(claims: &[(&str, &str)]) -> ApiGatewayRequestAuthorizer {
        let claims: HashMap<String, String> = claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        serde_json::from_value(serde_json::json!({"jwt": {"claims": claims, "scopes": null}}))
            .unwrap()
    }

    fn oem_id() -> AuthMode {
        AuthMode::Jwt {
            claim: "oem_id".into(),
        }
    }

    #[test]
    fn the_oem_comes_from_the_configured_claim() {
        let token = jwt(&[
            ("oem_id", "abcd1234"),
            ("tenant", "t-9"),
            ("exp", "1700000060"),
        ]);
        assert_eq!(
            caller(&oem_id(), Some(&token), NOW).unwrap().oem_id,
            "abcd1234"
        );
        let tenant = AuthMode::Jwt {
            claim: "tenant".into(),
        };
        assert_eq!(caller(&tenant, Some(&token), NOW).unwrap().oem_id, "t-9");
    }

    #[test]
    fn missing_claims_expired_or_absent_tokens_are_refused() {
        let code = |mode: &AuthMode, a: Option<&ApiGatewayRequestAuthorizer>| {
            let e = caller(mode, a, NOW).unwrap_err();
            (e.status, e.code)
        };
        assert_eq!(code(&oem_id(), None), (401, "unauthenticated"));
        let no_oem = jwt(&[("sub", "u"), ("exp", "1700000060")]);
        assert_eq!(code(&oem_id(), Some(&no_oem)), (403, "missing_claim"));
        let blank = jwt(&[("oem_id", " "), ("exp", "1700000060")]);
        assert_eq!(code(&oem_id(), Some(&blank)), (403, "missing_claim"));
        let expired = jwt(&[("oem_id", "abcd1234"), ("exp", "1699999999")]);
        assert_eq!(code(&oem_id(), Some(&expired)), (401, "token_expired"));
        let now = jwt(&[("oem_id", "abcd1234"), ("exp", "1700000000")]);
        assert_eq!(code(&oem_id(), Some(&now)), (401, "token_expired"));
        let no_exp = jwt(&[("oem_id", "abcd1234")]);
        assert_eq!(code(&oem_id(), Some(&no_exp)), (401, "invalid_token"));
        let bad_oem = jwt(&[("oem_id", "a/b"), ("exp", "1700000060")]);
        assert_eq!(code(&oem_id(), Some(&bad_oem)), (403, "invalid_claim"));
    }

    #[test]
    fn iam_callers_are_scoped_by_their_role_name() {
        let iam = |arn: &str| -> ApiGatewayRequestAuthorizer {
            serde_json::from_value(serde_json::json!({"iam": {"userArn": arn}})).unwrap()
        };
        let mode = AuthMode::Iam {
            role_prefix: "dpl-oem-".into(),
        };
        let ok = iam("arn:aws:sts::123456789012:assumed-role/dpl-oem-abcd1234/alice");
        assert_eq!(caller(&mode, Some(&ok), NOW).unwrap().oem_id, "abcd1234");
        for arn in [
            "arn:aws:iam::123456789012:user/dpl-oem-abcd1234",
            "arn:aws:sts::123456789012:assumed-role/other-role/s",
            "arn:aws:sts::123456789012:assumed-role/dpl-oem-/s",
        ] {
            let e = caller(&mode, Some(&iam(arn)), NOW).unwrap_err();
            assert_eq!(e.code, "not_an_oem_role", "{arn}");
        }
        // A JWT does not do for IAM, nor IAM for a JWT.
        let token = jwt(&[("oem_id", "abcd1234"), ("exp", "1700000060")]);
        assert_eq!(caller(&mode, Some(&token), NOW).unwrap_err().status, 401);
        assert_eq!(caller(&oem_id(), Some(&ok), NOW).unwrap_err().status, 401);
    }
}
