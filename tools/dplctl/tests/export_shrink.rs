//! `dplctl export` never replaces a file from fewer staging objects than it
//! was made from, unless `--allow-shrink`, and then says so: the binary run
//! on a local directory with the bucket's layout (no AWS needed).

use std::path::Path;
use std::process::Command;

use dpl::examples::seed_record;
use dpl::export::keys::BatchRange;
use dpl::export::staging::encode;
use dpl::export::{Layout, Partition};
use dpl::{EventType, Timestamp};

struct Run {
    ok: bool,
    stderr: String,
}

fn export(root: &Path, extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_dplctl"))
        .args(["export", "--hour", "2020-08-28T09", "--to"])
        .arg(root)
        .args(extra)
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Stages `count` connectivity events as one object of batch `first`.
fn stage(root: &Path, partition: &Partition, first: u64, count: u64) -> String {
    let records: Vec<_> = (first..first + count)
        .map(|n| {
            seed_record(
                EventType::Connectivity,
                "1234abcd",
                "ledevb",
                "AC000W000000001",
                "",
                n,
            )
        })
        .collect();
    let (first_seq, last_seq) = (
        format!("{}", 1_000 + first),
        format!("{}", 1_000 + first + count),
    );
    let key = Layout::default()
        .staging_key(
            partition,
            &BatchRange {
                shard_id: "shardId-000000000000",
                first_sequence: &first_seq,
                last_sequence: &last_seq,
            },
        )
        .unwrap();
    let path = root.join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, encode(&records)).unwrap();
    key
}

#[test]
fn an_export_from_expired_staging_is_refused_unless_allowed_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let partition = Partition {
        hour: Timestamp::parse("2020-08-28T09:00:00Z").unwrap(),
        oem_id: "1234abcd".into(),
        event_type: EventType::Connectivity,
    };
    let expired = stage(root, &partition, 0, 3);
    stage(root, &partition, 3, 2);
    let first = export(root, &[]);
    assert!(first.ok, "{}", first.stderr);
    let csv_path = root.join(Layout::default().export_key(&partition));
    let csv = std::fs::read(&csv_path).unwrap();
    assert_eq!(csv.iter().filter(|&&b| b == b'\n').count(), 5);

    std::fs::remove_file(root.join(&expired)).unwrap();
    let refused = export(root, &[]);
    assert!(!refused.ok);
    for needle in ["REFUSED", expired.as_str(), "--allow-shrink", "5 rows"] {
        assert!(
            refused.stderr.contains(needle),
            "{needle:?} not in {}",
            refused.stderr
        );
    }
    assert_eq!(
        std::fs::read(&csv_path).unwrap(),
        csv,
        "the file is left as it is"
    );

    let allowed = export(root, &["--allow-shrink"]);
    assert!(allowed.ok, "{}", allowed.stderr);
    assert!(allowed.stderr.contains("WARNING"), "{}", allowed.stderr);
    assert!(allowed.stderr.contains(&expired), "{}", allowed.stderr);
    let shrunk = std::fs::read(&csv_path).unwrap();
    assert_eq!(shrunk.iter().filter(|&&b| b == b'\n').count(), 2);
}
