//! Typed, path-aware reads of one image of a stream record.
//!
//! Reads borrow from the image (no copy until an event needs an owned
//! string) and fail with a [`Fault`]: the attribute path and what is wrong.
//! `NULL` counts as absent everywhere, so optional attributes may be written
//! either way.

use std::collections::HashMap;
use std::str::FromStr;

use serde_dynamo::AttributeValue;

use super::error::{excerpt, TwinErrorKind};
use crate::event::DatapointMetadata;
use crate::time::Timestamp;

pub(super) type Map = HashMap<String, AttributeValue>;

/// A problem found while reading, before we attach the stream record's id.
#[derive(Debug)]
pub(super) struct Fault {
    pub attribute: Option<String>,
    pub kind: TwinErrorKind,
}

impl Fault {
    pub fn at(attribute: &str, kind: TwinErrorKind) -> Self {
        Fault {
            attribute: Some(attribute.to_owned()),
            kind,
        }
    }
}

/// Which part of the stream record a map comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Keys,
    New,
    Old,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Keys => "Keys",
            Side::New => "NewImage",
            Side::Old => "OldImage",
        }
    }
}

/// The DynamoDB JSON name of an attribute value's type.
pub(super) fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

/// The attributes of an image, or of a map attribute inside it (`datapoint`,
/// `ack`). `map: None` is an empty image: the old image of an `INSERT`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Attrs<'a> {
    map: Option<&'a Map>,
    side: Side,
    parent: Option<&'static str>,
}

impl<'a> Attrs<'a> {
    pub fn new(map: Option<&'a Map>, side: Side) -> Self {
        Attrs {
            map,
            side,
            parent: None,
        }
    }

    /// `NewImage.datapoint.value`: the path of `name` in this map.
    pub fn path(&self, name: &str) -> String {
        let side = self.side.as_str();
        let parent = self.parent.map_or(0, |p| p.len() + 1);
        let mut path = String::with_capacity(side.len() + parent + name.len() + 1);
        path.push_str(side);
        if let Some(parent) = self.parent {
            path.push('.');
            path.push_str(parent);
        }
        path.push('.');
        path.push_str(name);
        path
    }

    fn fault(&self, name: &str, kind: TwinErrorKind) -> Fault {
        Fault {
            attribute: Some(self.path(name)),
            kind,
        }
    }

    fn wrong(&self, name: &str, expected: &'static str, found: &AttributeValue) -> Fault {
        self.fault(
            name,
            TwinErrorKind::WrongType {
                expected,
                found: type_name(found),
            },
        )
    }

    fn missing(&self, name: &str) -> Fault {
        self.fault(name, TwinErrorKind::MissingAttribute)
    }

    /// The attribute, `None` when absent or `NULL`.
    pub fn get(&self, name: &str) -> Option<&'a AttributeValue> {
        self.map?
            .get(name)
            .filter(|value| !matches!(value, AttributeValue::Null(_)))
    }

    /// Whether `name` differs between `self` and `other` (absent and `NULL`
    /// being the same thing). Compares the stored attribute values as they
    /// are: DynamoDB returns numbers normalized, so equal numbers have equal
    /// text.
    pub fn differs(&self, other: &Attrs<'_>, name: &str) -> bool {
        self.get(name) != other.get(name)
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong(name, "S", other)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&'a str, Fault> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_owned(&self, name: &str) -> Result<Option<String>, Fault> {
        Ok(self.opt_str(name)?.map(str::to_owned))
    }

    pub fn owned(&self, name: &str) -> Result<String, Fault> {
        self.str(name).map(str::to_owned)
    }

    /// The text of a required `N` attribute.
    pub fn number_text(&self, name: &str) -> Result<&'a str, Fault> {
        match self.get(name) {
            None => Err(self.missing(name)),
            Some(AttributeValue::N(text)) => Ok(text),
            Some(other) => Err(self.wrong(name, "N", other)),
        }
    }

    /// A required `N` attribute holding a whole number that fits an `i64`.
    pub fn integer(&self, name: &str) -> Result<i64, Fault> {
        let text = self.number_text(name)?;
        i64::from_str(text).map_err(|_| {
            self.fault(
                name,
                TwinErrorKind::InvalidNumber {
                    text: excerpt(text),
                    expected: "a whole number",
                },
            )
        })
    }

    /// The text of a required `N` or `S` attribute.
    pub fn number_or_string(&self, name: &str) -> Result<&'a str, Fault> {
        match self.get(name) {
            None => Err(self.missing(name)),
            Some(AttributeValue::N(text) | AttributeValue::S(text)) => Ok(text),
            Some(other) => Err(self.wrong(name, "N or S", other)),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(AttributeValue::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong(name, "BOOL", other)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, Fault> {
        self.opt_bool(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional `S` attribute holding an ISO-8601 UTC time.
    pub fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, Fault> {
        let Some(text) = self.opt_str(name)? else {
            return Ok(None);
        };
        Timestamp::parse(text).map(Some).map_err(|_| {
            self.fault(
                name,
                TwinErrorKind::BadTimestamp {
                    text: excerpt(text),
                },
            )
        })
    }

    pub fn time(&self, name: &str) -> Result<Timestamp, Fault> {
        self.opt_time(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional `M` attribute of this image, as attributes of its own.
    pub fn opt_map(&self, name: &'static str) -> Result<Option<Attrs<'a>>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(AttributeValue::M(map)) => Ok(Some(Attrs {
                map: Some(map),
                side: self.side,
                parent: Some(name),
            })),
            Some(other) => Err(self.wrong(name, "M", other)),
        }
    }

    /// An optional `L` of `S` (absent = empty), in its stored order.
    pub fn string_list(&self, name: &str) -> Result<Vec<String>, Fault> {
        let items = match self.get(name) {
            None => return Ok(Vec::new()),
            Some(AttributeValue::L(items)) => items,
            Some(other) => return Err(self.wrong(name, "L", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                AttributeValue::S(text) => Ok(text.clone()),
                other => Err(self.wrong(&format!("{name}[{index}]"), "S", other)),
            })
            .collect()
    }

    /// An optional `M` of `S` (absent = empty), sorted by key: a DynamoDB map
    /// has no order, and sorting makes the event's bytes, and which entry an
    /// error names, the same on every run.
    pub fn string_map(&self, name: &str) -> Result<DatapointMetadata, Fault> {
        let map = match self.get(name) {
            None => return Ok(DatapointMetadata::default()),
            Some(AttributeValue::M(map)) => map,
            Some(other) => return Err(self.wrong(name, "M", other)),
        };
        let mut entries: Vec<(&String, &AttributeValue)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
            .into_iter()
            .map(|(key, value)| match value {
                AttributeValue::S(text) => Ok((key.clone(), text.clone())),
                other => Err(self.wrong(&format!("{name}.{key}"), "S", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(DatapointMetadata)
    }
}
