//! Device items (`sk = DEVICE`): connectivity, location and registration.

use super::attrs::{Attrs, Fault};
use super::degrees::fixed6;
use super::error::{excerpt, TwinErrorKind};
use super::Change;
use crate::event::{Connection, DeviceEvent, DeviceMetadata, EventType, Location, Registration};
use crate::record::DplRecord;

const LATITUDE_LIMIT: u64 = 90;
const LONGITUDE_LIMIT: u64 = 180;

pub(super) fn derive(change: &Change<'_>, out: &mut Vec<DplRecord>) -> Result<(), Fault> {
    let (old, new) = (change.old, change.new);
    // A change that removes the attribute has nothing to report: the event
    // formats have no "unknown status" or "no position".
    let connectivity =
        new.differs(&old, "connection_status") && new.get("connection_status").is_some();
    let location = (new.differs(&old, "lat") || new.differs(&old, "lng"))
        && (new.get("lat").is_some() || new.get("lng").is_some());
    // Absent (or NULL) `registered` means false: inserting an unregistered
    // device, or writing `false` where there was none, is no registration.
    let registration = new.differs(&old, "registered")
        && old.opt_bool("registered")?.unwrap_or(false)
            != new.opt_bool("registered")?.unwrap_or(false);
    if !(connectivity || location || registration) {
        return Ok(());
    }

    let oem_id = new.str("oem_id")?;
    let oem_model = new.str("oem_model")?;
    let dsn = new.str("dsn")?;
    let metadata = |event_type| DeviceMetadata {
        oem_id: oem_id.to_owned(),
        oem_model: oem_model.to_owned(),
        dsn: dsn.to_owned(),
        event_type,
    };
    let timestamp = change.timestamp;

    if connectivity {
        let metadata = metadata(EventType::Connectivity);
        let connection = Connection {
            event_time: new.time("connection_changed_at")?,
            user_uuid: new.opt_owned("connection_user_uuid")?,
            status: new.owned("connection_status")?,
            metadata: metadata.clone(),
        };
        change.push(
            out,
            DeviceEvent::Connectivity {
                metadata,
                timestamp,
                connection,
            },
        );
    }
    if location {
        let location_event = Location {
            user_uuid: new.opt_owned("location_user_uuid")?,
            dsn: dsn.to_owned(),
            ip: new.opt_owned("ip")?,
            lat: degrees(&new, "lat", LATITUDE_LIMIT, "a latitude between -90 and 90")?,
            provider: new.owned("location_provider")?,
            created_at: new.time("location_changed_at")?,
            long: degrees(
                &new,
                "lng",
                LONGITUDE_LIMIT,
                "a longitude between -180 and 180",
            )?,
        };
        change.push(
            out,
            DeviceEvent::Location {
                metadata: metadata(EventType::Location),
                location_event,
                timestamp,
            },
        );
    }
    if registration {
        let registration_event = Registration {
            dsn: dsn.to_owned(),
            user_uuid: new.opt_owned("registration_user_uuid")?,
            registered: new.opt_bool("registered")?.unwrap_or(false),
            registration_type: new.owned("registration_type")?,
            registered_at: new.opt_time("registered_at")?,
            unregistered_at: new.opt_time("unregistered_at")?,
        };
        change.push(
            out,
            DeviceEvent::Registration {
                metadata: metadata(EventType::Registration),
                registration_event,
                timestamp,
            },
        );
    }
    Ok(())
}

/// The vendor's six-decimal text of a required `N` coordinate.
fn degrees(
    image: &Attrs<'_>,
    name: &str,
    limit: u64,
    expected: &'static str,
) -> Result<String, Fault> {
    let text = image.number_text(name)?;
    fixed6(text, limit).ok_or_else(|| {
        Fault::at(
            &image.path(name),
            TwinErrorKind::InvalidNumber {
                text: excerpt(text),
                expected,
            },
        )
    })
}
