//! JSON text laid out as `serde_json::to_string_pretty` lays it out (two
//! spaces of indent, `"key": value`, `{}` and `[]` when empty), but from
//! the text itself: keys keep their order and every token its bytes.
//!
//! Why not `serde_json::Value`: its map sorts keys unless serde_json's
//! `preserve_order` feature is on, and features unify over the whole build
//! (the SDK's test utilities turn it on under `cargo test --workspace`,
//! `cargo run -p demo` builds without it), so the order would depend on how
//! the demo was built; it also prints numbers anew (the vendor's
//! `1.59886711E12` comes out as `1598867110000.0`).

use serde::de::IgnoredAny;

const INDENT: &str = "  ";

/// `json` pretty-printed, in its own key order. Taking the whitespace
/// outside strings away again gives `json` without its whitespace.
pub fn pretty(json: &str) -> Result<String, serde_json::Error> {
    // Only valid JSON is laid out: what follows trusts its structure.
    serde_json::from_str::<IgnoredAny>(json)?;
    let mut out = String::with_capacity(2 * json.len());
    let mut depth = 0usize;
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => copy_string(&mut chars, &mut out),
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                skip_whitespace(&mut chars);
                if chars.next_if_eq(&close).is_some() {
                    out.push(close);
                } else {
                    depth += 1;
                    new_line(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                new_line(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                new_line(&mut out, depth);
            }
            ':' => out.push_str(": "),
            // JSON's whitespace between tokens (RFC 8259, section 2).
            ' ' | '\t' | '\n' | '\r' => {}
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Copies a string's text after its opening quote, up to and with its
/// closing quote; an escaped quote does not close it.
fn copy_string(chars: &mut impl Iterator<Item = char>, out: &mut String) {
    out.push('"');
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => out.extend(chars.next()),
            '"' => return,
            _ => {}
        }
    }
}

fn skip_whitespace(chars: &mut std::iter::Peekable<impl Iterator<Item = char>>) {
    while chars
        .next_if(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        .is_some()
    {}
}

fn new_line(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use dpl::{CustomerPayload, DeviceEvent};

    fn fixture(name: &str) -> String {
        let path = crate::stack::Stack::repo_root()
            .join("tests/fixtures/seed")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The `Data` of the third record of the seed's `get-records` example
    /// ("Verify data"), as the vendor's stream held it.
    const SEED_DATA: &str = "eyJtZXRhZGF0YSI6eyJvZW1faWQiOiJhYmNkMTIzNCIsIm9lbV9tb2RlbCI6ImxlZGV2YiIsImRzbiI6IkFDMDAwVzAwMDAwMDAwMSIsInByb3BlcnR5X25hbWUiOiJCbHVlX0xFRCIsImRpc3BsYXlfbmFtZSI6IkJsdWVfTEVEIiwiYmFzZV90eXBlIjoiYm9vbGVhbiIsImV2ZW50X3R5cGUiOiJkYXRhcG9pbnQifSwiZGF0YXBvaW50Ijp7ImlkIjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIiwidXBkYXRlZF9hdCI6IjIwMjAtMDgtMzFUMDk6NDU6MDdaIiwiY3JlYXRlZF9hdCI6IjIwMjAtMDgtMzFUMDk6NDU6MDdaIiwiZWNobyI6ZmFsc2UsImNsb3NlZCI6ZmFsc2UsInZhbHVlIjoiMCIsIm1ldGFkYXRhIjp7fSwidXNlcl91dWlkIjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIiwiZGlzY2FyZGVkIjpmYWxzZSwic2NvcGUiOiJ1c2VyIiwiZGlyZWN0aW9uIjoiaW5wdXQifSwidGltZXN0YW1wIjoxLjU5ODg2NzExRTEyfQ==";

    #[test]
    fn the_seeds_stream_bytes_print_as_the_seeds_decoded_example() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(SEED_DATA)
            .unwrap();
        let printed = pretty(std::str::from_utf8(&data).unwrap()).unwrap();
        assert_eq!(
            printed + "\n",
            fixture("kinesis_decoded_vendor.json"),
            "the vendor's bytes, laid out, are the vendor's decoded example (keys, order, numbers)"
        );
    }

    #[test]
    fn our_payload_of_the_seeds_event_prints_as_the_seeds_decoded_example() {
        let documented = fixture("kinesis_decoded.json");
        let event = DeviceEvent::from_customer_json(documented.as_bytes()).unwrap();
        let payload = CustomerPayload(&event).to_json();
        let printed = pretty(std::str::from_utf8(&payload).unwrap()).unwrap();
        assert_eq!(printed + "\n", documented);
    }

    #[test]
    fn strings_keep_their_text_and_empty_containers_stay_on_one_line() {
        let json = r#"{"z":"a \"quoted\", {braced} [text]: \\","a":[],"m":{},"n":[1,{"k":null}],"e":"\u00e9"}"#;
        assert_eq!(
            pretty(json).unwrap(),
            "{\n  \"z\": \"a \\\"quoted\\\", {braced} [text]: \\\\\",\n  \"a\": [],\n  \"m\": {},\n  \
             \"n\": [\n    1,\n    {\n      \"k\": null\n    }\n  ],\n  \"e\": \"\\u00e9\"\n}"
        );
    }

    #[test]
    fn whitespace_between_tokens_is_laid_out_anew() {
        assert_eq!(
            pretty(" {\n\t\"b\" : [ ] ,\r\n \"a\":{ } } ").unwrap(),
            "{\n  \"b\": [],\n  \"a\": {}\n}"
        );
    }

    #[test]
    fn what_is_not_json_is_refused() {
        for text in ["", "{\"a\":1", "{\"a\" 1}", "[1,]", "{'a':1}"] {
            assert!(pretty(text).is_err(), "{text:?}");
        }
    }
}
