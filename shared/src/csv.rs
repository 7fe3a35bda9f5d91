//! Headerless CSV rows of the hourly export.
//!
//! One [`DeviceEvent`] becomes one row; [`columns`] names the cells of each
//! type, in the order the vendor's tech note lists them (connection,
//! datapoint, location, registration), its field list (datapointack), or our
//! own documented order (activation, which the vendor did not export).
//! `docs/csv-format.md` is the user-facing description of the same rules.
//!
//! Cell rules:
//! - dates are [`Timestamp::java_date`] (`Mon Feb 03 21:30:45 UTC 2020`);
//! - `display_name`, `metadata` (its compact JSON) and values of text
//!   properties ([`BaseType::is_text`]) are standard base64 with padding;
//!   whether a value is encoded depends on the property's base type only,
//!   never on whether the JSON value was a number or a string;
//! - booleans are `true` / `false`, integers and JSON numbers their decimal
//!   text;
//! - a missing value (`None`) is an empty cell, as is an empty text;
//! - text is written as is (leading spaces included, `" 10.000000"`), and
//!   quoted as RFC 4180 says only when it holds `,`, `"`, CR or LF: wrapped in
//!   `"` with inner `"` doubled. A text starting with U+FEFF is quoted too:
//!   readers drop a byte order mark at the start of a file, and the first
//!   cell of a file would lose it.
//!
//! Rows end with a single LF (`\n`), not RFC 4180's CRLF: one byte less per
//! row, the Unix convention of the tools customers read the files with, and
//! accepted by every reader we document (DuckDB, Athena's OpenCSVSerde,
//! Python's `csv`, the `csv` crate).
//!
//! Encoding cannot fail: every writer appends to a `Vec<u8>`, whose
//! `io::Write` never returns an error.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::engine::GeneralPurpose;
use base64::write::EncoderWriter;
use base64::Engine as _;

use crate::event::{AckValue, BaseType, DatapointMetadata, DeviceEvent, EventType};
use crate::time::Timestamp;

/// The byte that ends every row.
pub const LINE_END: u8 = b'\n';

/// U+FEFF in UTF-8. Readers drop it at the start of a file (the `csv` crate
/// and DuckDB do), so a cell that starts with it is quoted to keep it.
const BOM: &[u8] = "\u{feff}".as_bytes();

const ACTIVATION: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "id",
    "device_type",
    "status",
    "event_time",
];

/// The seed's "Connection" example.
const CONNECTION: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "event_time",
    "user_uuid",
    "status",
];

/// The seed's "Datapoint" example.
const DATAPOINT: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "property_name",
    "display_name",
    "base_type",
    "id",
    "updated_at",
    "created_at",
    "user_uuid",
    "echo",
    "closed",
    "discarded",
    "scope",
    "value",
    "metadata",
    "direction",
];

/// The vendor's datapointack field list (Data Export tech note).
const DATAPOINT_ACK: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "property_name",
    "display_name",
    "base_type",
    "id",
    "created_at",
    "updated_at",
    "created_at_from_device",
    "user_uuid",
    "echo",
    "closed",
    "value",
    "metadata",
    "ack_id",
    "ack_status",
    "ack_message",
    "acked_at",
];

/// The seed's "Location" example.
const LOCATION: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "ip",
    "lat",
    "long",
    "provider",
    "user_uuid",
    "created_at",
];

/// The seed's "Registration" example.
const REGISTRATION: &[&str] = &[
    "oem_id",
    "oem_model",
    "dsn",
    "user_uuid",
    "registered",
    "registration_type",
    "unregistered_at",
    "registered_at",
];

/// The column names of a type's rows, in row order. Joined with `,` they are
/// the header line a user may prepend (the files themselves have none).
pub fn columns(event_type: EventType) -> &'static [&'static str] {
    match event_type {
        EventType::Activation => ACTIVATION,
        EventType::Connectivity => CONNECTION,
        EventType::Datapoint => DATAPOINT,
        EventType::DatapointAck => DATAPOINT_ACK,
        EventType::Location => LOCATION,
        EventType::Registration => REGISTRATION,
    }
}

/// The name of a type in the export: the vendor's export calls connectivity
/// events `connection`; the other types keep their event type name.
pub fn export_name(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Connectivity => "connection",
        other => other.as_str(),
    }
}

/// Appends one row for `event`, ended by [`LINE_END`], to `out`.
pub fn write_row(event: &DeviceEvent, out: &mut Vec<u8>) {
    let mut row = Row::new(out);
    match event {
        DeviceEvent::Activation {
            metadata,
            activation: a,
        } => {
            row.text(&metadata.oem_id);
            row.text(&metadata.oem_model);
            row.text(&metadata.dsn);
            row.text(&a.id);
            row.text(&a.device_type);
            row.text(&a.status);
            row.date(a.event_time);
        }
        DeviceEvent::Connectivity {
            metadata,
            connection: c,
            ..
        } => {
            row.text(&metadata.oem_id);
            row.text(&metadata.oem_model);
            row.text(&metadata.dsn);
            row.date(c.event_time);
            row.opt_text(c.user_uuid.as_deref());
            row.text(&c.status);
        }
        DeviceEvent::Datapoint {
            metadata: m,
            datapoint: d,
            ..
        } => {
            row.text(&m.oem_id);
            row.text(&m.oem_model);
            row.text(&m.dsn);
            row.text(&m.property_name);
            row.base64(m.display_name.as_bytes());
            row.text(m.base_type.as_str());
            row.text(&d.id);
            row.date(d.updated_at);
            row.date(d.created_at);
            row.opt_text(d.user_uuid.as_deref());
            row.boolean(d.echo);
            row.boolean(d.closed);
            row.boolean(d.discarded);
            row.text(&d.scope);
            row.value(m.base_type, &d.value);
            row.metadata(&d.metadata);
            row.text(&d.direction);
        }
        DeviceEvent::DatapointAck {
            metadata: m,
            datapointack: a,
            ..
        } => {
            row.text(&m.oem_id);
            row.text(&m.oem_model);
            row.text(&m.dsn);
            row.text(&m.property_name);
            row.base64(m.display_name.as_bytes());
            row.text(m.base_type.as_str());
            row.text(&a.id);
            row.date(a.created_at);
            row.date(a.updated_at);
            row.opt_date(a.created_at_from_device);
            row.opt_text(a.user_uuid.as_deref());
            row.boolean(a.echo);
            row.boolean(a.closed);
            match &a.value {
                AckValue::Text(text) => row.value(m.base_type, text),
                AckValue::Number(number) => row.number_value(m.base_type, number),
            }
            row.metadata(&a.metadata);
            row.text(&a.ack_id);
            row.integer(a.ack_status);
            row.integer(a.ack_message);
            row.date(a.acked_at);
        }
        DeviceEvent::Location {
            metadata,
            location_event: l,
            ..
        } => {
            row.text(&metadata.oem_id);
            row.text(&metadata.oem_model);
            row.text(&metadata.dsn);
            row.opt_text(l.ip.as_deref());
            row.text(&l.lat);
            row.text(&l.long);
            row.text(&l.provider);
            row.opt_text(l.user_uuid.as_deref());
            row.date(l.created_at);
        }
        DeviceEvent::Registration {
            metadata,
            registration_event: r,
            ..
        } => {
            row.text(&metadata.oem_id);
            row.text(&metadata.oem_model);
            row.text(&metadata.dsn);
            row.opt_text(r.user_uuid.as_deref());
            row.boolean(r.registered);
            row.text(&r.registration_type);
            row.opt_date(r.unregistered_at);
            row.opt_date(r.registered_at);
        }
    }
    debug_assert_eq!(row.cells, columns(event.event_type()).len());
    row.out.push(LINE_END);
}

/// One row for `event` as text, [`LINE_END`] included. Prefer [`write_row`]
/// into a reused buffer on hot paths.
pub fn row(event: &DeviceEvent) -> String {
    let mut out = Vec::with_capacity(256);
    write_row(event, &mut out);
    // Every byte written is either copied from a `str` or ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes cells, each after a separator but the first.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    cells: usize,
}

impl<'a> Row<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Row { out, cells: 0 }
    }

    /// Starts a cell and returns the buffer to write it into.
    fn cell(&mut self) -> &mut Vec<u8> {
        if self.cells > 0 {
            self.out.push(b',');
        }
        self.cells += 1;
        self.out
    }

    /// Text as is, quoted only when it holds a separator, a quote or a line
    /// end, or starts with a byte order mark.
    fn text(&mut self, text: &str) {
        let out = self.cell();
        let bytes = text.as_bytes();
        let needs_quotes = bytes.starts_with(BOM)
            || bytes
                .iter()
                .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
        if !needs_quotes {
            out.extend_from_slice(bytes);
            return;
        }
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        for part in bytes.split_inclusive(|&b| b == b'"') {
            out.extend_from_slice(part);
            if part.last() == Some(&b'"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    }

    fn opt_text(&mut self, text: Option<&str>) {
        self.text(text.unwrap_or_default());
    }

    /// Standard base64 of `bytes`; its alphabet never needs quoting.
    fn base64(&mut self, bytes: &[u8]) {
        let out = self.cell();
        let start = out.len();
        // 4 output bytes per started group of 3: cannot overflow for a slice.
        out.resize(start + bytes.len().div_ceil(3) * 4, 0);
        // `encode_slice` fails only when the output is too short, and it is
        // exactly long enough; should it fail anyway, the cell stays empty.
        let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
    }

    /// Base64 of whatever `write` produces, streamed without a scratch buffer.
    fn base64_with(
        &mut self,
        write: impl FnOnce(&mut EncoderWriter<'_, GeneralPurpose, &mut Vec<u8>>),
    ) {
        let mut encoder = EncoderWriter::new(self.cell(), &STANDARD);
        write(&mut encoder);
        // Writing to a `Vec` cannot fail.
        let _ = encoder.finish();
    }

    fn date(&mut self, at: Timestamp) {
        at.push_java_date(self.cell());
    }

    fn opt_date(&mut self, at: Option<Timestamp>) {
        match at {
            Some(at) => self.date(at),
            None => {
                self.cell();
            }
        }
    }

    fn boolean(&mut self, value: bool) {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.cell().extend_from_slice(text);
    }

    fn integer(&mut self, value: i64) {
        // Writing to a `Vec` cannot fail.
        let _ = write!(self.cell(), "{value}");
    }

    /// A property value held as text: base64 for text properties.
    fn value(&mut self, base_type: BaseType, text: &str) {
        if base_type.is_text() {
            self.base64(text.as_bytes());
        } else {
            self.text(text);
        }
    }

    /// A property value held as a JSON number: its JSON text, base64 for
    /// text properties.
    fn number_value(&mut self, base_type: BaseType, number: &serde_json::Number) {
        if base_type.is_text() {
            self.base64_with(|w| {
                let _ = write!(w, "{number}");
            });
        } else {
            // A JSON number never holds a character that needs quoting.
            let _ = write!(self.cell(), "{number}");
        }
    }

    /// Base64 of the compact JSON object.
    fn metadata(&mut self, metadata: &DatapointMetadata) {
        if metadata.0.is_empty() {
            // base64 of `{}`, the common case.
            self.cell().extend_from_slice(b"e30=");
            return;
        }
        self.base64_with(|w| {
            // String keys and values always serialize; the writer cannot fail.
            let _ = serde_json::to_writer(w, metadata);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        Activation, Connection, Datapoint, DatapointAck, DeviceMetadata, Location,
        PropertyMetadata, Registration,
    };
    use proptest::prelude::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn device(event_type: EventType) -> DeviceMetadata {
        DeviceMetadata {
            oem_id: "abcd1234".into(),
            oem_model: "ledevb".into(),
            dsn: "AC000W000000001".into(),
            event_type,
        }
    }

    fn property(event_type: EventType, base_type: BaseType) -> PropertyMetadata {
        PropertyMetadata {
            oem_id: "abcd1234".into(),
            oem_model: "ledevb".into(),
            dsn: "AC000W000000001".into(),
            property_name: "Blue_LED".into(),
            display_name: "Blue LED".into(),
            base_type,
            resource_tags: None,
            event_type,
        }
    }

    fn activation() -> DeviceEvent {
        DeviceEvent::Activation {
            metadata: device(EventType::Activation),
            activation: Activation {
                id: "00000000-0000-0000-0000-000000000000".into(),
                device_type: "Wifi".into(),
                status: "Activated".into(),
                event_time: at("2020-08-28T09:45:36Z"),
            },
        }
    }

    fn connectivity() -> DeviceEvent {
        DeviceEvent::Connectivity {
            metadata: device(EventType::Connectivity),
            timestamp: at("2020-02-03T21:30:46Z"),
            connection: Connection {
                event_time: at("2020-02-03T21:30:45Z"),
                user_uuid: None,
                status: "Online".into(),
                metadata: device(EventType::Connectivity),
            },
        }
    }

    fn datapoint(base_type: BaseType, value: &str) -> DeviceEvent {
        DeviceEvent::Datapoint {
            metadata: property(EventType::Datapoint, base_type),
            datapoint: Datapoint {
                id: "00000000-0000-0000-0000-000000000000".into(),
                updated_at: at("2020-08-28T09:36:15Z"),
                created_at: at("2020-08-28T09:36:14Z"),
                echo: false,
                closed: true,
                value: value.into(),
                metadata: DatapointMetadata::default(),
                user_uuid: None,
                discarded: false,
                scope: "user".into(),
                direction: "input".into(),
            },
            timestamp: at("2020-08-28T09:36:16Z"),
        }
    }

    fn ack(base_type: BaseType, value: AckValue) -> DeviceEvent {
        DeviceEvent::DatapointAck {
            metadata: property(EventType::DatapointAck, base_type),
            datapointack: DatapointAck {
                id: "00000000-0000-0000-0000-000000000000".into(),
                created_at_from_device: None,
                updated_at: at("2018-09-24T10:24:57Z"),
                created_at: at("2018-09-24T10:24:56Z"),
                user_uuid: Some("00000000-0000-0000-0000-000000000000".into()),
                echo: false,
                closed: false,
                value,
                ack_message: 0,
                ack_status: 200,
                ack_id: "11111111-1111-1111-1111-111111111111".into(),
                acked_at: at("2018-09-24T10:24:58Z"),
                metadata: DatapointMetadata::default(),
            },
            timestamp: at("2020-08-28T09:36:15Z"),
        }
    }

    fn location(ip: Option<&str>) -> DeviceEvent {
        DeviceEvent::Location {
            metadata: device(EventType::Location),
            location_event: Location {
                user_uuid: None,
                dsn: "AC000W000000001".into(),
                ip: ip.map(Into::into),
                lat: " 44.787100".into(),
                provider: "user-based".into(),
                created_at: at("2020-08-28T09:11:11Z"),
                long: "-64.123400".into(),
            },
            timestamp: at("2020-08-28T09:11:12Z"),
        }
    }

    fn registration() -> DeviceEvent {
        DeviceEvent::Registration {
            metadata: device(EventType::Registration),
            registration_event: Registration {
                dsn: "AC000W000000001".into(),
                user_uuid: None,
                registered: true,
                registration_type: "Dsn".into(),
                registered_at: None,
                unregistered_at: None,
            },
            timestamp: at("2020-04-24T09:57:47Z"),
        }
    }

    fn one_of_each() -> Vec<DeviceEvent> {
        vec![
            activation(),
            connectivity(),
            datapoint(BaseType::String, "CMD_1"),
            ack(BaseType::Boolean, AckValue::Number(1.into())),
            location(Some("22.22.22.22")),
            registration(),
        ]
    }

    fn parse(row: &[u8]) -> Vec<Vec<String>> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    #[test]
    fn every_type_has_distinct_columns_starting_with_the_device() {
        for t in EventType::ALL {
            let names = columns(t);
            assert_eq!(&names[..3], ["oem_id", "oem_model", "dsn"], "{t}");
            let mut sorted = names.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{t} repeats a column");
        }
    }

    #[test]
    fn cell_count_always_equals_the_column_count() {
        for event in one_of_each() {
            let t = event.event_type();
            let line = row(&event);
            assert!(line.ends_with('\n') && !line.ends_with("\r\n"), "{line:?}");
            let records = parse(line.as_bytes());
            assert_eq!(records.len(), 1, "{t}: {line:?}");
            assert_eq!(records[0].len(), columns(t).len(), "{t}: {line:?}");
            // No quoting in ordinary rows: the comma count tells the cells.
            assert_eq!(line.matches(',').count() + 1, columns(t).len(), "{t}");
        }
    }

    #[test]
    fn write_row_appends_after_what_is_already_there() {
        let mut out = b"previous\n".to_vec();
        write_row(&registration(), &mut out);
        write_row(&registration(), &mut out);
        let line = row(&registration());
        assert_eq!(out, format!("previous\n{line}{line}").into_bytes());
    }

    #[test]
    fn activation_row_uses_the_documented_order() {
        assert_eq!(
            row(&activation()),
            "abcd1234,ledevb,AC000W000000001,00000000-0000-0000-0000-000000000000,\
             Wifi,Activated,Fri Aug 28 09:45:36 UTC 2020\n"
        );
    }

    #[test]
    fn datapointack_row_uses_the_vendor_field_order() {
        assert_eq!(
            row(&ack(BaseType::Boolean, AckValue::Number(1.into()))),
            format!(
                "abcd1234,ledevb,AC000W000000001,Blue_LED,{},boolean,\
                 00000000-0000-0000-0000-000000000000,\
                 Mon Sep 24 10:24:56 UTC 2018,Mon Sep 24 10:24:57 UTC 2018,,\
                 00000000-0000-0000-0000-000000000000,false,false,1,e30=,\
                 11111111-1111-1111-1111-111111111111,200,0,Mon Sep 24 10:24:58 UTC 2018\n",
                b64("Blue LED")
            )
        );
    }

    #[test]
    fn ack_value_encoding_follows_the_base_type() {
        let value_cell = |event: DeviceEvent| {
            let i = columns(EventType::DatapointAck)
                .iter()
                .position(|c| *c == "value")
                .unwrap();
            parse(row(&event).as_bytes())[0][i].clone()
        };
        let number = |text: &str| AckValue::Number(text.parse().unwrap());
        assert_eq!(value_cell(ack(BaseType::Boolean, number("1"))), "1");
        assert_eq!(value_cell(ack(BaseType::Integer, number("-42"))), "-42");
        assert_eq!(value_cell(ack(BaseType::Decimal, number("2.5"))), "2.5");
        assert_eq!(
            value_cell(ack(BaseType::String, AckValue::Text("CMD_1".into()))),
            "Q01EXzE="
        );
        // Text of a numeric property stays plain (and quoted if it must).
        assert_eq!(
            value_cell(ack(BaseType::Decimal, AckValue::Text("1,5".into()))),
            "1,5"
        );
        // A number for a text property is still encoded: readers decode the
        // column by base type alone.
        assert_eq!(value_cell(ack(BaseType::Message, number("7"))), b64("7"));
        assert_eq!(
            value_cell(ack(BaseType::File, AckValue::Text(String::new()))),
            ""
        );
    }

    #[test]
    fn datapoint_value_is_base64_only_for_text_properties() {
        let cells = |event: DeviceEvent| parse(row(&event).as_bytes()).remove(0);
        assert_eq!(cells(datapoint(BaseType::String, "CMD_1"))[14], "Q01EXzE=");
        assert_eq!(cells(datapoint(BaseType::Message, "a,b"))[14], b64("a,b"));
        assert_eq!(cells(datapoint(BaseType::Integer, "10"))[14], "10");
        assert_eq!(cells(datapoint(BaseType::Float, " 1.5"))[14], " 1.5");
        assert_eq!(cells(datapoint(BaseType::Boolean, "1"))[4], b64("Blue LED"));
    }

    #[test]
    fn metadata_is_base64_of_its_compact_json() {
        let mut event = datapoint(BaseType::Integer, "1");
        assert!(row(&event).contains(",e30=,"));
        if let DeviceEvent::Datapoint { datapoint, .. } = &mut event {
            datapoint.metadata = DatapointMetadata(vec![
                ("z".into(), "1".into()),
                ("a".into(), "say \"hi\", ok".into()),
            ]);
        }
        let cell = &parse(row(&event).as_bytes())[0][15];
        let json = STANDARD.decode(cell).unwrap();
        assert_eq!(json, br#"{"z":"1","a":"say \"hi\", ok"}"#);
    }

    #[test]
    fn cells_with_separators_quotes_or_line_ends_are_quoted() {
        for (status, cell) in [
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("\"", "\"\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("carriage\rreturn", "\"carriage\rreturn\""),
            ("crlf\r\n", "\"crlf\r\n\""),
            (" leading space", " leading space"),
            ("\u{feff}bom", "\"\u{feff}bom\""),
            ("b\u{feff}om", "b\u{feff}om"),
            ("semi;colon 'single'", "semi;colon 'single'"),
        ] {
            let mut event = connectivity();
            if let DeviceEvent::Connectivity { connection, .. } = &mut event {
                connection.status = status.into();
            }
            let line = row(&event);
            assert_eq!(
                line,
                format!("abcd1234,ledevb,AC000W000000001,Mon Feb 03 21:30:45 UTC 2020,,{cell}\n"),
                "{status:?}"
            );
            assert_eq!(
                parse(line.as_bytes()),
                [[
                    "abcd1234",
                    "ledevb",
                    "AC000W000000001",
                    "Mon Feb 03 21:30:45 UTC 2020",
                    "",
                    status
                ]]
            );
        }
    }

    #[test]
    fn missing_values_are_empty_cells() {
        assert_eq!(
            row(&registration()),
            "abcd1234,ledevb,AC000W000000001,,true,Dsn,,\n"
        );
        assert_eq!(
            row(&location(None)),
            "abcd1234,ledevb,AC000W000000001,, 44.787100,-64.123400,user-based,,\
             Fri Aug 28 09:11:11 UTC 2020\n"
        );
        let mut event = ack(BaseType::Boolean, AckValue::Number(0.into()));
        if let DeviceEvent::DatapointAck { datapointack, .. } = &mut event {
            datapointack.user_uuid = None;
            datapointack.created_at_from_device = Some(at("2018-09-24T10:24:55Z"));
        }
        let cells = parse(row(&event).as_bytes()).remove(0);
        assert_eq!(cells[9], "Mon Sep 24 10:24:55 UTC 2018");
        assert_eq!(cells[10], "");
    }

    #[test]
    fn connectivity_is_exported_as_connection() {
        assert_eq!(export_name(EventType::Connectivity), "connection");
        assert_eq!(export_name(EventType::DatapointAck), "datapointack");
        assert_eq!(export_name(EventType::Activation), "activation");
    }

    // ---- property test: arbitrary text survives a CSV reader ----

    /// How a column's text reads back.
    #[derive(Clone, Copy, Debug)]
    enum Cell {
        Plain,
        Base64,
    }

    /// Text with every character CSV cares about, and any other.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a ,\"\r\n\t;']{0,8}", "(?s).{0,16}", any::<String>(),]
    }

    fn time() -> impl Strategy<Value = Timestamp> {
        (0i64..=253_402_300_799_999).prop_map(|ms| Timestamp::from_millis(ms).unwrap())
    }

    fn base_type() -> impl Strategy<Value = BaseType> {
        proptest::sample::select(BaseType::ALL.to_vec())
    }

    fn metadata() -> impl Strategy<Value = DatapointMetadata> {
        proptest::collection::vec((text(), text()), 0..3).prop_map(DatapointMetadata)
    }

    fn device_meta(t: EventType) -> impl Strategy<Value = DeviceMetadata> {
        (text(), text(), text()).prop_map(move |(oem_id, oem_model, dsn)| DeviceMetadata {
            oem_id,
            oem_model,
            dsn,
            event_type: t,
        })
    }

    fn property_meta(t: EventType) -> impl Strategy<Value = PropertyMetadata> {
        (text(), text(), text(), text(), text(), base_type()).prop_map(
            move |(oem_id, oem_model, dsn, property_name, display_name, base_type)| {
                PropertyMetadata {
                    oem_id,
                    oem_model,
                    dsn,
                    property_name,
                    display_name,
                    base_type,
                    resource_tags: None,
                    event_type: t,
                }
            },
        )
    }

    fn any_event() -> impl Strategy<Value = DeviceEvent> {
        let activation = (
            device_meta(EventType::Activation),
            (text(), text(), text(), time()),
        )
            .prop_map(|(metadata, (id, device_type, status, event_time))| {
                DeviceEvent::Activation {
                    metadata,
                    activation: Activation {
                        id,
                        device_type,
                        status,
                        event_time,
                    },
                }
            });
        let connectivity = (
            device_meta(EventType::Connectivity),
            (time(), time(), proptest::option::of(text()), text()),
        )
            .prop_map(|(metadata, (timestamp, event_time, user_uuid, status))| {
                DeviceEvent::Connectivity {
                    connection: Connection {
                        event_time,
                        user_uuid,
                        status,
                        metadata: metadata.clone(),
                    },
                    metadata,
                    timestamp,
                }
            });
        let datapoint = (
            property_meta(EventType::Datapoint),
            (text(), time(), time(), any::<[bool; 3]>(), text()),
            (metadata(), proptest::option::of(text()), text(), text()),
            time(),
        )
            .prop_map(
                |(
                    metadata,
                    (id, updated_at, created_at, [echo, closed, discarded], value),
                    (dp_metadata, user_uuid, scope, direction),
                    timestamp,
                )| DeviceEvent::Datapoint {
                    metadata,
                    datapoint: Datapoint {
                        id,
                        updated_at,
                        created_at,
                        echo,
                        closed,
                        value,
                        metadata: dp_metadata,
                        user_uuid,
                        discarded,
                        scope,
                        direction,
                    },
                    timestamp,
                },
            );
        let ack_value = prop_oneof![
            any::<i64>().prop_map(|n| AckValue::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", serde_json::Number::from_f64)
                .prop_map(AckValue::Number),
            text().prop_map(AckValue::Text),
        ];
        let datapointack = (
            property_meta(EventType::DatapointAck),
            (
                text(),
                proptest::option::of(time()),
                time(),
                time(),
                proptest::option::of(text()),
                any::<[bool; 2]>(),
            ),
            (ack_value, any::<i64>(), any::<i64>(), text(), time()),
            (metadata(), time()),
        )
            .prop_map(
                |(
                    metadata,
                    (id, created_at_from_device, updated_at, created_at, user_uuid, [echo, closed]),
                    (value, ack_message, ack_status, ack_id, acked_at),
                    (ack_metadata, timestamp),
                )| DeviceEvent::DatapointAck {
                    metadata,
                    datapointack: DatapointAck {
                        id,
                        created_at_from_device,
                        updated_at,
                        created_at,
                        user_uuid,
                        echo,
                        closed,
                        value,
                        ack_message,
                        ack_status,
                        ack_id,
                        acked_at,
                        metadata: ack_metadata,
                    },
                    timestamp,
                },
            );
        let location = (
            device_meta(EventType::Location),
            (
                proptest::option::of(text()),
                text(),
                proptest::option::of(text()),
                text(),
                text(),
                text(),
                time(),
            ),
            time(),
        )
            .prop_map(
                |(metadata, (user_uuid, dsn, ip, lat, long, provider, created_at), timestamp)| {
                    DeviceEvent::Location {
                        metadata,
                        location_event: Location {
                            user_uuid,
                            dsn,
                            ip,
                            lat,
                            provider,
                            created_at,
                            long,
                        },
                        timestamp,
                    }
                },
            );
        let registration = (
            device_meta(EventType::Registration),
            (
                text(),
                proptest::option::of(text()),
                any::<bool>(),
                text(),
                proptest::option::of(time()),
                proptest::option::of(time()),
            ),
            time(),
        )
            .prop_map(
                |(
                    metadata,
                    (dsn, user_uuid, registered, registration_type, registered_at, unregistered_at),
                    timestamp,
                )| DeviceEvent::Registration {
                    metadata,
                    registration_event: Registration {
                        dsn,
                        user_uuid,
                        registered,
                        registration_type,
                        registered_at,
                        unregistered_at,
                    },
                    timestamp,
                },
            );
        prop_oneof![
            activation,
            connectivity,
            datapoint,
            datapointack,
            location,
            registration
        ]
    }

    /// What each cell should read back as, written independently of the
    /// encoder: the original values, with how they are encoded.
    fn expected(event: &DeviceEvent) -> Vec<(String, Cell)> {
        use Cell::{Base64, Plain};
        let date = |t: &Timestamp| (t.java_date().to_string(), Plain);
        let opt_date = |t: &Option<Timestamp>| {
            (
                t.map(|t| t.java_date().to_string()).unwrap_or_default(),
                Plain,
            )
        };
        let plain = |s: &str| (s.to_owned(), Plain);
        let opt = |s: &Option<String>| (s.clone().unwrap_or_default(), Plain);
        let flag = |b: bool| (b.to_string(), Plain);
        let value = |bt: BaseType, s: String| (s, if bt.is_text() { Base64 } else { Plain });
        let json = |m: &DatapointMetadata| (serde_json::to_string(m).unwrap(), Base64);
        match event {
            DeviceEvent::Activation {
                metadata: m,
                activation: a,
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                plain(&a.id),
                plain(&a.device_type),
                plain(&a.status),
                date(&a.event_time),
            ],
            DeviceEvent::Connectivity {
                metadata: m,
                connection: c,
                ..
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                date(&c.event_time),
                opt(&c.user_uuid),
                plain(&c.status),
            ],
            DeviceEvent::Datapoint {
                metadata: m,
                datapoint: d,
                ..
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                plain(&m.property_name),
                (m.display_name.clone(), Base64),
                plain(m.base_type.as_str()),
                plain(&d.id),
                date(&d.updated_at),
                date(&d.created_at),
                opt(&d.user_uuid),
                flag(d.echo),
                flag(d.closed),
                flag(d.discarded),
                plain(&d.scope),
                value(m.base_type, d.value.clone()),
                json(&d.metadata),
                plain(&d.direction),
            ],
            DeviceEvent::DatapointAck {
                metadata: m,
                datapointack: a,
                ..
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                plain(&m.property_name),
                (m.display_name.clone(), Base64),
                plain(m.base_type.as_str()),
                plain(&a.id),
                date(&a.created_at),
                date(&a.updated_at),
                opt_date(&a.created_at_from_device),
                opt(&a.user_uuid),
                flag(a.echo),
                flag(a.closed),
                value(m.base_type, a.value.to_string()),
                json(&a.metadata),
                plain(&a.ack_id),
                plain(&a.ack_status.to_string()),
                plain(&a.ack_message.to_string()),
                date(&a.acked_at),
            ],
            DeviceEvent::Location {
                metadata: m,
                location_event: l,
                ..
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                opt(&l.ip),
                plain(&l.lat),
                plain(&l.long),
                plain(&l.provider),
                opt(&l.user_uuid),
                date(&l.created_at),
            ],
            DeviceEvent::Registration {
                metadata: m,
                registration_event: r,
                ..
            } => vec![
                plain(&m.oem_id),
                plain(&m.oem_model),
                plain(&m.dsn),
                opt(&r.user_uuid),
                flag(r.registered),
                plain(&r.registration_type),
                opt_date(&r.unregistered_at),
                opt_date(&r.registered_at),
            ],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn any_text_reads_back_unchanged(event in any_event()) {
            let t = event.event_type();
            let mut out = Vec::new();
            write_row(&event, &mut out);
            prop_assert_eq!(out.last(), Some(&LINE_END));

            let mut reader = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(out.as_slice());
            let records: Vec<_> = reader.records().collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&out))))?;
            prop_assert_eq!(records.len(), 1, "{:?}", String::from_utf8_lossy(&out));
            let record = &records[0];
            prop_assert_eq!(record.len(), columns(t).len());

            let wanted = expected(&event);
            prop_assert_eq!(wanted.len(), columns(t).len());
            for ((name, cell), (original, encoding)) in columns(t).iter().zip(record).zip(wanted) {
                let read = match encoding {
                    Cell::Plain => cell.to_owned(),
                    Cell::Base64 => {
                        let bytes = STANDARD.decode(cell)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                        String::from_utf8(bytes)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?
                    }
                };
                prop_assert_eq!(read, original, "{} column {}", t, name);
            }
        }
    }
}
