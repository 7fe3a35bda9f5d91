//! The one assertion over what a destination received, shared by the
//! engine's tests, the emulator tests and the benchmarks (pure): every
//! expected event arrived, per device in the order the DPL stream had them,
//! nothing arrived that was not expected, and duplicates (allowed, at least
//! once) are counted. Counts alone would not see a reorder or an event
//! delivered twice in place of another.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

/// What [`check_delivery`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCheck {
    pub expected: usize,
    pub received: usize,
    /// Receipts of an event already received.
    pub duplicates: usize,
    /// Expected events never received.
    pub missing: usize,
    /// Received events that were not expected (another OEM's, filtered out).
    pub unexpected: usize,
    /// Devices whose first receipts are not in their expected order.
    pub out_of_order: usize,
}

impl DeliveryCheck {
    /// Nothing lost, nothing foreign, each device in order.
    pub fn holds(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.out_of_order == 0
    }
}

impl fmt::Display for DeliveryCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} expected, {} received: {} duplicates, {} missing, {} unexpected, {} devices out of order",
            self.expected, self.received, self.duplicates, self.missing, self.unexpected, self.out_of_order
        )
    }
}

/// Checks `received` (event ids in the order the destination took them)
/// against `expected` (each event's device and id, in DPL stream order).
/// A device's order is judged on the first receipt of each event: a
/// duplicate that arrives later (a resend at a hand-over) does not count as
/// a reorder, since a consumer drops it by its id.
pub fn check_delivery<K, I>(expected: &[(K, I)], received: &[I]) -> DeliveryCheck
where
    K: Hash + Eq + Clone,
    I: Hash + Eq + Clone,
{
    let device_of: HashMap<&I, &K> = expected.iter().map(|(k, i)| (i, k)).collect();
    let mut check = DeliveryCheck {
        expected: expected.len(),
        received: received.len(),
        ..DeliveryCheck::default()
    };
    let mut seen: HashSet<&I> = HashSet::new();
    let mut got: HashMap<&K, Vec<&I>> = HashMap::new();
    for id in received {
        match device_of.get(id) {
            None => check.unexpected += 1,
            Some(_) if !seen.insert(id) => check.duplicates += 1,
            Some(device) => got.entry(device).or_default().push(id),
        }
    }
    let mut want: HashMap<&K, Vec<&I>> = HashMap::new();
    for (device, id) in expected {
        want.entry(device).or_default().push(id);
    }
    for (device, ids) in &want {
        let arrived = got.remove(device).unwrap_or_default();
        check.missing += ids.len() - arrived.len();
        let arrived_set: HashSet<&&I> = arrived.iter().collect();
        let expected_order: Vec<&&I> = ids.iter().filter(|id| arrived_set.contains(id)).collect();
        if expected_order.iter().copied().ne(arrived.iter()) {
            check.out_of_order += 1;
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Vec<(&'static str, u32)> {
        vec![("a", 1), ("b", 2), ("a", 3), ("b", 4)]
    }

    #[test]
    fn each_device_in_order_with_others_interleaved_holds() {
        let check = check_delivery(&expected(), &[2, 1, 4, 3]);
        assert!(check.holds(), "{check}");
        assert_eq!(check.duplicates, 0);
    }

    #[test]
    fn a_reorder_within_a_device_is_found() {
        let check = check_delivery(&expected(), &[3, 1, 2, 4]);
        assert_eq!(check.out_of_order, 1);
        assert!(!check.holds());
    }

    #[test]
    fn duplicates_are_counted_and_a_late_duplicate_is_no_reorder() {
        // A resend at a hand-over: 3 arrives again after 3 and 1.
        let check = check_delivery(&expected(), &[1, 2, 3, 1, 3, 4]);
        assert!(check.holds(), "{check}");
        assert_eq!(check.duplicates, 2);
    }

    #[test]
    fn a_lost_event_and_a_foreign_one_are_found_even_when_counts_match() {
        let check = check_delivery(&expected(), &[1, 2, 4, 99]);
        assert_eq!((check.missing, check.unexpected), (1, 1));
        assert_eq!(check.received, check.expected, "counts alone would pass");
        assert!(!check.holds());
    }
}
