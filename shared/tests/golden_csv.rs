//! Golden tests: the seed's four CSV examples ("Downloading events"), stored
//! byte for byte under `tests/fixtures/seed/{type}.csv` with their header
//! lines in `{type}.header.csv`, are what the encoder writes for events that
//! hold the same values (`dpl::examples`).

use std::path::PathBuf;

use dpl::csv::{columns, row, write_row};
use dpl::examples::seed_csv_examples;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn each_seed_csv_example_is_written_byte_for_byte() {
    for (stem, event) in seed_csv_examples() {
        let expected = fixture(&format!("{stem}.csv"));
        let mut out = Vec::new();
        write_row(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected,
            "{stem}.csv differs"
        );
        assert_eq!(row(&event), expected, "{stem}.csv differs (row)");
    }
}

#[test]
fn columns_match_the_seed_header_lines() {
    for (stem, event) in seed_csv_examples() {
        let header = fixture(&format!("{stem}.header.csv"));
        assert_eq!(
            columns(event.event_type()).join(",") + "\n",
            header,
            "{stem}.header.csv differs"
        );
    }
}
