//! The twin table and the derivation of device events from its stream.
//!
//! [`derive_events`] turns one DynamoDB Streams record of the twin table
//! into the DPL records it causes, following the vendor's event table:
//!
//! | item (`sk`)        | attribute change                              | event        |
//! |--------------------|-----------------------------------------------|--------------|
//! | `RESERVATION`      | `activated_at` absent -> present              | activation   |
//! | `DEVICE`           | `connection_status`                           | connectivity |
//! | `DEVICE`           | `lat` or `lng`                                | location     |
//! | `DEVICE`           | `registered` (absent = false)                 | registration |
//! | `PROPERTY#{name}`  | `datapoint.id` (a new datapoint)              | datapoint    |
//! | `PROPERTY#{name}`  | `ack` appears or its `ack_id` changes         | datapointack |
//!
//! `docs/twin-table.md` is the item schema and the full rule book; this
//! module is the one implementation of it. It is pure: no I/O, no clock (the
//! event time is the record's `ApproximateCreationDateTime`), no randomness
//! (event ids are derived from the record's `eventID`), so a retried record
//! yields byte-identical events.
//!
//! Layout: `attrs` reads typed attributes with their paths, `degrees`
//! prints coordinates, `device`, `reservation` and `property` derive the
//! events of each item kind, `error` says what went wrong.

mod attrs;
mod degrees;
mod device;
mod error;
mod property;
mod reservation;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType};

pub(crate) use error::excerpt;
pub use error::{TwinError, TwinErrorKind};

use crate::event::DeviceEvent;
use crate::record::{DplRecord, EventId, StreamOrder, StreamSequence};
use crate::time::Timestamp;
use attrs::{Attrs, Fault, Side};

/// Partition key prefix of every item of a device: `DEVICE#{dsn}`.
pub const DEVICE_PK_PREFIX: &str = "DEVICE#";
/// Sort key of the device item.
pub const DEVICE_SK: &str = "DEVICE";
/// Sort key of the DSN reservation item.
pub const RESERVATION_SK: &str = "RESERVATION";
/// Sort key prefix of property items: `PROPERTY#{property_name}`.
pub const PROPERTY_SK_PREFIX: &str = "PROPERTY#";

/// Longest datapoint value (the text of `datapoint.value`) turned into an
/// event: 128 KiB.
///
/// - Every DPL record must fit one Kinesis record (1 MiB, `limits.md`) and
///   one Event Hubs event (1 MB). A value is written once per event, and
///   JSON can escape one byte into six (`\u0001`): 6 x 128 KiB = 768 KiB,
///   leaving more than 200 KiB for the rest of the event.
/// - Customers pay per KB streamed (`ayla-facts.md`); a value this size
///   already costs 128 transactions per event.
/// - It is far above the vendor's own limit for string properties (1,024
///   bytes). The vendor's message properties go to 512 KB, but a twin item
///   cannot exceed DynamoDB's 400 KB item limit anyway; message values
///   between 128 KiB and 400 KB are rejected rather than risking a record
///   that no stream accepts.
pub const MAX_VALUE_BYTES: usize = 128 * 1024;

/// The DPL records caused by one DynamoDB Streams record of the twin table,
/// in [`EventType`](crate::EventType) order (connectivity, location, registration from a
/// device item; datapoint before datapointack from a property item).
///
/// - `INSERT` compares the new image with an empty one; `MODIFY` needs both
///   images; `REMOVE` yields nothing (deleting a twin item is housekeeping,
///   not a device event: deregistration and going offline are attribute
///   changes the platform writes before any delete).
/// - Items whose `sk` is none of ours yield nothing: other item kinds may
///   share the table.
/// - Each event's top-level `timestamp` is the record's
///   `ApproximateCreationDateTime` (whole seconds, as DynamoDB Streams
///   writes it); body times come from the item. Its id is
///   [`EventId::derive`]`(eventID, event type)`, its
///   [`StreamOrder`] the record's `SequenceNumber` and its index in the
///   returned list.
///
/// Errors are permanent (see [`TwinError`]). Attributes are only checked
/// when an event needs them, so a record that changes nothing of interest
/// passes whatever its other attributes hold.
pub fn derive_events(record: &EventRecord) -> Result<Vec<DplRecord>, TwinError> {
    let mut out = Vec::new();
    derive(record, &mut out)
        .map_err(|fault| TwinError::new(&record.event_id, fault.attribute, fault.kind))?;
    Ok(out)
}

/// What one stream record changed, and what every event of it shares.
#[derive(Clone, Copy)]
struct Change<'a> {
    stream_event_id: &'a str,
    sequence_number: StreamSequence,
    timestamp: Timestamp,
    old: Attrs<'a>,
    new: Attrs<'a>,
}

impl Change<'_> {
    fn push(&self, out: &mut Vec<DplRecord>, dpl_event: DeviceEvent) {
        let event_id = EventId::derive(self.stream_event_id, dpl_event.event_type());
        let stream_order = StreamOrder {
            sequence_number: self.sequence_number,
            // At most one event per type, six types.
            index: u8::try_from(out.len()).expect("a record yields at most six events"),
        };
        out.push(DplRecord {
            dpl_event,
            event_id,
            stream_order: Some(stream_order),
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Insert,
    Modify,
    Remove,
}

enum ItemKind {
    Device,
    Reservation,
    Property,
}

fn derive(record: &EventRecord, out: &mut Vec<DplRecord>) -> Result<(), Fault> {
    let change = &record.change;
    let operation = match record.event_name.as_str() {
        "INSERT" => Operation::Insert,
        "MODIFY" => Operation::Modify,
        "REMOVE" => Operation::Remove,
        other => {
            return Err(Fault::at(
                "eventName",
                TwinErrorKind::UnknownEventName(error::excerpt(other)),
            ))
        }
    };
    if change.stream_view_type != Some(StreamViewType::NewAndOldImages) {
        return Err(Fault::at(
            "StreamViewType",
            TwinErrorKind::NoOldImage {
                view: change.stream_view_type.clone(),
            },
        ));
    }
    let timestamp = creation_time(change.approximate_creation_date_time)?;
    let sequence_number = sequence_number(change.sequence_number.as_deref())?;
    if operation == Operation::Remove {
        return Ok(());
    }

    let keys = Attrs::new(Some(change.keys.inner()), Side::Keys);
    let sk = keys.str("sk")?;
    let kind = if sk == DEVICE_SK {
        ItemKind::Device
    } else if sk == RESERVATION_SK {
        ItemKind::Reservation
    } else if sk.starts_with(PROPERTY_SK_PREFIX) {
        ItemKind::Property
    } else {
        return Ok(());
    };

    let new_image = change.new_image.inner();
    if new_image.is_empty() {
        return Err(Fault::at("NewImage", TwinErrorKind::MissingAttribute));
    }
    let old_image = match operation {
        Operation::Modify if change.old_image.inner().is_empty() => {
            return Err(Fault::at(
                "OldImage",
                TwinErrorKind::NoOldImage {
                    view: change.stream_view_type.clone(),
                },
            ))
        }
        Operation::Modify => Some(change.old_image.inner()),
        Operation::Insert | Operation::Remove => None,
    };
    let change = Change {
        stream_event_id: &record.event_id,
        sequence_number,
        timestamp,
        old: Attrs::new(old_image, Side::Old),
        new: Attrs::new(Some(new_image), Side::New),
    };
    match kind {
        ItemKind::Device => device::derive(&change, out),
        ItemKind::Reservation => reservation::derive(&change, out),
        ItemKind::Property => property::derive(&change, out),
    }
}

/// `SequenceNumber`: every real record has one, and it orders the events of
/// a device within one second.
fn sequence_number(text: Option<&str>) -> Result<StreamSequence, Fault> {
    const ATTRIBUTE: &str = "SequenceNumber";
    let text = text.ok_or_else(|| Fault::at(ATTRIBUTE, TwinErrorKind::MissingAttribute))?;
    text.parse()
        .map_err(|_| Fault::at(ATTRIBUTE, TwinErrorKind::BadSequenceNumber(excerpt(text))))
}

/// `ApproximateCreationDateTime`, floored to the second. DynamoDB Streams
/// writes whole seconds; aws_lambda_events 1.2 reads a fraction, which only
/// emulators write, as micro- rather than milliseconds, so it is dropped
/// rather than trusted. Absent reads as the epoch: refused, since every
/// real record has it and an epoch event time would land in 1970's export.
fn creation_time(at: chrono::DateTime<chrono::Utc>) -> Result<Timestamp, Fault> {
    const ATTRIBUTE: &str = "ApproximateCreationDateTime";
    let seconds = at.timestamp();
    if seconds == 0 {
        return Err(Fault::at(ATTRIBUTE, TwinErrorKind::MissingCreationTime));
    }
    Timestamp::from_seconds(seconds).map_err(|_| {
        Fault::at(
            ATTRIBUTE,
            TwinErrorKind::BadTimestamp {
                text: seconds.to_string(),
            },
        )
    })
}
