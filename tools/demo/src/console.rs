//! The OEM console of the demo: the `api` function (`functions/api`) on
//! the emulator, behind `cargo lambda watch --only-lambda-apis` (the Lambda
//! runtime API and function URLs on 127.0.0.1), run as this very binary
//! (`demo --api-function`, which calls [`api::run`]), and a sign-in token
//! per example OEM. The function checks the tokens itself
//! (`AUTH_MODE=dev-hs256`, local runs only: docs/api.md, "Local runs").
//!
//! [`Console::check`] asks the API, with each OEM's token, for the OEM's
//! streams: the report says what each sees, and the run fails if the
//! console does not answer or shows an OEM another's streams.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::fleet::OEMS;
use crate::stack::Stack;

/// The flag that makes the demo binary the `api` function.
pub const FUNCTION_FLAG: &str = "--api-function";

/// How long the demo's tokens are valid.
const TOKEN_HOURS: u64 = 12;

/// A process in its own process group, stopped with its group (and only
/// it) when dropped: `cargo lambda` starts children of its own.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this module created.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command) -> anyhow::Result<Group> {
    use std::os::unix::process::CommandExt;
    let child = command
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    Ok(Group(child))
}

/// One example OEM's sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub oem_id: String,
    pub name: String,
    pub token: String,
}

/// The console, running until dropped.
pub struct Console {
    pub url: String,
    pub sign_ins: Vec<SignIn>,
    _processes: Vec<Group>,
}

/// What one OEM sees in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub oem_id: String,
    /// The OEM ids of the streams listed to it.
    pub stream_oems: Vec<String>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The example OEMs' tokens, signed with `secret`, valid from `now_seconds`.
pub fn sign_ins(secret: &str, now_seconds: u64) -> Vec<SignIn> {
    OEMS.iter()
        .map(|oem| SignIn {
            oem_id: oem.id.to_owned(),
            name: oem.name.to_owned(),
            token: api::auth::dev::mint(
                secret,
                &serde_json::json!({
                    "sub": format!("demo-user-{}", oem.id),
                    "oem_id": oem.id,
                    "iat": now_seconds,
                    "exp": now_seconds + TOKEN_HOURS * 3600,
                }),
            ),
        })
        .collect()
}

impl Console {
    /// Starts `cargo lambda watch` and the function (`function_binary
    /// --api-function`) with the api function's environment from the
    /// template, on the emulator the environment points at.
    pub async fn start(root: &Path, stack: &Stack, function_binary: &Path) -> anyhow::Result<Self> {
        let function = stack.function("api")?;
        let port = free_port()?;
        let watch = spawn(
            Command::new(root.join("scripts/cargo-lambda.sh"))
                .args(["watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .current_dir(root)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("cargo lambda watch did not listen on 127.0.0.1:{port}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let secret = format!(
            "demo-{now}-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let mut command = Command::new(function_binary);
        command
            .arg(FUNCTION_FLAG)
            .envs(&function.environment)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            // cargo lambda's runtime without a build serves the function `_`.
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AUTH_MODE", "dev-hs256")
            .env("DEV_JWT_SECRET", &secret)
            .env_remove("EXPORT_USER_BOUNDARY_ARN")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let function = spawn(&mut command)?;
        let console = Self {
            url: format!("http://127.0.0.1:{port}/lambda-url/_/"),
            sign_ins: sign_ins(&secret, now),
            _processes: vec![function, watch],
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match console.get("", None).await {
                Ok((200, page)) if page.contains("DataStream") => break,
                _ if Instant::now() > deadline => {
                    bail!("the console at {} does not answer", console.url)
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Ok(console)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = client
            .request(request.body(Full::new(Bytes::new()))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Each OEM's streams, as the console lists them to it.
    pub async fn check(&self) -> anyhow::Result<Vec<Seen>> {
        let mut seen = Vec::new();
        for sign_in in &self.sign_ins {
            let (status, body) = self.get("streams", Some(&sign_in.token)).await?;
            if status != 200 {
                bail!(
                    "the console refused {}'s token: {status} {body}",
                    sign_in.oem_id
                );
            }
            let listed: serde_json::Value = serde_json::from_str(&body)?;
            let stream_oems: Vec<String> = listed["streams"]
                .as_array()
                .context("no streams in the answer")?
                .iter()
                .filter_map(|s| s["oem_id"].as_str().map(str::to_owned))
                .collect();
            if let Some(other) = stream_oems.iter().find(|o| **o != sign_in.oem_id) {
                bail!(
                    "the console showed OEM {} a stream of OEM {other}",
                    sign_in.oem_id
                );
            }
            seen.push(Seen {
                oem_id: sign_in.oem_id.clone(),
                stream_oems,
            });
        }
        Ok(seen)
    }

    /// The report's lines: the URL, and each OEM's token and streams.
    pub fn text(&self, seen: &[Seen]) -> String {
        let mut out = format!("Console: {}\n", self.url);
        for sign_in in &self.sign_ins {
            let streams = seen
                .iter()
                .find(|s| s.oem_id == sign_in.oem_id)
                .map_or(0, |s| s.stream_oems.len());
            out.push_str(&format!(
                "  {} (OEM {}, {streams} streams), token:\n    {}\n",
                sign_in.name, sign_in.oem_id, sign_in.token
            ));
        }
        out.push_str(&format!(
            "  Open the URL, paste a token to sign in (valid {TOKEN_HOURS} hours).\n"
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_oem_gets_a_token_of_its_own_that_the_function_accepts() {
        let secret = "a-demo-secret-of-at-least-32-characters";
        let sign_ins = sign_ins(secret, 1_000);
        assert_eq!(sign_ins.len(), OEMS.len());
        for (sign_in, oem) in sign_ins.iter().zip(OEMS) {
            let claims = api::auth::dev::verify(secret, &sign_in.token).unwrap();
            assert_eq!(claims["oem_id"], oem.id);
            let caller = api::auth::dev_caller(
                "oem_id",
                secret,
                Some(&format!("Bearer {}", sign_in.token)),
                1_000,
            )
            .unwrap();
            assert_eq!(caller.oem_id, oem.id);
            assert!(api::auth::dev_caller(
                "oem_id",
                secret,
                Some(&format!("Bearer {}", sign_in.token)),
                1_000 + 12 * 3600
            )
            .is_err());
        }
    }
}
