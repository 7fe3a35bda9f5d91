//! `dplctl` reads the bucket's prefixes from the same variables as the
//! functions (`STAGING_PREFIX`, `EXPORT_PREFIX`, `MANIFEST_PREFIX`,
//! `QUARANTINE_PREFIX`): with a non-default layout, `dplctl export` reads
//! staging and writes the export and its manifest where the functions do,
//! and nothing under the default prefixes. Runs on a local directory with
//! the bucket's layout (`--to DIR`), so it needs no emulator.

use std::path::Path;
use std::process::Command;

use dpl::export::{BatchRange, Layout, Partition};
use dpl::{EventType, Timestamp};

fn layout() -> Layout {
    Layout {
        staging: "raw/in".into(),
        exports: "customers/csv".into(),
        manifests: "meta".into(),
        quarantine: "bad".into(),
    }
}

fn export(dir: &Path, prefixes: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dplctl"));
    command
        .args(["export", "--hour", "2020-08-28T09", "--to"])
        .arg(dir)
        .env("RUST_BACKTRACE", "0");
    for name in [
        "STAGING_PREFIX",
        "EXPORT_PREFIX",
        "MANIFEST_PREFIX",
        "QUARANTINE_PREFIX",
    ] {
        command.env_remove(name);
    }
    command.envs(prefixes.iter().copied());
    command.output().expect("dplctl runs")
}

fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn export_reads_and_writes_under_the_configured_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
    let partition = Partition {
        hour,
        oem_id: "0dfc7900".into(),
        event_type: EventType::Datapoint,
    };
    let layout = layout();
    let record = dpl::examples::seed_record(
        EventType::Datapoint,
        "0dfc7900",
        "ledevb",
        "AC000W000000001",
        "temp",
        1,
    );
    let mut moved: serde_json::Value = serde_json::from_slice(&record.to_json()).unwrap();
    moved["dpl_event"]["timestamp"] = "2020-08-28T09:30:00.000+0000".into();
    let record = dpl::DplRecord::from_json(&serde_json::to_vec(&moved).unwrap()).unwrap();
    let staging = layout
        .staging_key(
            &partition,
            &BatchRange {
                shard_id: "shardId-000000000000",
                first_sequence: "1",
                last_sequence: "1",
            },
        )
        .unwrap();
    let path = dir.path().join(&staging);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, dpl::export::staging::encode(&[record])).unwrap();

    // With the default prefixes, the staged record is not found.
    let defaults = export(dir.path(), &[]);
    assert!(
        defaults.status.success(),
        "{}",
        String::from_utf8_lossy(&defaults.stderr)
    );
    assert_eq!(files(dir.path()), std::slice::from_ref(&staging));

    let run = export(
        dir.path(),
        &[
            ("STAGING_PREFIX", "raw/in"),
            ("EXPORT_PREFIX", "/customers/csv/"),
            ("MANIFEST_PREFIX", "meta"),
            ("QUARANTINE_PREFIX", "bad"),
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("1 exported (1 rows)"), "{stdout}");
    let csv = layout.export_key(&partition);
    let manifest = layout.manifest_key(&partition);
    assert!(
        csv.starts_with("customers/csv/0dfc7900/datapoint/"),
        "{csv}"
    );
    let customer = layout.customer_manifest_key(&partition);
    assert!(
        customer.starts_with("customers/csv/0dfc7900/_manifests/"),
        "{customer}"
    );
    let mut expected = vec![csv.clone(), customer, manifest, staging];
    expected.sort();
    let found: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with(".uploads"))
        .collect();
    assert_eq!(found, expected);
    let rows = std::fs::read_to_string(dir.path().join(&csv)).unwrap();
    assert_eq!(rows.lines().count(), 1, "{rows}");

    // A layout the functions refuse is refused here too, naming the variable.
    let nested = export(
        dir.path(),
        &[("EXPORT_PREFIX", "raw/in/x"), ("STAGING_PREFIX", "raw/in")],
    );
    assert!(!nested.status.success());
    let stderr = String::from_utf8_lossy(&nested.stderr);
    assert!(stderr.contains("EXPORT_PREFIX"), "{stderr}");
}
