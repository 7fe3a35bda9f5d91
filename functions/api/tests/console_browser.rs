//! The web console in a real browser: headless Chromium (Debian's
//! `chromium`, installed with its `chromium-driver` by `scripts/browser.sh`
//! when absent), driven over WebDriver (W3C WebDriver, the JSON wire
//! protocol of chromedriver), against the function running locally under
//! `cargo lambda watch` on the emulator (moto). Signs in with a test token,
//! creates a stream, sees it listed, tests it, disables it; opens the Data
//! Export page, creates download credentials and sees an hour folder with
//! its download link. Screenshots of each step are saved in
//! `target/console-screenshots/` for review.
//!
//! `cargo lambda watch --only-lambda-apis` serves the Lambda runtime API
//! and the function URL, and the function runs as the binary this test was
//! built with (`CARGO_BIN_EXE_api`): a second build of the same binary
//! inside `cargo test` would wait on cargo's lock of the target directory.
//!
//! Needs `AWS_ENDPOINT_URL` (`scripts/with-moto.sh`); fails, rather than
//! skips, without it or without a browser it can install.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use dpl::export::{Layout, Manifest, Partition};
use dpl::{EventType, Timestamp};
use serde_json::{json, Value};

const OEM: &str = "oemcons1";
const SECRET: &str = "console-test-secret-0123456789abcdef";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/dpl-stream-writer";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process started in its own process group, stopped with it (the
/// group's processes only) when dropped.
struct Started(Child);

impl Started {
    fn spawn(command: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        Self(
            command
                .process_group(0)
                .spawn()
                .expect("the process starts"),
        )
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let group = self.0.id() as i32;
        // SAFETY: kill(2) on the group this test created.
        unsafe {
            libc::kill(-group, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on loopback: the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // Read the head, then exactly the body: servers may keep the
    // connection open whatever `Connection: close` asks.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break answer.len();
        }
        answer.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &answer[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let rest = String::from_utf8_lossy(&answer[head_end..]).into_owned();
    let rest = rest.as_str();
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A WebDriver session of chromedriver.
struct Browser {
    port: u16,
    session: String,
    shots: PathBuf,
}

impl Browser {
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then_some(&body);
        let (status, text) = http(self.port, method, &url, body).expect("chromedriver answers");
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }

    fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("/session/{}/element", self.session);
        let (status, text) = http(
            self.port,
            "POST",
            &url,
            Some(&json!({"using": "css selector", "value": css})),
        )
        .ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        (status == 200).then(|| value["value"][ELEMENT].as_str().map(str::to_owned))?
    }

    fn find(&self, css: &str) -> String {
        let mut found = None;
        wait_until(css, Duration::from_secs(20), || {
            found = self.try_find(css);
            found.is_some()
        });
        found.unwrap()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/clear"), json!({}));
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            json!({"text": text}),
        );
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.command("GET", &format!("/element/{element}/text"), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Waits until the status line contains `text` (or says an error).
    fn wait_for_message(&self, text: &str) -> String {
        let mut message = String::new();
        wait_until(text, Duration::from_secs(30), || {
            message = self.text("#message");
            assert!(!message.contains("failed"), "the console says: {message}");
            message.contains(text)
        });
        message
    }

    fn screenshot(&self, name: &str) {
        let png = self.command("GET", "/screenshot", json!({}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_creates_lists_tests_and_disables_a_stream() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): run \
         `scripts/with-moto.sh cargo test -p api --test console_browser`"
    );
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (table, state_table, bucket, customer) = (
        format!("subs-console-{n}"),
        format!("state-console-{n}"),
        format!("bucket-console-{n}"),
        format!("customer-console-{n}"),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    dpl::streams::state::dynamo::create_table(&dynamo, &table, &[dpl::streams::store::attr::ID])
        .await
        .unwrap();
    dpl::streams::state::dynamo::create_table(
        &dynamo,
        &state_table,
        &dpl::streams::state::item::TABLE_KEYS,
    )
    .await
    .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&aws)
            .region(aws_config::Region::new("eu-west-1"))
            .build(),
    );
    kinesis
        .create_stream()
        .stream_name(&customer)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // An exported hour for the Data Export page.
    let layout = Layout::default();
    let hour = Timestamp::from_millis(Timestamp::now().hour_start().millis() - 3_600_000).unwrap();
    let partition = Partition {
        hour,
        oem_id: OEM.into(),
        event_type: EventType::Location,
    };
    s3.put_object()
        .bucket(&bucket)
        .key(layout.export_key(&partition))
        .body(b"a,row\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let manifest = Manifest {
        format_version: 1,
        oem_id: OEM.into(),
        event_type: "location".into(),
        hour: hour.folder_name().to_string(),
        export_key: layout.export_key(&partition),
        export_etag: String::new(),
        rows: 1,
        bytes: 6,
        sha256: String::new(),
        duplicates_dropped: 0,
        staging: Vec::new(),
    };
    s3.put_object()
        .bucket(&bucket)
        .key(layout.manifest_key(&partition))
        .body(serde_json::to_vec(&manifest).unwrap().into())
        .send()
        .await
        .unwrap();

    // The function under cargo lambda watch.
    let lambda_port = free_port();
    let _watch = Started::spawn(
        Command::new(root().join("scripts/cargo-lambda.sh"))
            .args(["watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(lambda_port.to_string())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until("cargo lambda watch", Duration::from_secs(120), || {
        TcpStream::connect(("127.0.0.1", lambda_port)).is_ok()
    });
    let _function = Started::spawn(
        Command::new(env!("CARGO_BIN_EXE_api"))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{lambda_port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("SUBSCRIPTIONS_TABLE", &table)
            .env("DELIVERY_STATE_TABLE", &state_table)
            .env("BUCKET", &bucket)
            .env("AUTH_MODE", "dev-hs256")
            .env("DEV_JWT_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let console = "/lambda-url/_/".to_owned();
    wait_until("the console page", Duration::from_secs(60), || {
        http(lambda_port, "GET", &console, None)
            .is_ok_and(|(status, body)| status == 200 && body.contains("DataStream"))
    });

    // The browser.
    let driver_path = Command::new(root().join("scripts/browser.sh"))
        .output()
        .expect("scripts/browser.sh runs");
    assert!(
        driver_path.status.success(),
        "{}",
        String::from_utf8_lossy(&driver_path.stderr)
    );
    let driver = String::from_utf8(driver_path.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let driver_port = free_port();
    let _chromedriver = Started::spawn(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until("chromedriver", Duration::from_secs(30), || {
        http(driver_port, "GET", "/status", None)
            .is_ok_and(|(_, body)| body.contains("\"ready\":true"))
    });
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                        "--disable-dev-shm-usage", "--window-size=1400,1000"]}
    }}});
    let (status, created) = http(driver_port, "POST", "/session", Some(&capabilities)).unwrap();
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(status, 200, "{created}");
    let shots = root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser {
        port: driver_port,
        session: created["value"]["sessionId"].as_str().unwrap().to_owned(),
        shots,
    };

    // Sign in with a test token.
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = api::auth::dev::mint(SECRET, &json!({"sub": "tester", "oem_id": OEM, "exp": exp}));
    browser.command(
        "POST",
        "/url",
        json!({"url": format!("http://127.0.0.1:{lambda_port}{console}#streams")}),
    );
    browser.find("#signin-form");
    browser.screenshot("01-sign-in");
    browser.type_into("#token", &token);
    browser.click("#signin-button");
    wait_until("the DataStream page", Duration::from_secs(20), || {
        browser.script("return document.querySelector('#page-streams').hidden") == json!(false)
    });
    assert!(browser.text("#who").contains(OEM));
    wait_until("the empty list", Duration::from_secs(20), || {
        browser.text("#no-streams").contains("No streams yet")
    });

    // Create a stream with the vendor's fields.
    let arn = format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{customer}");
    browser.type_into("#create-form [name=name]", "Console stream");
    browser.type_into("#create-form [name=description]", "made in the browser");
    browser.type_into("#create-form [name=stream_arn]", &arn);
    browser.type_into("#create-form [name=role_arn]", ROLE_ARN);
    browser.type_into("#create-form [name=external_id]", "console-1");
    browser.click("#create-form [name=event_types][value=datapoint]");
    browser.click("#create-form [name=event_types][value=location]");
    browser.screenshot("02-create-form");
    browser.click("#create-button");
    browser.wait_for_message("Created Console stream");

    // Listed, with its status and health.
    let row = "#streams tbody tr[data-name='Console stream']";
    browser.find(row);
    assert_eq!(browser.text(&format!("{row} .status")), "enabled");
    assert_eq!(browser.text(&format!("{row} .health")), "live");
    assert!(
        browser.text(row).contains("datapoint, location"),
        "{}",
        browser.text(row)
    );
    browser.screenshot("03-listed");

    // Test it: one sample event on the customer's stream.
    browser.click(&format!("{row} .actions button:nth-of-type(2)"));
    let message = browser.wait_for_message("Test event delivered");
    assert!(message.contains(&customer), "{message}");
    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(&customer)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = kinesis
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        records.records().len(),
        1,
        "the test event reached the customer stream"
    );
    browser.screenshot("04-tested");

    // Disable it.
    browser.click(&format!("{row} .actions button:nth-of-type(1)"));
    browser.wait_for_message("Console stream disabled");
    wait_until("the disabled status", Duration::from_secs(10), || {
        browser.text(&format!("{row} .status")) == "disabled"
    });
    assert_eq!(
        browser.text(&format!("{row} .actions button:nth-of-type(1)")),
        "Enable"
    );
    browser.screenshot("05-disabled");

    // Data Export: credentials with refresh, the hour folders with links.
    browser.click("#nav-export");
    browser.find("#hours tbody tr");
    assert!(browser
        .text("#hours tbody")
        .contains(&hour.folder_name().to_string()));
    assert!(browser
        .text("#hours tbody a.download")
        .contains("location.csv (1 rows)"));
    browser.click("#credentials-create");
    browser.wait_for_message("Credentials created");
    let key = browser.text("#new-key");
    assert!(key.contains("Secret access key:"), "{key}");
    assert!(browser
        .text("#credentials")
        .contains(&format!("dpl-export-{OEM}")));
    browser.screenshot("06-data-export");
}
