//! The stream functions' parameters in `template.yaml` allow exactly what
//! the functions accept (`dpl::streams::function::StreamConfig`) and
//! default to what the code defaults to: a value the template lets through
//! but the function refuses would fail every invocation after a deploy.

use std::collections::HashMap;

use dpl::streams::engine::{DEFAULT_BUDGET, DEFAULT_RETENTION};
use dpl::streams::function::{
    ConfigError, StreamConfig, BUDGET_MS_VAR, CATCH_UP_QUEUE_URL_VAR, CONCURRENCY_VAR,
    DELIVERY_STATE_TABLE_VAR, DPL_RETENTION_HOURS_VAR, DPL_STREAM_VAR, SUBSCRIPTIONS_TABLE_VAR,
};
use dpl::streams::Transport;
use serde_yaml::Value;

fn parameters() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let template: Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    template["Parameters"].clone()
}

/// The function's configuration with `name` set to `value`.
fn read(name: &str, value: &str) -> Result<StreamConfig, ConfigError> {
    let vars: HashMap<&str, &str> = HashMap::from([
        (SUBSCRIPTIONS_TABLE_VAR, "subs"),
        (DELIVERY_STATE_TABLE_VAR, "state"),
        (DPL_STREAM_VAR, "dpl"),
        (CATCH_UP_QUEUE_URL_VAR, "https://sqs/q"),
        ("BUCKET", "bucket"),
        (name, value),
    ]);
    StreamConfig::from_lookup(Transport::Kinesis, |n| vars.get(n).map(|v| (*v).to_owned()))
}

fn number(parameter: &Value, key: &str) -> u64 {
    parameter[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: {parameter:?}"))
}

/// A numeric parameter's range is the one the function takes: its bounds
/// pass, one past them does not.
fn same_range(parameter: &str, var: &str) {
    let p = &parameters()[parameter];
    let (min, max) = (number(p, "MinValue"), number(p, "MaxValue"));
    for ok in [min, max] {
        assert!(read(var, &ok.to_string()).is_ok(), "{parameter} {ok}");
    }
    for bad in [min - 1, max + 1] {
        assert!(
            matches!(
                read(var, &bad.to_string()),
                Err(ConfigError::Invalid { .. })
            ),
            "{parameter}: {bad} passes the function but not the template"
        );
    }
}

#[test]
fn the_dpl_retention_parameter_is_what_the_functions_take() {
    same_range("DplRetentionHours", DPL_RETENTION_HOURS_VAR);
    let default = number(&parameters()["DplRetentionHours"], "Default");
    assert_eq!(default * 3_600, DEFAULT_RETENTION.as_secs());
}

#[test]
fn the_budget_defaults_to_the_engines() {
    let p = &parameters()["SubscriptionBudgetMs"];
    assert_eq!(u128::from(number(p, "Default")), DEFAULT_BUDGET.as_millis());
    for ms in [number(p, "MinValue"), number(p, "MaxValue")] {
        assert!(read(BUDGET_MS_VAR, &ms.to_string()).is_ok());
    }
}

#[test]
fn the_concurrency_pattern_allows_exactly_what_the_functions_take() {
    let p = &parameters()["DestinationConcurrency"];
    let pattern = regex_lite::Regex::new(p["AllowedPattern"].as_str().unwrap()).unwrap();
    assert!(pattern.is_match(""), "empty keeps the defaults");
    for n in 0..=1_100u32 {
        let text = n.to_string();
        assert_eq!(
            pattern.is_match(&text),
            read(CONCURRENCY_VAR, &text).is_ok(),
            "DestinationConcurrency {n}: template and function disagree"
        );
    }
    assert!(!pattern.is_match("01") && !pattern.is_match("abc"));
}

#[test]
fn the_default_customer_role_pattern_is_a_name_prefix_and_role_star_is_refused() {
    let p = &parameters()["CustomerRoleArnPattern"];
    let default = p["Default"].as_str().unwrap();
    assert_eq!(default, "arn:aws:iam::*:role/dpl-delivery-*");
    let pattern = regex_lite::Regex::new(p["AllowedPattern"].as_str().unwrap()).unwrap();
    for allowed in [
        default,
        "arn:aws:iam::210987654321:role/dpl-delivery-*",
        "arn:aws:iam::210987654321:role/dpl-delivery-writer",
        "arn:aws-cn:iam::*:role/streams/dpl-*",
    ] {
        assert!(pattern.is_match(allowed), "{allowed} refused");
    }
    for refused in [
        "arn:aws:iam::*:role/*",
        "*",
        "arn:aws:iam::*:*",
        "arn:aws:iam::123:role/x",
        "arn:aws:iam::*:role/a*b*",
    ] {
        assert!(!pattern.is_match(refused), "{refused} allowed");
    }
}
