//! The Glue tables of `template.yaml` describe the CSV files the export
//! writes: one table per exported type, named by its export name, with the
//! CSV encoder's columns (`dpl::csv::columns`) in order, partitioned by OEM
//! and hour through partition projection over the export layout.

use std::collections::BTreeMap;

use dpl::csv::{columns, export_name};
use dpl::EventType;
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    // CloudFormation short forms (`!Ref X`, `!Sub ...`) load as tagged values.
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// A scalar, or the string under a `!Sub` tag.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Tagged(tagged) if tagged.tag == "!Sub" => text(&tagged.value),
        other => panic!("not a string or !Sub: {other:?}"),
    }
}

/// The template's Glue tables by name: (resource, TableInput).
fn glue_tables(template: &Value) -> BTreeMap<String, Value> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Glue::Table"))
        .map(|r| {
            let input = r["Properties"]["TableInput"].clone();
            (text(&input["Name"]), input)
        })
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_sequence()
        .expect("a list of columns")
        .iter()
        .map(|c| text(&c["Name"]))
        .collect()
}

#[test]
fn every_exported_type_has_one_table_and_no_other_table_exists() {
    let tables = glue_tables(&template());
    let mut expected: Vec<&str> = EventType::ALL.into_iter().map(export_name).collect();
    expected.sort();
    let found: Vec<&str> = tables.keys().map(String::as_str).collect();
    assert_eq!(found, expected);
}

#[test]
fn table_columns_are_the_csv_columns_in_order_all_strings() {
    let tables = glue_tables(&template());
    for event_type in EventType::ALL {
        let name = export_name(event_type);
        let table = &tables[name];
        let descriptor = &table["StorageDescriptor"];
        assert_eq!(
            names(&descriptor["Columns"]),
            columns(event_type),
            "{name}: columns differ from dpl::csv::columns"
        );
        for column in descriptor["Columns"].as_sequence().unwrap() {
            assert_eq!(text(&column["Type"]), "string", "{name}: {column:?}");
        }
        assert_eq!(
            text(&descriptor["SerdeInfo"]["SerializationLibrary"]),
            "org.apache.hadoop.hive.serde2.OpenCSVSerde"
        );
        let serde = &descriptor["SerdeInfo"]["Parameters"];
        assert_eq!(text(&serde["separatorChar"]), ",");
        assert_eq!(text(&serde["quoteChar"]), "\"");
    }
}

#[test]
fn tables_are_partitioned_by_projection_over_the_export_layout() {
    let tables = glue_tables(&template());
    for event_type in EventType::ALL {
        let name = export_name(event_type);
        let table = &tables[name];
        assert_eq!(names(&table["PartitionKeys"]), ["oem", "hour"], "{name}");
        let parameters = &table["Parameters"];
        let parameter = |key: &str| text(&parameters[key]);
        assert_eq!(parameter("projection.enabled"), "true", "{name}");
        assert_eq!(parameter("projection.oem.type"), "injected", "{name}");
        assert_eq!(parameter("projection.hour.type"), "date", "{name}");
        assert_eq!(parameter("projection.hour.interval"), "1", "{name}");
        assert_eq!(
            parameter("projection.hour.interval.unit"),
            "HOURS",
            "{name}"
        );
        // The folder name of an hour, as the export writes it.
        let format = parameter("projection.hour.format");
        assert_eq!(format, "yyyy-MM-dd-HH:mm:ss", "{name}");
        let hour = dpl::Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        assert_eq!(hour.folder_name().to_string().len(), format.len());
        // `${!x}` is `!Sub`'s escape of a literal `${x}`.
        assert_eq!(
            parameter("storage.location.template"),
            format!("s3://${{ExportBucket}}/exports/${{!oem}}/{name}/${{!hour}}/"),
            "{name}"
        );
        // The template's path is the export key's folder.
        let layout = dpl::export::Layout::default();
        let key = layout.export_key(&dpl::export::Partition {
            hour,
            oem_id: "OEM".into(),
            event_type,
        });
        let folder = format!("{}/OEM/{name}/{}/", layout.exports, hour.folder_name());
        assert!(key.starts_with(&folder), "{key} is not under {folder}");
    }
}
