//! A simulated fleet: what the platform would write to the twins table over
//! a few hours, item by item, exactly as `docs/twin-table.md` defines the
//! items, and which events each write must produce.
//!
//! Devices are reserved, provisioned (activation), come online and get a
//! position (connectivity, location), are registered by a user
//! (registration), report sensor values (datapoint), take commands from the
//! app and acknowledge them (datapoint, datapointack); some go offline and
//! come back, move, are unregistered and registered again. Some writes
//! change nothing an event reports (a new IP address, a DSN re-associated
//! with another device id): they must produce no event. A tenth of the DSNs
//! are reserved but never provisioned.
//!
//! The same seed gives the same writes (ids, values, times relative to the
//! start).
//!
//! **Time.** The simulated hours play in compressed real time from the
//! moment the demo starts ([`Playback`]): every time in an item is the real
//! time its write is due, and the writer ([`crate::twins::play`]) writes it
//! then, so the item's times agree with the time the twins table's stream
//! stamps its record with, the time its events are filed under.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dpl::{DeviceEvent, EventType, Timestamp};

/// A twins-table item.
pub type Item = HashMap<String, Av>;

const HOUR_MS: i64 = 3_600_000;

/// Real time one device's simulated hour takes. A device writes about 8
/// twin items an hour (the default 50 devices, 819 writes in 2 hours), so
/// any fleet writes about 40 items a second, a pace moto keeps with room
/// to spare: the writer waits for each write's time instead of trailing it.
pub const PLAY_MS_PER_DEVICE_HOUR: i64 = 200;

/// How simulated time maps onto real time: the simulation starts at
/// `start` and runs `speed` times faster than the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Playback {
    pub start: Timestamp,
    pub speed: i64,
}

impl Playback {
    /// From `start`, a simulated hour in [`PLAY_MS_PER_DEVICE_HOUR`] per
    /// device (never slower than the clock).
    pub fn for_fleet(start: Timestamp, devices: usize) -> Self {
        let devices = i64::try_from(devices).unwrap_or(i64::MAX);
        let real_hour = PLAY_MS_PER_DEVICE_HOUR.saturating_mul(devices).max(1);
        Self {
            start,
            speed: (HOUR_MS / real_hour).max(1),
        }
    }

    /// The real time `offset` simulated milliseconds after the start.
    fn at(self, offset: i64) -> Timestamp {
        at(self.start.millis() + offset / self.speed)
    }
}

/// The two example OEMs (and their customers' subscriptions, see
/// `customers.rs`).
pub const OEMS: [Oem; 2] = [
    Oem {
        id: "0dfc7900",
        name: "Acme Home",
        models: &[SMART_PLUG, THERMOSTAT],
    },
    Oem {
        id: "1a2b3c4d",
        name: "Breeze Air",
        models: &[AIR_PURIFIER],
    },
];

pub struct Oem {
    pub id: &'static str,
    pub name: &'static str,
    pub models: &'static [Model],
}

pub struct Model {
    pub name: &'static str,
    pub device_type: &'static str,
    pub properties: &'static [Property],
}

/// A property of a model: `direction` `input` is to the device (set from
/// the app, acknowledged), `output` from the device (sensor values).
pub struct Property {
    pub name: &'static str,
    pub display_name: &'static str,
    pub base_type: &'static str,
    pub direction: &'static str,
    pub values: Values,
}

#[derive(Clone, Copy)]
pub enum Values {
    Boolean,
    Integer(i64, i64),
    /// Range and decimals.
    Decimal(f64, f64, usize),
    Text(&'static [&'static str]),
}

const SMART_PLUG: Model = Model {
    name: "smartplug",
    device_type: "Wifi",
    properties: &[
        Property {
            name: "outlet",
            display_name: "Outlet",
            base_type: "boolean",
            direction: "input",
            values: Values::Boolean,
        },
        Property {
            name: "power_w",
            display_name: "Power (W)",
            base_type: "decimal",
            direction: "output",
            values: Values::Decimal(0.0, 1800.0, 1),
        },
        Property {
            name: "energy_kwh",
            display_name: "Energy today (kWh)",
            base_type: "decimal",
            direction: "output",
            values: Values::Decimal(0.0, 12.0, 3),
        },
    ],
};

const THERMOSTAT: Model = Model {
    name: "thermostat",
    device_type: "Wifi",
    properties: &[
        Property {
            name: "target_temp",
            display_name: "Target temperature",
            base_type: "integer",
            direction: "input",
            values: Values::Integer(16, 26),
        },
        Property {
            name: "mode",
            display_name: "Mode",
            base_type: "string",
            direction: "input",
            values: Values::Text(&["heat", "cool", "auto", "off"]),
        },
        Property {
            name: "temp",
            display_name: "Room temperature",
            base_type: "decimal",
            direction: "output",
            values: Values::Decimal(15.0, 28.0, 1),
        },
        Property {
            name: "hum",
            display_name: "Humidity (%)",
            base_type: "integer",
            direction: "output",
            values: Values::Integer(25, 70),
        },
    ],
};

const AIR_PURIFIER: Model = Model {
    name: "airpurifier",
    device_type: "Wifi",
    properties: &[
        Property {
            name: "fan_speed",
            display_name: "Fan speed",
            base_type: "integer",
            direction: "input",
            values: Values::Integer(0, 5),
        },
        Property {
            name: "pm25",
            display_name: "PM2.5 (µg/m³)",
            base_type: "integer",
            direction: "output",
            values: Values::Integer(2, 180),
        },
        Property {
            name: "filter_life",
            display_name: "Filter life (%)",
            base_type: "integer",
            direction: "output",
            values: Values::Integer(0, 100),
        },
        Property {
            name: "status_msg",
            display_name: "Status message",
            base_type: "message",
            direction: "output",
            values: Values::Text(&[
                "Air quality good",
                "Filter change due soon",
                "Auto mode: raising fan speed",
                "Night mode on",
            ]),
        },
    ],
};

/// Cities devices are placed around (lat, lng).
const CITIES: [(f64, f64); 6] = [
    (44.6488, -63.5752),
    (52.5200, 13.4050),
    (37.7749, -122.4194),
    (-33.8688, 151.2093),
    (35.6762, 139.6503),
    (48.8566, 2.3522),
];
const ROOMS: [&str; 5] = ["kitchen", "living-room", "bedroom", "office", "garage"];
const REGISTRATION_TYPES: [&str; 4] = ["Same-LAN", "Dsn", "Button-Push", "AP-Mode"];

/// One event a write must produce, as far as the simulator knows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expected {
    pub dsn: String,
    pub oem_id: String,
    pub oem_model: String,
    pub event_type: EventType,
    pub property: Option<String>,
    /// What tells this event from the DSN's others of its type: the
    /// activation id, connection status, location time, registered flag,
    /// datapoint id or ack id.
    pub detail: String,
}

impl Expected {
    /// The same summary of an event derived by twin-events.
    pub fn of(event: &DeviceEvent) -> Self {
        let key = event.key();
        let detail = match event {
            DeviceEvent::Activation { activation, .. } => activation.id.clone(),
            DeviceEvent::Connectivity { connection, .. } => connection.status.clone(),
            DeviceEvent::Datapoint { datapoint, .. } => datapoint.id.clone(),
            DeviceEvent::DatapointAck { datapointack, .. } => datapointack.ack_id.clone(),
            DeviceEvent::Location { location_event, .. } => {
                location_event.created_at.iso_seconds().to_string()
            }
            DeviceEvent::Registration {
                registration_event, ..
            } => registration_event.registered.to_string(),
        };
        Self {
            dsn: key.dsn.to_owned(),
            oem_id: key.oem_id.to_owned(),
            oem_model: key.oem_model.to_owned(),
            event_type: key.event_type,
            property: key.property_name.map(str::to_owned),
            detail,
        }
    }
}

/// What a write does, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Reserved,
    Provisioned,
    DeviceCreated,
    PropertyCreated,
    Registered,
    Unregistered,
    SensorValue,
    Command,
    Ack,
    WentOffline,
    CameOnline,
    Moved,
    NewIp,
    Reassociated,
}

impl Change {
    pub fn describe(self) -> &'static str {
        match self {
            Change::Reserved => "DSN reserved",
            Change::Provisioned => "DSN provisioned (activated)",
            Change::DeviceCreated => "device twin created (online, located)",
            Change::PropertyCreated => "property twin created",
            Change::Registered => "registered by a user",
            Change::Unregistered => "unregistered",
            Change::SensorValue => "sensor value reported",
            Change::Command => "command sent from the app",
            Change::Ack => "command acknowledged",
            Change::WentOffline => "went offline",
            Change::CameOnline => "came back online",
            Change::Moved => "moved",
            Change::NewIp => "new IP address (no event)",
            Change::Reassociated => "re-associated to another device id (no event)",
        }
    }
}

/// One PutItem of the simulation.
#[derive(Clone, Debug)]
pub struct TwinWrite {
    /// Simulated time of the change (the item's own times).
    pub at: Timestamp,
    pub change: Change,
    pub item: Item,
    pub expected: Vec<Expected>,
}

impl TwinWrite {
    /// `pk` and `sk`: writes of one key must keep their order.
    pub fn key(&self) -> (String, String) {
        let text = |name: &str| match self.item.get(name) {
            Some(Av::S(s)) => s.clone(),
            _ => String::new(),
        };
        (text("pk"), text("sk"))
    }
}

/// A simulated fleet and its writes, in time order.
#[derive(Debug)]
pub struct Fleet {
    /// When the playback starts and ends, in real time.
    pub start: Timestamp,
    pub end: Timestamp,
    /// Simulated hours, played `playback.speed` times faster.
    pub hours: u32,
    pub playback: Playback,
    pub devices: usize,
    pub writes: Vec<TwinWrite>,
}

impl Fleet {
    /// Every event the writes must produce, by DSN, in write order.
    pub fn expected_by_dsn(&self) -> BTreeMap<String, Vec<Expected>> {
        let mut by_dsn: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
        for expected in self.writes.iter().flat_map(|w| &w.expected) {
            by_dsn
                .entry(expected.dsn.clone())
                .or_default()
                .push(expected.clone());
        }
        by_dsn
    }

    pub fn expected_count(&self) -> usize {
        self.writes.iter().map(|w| w.expected.len()).sum()
    }

    /// How many writes of each kind.
    pub fn changes(&self) -> BTreeMap<Change, usize> {
        let mut counts = BTreeMap::new();
        for write in &self.writes {
            *counts.entry(write.change).or_insert(0) += 1;
        }
        counts
    }
}

/// `devices` devices over `hours` simulated hours, played as `playback`
/// says, from `seed`.
pub fn simulate(devices: usize, hours: u32, playback: Playback, seed: u64) -> Fleet {
    let span = i64::from(hours) * HOUR_MS;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut writes: Vec<(i64, usize, TwinWrite)> = Vec::new();
    for n in 0..devices {
        let mut device = Device::new(n, &mut rng, playback.start);
        for write in device.life(&mut rng, playback, span) {
            writes.push((write.at.millis(), writes.len(), write));
        }
    }
    // Time order across devices; each device's own writes are in order.
    writes.sort_by_key(|(at, seq, _)| (*at, *seq));
    Fleet {
        start: playback.start,
        end: playback.at(span),
        hours,
        playback,
        devices,
        writes: writes.into_iter().map(|(_, _, w)| w).collect(),
    }
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u8(8..12),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis).expect("simulated times are recent")
}

fn iso(t: Timestamp) -> Av {
    Av::S(t.iso_seconds().to_string())
}

fn s(text: &str) -> Av {
    Av::S(text.to_owned())
}

/// A number as DynamoDB stores it: no trailing zeros.
fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }
    } else {
        text
    }
}

#[derive(Clone)]
struct Datapoint {
    id: String,
    value: Av,
    at: Timestamp,
    user_uuid: Option<String>,
    metadata: Vec<(&'static str, String)>,
}

#[derive(Clone)]
struct Ack {
    id: String,
    ack_id: String,
    status: u16,
    at: Timestamp,
    from_device: Timestamp,
}

struct PropertyState {
    spec: &'static Property,
    datapoint: Option<Datapoint>,
    ack: Option<Ack>,
}

struct Device {
    dsn: String,
    oem: &'static Oem,
    model: &'static Model,
    provisioned: bool,
    activation_id: String,
    device_id: u32,
    activated_at: Option<Timestamp>,
    owner: String,
    online: bool,
    connection_changed_at: Timestamp,
    lat: f64,
    lng: f64,
    location_provider: &'static str,
    location_changed_at: Timestamp,
    ip: String,
    registered: bool,
    registration_type: &'static str,
    registered_at: Option<Timestamp>,
    unregistered_at: Option<Timestamp>,
    room: &'static str,
    properties: Vec<PropertyState>,
}

impl Device {
    fn new(n: usize, rng: &mut fastrand::Rng, start: Timestamp) -> Self {
        // Three in five devices are Acme's.
        let oem = if n % 5 < 3 { &OEMS[0] } else { &OEMS[1] };
        let model = &oem.models[n % oem.models.len()];
        let (lat, lng) = CITIES[rng.usize(..CITIES.len())];
        Self {
            dsn: format!("AC000W{:09}", 100_000 + n),
            oem,
            model,
            provisioned: n % 10 != 9,
            activation_id: uuid(rng),
            device_id: 8_600_000 + rng.u32(..100_000),
            activated_at: None,
            owner: uuid(rng),
            online: false,
            connection_changed_at: start,
            lat: lat + rng.f64() * 0.2 - 0.1,
            lng: lng + rng.f64() * 0.2 - 0.1,
            location_provider: "ip-based",
            location_changed_at: start,
            ip: random_ip(rng),
            registered: false,
            registration_type: REGISTRATION_TYPES[rng.usize(..REGISTRATION_TYPES.len())],
            registered_at: None,
            unregistered_at: None,
            room: ROOMS[rng.usize(..ROOMS.len())],
            properties: model
                .properties
                .iter()
                .map(|spec| PropertyState {
                    spec,
                    datapoint: None,
                    ack: None,
                })
                .collect(),
        }
    }

    fn expected(&self, event_type: EventType, property: Option<&str>, detail: String) -> Expected {
        Expected {
            dsn: self.dsn.clone(),
            oem_id: self.oem.id.to_owned(),
            oem_model: self.model.name.to_owned(),
            event_type,
            property: property.map(str::to_owned),
            detail,
        }
    }

    /// Every write of this device's life in the `span` simulated
    /// milliseconds of `playback`, in order.
    fn life(&mut self, rng: &mut fastrand::Rng, playback: Playback, span: i64) -> Vec<TwinWrite> {
        let at = |offset: i64| playback.at(offset);
        let end = span;
        let mut out = Vec::new();
        let mut t = rng.i64(0..600) * 1000;
        out.push(self.write_reservation(at(t), Change::Reserved, vec![]));
        if !self.provisioned {
            return out;
        }
        // Provisioned within the first third of the window.
        t += rng.i64(30..(span / 3000).max(31)) * 1000;
        self.activated_at = Some(at(t));
        let activation = self.expected(EventType::Activation, None, self.activation_id.clone());
        out.push(self.write_reservation(at(t), Change::Provisioned, vec![activation]));

        t += 2000;
        self.online = true;
        self.connection_changed_at = at(t);
        self.location_changed_at = at(t);
        let created = vec![
            self.expected(EventType::Connectivity, None, "Online".into()),
            self.expected(EventType::Location, None, at(t).iso_seconds().to_string()),
        ];
        out.push(self.write_device(Change::DeviceCreated, at(t), created));
        for index in 0..self.properties.len() {
            t += 1000;
            let datapoint = self.new_datapoint(rng, index, at(t), None);
            out.push(self.write_property(index, Change::PropertyCreated, at(t), datapoint));
        }

        t += rng.i64(60..600) * 1000;
        if t < end {
            out.push(self.register(rng, at(t)));
        }
        loop {
            t += rng.i64(240..900) * 1000;
            if t >= end {
                break;
            }
            let roll = rng.u32(..100);
            match roll {
                0..=49 => {
                    let outputs: Vec<usize> = self.indexes("output");
                    let index = outputs[rng.usize(..outputs.len())];
                    let expected = self.new_datapoint(rng, index, at(t), None);
                    out.push(self.write_property(index, Change::SensorValue, at(t), expected));
                }
                50..=71 => {
                    let inputs = self.indexes("input");
                    let index = inputs[rng.usize(..inputs.len())];
                    let owner = Some(self.owner.clone());
                    let expected = self.new_datapoint(rng, index, at(t), owner);
                    out.push(self.write_property(index, Change::Command, at(t), expected));
                    let acked = t + rng.i64(1..5) * 1000;
                    if acked < end {
                        t = acked;
                        out.push(self.ack(rng, index, at(t), at(t - 1000)));
                    }
                }
                72..=79 => {
                    out.push(self.connect(false, at(t)));
                    t += rng.i64(120..1200) * 1000;
                    if t < end {
                        out.push(self.connect(true, at(t)));
                    }
                }
                80..=86 => {
                    self.lat = (self.lat + rng.f64() * 0.02 - 0.01).clamp(-89.0, 89.0);
                    self.lng = (self.lng + rng.f64() * 0.02 - 0.01).clamp(-179.0, 179.0);
                    self.location_provider = "user-based";
                    self.location_changed_at = at(t);
                    let expected = vec![self.expected(
                        EventType::Location,
                        None,
                        at(t).iso_seconds().to_string(),
                    )];
                    out.push(self.write_device(Change::Moved, at(t), expected));
                }
                87..=91 => {
                    self.ip = random_ip(rng);
                    out.push(self.write_device(Change::NewIp, at(t), vec![]));
                }
                92..=95 if self.registered => {
                    self.registered = false;
                    self.unregistered_at = Some(at(t));
                    let expected =
                        vec![self.expected(EventType::Registration, None, "false".into())];
                    out.push(self.write_device(Change::Unregistered, at(t), expected));
                    t += rng.i64(60..600) * 1000;
                    if t < end {
                        self.owner = uuid(rng);
                        out.push(self.register(rng, at(t)));
                    }
                }
                _ => {
                    self.device_id += 1;
                    out.push(self.write_reservation(at(t), Change::Reassociated, vec![]));
                }
            }
        }
        out
    }

    fn indexes(&self, direction: &str) -> Vec<usize> {
        (0..self.properties.len())
            .filter(|&i| self.properties[i].spec.direction == direction)
            .collect()
    }

    fn register(&mut self, rng: &mut fastrand::Rng, t: Timestamp) -> TwinWrite {
        self.registered = true;
        self.registered_at = Some(t);
        self.registration_type = REGISTRATION_TYPES[rng.usize(..REGISTRATION_TYPES.len())];
        let expected = vec![self.expected(EventType::Registration, None, "true".into())];
        self.write_device(Change::Registered, t, expected)
    }

    fn connect(&mut self, online: bool, t: Timestamp) -> TwinWrite {
        self.online = online;
        self.connection_changed_at = t;
        let status = if online { "Online" } else { "Offline" };
        let expected = vec![self.expected(EventType::Connectivity, None, status.into())];
        let change = if online {
            Change::CameOnline
        } else {
            Change::WentOffline
        };
        self.write_device(change, t, expected)
    }

    /// A new datapoint of property `index`; its expected event.
    fn new_datapoint(
        &mut self,
        rng: &mut fastrand::Rng,
        index: usize,
        t: Timestamp,
        user_uuid: Option<String>,
    ) -> Vec<Expected> {
        let spec = self.properties[index].spec;
        let value = match spec.values {
            Values::Boolean => Av::N(rng.u8(..2).to_string()),
            Values::Integer(low, high) => Av::N(rng.i64(low..=high).to_string()),
            Values::Decimal(low, high, decimals) => {
                Av::N(number(low + rng.f64() * (high - low), decimals))
            }
            Values::Text(choices) => s(choices[rng.usize(..choices.len())]),
        };
        let metadata = if user_uuid.is_some() {
            vec![("source", "mobile-app".to_owned())]
        } else {
            vec![]
        };
        let id = uuid(rng);
        self.properties[index].datapoint = Some(Datapoint {
            id: id.clone(),
            value,
            at: t,
            user_uuid,
            metadata,
        });
        vec![self.expected(EventType::Datapoint, Some(spec.name), id)]
    }

    /// The device's ack of property `index`'s command, sent at
    /// `from_device` and arrived at `t`.
    fn ack(
        &mut self,
        rng: &mut fastrand::Rng,
        index: usize,
        t: Timestamp,
        from_device: Timestamp,
    ) -> TwinWrite {
        let state = &mut self.properties[index];
        let datapoint = state.datapoint.as_ref().expect("a command before its ack");
        let ack_id = uuid(rng);
        state.ack = Some(Ack {
            id: datapoint.id.clone(),
            ack_id: ack_id.clone(),
            status: if rng.u8(..20) == 0 { 500 } else { 200 },
            at: t,
            from_device,
        });
        let name = state.spec.name;
        let expected = vec![self.expected(EventType::DatapointAck, Some(name), ack_id)];
        self.write_property(index, Change::Ack, t, expected)
    }

    fn base(&self, sk: &str) -> Item {
        Item::from([
            ("pk".to_owned(), s(&format!("DEVICE#{}", self.dsn))),
            ("sk".to_owned(), s(sk)),
            ("dsn".to_owned(), s(&self.dsn)),
            ("oem_id".to_owned(), s(self.oem.id)),
            ("oem_model".to_owned(), s(self.model.name)),
        ])
    }

    fn write_reservation(
        &self,
        t: Timestamp,
        change: Change,
        expected: Vec<Expected>,
    ) -> TwinWrite {
        let mut item = self.base("RESERVATION");
        item.insert("device_type".into(), s(self.model.device_type));
        item.insert("activation_id".into(), s(&self.activation_id));
        if let Some(activated_at) = self.activated_at {
            item.insert("activated_at".into(), iso(activated_at));
            item.insert("device_id".into(), s(&self.device_id.to_string()));
        }
        TwinWrite {
            at: t,
            change,
            item,
            expected,
        }
    }

    fn write_device(&self, change: Change, t: Timestamp, expected: Vec<Expected>) -> TwinWrite {
        let mut item = self.base("DEVICE");
        let status = if self.online { "Online" } else { "Offline" };
        item.insert("connection_status".into(), s(status));
        item.insert(
            "connection_changed_at".into(),
            iso(self.connection_changed_at),
        );
        item.insert("lat".into(), Av::N(number(self.lat, 4)));
        item.insert("lng".into(), Av::N(number(self.lng, 4)));
        item.insert("ip".into(), s(&self.ip));
        item.insert("location_provider".into(), s(self.location_provider));
        item.insert("location_changed_at".into(), iso(self.location_changed_at));
        if self.location_provider == "user-based" {
            item.insert("location_user_uuid".into(), s(&self.owner));
        }
        item.insert("registered".into(), Av::Bool(self.registered));
        item.insert("registration_type".into(), s(self.registration_type));
        if let Some(t) = self.registered_at {
            item.insert("registered_at".into(), iso(t));
            item.insert("registration_user_uuid".into(), s(&self.owner));
        }
        if let Some(t) = self.unregistered_at {
            item.insert("unregistered_at".into(), iso(t));
        }
        TwinWrite {
            at: t,
            change,
            item,
            expected,
        }
    }

    fn write_property(
        &self,
        index: usize,
        change: Change,
        t: Timestamp,
        expected: Vec<Expected>,
    ) -> TwinWrite {
        let state = &self.properties[index];
        let spec = state.spec;
        let mut item = self.base(&format!("PROPERTY#{}", spec.name));
        item.insert("property_name".into(), s(spec.name));
        item.insert("display_name".into(), s(spec.display_name));
        item.insert("base_type".into(), s(spec.base_type));
        item.insert("direction".into(), s(spec.direction));
        item.insert("resource_tags".into(), Av::L(vec![s(self.room)]));
        if let Some(dp) = &state.datapoint {
            let mut map = Item::from([
                ("id".to_owned(), s(&dp.id)),
                ("value".to_owned(), dp.value.clone()),
                ("created_at".to_owned(), iso(dp.at)),
                ("updated_at".to_owned(), iso(dp.at)),
                ("echo".to_owned(), Av::Bool(spec.direction == "output")),
                ("closed".to_owned(), Av::Bool(false)),
                ("discarded".to_owned(), Av::Bool(false)),
                ("scope".to_owned(), s("user")),
                (
                    "metadata".to_owned(),
                    Av::M(
                        dp.metadata
                            .iter()
                            .map(|(k, v)| (k.to_string(), s(v)))
                            .collect(),
                    ),
                ),
            ]);
            if let Some(user) = &dp.user_uuid {
                map.insert("user_uuid".into(), s(user));
            }
            item.insert("datapoint".into(), Av::M(map));
        }
        if let Some(ack) = &state.ack {
            item.insert(
                "ack".into(),
                Av::M(Item::from([
                    ("id".to_owned(), s(&ack.id)),
                    ("ack_id".to_owned(), s(&ack.ack_id)),
                    ("ack_status".to_owned(), Av::N(ack.status.to_string())),
                    ("ack_message".to_owned(), Av::N("0".into())),
                    ("acked_at".to_owned(), iso(ack.at)),
                    ("created_at_from_device".to_owned(), iso(ack.from_device)),
                ])),
            );
        }
        TwinWrite {
            at: t,
            change,
            item,
            expected,
        }
    }
}

fn random_ip(rng: &mut fastrand::Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.u8(11..200),
        rng.u8(..=255),
        rng.u8(..=255),
        rng.u8(1..255)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Timestamp {
        Timestamp::parse("2020-08-28T09:00:00Z").unwrap()
    }

    /// The simulated hours at the clock's own speed.
    fn real_time() -> Playback {
        Playback {
            start: start(),
            speed: 1,
        }
    }

    /// Every time attribute of `item`, nested ones too.
    fn times(item: &Item) -> Vec<Timestamp> {
        fn walk(value: &Av, out: &mut Vec<Timestamp>) {
            match value {
                Av::S(text) => out.extend(Timestamp::parse(text).ok()),
                Av::M(map) => map.values().for_each(|v| walk(v, out)),
                Av::L(list) => list.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        item.values().for_each(|v| walk(v, &mut out));
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_writes() {
        let a = simulate(12, 2, real_time(), 7);
        let b = simulate(12, 2, real_time(), 7);
        assert_eq!(a.writes.len(), b.writes.len());
        for (a, b) in a.writes.iter().zip(&b.writes) {
            assert_eq!((a.at, &a.item, &a.expected), (b.at, &b.item, &b.expected));
        }
    }

    #[test]
    fn writes_are_in_time_order_inside_the_window() {
        let fleet = simulate(30, 2, real_time(), 1);
        assert!(fleet.writes.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(fleet
            .writes
            .iter()
            .all(|w| w.at >= fleet.start && w.at < fleet.end));
    }

    #[test]
    fn a_played_fleet_is_the_simulated_one_with_its_times_compressed() {
        let simulated = simulate(20, 2, real_time(), 5);
        let playback = Playback {
            start: start(),
            speed: 360,
        };
        let played = simulate(20, 2, playback, 5);
        assert_eq!(played.end.millis() - played.start.millis(), 20_000);
        assert_eq!(played.writes.len(), simulated.writes.len());
        for (played, simulated) in played.writes.iter().zip(&simulated.writes) {
            assert_eq!(played.expected.len(), simulated.expected.len());
            assert_eq!(played.change, simulated.change);
            let offset = |t: Timestamp| t.millis() - start().millis();
            assert_eq!(offset(played.at), offset(simulated.at) / 360);
        }
    }

    #[test]
    fn an_item_holds_no_time_later_than_its_write() {
        let fleet = simulate(30, 2, Playback::for_fleet(start(), 30), 9);
        let mut seen = 0;
        for write in &fleet.writes {
            for time in times(&write.item) {
                // Items hold whole seconds.
                assert!(time <= write.at, "{write:?}");
                assert!(time.millis() >= fleet.start.millis() / 1000 * 1000);
                seen += 1;
            }
        }
        assert!(seen > fleet.writes.len(), "items hold times: {seen}");
    }

    #[test]
    fn any_fleet_plays_at_about_forty_writes_a_second() {
        for devices in [8, 50, 200] {
            let fleet = simulate(devices, 2, Playback::for_fleet(start(), devices), 42);
            let seconds = (fleet.end.millis() - fleet.start.millis()) as f64 / 1000.0;
            let pace = fleet.writes.len() as f64 / seconds;
            assert!(
                (20.0..60.0).contains(&pace),
                "{devices} devices: {pace} writes/s"
            );
        }
    }

    #[test]
    fn every_event_type_and_every_kind_of_change_happens() {
        let fleet = simulate(50, 2, real_time(), 42);
        let types: std::collections::BTreeSet<EventType> = fleet
            .writes
            .iter()
            .flat_map(|w| w.expected.iter().map(|e| e.event_type))
            .collect();
        assert_eq!(types.len(), 6, "{types:?}");
        let changes = fleet.changes();
        for change in [
            Change::WentOffline,
            Change::CameOnline,
            Change::Moved,
            Change::Unregistered,
            Change::NewIp,
            Change::Reassociated,
        ] {
            assert!(changes.contains_key(&change), "{change:?}: {changes:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_dynamodb_stores_them() {
        assert_eq!(number(21.0, 1), "21");
        assert_eq!(number(21.50, 2), "21.5");
        assert_eq!(number(-0.00001, 3), "0");
        assert_eq!(number(7.0, 0), "7");
    }
}
