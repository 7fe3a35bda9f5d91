//! `dplctl export credentials` and `dplctl export url` on a private moto
//! server with IAM enforcement on: OEM A's credentials read A's file and are
//! refused B's; a refreshed key replaces the old one; a revoked user reads
//! nothing.
//!
//! The test starts its own `moto_server` (from the repository's `.venv`,
//! which `scripts/with-moto.sh` and `scripts/venv.sh` set up): it sets up
//! the bucket, the files and an operator user with auth off, then turns
//! enforcement on for everything after with `POST /moto-api/reset-auth`
//! (moto's runtime form of `INITIAL_NO_AUTH_ACTION_COUNT`). The shared
//! server of `with-moto.sh`, which other tests use, is left alone.
//!
//! OEM ids that differ only in case would share one IAM user (IAM user
//! names ignore case): the second `create` is refused, and `refresh` does
//! not touch a user tagged for another OEM.
//!
//! `export url` is checked before enforcement: moto answers a pre-signed
//! GET with a 500 while enforcing. Listing: moto (5.2) evaluates only
//! `StringEquals` conditions and takes any other operator as met
//! (`moto/iam/policy_conditions.py`), so it cannot tell prefixes apart: the
//! policy's `ListNothingElse` deny (`StringNotLike` on `s3:prefix`) is what
//! makes it refuse `ListBucket` on another OEM's prefix here (without that
//! statement moto allows it), and it refuses the OEM's own prefix as well,
//! which AWS allows. So the test checks here that another OEM's prefix and
//! the whole bucket cannot be listed; that the own prefix can is checked
//! on the policy document (`credentials::tests` in the binary).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use dpl::export::{Layout, Partition};
use dpl::{EventType, Timestamp};

const BUCKET: &str = "exports-credentials-test";

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sends one HTTP/1.1 request; returns the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let binary = root().join(".venv/bin/moto_server");
    assert!(
        binary.exists(),
        "{} is missing: run scripts/venv.sh (scripts/with-moto.sh does)",
        binary.display()
    );
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

async fn sdk(port: u16, key_id: &str, secret: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
        .load()
        .await
}

fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn dplctl(port: u16, (key_id, secret): (&str, &str), args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_dplctl"))
        .arg("export")
        .args(args)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("BUCKET", BUCKET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("dplctl runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// (access key id, secret) from the one-time display.
fn key_of(stdout: &str) -> (String, String) {
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("{label} not in {stdout}"))
            .trim()
            .to_owned()
    };
    (field("access key id:"), field("secret access key:"))
}

/// The keys `ListObjectsV2` shows under `prefix`, or the error.
async fn list(port: u16, (id, secret): (&str, &str), prefix: &str) -> Result<Vec<String>, String> {
    let client = s3(&sdk(port, id, secret).await);
    match client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
    {
        Ok(listed) => Ok(listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()),
        Err(error) => Err(format!(
            "{}",
            aws_sdk_s3::error::DisplayErrorContext(&error)
        )),
    }
}

async fn read(port: u16, (id, secret): (&str, &str), key: &str) -> Result<String, String> {
    let client = s3(&sdk(port, id, secret).await);
    match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(object) => Ok(String::from_utf8(
            object.body.collect().await.unwrap().into_bytes().to_vec(),
        )
        .unwrap()),
        Err(error) => Err(format!(
            "{}",
            aws_sdk_s3::error::DisplayErrorContext(&error)
        )),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn oem_credentials_read_their_own_exports_only() {
    let moto = start_moto();
    let port = moto.port;
    let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
    let layout = Layout::default();
    let key = |oem: &str| {
        layout.export_key(&Partition {
            hour,
            oem_id: oem.into(),
            event_type: EventType::Datapoint,
        })
    };
    let (file_a, file_b) = (key("oema1234"), key("oemb5678"));

    // Set-up with auth off: the bucket, two OEMs' files, an operator user.
    let setup = sdk(port, "testing", "testing").await;
    let bucket = s3(&setup);
    bucket.create_bucket().bucket(BUCKET).send().await.unwrap();
    for (key, body) in [(&file_a, "a,row\n"), (&file_b, "b,row\n")] {
        bucket
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    let iam = aws_sdk_iam::Client::new(&setup);
    iam.create_user()
        .user_name("operator")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("operator")
        .policy_name("all")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let operator_key = iam
        .create_access_key()
        .user_name("operator")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let operator = (
        operator_key.access_key_id(),
        operator_key.secret_access_key(),
    );

    // url, before enforcement (moto answers a pre-signed GET with a 500 when
    // enforcing): a pre-signed GET that works without credentials.
    let url = dplctl(
        port,
        operator,
        &[
            "url",
            "--oem",
            "oema1234",
            "--type",
            "datapoint",
            "--hour",
            "2020-08-28T09",
        ],
    );
    assert!(url.ok, "{}", url.stderr);
    let uri = url.stdout.trim();
    let path = uri
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("{uri}"));
    assert!(
        path.contains("X-Amz-Signature=") && path.contains("X-Amz-Expires=3600"),
        "{uri}"
    );
    let (status, body) = http(port, "GET", path, "");
    assert_eq!((status, body.as_str()), (200, "a,row\n"), "{uri}");
    let missing = dplctl(
        port,
        operator,
        &[
            "url",
            "--oem",
            "oema1234",
            "--type",
            "location",
            "--hour",
            "2020-08-28T09",
        ],
    );
    assert!(
        !missing.ok && missing.stderr.contains("nothing exported"),
        "{}",
        missing.stderr
    );

    // Enforcement on from here.
    let (status, body) = http(port, "POST", "/moto-api/reset-auth", "0");
    assert_eq!(status, 200, "{body}");
    let denied = read(port, ("testing", "testing"), &file_a).await;
    assert!(denied.is_err(), "auth is not enforced");
    assert_eq!(read(port, operator, &file_a).await.unwrap(), "a,row\n");

    // create: one user per OEM, the key shown once.
    let created = dplctl(
        port,
        operator,
        &["credentials", "create", "--oem", "oema1234"],
    );
    assert!(created.ok, "{}{}", created.stdout, created.stderr);
    assert!(created
        .stdout
        .contains("user:              dpl-export-oema1234"));
    assert!(
        created.stderr.contains("shown this once"),
        "{}",
        created.stderr
    );
    let (a_id, a_secret) = key_of(&created.stdout);
    let b = dplctl(
        port,
        operator,
        &["credentials", "create", "--oem", "oemb5678"],
    );
    assert!(b.ok, "{}", b.stderr);
    let (b_id, b_secret) = key_of(&b.stdout);
    let again = dplctl(
        port,
        operator,
        &["credentials", "create", "--oem", "oema1234"],
    );
    assert!(
        !again.ok && again.stderr.contains("exists already"),
        "{}",
        again.stderr
    );

    // A reads A's file and is refused B's; B the other way round.
    let a = (a_id.as_str(), a_secret.as_str());
    assert_eq!(read(port, a, &file_a).await.unwrap(), "a,row\n");
    let refused = read(port, a, &file_b).await.unwrap_err();
    assert!(refused.contains("AccessDenied"), "{refused}");
    let b = (b_id.as_str(), b_secret.as_str());
    assert_eq!(read(port, b, &file_b).await.unwrap(), "b,row\n");
    assert!(read(port, b, &file_a).await.is_err());

    // Neither lists the other's prefix, nor the whole bucket.
    for (who, other) in [(a, "exports/oemb5678/"), (b, "exports/oema1234/")] {
        for prefix in [other, "", "exports/", "staging/"] {
            let refused = list(port, who, prefix).await.unwrap_err();
            assert!(refused.contains("AccessDenied"), "{prefix}: {refused}");
        }
    }
    assert!(list(port, operator, "exports/").await.unwrap().len() == 2);

    // An OEM id differing from oema1234 only in case would be the same IAM
    // user: refused, and oema1234's user is untouched.
    let upper = dplctl(
        port,
        operator,
        &["credentials", "create", "--oem", "OEMA1234"],
    );
    assert!(
        !upper.ok
            && upper
                .stderr
                .contains("collides with the existing user dpl-export-oema1234"),
        "{}{}",
        upper.stdout,
        upper.stderr
    );
    assert_eq!(read(port, a, &file_a).await.unwrap(), "a,row\n");

    // A user IAM finds for an OEM but tagged for another is not changed.
    let operator_aws = sdk(port, operator.0, operator.1).await;
    let operator_iam = aws_sdk_iam::Client::new(&operator_aws);
    operator_iam
        .create_user()
        .user_name("dpl-export-oemc9999")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("dpl:oem")
                .value("OEMC9999")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for action in ["refresh", "revoke"] {
        let mut args = vec!["credentials", action, "--oem", "oemc9999"];
        if action == "revoke" {
            args.push("--yes");
        }
        let run = dplctl(port, operator, &args);
        assert!(
            !run.ok && run.stderr.contains("another OEM's user"),
            "{action}: {}",
            run.stderr
        );
    }

    // refresh: the new key works, the old one no longer.
    let refreshed = dplctl(
        port,
        operator,
        &["credentials", "refresh", "--oem", "oema1234"],
    );
    assert!(refreshed.ok, "{}", refreshed.stderr);
    let (new_id, new_secret) = key_of(&refreshed.stdout);
    assert_ne!(new_id, a_id);
    assert!(
        read(port, a, &file_a).await.is_err(),
        "the old key still works"
    );
    let a2 = (new_id.as_str(), new_secret.as_str());
    assert_eq!(read(port, a2, &file_a).await.unwrap(), "a,row\n");

    // revoke: needs --yes; then nothing is readable with the key.
    let unconfirmed = dplctl(
        port,
        operator,
        &["credentials", "revoke", "--oem", "oema1234"],
    );
    assert!(!unconfirmed.ok && unconfirmed.stderr.contains("pass --yes"));
    let revoked = dplctl(
        port,
        operator,
        &["credentials", "revoke", "--oem", "oema1234", "--yes"],
    );
    assert!(revoked.ok, "{}", revoked.stderr);
    assert!(
        read(port, a2, &file_a).await.is_err(),
        "a revoked key works"
    );
    assert!(!revoked.stdout.contains(&new_secret) && !revoked.stderr.contains(&new_secret));
    let gone = dplctl(
        port,
        operator,
        &["credentials", "refresh", "--oem", "oema1234"],
    );
    assert!(
        !gone.ok && gone.stderr.contains("does not exist"),
        "{}",
        gone.stderr
    );
    // B is untouched.
    assert_eq!(read(port, b, &file_b).await.unwrap(), "b,row\n");
}
