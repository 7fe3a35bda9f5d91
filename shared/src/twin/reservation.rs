//! DSN reservation items (`sk = RESERVATION`): activation.

use super::attrs::Fault;
use super::Change;
use crate::event::{Activation, DeviceEvent, DeviceMetadata, EventType};
use crate::record::DplRecord;

/// `activation.status`: the only status the vendor documents.
const ACTIVATED: &str = "Activated";

/// Activation is the first provisioning of a DSN: `activated_at` appears.
/// Re-association (a new `device_id`) and rewrites of `activated_at` keep it
/// present and so cause nothing.
pub(super) fn derive(change: &Change<'_>, out: &mut Vec<DplRecord>) -> Result<(), Fault> {
    let (old, new) = (change.old, change.new);
    if old.get("activated_at").is_some() || new.get("activated_at").is_none() {
        return Ok(());
    }
    let metadata = DeviceMetadata {
        oem_id: new.owned("oem_id")?,
        oem_model: new.owned("oem_model")?,
        dsn: new.owned("dsn")?,
        event_type: EventType::Activation,
    };
    let activation = Activation {
        id: new.owned("activation_id")?,
        device_type: new.owned("device_type")?,
        status: ACTIVATED.to_owned(),
        event_time: new.time("activated_at")?,
    };
    change.push(
        out,
        DeviceEvent::Activation {
            metadata,
            activation,
        },
    );
    Ok(())
}
