//! Property items (`sk = PROPERTY#{name}`): datapoint and datapointack.

use std::str::FromStr;

use super::attrs::{Attrs, Fault};
use super::error::{excerpt, TwinErrorKind};
use super::{Change, MAX_VALUE_BYTES};
use crate::event::{
    AckValue, BaseType, Datapoint, DatapointAck, DatapointMetadata, DeviceEvent, EventType,
    PropertyMetadata,
};
use crate::record::DplRecord;
use crate::time::Timestamp;

pub(super) fn derive(change: &Change<'_>, out: &mut Vec<DplRecord>) -> Result<(), Fault> {
    let (old, new) = (change.old, change.new);
    let new_datapoint = new.opt_map("datapoint")?;
    let new_ack = new.opt_map("ack")?;
    // Raw comparisons first: a record that rewrites the same datapoint and
    // ack (the common case for unrelated changes) reads nothing else.
    let datapoint_changed = new_datapoint.is_some() && new.get("datapoint") != old.get("datapoint");
    let ack_changed = new_ack.is_some() && new.get("ack") != old.get("ack");
    let old_datapoint = if datapoint_changed || ack_changed {
        old.opt_map("datapoint")?
    } else {
        None
    };

    // A datapoint event when the datapoint's id is new (a rewrite of the
    // same datapoint, e.g. its `closed` flag, is not a new datapoint).
    let datapoint = match new_datapoint {
        Some(datapoint) if datapoint_changed => {
            let id = datapoint.str("id")?;
            let old_id = old_datapoint.and_then(|d| d.get("id"));
            (old_id != datapoint.get("id")).then_some((datapoint, id))
        }
        _ => None,
    };
    // A datapointack event when an ack appears or its ack_id changes.
    let ack = match new_ack {
        Some(ack) if ack_changed => {
            ack.str("ack_id")?;
            let old_ack_id = old.opt_map("ack")?.and_then(|a| a.get("ack_id"));
            (old_ack_id != ack.get("ack_id")).then_some(ack)
        }
        _ => None,
    };
    if datapoint.is_none() && ack.is_none() {
        return Ok(());
    }

    let property = Property::read(&new)?;
    if let Some((datapoint, id)) = datapoint {
        let fields = DatapointFields::read(&datapoint, id, property.base_type)?;
        let body = Datapoint {
            id: fields.id,
            updated_at: fields.updated_at,
            created_at: fields.created_at,
            echo: fields.echo,
            closed: fields.closed,
            value: fields.value.to_owned(),
            metadata: fields.metadata,
            user_uuid: fields.user_uuid,
            discarded: datapoint.bool("discarded")?,
            scope: datapoint.owned("scope")?,
            direction: new.owned("direction")?,
        };
        change.push(
            out,
            DeviceEvent::Datapoint {
                metadata: property.metadata(EventType::Datapoint, None),
                datapoint: body,
                timestamp: change.timestamp,
            },
        );
    }
    if let Some(ack) = ack {
        let body = ack_body(&ack, new_datapoint, old_datapoint, property.base_type)?;
        let resource_tags = new.string_list("resource_tags")?;
        change.push(
            out,
            DeviceEvent::DatapointAck {
                metadata: property.metadata(EventType::DatapointAck, Some(resource_tags)),
                datapointack: body,
                timestamp: change.timestamp,
            },
        );
    }
    Ok(())
}

/// The ack's own fields, plus the datapoint fields of the datapoint it acks
/// (`ack.id`): the new image's `datapoint` if it has that id, else the old
/// image's (a record that both replaces the datapoint and records the ack of
/// the one before). The item keeps no other datapoint, so an ack for any
/// other one is an error rather than an event with another datapoint's
/// value.
fn ack_body(
    ack: &Attrs<'_>,
    new_datapoint: Option<Attrs<'_>>,
    old_datapoint: Option<Attrs<'_>>,
    base_type: BaseType,
) -> Result<DatapointAck, Fault> {
    let id = ack.str("id")?;
    let acked = [new_datapoint, old_datapoint]
        .into_iter()
        .flatten()
        .find(|datapoint| matches!(datapoint.opt_str("id"), Ok(Some(dp_id)) if dp_id == id))
        .ok_or_else(|| {
            Fault::at(
                &ack.path("id"),
                TwinErrorKind::AckedDatapointUnknown { id: excerpt(id) },
            )
        })?;
    let fields = DatapointFields::read(&acked, id, base_type)?;
    let value = match fields.number {
        Some(number) => AckValue::Number(number),
        None => AckValue::Text(fields.value.to_owned()),
    };
    Ok(DatapointAck {
        id: fields.id,
        created_at_from_device: ack.opt_time("created_at_from_device")?,
        updated_at: fields.updated_at,
        created_at: fields.created_at,
        user_uuid: fields.user_uuid,
        echo: fields.echo,
        closed: fields.closed,
        value,
        ack_message: ack.integer("ack_message")?,
        ack_status: ack.integer("ack_status")?,
        ack_id: ack.owned("ack_id")?,
        acked_at: ack.time("acked_at")?,
        metadata: fields.metadata,
    })
}

/// The property-level attributes every property event's metadata has.
struct Property<'a> {
    oem_id: &'a str,
    oem_model: &'a str,
    dsn: &'a str,
    property_name: &'a str,
    display_name: &'a str,
    base_type: BaseType,
}

impl<'a> Property<'a> {
    fn read(item: &Attrs<'a>) -> Result<Self, Fault> {
        let base_type = item.str("base_type")?;
        let base_type = BaseType::from_str(base_type).map_err(|_| {
            Fault::at(
                &item.path("base_type"),
                TwinErrorKind::UnknownBaseType(excerpt(base_type)),
            )
        })?;
        Ok(Property {
            oem_id: item.str("oem_id")?,
            oem_model: item.str("oem_model")?,
            dsn: item.str("dsn")?,
            property_name: item.str("property_name")?,
            display_name: item.str("display_name")?,
            base_type,
        })
    }

    fn metadata(
        &self,
        event_type: EventType,
        resource_tags: Option<Vec<String>>,
    ) -> PropertyMetadata {
        PropertyMetadata {
            oem_id: self.oem_id.to_owned(),
            oem_model: self.oem_model.to_owned(),
            dsn: self.dsn.to_owned(),
            property_name: self.property_name.to_owned(),
            display_name: self.display_name.to_owned(),
            base_type: self.base_type,
            resource_tags,
            event_type,
        }
    }
}

/// The fields a datapoint and the ack of it share.
struct DatapointFields<'a> {
    id: String,
    updated_at: Timestamp,
    created_at: Timestamp,
    echo: bool,
    closed: bool,
    user_uuid: Option<String>,
    /// The value's text: an `N` attribute's text as stored, an `S` as is.
    value: &'a str,
    /// The value as a JSON number, for non-text base types.
    number: Option<serde_json::Number>,
    metadata: DatapointMetadata,
}

impl<'a> DatapointFields<'a> {
    fn read(datapoint: &Attrs<'a>, id: &str, base_type: BaseType) -> Result<Self, Fault> {
        let value = datapoint.number_or_string("value")?;
        let value_fault = |kind| Fault::at(&datapoint.path("value"), kind);
        if value.len() > MAX_VALUE_BYTES {
            return Err(value_fault(TwinErrorKind::ValueTooLarge {
                bytes: value.len(),
                limit: MAX_VALUE_BYTES,
            }));
        }
        // Boolean properties hold 0 / 1, the other numeric ones a number;
        // checked here so a datapoint and its ack agree on what is valid.
        let number = if base_type.is_text() {
            None
        } else {
            Some(finite_number(value).ok_or_else(|| {
                value_fault(TwinErrorKind::InvalidNumber {
                    text: excerpt(value),
                    expected: "a finite number (the value of a numeric or boolean property)",
                })
            })?)
        };
        Ok(DatapointFields {
            id: id.to_owned(),
            updated_at: datapoint.time("updated_at")?,
            created_at: datapoint.time("created_at")?,
            echo: datapoint.bool("echo")?,
            closed: datapoint.bool("closed")?,
            user_uuid: datapoint.opt_owned("user_uuid")?,
            value,
            number,
            metadata: datapoint.string_map("metadata")?,
        })
    }
}

/// `text` as a JSON number, if it is one and is finite. DynamoDB numbers are
/// JSON numbers (at most 38 digits, magnitude below 10^126); integers beyond
/// 64 bits become the nearest double, as serde_json reads them.
fn finite_number(text: &str) -> Option<serde_json::Number> {
    let number = serde_json::Number::from_str(text).ok()?;
    match number.as_f64() {
        Some(f) if f.is_finite() => Some(number),
        _ => None,
    }
}
