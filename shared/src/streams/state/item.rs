//! The items of the delivery state table (`DeliveryStateTable` in
//! `template.yaml`), both ways (pure). Keys are generic, `pk` and `sk`
//! (both S), because the table holds three kinds of items:
//!
//! | item        | `pk`              | `sk`                          | attributes |
//! |-------------|-------------------|-------------------------------|------------|
//! | cursor      | subscription id   | `cursor#{shard id}`           | `state` (`behind`, `handed_back`), `bound` (S, see [`Bound`]), `since` (N, ms), `live_seen` (S, padded sequence), `behind_ms` (N), `updated_at` (N, ms) |
//! | dead letter | subscription id   | `dead#{shard id}#{sequence, 129 digits}` | `event_id`, `event_type`, `dsn`, `reason` (S), `at` (N, ms), `size` (N), `payload` (B, absent when too large) |
//! | lease       | `lease`           | `{transport}#{shard id}`      | `owner` (S), `until` (N, ms) |
//!
//! A subscription's items share its partition key: one query finds its
//! cursors or dead letters, and deleting the subscription removes them all.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::position::{Position, SequenceNumber};
use crate::streams::cursor::{Bound, Cursor, CursorState};
use crate::streams::dead_letter::DeadLetter;
use crate::streams::subscription::SubscriptionId;
use crate::Timestamp;

pub type Item = HashMap<String, AttributeValue>;

/// Attribute names.
pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const STATE: &str = "state";
    pub const BOUND: &str = "bound";
    pub const SINCE: &str = "since";
    pub const LIVE_SEEN: &str = "live_seen";
    pub const BEHIND_MS: &str = "behind_ms";
    pub const UPDATED_AT: &str = "updated_at";
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const DSN: &str = "dsn";
    pub const REASON: &str = "reason";
    pub const AT: &str = "at";
    pub const SIZE: &str = "size";
    pub const PAYLOAD: &str = "payload";
    pub const OWNER: &str = "owner";
    pub const UNTIL: &str = "until";
}

/// Key attributes of the table, partition key first.
pub const TABLE_KEYS: [&str; 2] = [attr::PK, attr::SK];

pub const CURSOR_PREFIX: &str = "cursor#";
pub const DEAD_LETTER_PREFIX: &str = "dead#";
/// The partition key of every lease.
pub const LEASES: &str = "lease";

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(attr::PK.to_owned(), s(pk)), (attr::SK.to_owned(), s(sk))])
}

pub fn cursor_key(subscription: &SubscriptionId, shard: &str) -> Item {
    key(subscription.as_str(), &format!("{CURSOR_PREFIX}{shard}"))
}

pub fn dead_letter_key(subscription: &SubscriptionId, position: &Position) -> Item {
    key(
        subscription.as_str(),
        &format!("{DEAD_LETTER_PREFIX}{}", position.key()),
    )
}

pub fn cursor_item(cursor: &Cursor) -> Item {
    let mut item = cursor_key(&cursor.subscription, &cursor.shard);
    item.insert(attr::STATE.into(), s(cursor.state.as_str()));
    item.insert(attr::BOUND.into(), s(cursor.bound.as_str()));
    item.insert(attr::SINCE.into(), n(cursor.since.millis()));
    item.insert(attr::UPDATED_AT.into(), n(cursor.updated_at.millis()));
    if let Some(seen) = &cursor.live_seen {
        item.insert(attr::LIVE_SEEN.into(), s(seen.padded()));
    }
    if let Some(ms) = cursor.behind_ms {
        item.insert(attr::BEHIND_MS.into(), n(ms));
    }
    item
}

pub fn dead_letter_item(subscription: &SubscriptionId, letter: &DeadLetter) -> Item {
    let mut item = dead_letter_key(subscription, &letter.position);
    item.insert(attr::EVENT_ID.into(), s(letter.event_id.to_string()));
    item.insert(attr::EVENT_TYPE.into(), s(letter.event_type.as_str()));
    item.insert(attr::DSN.into(), s(&letter.dsn));
    item.insert(attr::REASON.into(), s(&letter.reason));
    item.insert(attr::AT.into(), n(letter.at.millis()));
    item.insert(attr::SIZE.into(), n(letter.size));
    if let Some(payload) = &letter.payload {
        item.insert(
            attr::PAYLOAD.into(),
            AttributeValue::B(Blob::new(payload.clone())),
        );
    }
    item
}

/// Reads one item's attributes, naming the attribute in errors.
struct Reader<'a>(&'a Item);

impl Reader<'_> {
    fn text(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .ok_or_else(|| format!("no string `{name}`"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("`{name}` `{text}` is not a number")),
            Some(_) => Err(format!("`{name}` is not a number")),
        }
    }

    fn time(&self, name: &str) -> Result<Timestamp, String> {
        let ms = self
            .number(name)?
            .ok_or_else(|| format!("no number `{name}`"))?;
        Timestamp::from_millis(ms).map_err(|e| format!("`{name}`: {e}"))
    }
}

/// The cursor in `item`; errors name the attribute.
pub fn cursor_from(item: &Item) -> Result<Cursor, String> {
    let r = Reader(item);
    let subscription: SubscriptionId = r.text(attr::PK)?.parse().map_err(|e| format!("{e}"))?;
    let shard = r
        .text(attr::SK)?
        .strip_prefix(CURSOR_PREFIX)
        .ok_or("`sk` is not a cursor key")?
        .to_owned();
    let state = r.text(attr::STATE)?;
    let live_seen = match item.get(attr::LIVE_SEEN) {
        None => None,
        Some(_) => {
            Some(SequenceNumber::parse(r.text(attr::LIVE_SEEN)?).map_err(|e| e.to_string())?)
        }
    };
    Ok(Cursor {
        subscription,
        shard,
        state: CursorState::parse(state).ok_or_else(|| format!("`state` `{state}` is unknown"))?,
        bound: Bound::parse(r.text(attr::BOUND)?).map_err(|e| format!("`bound`: {e}"))?,
        since: r.time(attr::SINCE)?,
        live_seen,
        behind_ms: r.number(attr::BEHIND_MS)?,
        updated_at: r.time(attr::UPDATED_AT)?,
    })
}

/// The dead letter in `item`; errors name the attribute.
pub fn dead_letter_from(item: &Item) -> Result<DeadLetter, String> {
    let r = Reader(item);
    let key = r
        .text(attr::SK)?
        .strip_prefix(DEAD_LETTER_PREFIX)
        .ok_or("`sk` is not a dead letter key")?;
    Ok(DeadLetter {
        position: Position::from_key(key).map_err(|e| format!("`sk`: {e}"))?,
        event_id: r
            .text(attr::EVENT_ID)?
            .parse()
            .map_err(|e| format!("`event_id`: {e}"))?,
        event_type: r
            .text(attr::EVENT_TYPE)?
            .parse()
            .map_err(|e| format!("`event_type`: {e}"))?,
        dsn: r.text(attr::DSN)?.to_owned(),
        reason: r.text(attr::REASON)?.to_owned(),
        at: r.time(attr::AT)?,
        size: r.number(attr::SIZE)?.unwrap_or(0),
        payload: item
            .get(attr::PAYLOAD)
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventId, EventType};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn cursors_and_dead_letters_round_trip() {
        let seq = |n: &str| SequenceNumber::parse(n).unwrap();
        let mut cursor = Cursor::behind(
            SubscriptionId::from_bits(7),
            "shardId-000000000001",
            &seq("42"),
            at(5),
            &seq("99"),
            at(6),
        );
        cursor.behind_ms = Some(12_000);
        assert_eq!(cursor_from(&cursor_item(&cursor)), Ok(cursor.clone()));
        cursor.state = CursorState::HandedBack;
        cursor.live_seen = None;
        cursor.bound = Bound::after(&seq("120"));
        assert_eq!(cursor_from(&cursor_item(&cursor)), Ok(cursor));
        let letter = DeadLetter {
            position: Position::new("shardId-000000000001", "43").unwrap(),
            event_id: EventId::derive("x", EventType::Location),
            event_type: EventType::Location,
            dsn: "AC000W000000001".into(),
            reason: "413 Request Entity Too Large".into(),
            at: at(9),
            size: 3,
            payload: Some(b"{}x".to_vec()),
        };
        let id = SubscriptionId::from_bits(7);
        assert_eq!(
            dead_letter_from(&dead_letter_item(&id, &letter)),
            Ok(letter.clone())
        );
        let without = DeadLetter {
            payload: None,
            ..letter
        };
        assert_eq!(
            dead_letter_from(&dead_letter_item(&id, &without)),
            Ok(without)
        );
    }

    #[test]
    fn a_bad_item_names_its_attribute() {
        let seq = SequenceNumber::parse("1").unwrap();
        let cursor = Cursor::behind(SubscriptionId::from_bits(7), "s", &seq, at(5), &seq, at(6));
        let mut item = cursor_item(&cursor);
        item.insert(attr::STATE.into(), s("asleep"));
        assert_eq!(
            cursor_from(&item),
            Err("`state` `asleep` is unknown".into())
        );
        item.remove(attr::BOUND);
        item.insert(attr::STATE.into(), s("behind"));
        assert_eq!(cursor_from(&item), Err("no string `bound`".into()));
    }
}
