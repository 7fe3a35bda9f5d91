//! Where a subscription that fell behind stands on one DPL shard: a
//! position, not copies of the events (pure; stored by `super::state`).
//!
//! A subscription with no cursor on a shard is **live** there: the stream
//! function delivers each batch as it comes. When a destination does not
//! take an event in time, the subscription gets a cursor in state
//! [`CursorState::Behind`] at the first event it missed; from then on the
//! live path only notes how far it skipped ([`Cursor::live_seen`]) and the
//! catch-up worker (`super::catchup`) reads the DPL stream from the cursor
//! and delivers at its own pace. When it reaches the tip, having delivered
//! everything the live path skipped, it hands back: state
//! [`CursorState::HandedBack`], and the live path delivers the events at or
//! after the bound, then removes the cursor.
//!
//! The two never deliver at the same time: the live path delivers only
//! without a cursor or after a hand-back, the worker only while behind, and
//! every change is a conditional write on the cursor (see
//! `super::state::DeliveryState`). So each DSN's order holds, and no event
//! is skipped by both.

use std::fmt;

use crate::position::{PositionError, SequenceNumber, MAX_SEQUENCE_DIGITS};
use crate::streams::subscription::SubscriptionId;
use crate::Timestamp;

/// A place between two records of a shard: every record before it has
/// been delivered, none after it. Stored as text that compares as the
/// shard's order does (see [`Bound::as_str`]), so that a storage condition
/// can compare it with a sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bound(String);

/// Where reading resumes from a [`Bound`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// At this record (Kinesis `AT_SEQUENCE_NUMBER`): it was not delivered.
    At(SequenceNumber),
    /// After this record (`AFTER_SEQUENCE_NUMBER`): it was the last delivered.
    After(SequenceNumber),
}

/// The suffix that puts an "after" bound between a record and the next one.
const AFTER: char = '+';

impl Bound {
    /// Before the record `sequence`: it is not delivered.
    pub fn at(sequence: &SequenceNumber) -> Self {
        Self(sequence.padded())
    }

    /// Just after the record `sequence`: it and everything before it are
    /// delivered.
    pub fn after(sequence: &SequenceNumber) -> Self {
        Self(format!("{}{AFTER}", sequence.padded()))
    }

    /// Whether the record `sequence` lies before the bound (delivered).
    pub fn covers(&self, sequence: &SequenceNumber) -> bool {
        sequence.padded().as_str() < self.0.as_str()
    }

    pub fn resume(&self) -> Resume {
        let (digits, after) = match self.0.strip_suffix(AFTER) {
            Some(digits) => (digits, true),
            None => (self.0.as_str(), false),
        };
        let sequence = SequenceNumber::parse(digits).expect("a bound holds a sequence number");
        if after {
            Resume::After(sequence)
        } else {
            Resume::At(sequence)
        }
    }

    /// The zero-padded sequence number, followed by `+` for an "after"
    /// bound: `pad(s)` < `pad(s)+` < `pad(s + 1)` as strings.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A bound read back from storage.
    pub fn parse(text: &str) -> Result<Self, PositionError> {
        let digits = text.strip_suffix(AFTER).unwrap_or(text);
        if digits.len() != MAX_SEQUENCE_DIGITS || SequenceNumber::parse(digits).is_err() {
            return Err(PositionError::BadKey(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resume() {
            Resume::At(sequence) => write!(f, "at {sequence}"),
            Resume::After(sequence) => write!(f, "after {sequence}"),
        }
    }
}

/// Who delivers a subscription's events of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorState {
    /// The catch-up worker, from the bound on; the live path skips.
    Behind,
    /// The live path, for records not covered by the bound; the worker is done.
    HandedBack,
}

impl CursorState {
    pub fn as_str(self) -> &'static str {
        match self {
            CursorState::Behind => "behind",
            CursorState::HandedBack => "handed_back",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "behind" => Some(CursorState::Behind),
            "handed_back" => Some(CursorState::HandedBack),
            _ => None,
        }
    }
}

/// One subscription's place on one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub subscription: SubscriptionId,
    pub shard: String,
    pub state: CursorState,
    pub bound: Bound,
    /// When the DPL stream took the first record not delivered (about):
    /// how long the subscription has been behind.
    pub since: Timestamp,
    /// The last record the live path skipped while behind: the worker may
    /// hand back only at a bound that covers it.
    pub live_seen: Option<SequenceNumber>,
    /// How far the worker's last read was from the shard's tip.
    pub behind_ms: Option<u64>,
    pub updated_at: Timestamp,
}

impl Cursor {
    /// A subscription that just missed `first_missed` (arrived at `since`)
    /// on `shard`, the live path having seen the batch up to `live_seen`.
    pub fn behind(
        subscription: SubscriptionId,
        shard: &str,
        first_missed: &SequenceNumber,
        since: Timestamp,
        live_seen: &SequenceNumber,
        now: Timestamp,
    ) -> Self {
        Self {
            subscription,
            shard: shard.to_owned(),
            state: CursorState::Behind,
            bound: Bound::at(first_missed),
            since,
            live_seen: Some(live_seen.clone()),
            behind_ms: None,
            updated_at: now,
        }
    }

    /// Whether the worker may hand back at `bound`: it covers every record
    /// the live path skipped.
    pub fn may_hand_back_at(&self, bound: &Bound) -> bool {
        self.live_seen
            .as_ref()
            .is_none_or(|seen| bound.covers(seen))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn seq(n: u128) -> SequenceNumber {
        SequenceNumber::parse(&n.to_string()).unwrap()
    }

    #[test]
    fn an_at_bound_covers_what_is_before_it_an_after_bound_also_its_record() {
        let at = Bound::at(&seq(10));
        assert!(at.covers(&seq(9)) && !at.covers(&seq(10)) && !at.covers(&seq(11)));
        let after = Bound::after(&seq(10));
        assert!(after.covers(&seq(9)) && after.covers(&seq(10)) && !after.covers(&seq(11)));
        assert_eq!(at.resume(), Resume::At(seq(10)));
        assert_eq!(after.resume(), Resume::After(seq(10)));
        assert_eq!(after.to_string(), "after 10");
    }

    #[test]
    fn stored_bounds_must_be_ones_we_wrote() {
        for bound in [Bound::at(&seq(7)), Bound::after(&seq(7))] {
            assert_eq!(Bound::parse(bound.as_str()), Ok(bound));
        }
        for bad in [
            "7",
            "7+",
            &"x".repeat(129),
            &format!("{}-", "0".repeat(129)),
        ] {
            assert!(Bound::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hand_back_must_cover_what_the_live_path_skipped() {
        let now = Timestamp::from_millis(0).unwrap();
        let cursor = Cursor::behind(
            SubscriptionId::from_bits(1),
            "s",
            &seq(5),
            now,
            &seq(20),
            now,
        );
        assert!(!cursor.may_hand_back_at(&Bound::at(&seq(20))));
        assert!(cursor.may_hand_back_at(&Bound::after(&seq(20))));
        assert!(cursor.may_hand_back_at(&Bound::at(&seq(21))));
    }

    proptest! {
        #[test]
        fn bounds_order_as_the_shard_does(a in 0u128.., b in 0u128..) {
            // at(a) < after(a) < at(a + 1), and covers() agrees with it.
            prop_assert!(Bound::at(&seq(a)).as_str() < Bound::after(&seq(a)).as_str());
            prop_assert_eq!(Bound::after(&seq(a)).covers(&seq(b)), b <= a);
            prop_assert_eq!(Bound::at(&seq(a)).covers(&seq(b)), b < a);
            if a < u128::MAX {
                prop_assert!(Bound::after(&seq(a)).as_str() < Bound::at(&seq(a + 1)).as_str());
            }
        }
    }
}
