//! A moto server of the bench's own, beside the one `scripts/with-moto.sh`
//! starts: moto answers in one Python process, so a service whose
//! emulation is slow (DynamoDB's `Query` reads every item of the partition)
//! would otherwise slow every other emulated service down with it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long moto may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server` from the repository's `.venv` (which
/// `scripts/with-moto.sh` creates); stopped when dropped.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

impl MotoServer {
    /// Starts one on a free port of 127.0.0.1; its log goes to
    /// `target/moto-{port}.log` as with `scripts/with-moto.sh`.
    pub fn start() -> anyhow::Result<MotoServer> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(root.join(format!("target/moto-{port}.log")))?;
        let child = Command::new(root.join(".venv/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting .venv/bin/moto_server (run scripts/venv.sh first)")?;
        let server = MotoServer { child, addr };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if started.elapsed() > START_TIMEOUT {
                bail!("moto_server did not listen on {addr} within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Killing our own child by its handle; it has no state worth saving.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
