//! Every log line of a test process, at every level: [`capture_logs`]
//! installs the process's `tracing` subscriber (at TRACE, the AWS SDK's
//! events included) writing into memory, so that a test can check what was
//! logged, e.g. that no secret ever is.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The log text written since [`capture_logs`] was first called, by every
/// test of the binary.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Panics unless the logs hold each of `expected` (levels such as
    /// `" TRACE "`, messages, ids): a check that the code under test did
    /// log, so that finding no secret in the logs means something.
    pub fn assert_holds(&self, expected: &[&str]) {
        let text = self.text();
        for expected in expected {
            assert!(
                text.contains(expected),
                "no {expected:?} in {} log lines",
                text.lines().count()
            );
        }
    }

    /// The first line holding any of `secrets`, if one does.
    pub fn line_with_any(&self, secrets: &[String]) -> Option<String> {
        self.text()
            .lines()
            .find(|line| secrets.iter().any(|s| line.contains(s.as_str())))
            .map(str::to_owned)
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Installs the capturing subscriber (once per process) and returns it.
pub fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(captured.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other tracing subscriber in this test binary");
            captured
        })
        .clone()
}

/// `key` as it would appear percent-encoded in a URL or a SAS token.
pub fn percent_encoded(key: &str) -> String {
    key.replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
