//! `template.yaml` keeps staging as long as the exports it can rebuild
//! (replay and re-export reach every exported hour), and moves it to a
//! cheaper class only after the export's look-back, only for objects that
//! class does not bill up (docs/export.md, "History").

use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn default(template: &Value, parameter: &str) -> u64 {
    template["Parameters"][parameter]["Default"]
        .as_u64()
        .unwrap_or_else(|| panic!("{parameter} has a numeric default"))
}

fn bound(template: &Value, parameter: &str, bound: &str) -> u64 {
    template["Parameters"][parameter][bound]
        .as_u64()
        .unwrap_or_else(|| panic!("{parameter} has {bound}"))
}

/// The parameter a `!Ref` names.
fn reference(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => {
            tagged.value.as_str().expect("a name").to_owned()
        }
        other => panic!("not a !Ref: {other:?}"),
    }
}

/// The export bucket's lifecycle rules by id.
fn rules(template: &Value) -> Vec<Value> {
    template["Resources"]["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .expect("lifecycle rules")
        .clone()
}

fn rule(template: &Value, id: &str) -> Value {
    rules(template)
        .into_iter()
        .find(|r| r["Id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no lifecycle rule {id}"))
}

#[test]
fn staging_is_kept_as_long_as_the_exports() {
    let t = template();
    assert_eq!(
        reference(&rule(&t, "staging")["ExpirationInDays"]),
        "StagingRetentionDays"
    );
    for id in ["exports", "manifests"] {
        assert_eq!(
            reference(&rule(&t, id)["ExpirationInDays"]),
            "ExportRetentionDays"
        );
    }
    assert!(default(&t, "StagingRetentionDays") >= default(&t, "ExportRetentionDays"));
    // The vendor keeps its files 12 months.
    assert!(default(&t, "StagingRetentionDays") >= 365);
    assert!(bound(&t, "StagingRetentionDays", "MaxValue") >= default(&t, "ExportRetentionDays"));
}

#[test]
fn staging_turns_cold_only_after_the_look_back_and_only_when_it_pays() {
    let t = template();
    let cold = rule(&t, "staging-cold");
    assert_eq!(cold["Prefix"].as_str(), Some("staging/"));
    let transitions = cold["Transitions"].as_sequence().expect("transitions");
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0]["StorageClass"].as_str(), Some("GLACIER_IR"));
    assert_eq!(
        reference(&transitions[0]["TransitionInDays"]),
        "StagingColdAfterDays"
    );
    // Past the longest look-back the template allows: scheduled runs read
    // only Standard objects.
    let look_back_days = bound(&t, "ExportLookbackHours", "MaxValue").div_ceil(24);
    assert!(bound(&t, "StagingColdAfterDays", "MinValue") > look_back_days);
    // Glacier Instant Retrieval bills an object as at least 128 KiB (S3
    // pricing, "minimum billable object size"): smaller ones stay.
    let smallest = cold["ObjectSizeGreaterThan"]
        .as_u64()
        .expect("a size filter");
    assert!(smallest >= 128 * 1024, "{smallest}");
    // The class's minimum storage duration (90 days) fits in the default
    // retention after the transition.
    assert!(default(&t, "StagingRetentionDays") >= default(&t, "StagingColdAfterDays") + 90);
}

/// The hourly-export function's environment in the template.
fn export_environment(template: &Value) -> Value {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .find(|r| {
            r["Properties"]["Environment"]["Variables"]
                .get("EXPORT_TASK_QUEUE_URL")
                .is_some()
        })
        .expect("the hourly-export function")["Properties"]["Environment"]["Variables"]
        .clone()
}

#[test]
fn the_split_threshold_is_a_parameter_defaulting_to_the_codes() {
    let t = template();
    assert_eq!(
        reference(&export_environment(&t)["EXPORT_SPLIT_BYTES"]),
        "ExportSplitBytes"
    );
    assert_eq!(
        default(&t, "ExportSplitBytes"),
        dpl::export::split::DEFAULT_SPLIT_BYTES
    );
    assert!(bound(&t, "ExportSplitBytes", "MinValue") >= 1);
}
