//! What arrived at a customer endpoint, against what was sent, judged by
//! the one shared assertion (`dpl::streams::check`): every event arrived,
//! nothing else did, each DSN in its order; duplicates counted.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use dpl::streams::check::{check_delivery, DeliveryCheck};

/// One event as an endpoint accepted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The partition key it arrived with.
    pub dsn: String,
    /// Which event it is ([`crate::workload::event_number`]).
    pub event: u64,
    /// When the endpoint accepted it.
    pub at: SystemTime,
}

/// Checks `arrivals` (in each DSN's arrival order: an endpoint's order; for
/// a Kinesis stream, each shard's sequence order) against `expected`
/// (event numbers and their DSN; a DSN's order is increasing event number).
/// An event that arrives under another partition key than its DSN's is
/// unexpected.
pub fn verdict(expected: &BTreeMap<u64, String>, arrivals: &[Arrival]) -> DeliveryCheck {
    let sent: Vec<(&str, (&str, u64))> = expected
        .iter()
        .map(|(n, dsn)| (dsn.as_str(), (dsn.as_str(), *n)))
        .collect();
    let received: Vec<(&str, u64)> = arrivals.iter().map(|a| (a.dsn.as_str(), a.event)).collect();
    check_delivery(&sent, &received)
}

/// When each event first arrived.
pub fn first_arrivals(arrivals: &[Arrival]) -> HashMap<u64, SystemTime> {
    let mut first = HashMap::with_capacity(arrivals.len());
    for arrival in arrivals {
        first
            .entry(arrival.event)
            .and_modify(|at: &mut SystemTime| *at = (*at).min(arrival.at))
            .or_insert(arrival.at);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(events: &[(&str, u64)]) -> Vec<Arrival> {
        events
            .iter()
            .map(|(dsn, event)| Arrival {
                dsn: (*dsn).into(),
                event: *event,
                at: SystemTime::UNIX_EPOCH,
            })
            .collect()
    }

    fn expected(events: &[(&str, u64)]) -> BTreeMap<u64, String> {
        events.iter().map(|(d, n)| (*n, (*d).to_owned())).collect()
    }

    #[test]
    fn a_redelivered_suffix_is_a_duplicate_not_a_reordering() {
        let sent = [("a", 0), ("b", 1), ("a", 2), ("a", 4)];
        let got = arrivals(&[("a", 0), ("b", 1), ("a", 2), ("a", 0), ("a", 2), ("a", 4)]);
        let check = verdict(&expected(&sent), &got);
        assert_eq!((check.duplicates, check.out_of_order), (2, 0));
        assert!(check.holds());
    }

    #[test]
    fn an_overtaking_event_a_lost_one_and_a_wrong_key_are_all_seen() {
        let sent = [("a", 0), ("a", 2), ("b", 1), ("c", 3)];
        let got = arrivals(&[("a", 2), ("b", 1), ("a", 0), ("x", 3)]);
        let check = verdict(&expected(&sent), &got);
        assert_eq!(
            (check.out_of_order, check.unexpected, check.missing),
            (1, 1, 1)
        );
        assert!(!check.holds());
    }
}
