//! Which events a subscription takes: [`Selection`]s (`*` or a list) of
//! event types, models, properties and DSNs, and [`Filters`] over them.
//!
//! An event matches when every dimension allows it: its event type is in
//! `event_types`, its `oem_model` in `models`, its DSN in `dsns`, and, for
//! datapoint and datapointack events only, its `property_name` in
//! `properties`. Device-level events (activation, connectivity, location,
//! registration) have no property: the properties filter does not apply to
//! them, so `--properties temp` with every event type delivers every device
//! event plus the datapoints and acks of `temp`.
//!
//! [`Filters::validate`] refuses filters that cannot be meant:
//! - a list (`Only`) that is empty, or holds an empty, blank or `*` item;
//! - a properties list while `event_types` is a list holding neither
//!   `datapoint` nor `datapointack`: no event the subscription receives has
//!   a property, so the list would never be consulted (and the operator who
//!   wrote it expected fewer events than they would get).
//!
//! Every other combination matches some possible event: the dimensions are
//! independent and each allowed value can occur.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::SubscriptionError;
use crate::event::{DeviceEvent, EventType};

/// Longest model, property or DSN in a filter list (our limit; the vendor's
/// identifiers are far shorter).
pub const MAX_FILTER_ITEM_LEN: usize = 256;

/// Everything (`*`) or a non-empty set of values.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection<T> {
    #[default]
    All,
    Only(BTreeSet<T>),
}

impl<T: Ord> Selection<T> {
    pub fn is_all(&self) -> bool {
        matches!(self, Selection::All)
    }

    /// Whether `item` is selected.
    pub fn allows<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Selection::All => true,
            Selection::Only(items) => items.contains(item),
        }
    }

    /// A selection of exactly `items` (`Only`, even when empty: see
    /// [`Filters::validate`]).
    pub fn only(items: impl IntoIterator<Item = T>) -> Self {
        Selection::Only(items.into_iter().collect())
    }

    /// Parses `*` or a comma-separated list (items trimmed), each item
    /// through `item`. An empty list, an empty item or a `*` among other
    /// items is refused.
    pub fn parse_with(
        field: &'static str,
        text: &str,
        item: impl Fn(&str) -> Result<T, SubscriptionError>,
    ) -> Result<Self, SubscriptionError> {
        let text = text.trim();
        if text == "*" {
            return Ok(Selection::All);
        }
        if text.is_empty() {
            return Err(SubscriptionError::EmptySelection { field });
        }
        text.split(',')
            .map(|raw| {
                let raw = raw.trim();
                if raw.is_empty() {
                    Err(SubscriptionError::SelectionItem {
                        field,
                        item: raw.to_owned(),
                        reason: "is empty (two commas in a row, or a trailing comma?)",
                    })
                } else if raw == "*" {
                    Err(SubscriptionError::SelectionItem {
                        field,
                        item: raw.to_owned(),
                        reason: "`*` must stand alone",
                    })
                } else {
                    item(raw)
                }
            })
            .collect::<Result<BTreeSet<T>, _>>()
            .map(Selection::Only)
    }
}

impl Selection<EventType> {
    /// `*` or a list of event type names.
    pub fn parse_event_types(text: &str) -> Result<Self, SubscriptionError> {
        Self::parse_with("event_types", text, |t| Ok(t.parse::<EventType>()?))
    }
}

impl Selection<String> {
    /// `*` or a list of names for `field` (`models`, `properties`, `dsns`).
    pub fn parse_names(field: &'static str, text: &str) -> Result<Self, SubscriptionError> {
        Self::parse_with(field, text, |t| {
            validate_filter_item(field, t)?;
            Ok(t.to_owned())
        })
    }
}

/// A model, property or DSN in a filter list: no whitespace or control
/// characters, no `*` or `,`, at most [`MAX_FILTER_ITEM_LEN`] characters.
fn validate_filter_item(field: &'static str, item: &str) -> Result<(), SubscriptionError> {
    let reason = if item.is_empty() {
        Some("is empty")
    } else if item.chars().count() > MAX_FILTER_ITEM_LEN {
        Some("is longer than 256 characters")
    } else if item.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("holds whitespace")
    } else if item.contains(['*', ',']) {
        Some("holds `*` or `,` (wildcards are not supported; `*` alone selects all)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SubscriptionError::SelectionItem {
            field,
            item: item.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl<T: fmt::Display> fmt::Display for Selection<T> {
    /// `*`, or the items joined by `,` (sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("*"),
            Selection::Only(items) => {
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(",")?;
                    }
                    item.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

/// JSON: `"*"` or an array.
impl<T: Serialize> Serialize for Selection<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Selection::All => serializer.serialize_str("*"),
            Selection::Only(items) => items.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for Selection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<T: Ord> {
            Star(String),
            List(BTreeSet<T>),
        }
        match Raw::<T>::deserialize(deserializer)? {
            Raw::Star(star) if star == "*" => Ok(Selection::All),
            Raw::Star(other) => Err(serde::de::Error::custom(format!(
                "`{other}` is neither \"*\" nor a list"
            ))),
            Raw::List(items) => Ok(Selection::Only(items)),
        }
    }
}

/// Which events a subscription receives. See the module docs for the
/// semantics and the rules of [`Filters::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    pub event_types: Selection<EventType>,
    pub models: Selection<String>,
    /// Applies to datapoint and datapointack events only.
    pub properties: Selection<String>,
    pub dsns: Selection<String>,
}

impl Filters {
    /// Every event (of the subscription's OEM).
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `event` passes every dimension. The properties filter
    /// applies to datapoint and datapointack events only: events without a
    /// property pass it.
    pub fn matches(&self, event: &DeviceEvent) -> bool {
        let key = event.key();
        self.event_types.allows(&key.event_type)
            && self.models.allows(key.oem_model)
            && self.dsns.allows(key.dsn)
            && key
                .property_name
                .is_none_or(|property| self.properties.allows(property))
    }

    /// Refuses empty lists, malformed items, and filters that can never
    /// match (module docs).
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        if let Selection::Only(types) = &self.event_types {
            if types.is_empty() {
                return Err(SubscriptionError::EmptySelection {
                    field: "event_types",
                });
            }
        }
        for (field, selection) in [
            ("models", &self.models),
            ("properties", &self.properties),
            ("dsns", &self.dsns),
        ] {
            if let Selection::Only(items) = selection {
                if items.is_empty() {
                    return Err(SubscriptionError::EmptySelection { field });
                }
                for item in items {
                    validate_filter_item(field, item)?;
                }
            }
        }
        if let (Selection::Only(properties), Selection::Only(types)) =
            (&self.properties, &self.event_types)
        {
            let property_events = [EventType::Datapoint, EventType::DatapointAck];
            if !property_events.iter().any(|t| types.contains(t)) {
                return Err(SubscriptionError::NeverMatches {
                    field: "properties",
                    reason: format!(
                        "it lists {} but event_types ({}) include neither datapoint nor \
                         datapointack, the only events with a property",
                        Selection::Only(properties.clone()),
                        self.event_types
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::streams::subscription::fixtures::{event, names};

    #[test]
    fn selections_parse_star_or_a_list() {
        assert_eq!(Selection::parse_event_types("*").unwrap(), Selection::All);
        assert_eq!(
            Selection::parse_event_types(" datapoint , location,datapoint").unwrap(),
            Selection::only([EventType::Datapoint, EventType::Location])
        );
        assert_eq!(
            Selection::parse_names("models", "a,b").unwrap(),
            names(&["a", "b"])
        );
        let cases = [
            ("", "event_types is an empty list"),
            ("datapoint,", "item ``"),
            ("datapoint,,location", "item ``"),
            ("*,datapoint", "`*` must stand alone"),
            ("connection", "`connection` is not an event type"),
        ];
        for (text, expected) in cases {
            let error = Selection::parse_event_types(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = Selection::parse_event_types("bogus").unwrap_err();
        assert!(matches!(error, SubscriptionError::UnknownEventType(_)));
        assert!(error.to_string().starts_with("event_types: "), "{error}");
        for (text, expected) in [
            ("a b", "whitespace"),
            ("temp*", "wildcards"),
            ("", "empty list"),
        ] {
            let error = Selection::parse_names("properties", text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.starts_with("properties"), "{error}");
        }
    }

    #[test]
    fn selections_serialize_as_star_or_array() {
        let filters = Filters {
            event_types: Selection::only([EventType::DatapointAck, EventType::Datapoint]),
            properties: names(&["temp"]),
            ..Filters::all()
        };
        let json = serde_json::to_string(&filters).unwrap();
        assert_eq!(
            json,
            r#"{"event_types":["datapoint","datapointack"],"models":"*","properties":["temp"],"dsns":"*"}"#
        );
        assert_eq!(serde_json::from_str::<Filters>(&json).unwrap(), filters);
        assert!(serde_json::from_str::<Selection<String>>(r#""all""#).is_err());
        assert_eq!(filters.event_types.to_string(), "datapoint,datapointack");
    }

    #[test]
    fn properties_filter_applies_to_property_events_only() {
        let filters = Filters {
            properties: names(&["Blue_LED"]),
            ..Filters::all()
        };
        let datapoint = event(EventType::Datapoint, "ledevb", "AC000W1", "Blue_LED");
        let connectivity = event(EventType::Connectivity, "ledevb", "AC000W1", "");
        assert_eq!(datapoint.key().property_name, Some("Blue_LED"));
        assert!(filters.matches(&datapoint));
        assert!(filters.matches(&connectivity));
        let other = Filters {
            properties: names(&["Green_LED"]),
            ..Filters::all()
        };
        assert!(!other.matches(&datapoint));
        assert!(other.matches(&connectivity));
    }

    fn event_type() -> impl Strategy<Value = EventType> {
        proptest::sample::select(EventType::ALL.to_vec())
    }

    fn selection<T: Ord + Clone + std::fmt::Debug + 'static>(
        item: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = Selection<T>> {
        prop_oneof![
            Just(Selection::All),
            proptest::collection::btree_set(item, 1..4).prop_map(Selection::Only),
        ]
    }

    fn filters() -> impl Strategy<Value = Filters> {
        let name =
            || proptest::sample::select(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        (
            selection(event_type()),
            selection(name()),
            selection(name()),
            selection(name()),
        )
            .prop_map(|(event_types, models, properties, dsns)| Filters {
                event_types,
                models,
                properties,
                dsns,
            })
    }

    proptest! {
        #[test]
        fn matches_is_the_conjunction_of_the_dimensions(
            filters in filters(),
            event_type in event_type(),
            model in "[abcd]",
            dsn in "[abcd]",
            property in "[abcd]",
        ) {
            let event = event(event_type, &model, &dsn, &property);
            let has_property = matches!(event_type, EventType::Datapoint | EventType::DatapointAck);
            let expected = filters.event_types.allows(&event_type)
                && filters.models.allows(model.as_str())
                && filters.dsns.allows(dsn.as_str())
                && (!has_property || filters.properties.allows(property.as_str()));
            prop_assert_eq!(filters.matches(&event), expected);
        }

        /// A filter that validates matches some event; one that is refused
        /// only for never matching indeed matches no property event.
        #[test]
        fn valid_filters_match_some_event(filters in filters()) {
            let some = |f: &Filters| EventType::ALL.into_iter().any(|t| {
                ["a", "b", "c"].iter().any(|m| ["a", "b", "c"].iter().any(|d| {
                    ["a", "b", "c"].iter().any(|p| f.matches(&event(t, m, d, p)))
                }))
            });
            match filters.validate() {
                Ok(()) => prop_assert!(some(&filters)),
                Err(SubscriptionError::NeverMatches { .. }) => {
                    let mut all_properties = filters.clone();
                    all_properties.properties = Selection::All;
                    // The properties list changes nothing: it is dead.
                    let dead = EventType::ALL.into_iter().all(|t| {
                        ["a", "d"].iter().all(|p| {
                            let e = event(t, "a", "a", p);
                            filters.matches(&e) == all_properties.matches(&e)
                        })
                    });
                    prop_assert!(dead);
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }

        #[test]
        fn selection_text_round_trips(selection in selection(event_type())) {
            let text = selection.to_string();
            prop_assert_eq!(Selection::parse_event_types(&text).unwrap(), selection);
        }

    }
}
