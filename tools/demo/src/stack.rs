//! The emulated stack: the resources `template.yaml` declares, created in
//! the emulator by `scripts/create-resources.py`, and each function's
//! environment and event source mappings as the template resolves them.
//! Nothing here names a table, stream, queue or bucket by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The script that reads the template and creates the resources.
pub const CREATE_SCRIPT: &str = "scripts/create-resources.py";

/// One created resource.
#[derive(Clone, Debug, Deserialize)]
pub struct Resource {
    /// `AWS::DynamoDB::Table`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// What `!Ref` gives: the table, stream or bucket name, the queue URL.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `Arn`, `StreamArn`, `QueueName`, ...
    pub attributes: BTreeMap<String, String>,
}

/// An event source mapping of a function, resolved from the template.
#[derive(Clone, Debug, Deserialize)]
pub struct EventSource {
    /// `DynamoDB`, `Kinesis` or `SQS`.
    #[serde(rename = "type")]
    pub kind: String,
    pub source_arn: String,
    pub batch_size: Option<usize>,
    pub starting_position: Option<String>,
    pub report_batch_item_failures: bool,
    pub bisect_batch_on_function_error: bool,
    pub maximum_retry_attempts: Option<u32>,
    pub on_failure_arn: Option<String>,
}

/// A function of the template.
#[derive(Clone, Debug, Deserialize)]
pub struct Function {
    /// The cargo binary (`BuildProperties.Binary`).
    pub binary: String,
    /// `Environment.Variables`, every intrinsic resolved.
    pub environment: BTreeMap<String, String>,
    /// Variables naming something the script does not create.
    pub unresolved_environment: Vec<String>,
    pub event_sources: Vec<EventSource>,
    pub timeout_seconds: u64,
}

impl Function {
    /// Looks a variable up in the function's environment, as the
    /// functions' `Config::from_lookup` expect.
    pub fn var(&self, name: &str) -> Option<String> {
        self.environment.get(name).cloned()
    }

    /// The function's one event source mapping of `kind`.
    pub fn event_source(&self, kind: &str) -> anyhow::Result<&EventSource> {
        self.event_sources
            .iter()
            .find(|s| s.kind == kind)
            .with_context(|| format!("{}: no {kind} event source in the template", self.binary))
    }
}

/// Everything `scripts/create-resources.py` created and resolved.
#[derive(Clone, Debug, Deserialize)]
pub struct Stack {
    pub prefix: String,
    pub region: String,
    pub account_id: String,
    /// By logical id.
    pub resources: BTreeMap<String, Resource>,
    /// By logical id.
    pub functions: BTreeMap<String, Function>,
    /// Template resources not needed in-process, by logical id: their type.
    pub skipped: BTreeMap<String, String>,
}

impl Stack {
    /// The repository root (where `template.yaml` is).
    pub fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Creates the template's resources in the emulator at
    /// `AWS_ENDPOINT_URL`, named `{prefix}-{LogicalId}`.
    pub fn create(root: &Path, prefix: &str) -> anyhow::Result<Self> {
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            bail!(
                "{} is missing: run through scripts/with-moto.sh (make demo), which creates it",
                python.display()
            );
        }
        let output = Command::new(&python)
            .arg(root.join(CREATE_SCRIPT))
            .args(["--prefix", prefix])
            .arg("--template")
            .arg(root.join("template.yaml"))
            .output()
            .with_context(|| format!("running {CREATE_SCRIPT}"))?;
        if !output.status.success() {
            bail!(
                "{CREATE_SCRIPT} failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the output of {CREATE_SCRIPT}"))
    }

    pub fn resource(&self, logical_id: &str) -> anyhow::Result<&Resource> {
        self.resources
            .get(logical_id)
            .with_context(|| format!("template.yaml declares no resource {logical_id}"))
    }

    /// The function built as cargo binary `binary`.
    pub fn function(&self, binary: &str) -> anyhow::Result<&Function> {
        self.functions
            .values()
            .find(|f| f.binary == binary)
            .with_context(|| format!("template.yaml declares no function with binary {binary}"))
    }

    /// The resource whose `attribute` is `value` (an ARN, say).
    pub fn resource_by(&self, attribute: &str, value: &str) -> anyhow::Result<(&str, &Resource)> {
        self.resources
            .iter()
            .find(|(_, r)| r.attributes.get(attribute).is_some_and(|v| v == value))
            .map(|(id, r)| (id.as_str(), r))
            .with_context(|| format!("no created resource has {attribute} {value}"))
    }

    /// The queue URL of an on-failure destination ARN.
    pub fn queue_url(&self, arn: &str) -> anyhow::Result<String> {
        Ok(self.resource_by("Arn", arn)?.1.reference.clone())
    }
}
