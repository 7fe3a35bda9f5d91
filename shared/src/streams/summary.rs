//! What an operator sees of a subscription's delivery state (pure), from
//! its cursors and its dead letters: `dplctl streams show|list`, `dplctl
//! status` and the demo's report print it.

use serde::Serialize;

use super::cursor::{Cursor, CursorState};
use crate::Timestamp;

/// See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    /// Shards where the subscription is behind (the catch-up worker delivers).
    pub behind_shards: usize,
    /// When the DPL stream took the oldest event not yet delivered.
    pub behind_since: Option<Timestamp>,
    /// The largest distance of a catch-up read from its shard's tip.
    pub catch_up_behind_ms: Option<u64>,
    /// Shards just handed back to the live path.
    pub handing_back: usize,
    pub dead_letters: u64,
}

impl DeliverySummary {
    pub fn new(cursors: &[Cursor], dead_letters: u64) -> Self {
        let behind: Vec<&Cursor> = cursors
            .iter()
            .filter(|c| c.state == CursorState::Behind)
            .collect();
        Self {
            behind_shards: behind.len(),
            behind_since: behind.iter().map(|c| c.since).min(),
            catch_up_behind_ms: behind.iter().filter_map(|c| c.behind_ms).max(),
            handing_back: cursors.len() - behind.len(),
            dead_letters,
        }
    }

    /// How long the oldest undelivered event has waited at `now`, in
    /// seconds (`None` when nothing is behind).
    pub fn lag_seconds(&self, now: Timestamp) -> Option<i64> {
        self.behind_since
            .map(|since| (now.millis() - since.millis()).max(0) / 1_000)
    }

    /// One line for tables: `live`, or `behind on 2 shards for 12m 3s`.
    pub fn line(&self, now: Timestamp) -> String {
        match self.lag_seconds(now) {
            None => "live".to_owned(),
            Some(seconds) => format!(
                "behind on {} shard{} for {}",
                self.behind_shards,
                if self.behind_shards == 1 { "" } else { "s" },
                duration_text(seconds)
            ),
        }
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
pub fn duration_text(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::SequenceNumber;
    use crate::streams::subscription::SubscriptionId;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn the_oldest_cursor_behind_gives_the_lag() {
        let seq = SequenceNumber::parse("1").unwrap();
        let cursor = |shard: &str, since: i64| {
            let mut c = Cursor::behind(
                SubscriptionId::from_bits(1),
                shard,
                &seq,
                at(since),
                &seq,
                at(since),
            );
            c.behind_ms = Some(since as u64);
            c
        };
        let mut handed = cursor("s2", 0);
        handed.state = CursorState::HandedBack;
        let summary =
            DeliverySummary::new(&[cursor("s0", 60_000), cursor("s1", 30_000), handed], 2);
        assert_eq!(summary.behind_shards, 2);
        assert_eq!(summary.behind_since, Some(at(30_000)));
        assert_eq!(summary.catch_up_behind_ms, Some(60_000));
        assert_eq!((summary.handing_back, summary.dead_letters), (1, 2));
        assert_eq!(
            summary.line(at(30_000 + 723_000)),
            "behind on 2 shards for 12m 3s"
        );
        assert_eq!(DeliverySummary::new(&[], 0).line(at(0)), "live");
        assert_eq!(duration_text(3_723), "1h 2m");
        assert_eq!(duration_text(90_000), "1d 1h");
    }
}
