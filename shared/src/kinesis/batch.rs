//! Packing entries into `PutRecords` requests within the per-request limits
//! ([`MAX_RECORDS_PER_REQUEST`], [`MAX_BYTES_PER_REQUEST`]), keeping their order.

use std::ops::Range;

use super::limits::{MAX_BYTES_PER_REQUEST, MAX_RECORDS_PER_REQUEST};

/// What is left of one request's limits while it is being filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestBudget {
    records: usize,
    bytes: usize,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self {
            records: MAX_RECORDS_PER_REQUEST,
            bytes: MAX_BYTES_PER_REQUEST,
        }
    }
}

impl RequestBudget {
    /// Takes an entry of `size` bytes (data + partition key) if it fits.
    /// An entry within the per-record limit always fits an empty request.
    pub fn try_take(&mut self, size: usize) -> bool {
        if self.records == 0 || size > self.bytes {
            return false;
        }
        self.records -= 1;
        self.bytes -= size;
        true
    }
}

/// Splits entries of the given sizes, in order, into consecutive requests,
/// each as full as the limits allow. Returns index ranges into the input.
pub fn pack(sizes: impl IntoIterator<Item = usize>) -> Vec<Range<usize>> {
    let mut requests = Vec::new();
    let mut budget = RequestBudget::default();
    let mut start = 0;
    let mut end = 0;
    for size in sizes {
        if !budget.try_take(size) && end > start {
            requests.push(start..end);
            start = end;
            budget = RequestBudget::default();
            budget.try_take(size);
        }
        end += 1;
    }
    if end > start {
        requests.push(start..end);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::super::limits::MAX_BYTES_PER_RECORD;
    use super::*;

    #[test]
    fn nothing_to_pack_gives_no_request() {
        assert!(pack([]).is_empty());
    }

    #[test]
    fn splits_at_500_records() {
        let requests = pack(std::iter::repeat_n(100, 1_001));
        assert_eq!(requests, vec![0..500, 500..1_000, 1_000..1_001]);
    }

    #[test]
    fn splits_at_5_mib_including_partition_keys() {
        // Five records of exactly 1 MiB fill a request; the sixth starts the next.
        let requests = pack(std::iter::repeat_n(MAX_BYTES_PER_RECORD, 11));
        assert_eq!(requests, vec![0..5, 5..10, 10..11]);
        // One byte over 5 MiB in total moves the last record on.
        let sizes = [MAX_BYTES_PER_RECORD; 4]
            .into_iter()
            .chain([MAX_BYTES_PER_RECORD - 10, 11]);
        assert_eq!(pack(sizes), vec![0..5, 5..6]);
    }

    #[test]
    fn every_request_is_within_the_limits_and_order_is_kept() {
        let sizes: Vec<usize> = (0..3_000).map(|i| (i * 7_919) % 60_000 + 1).collect();
        let requests = pack(sizes.iter().copied());
        let mut next = 0;
        for range in requests {
            assert_eq!(range.start, next);
            assert!(range.len() <= MAX_RECORDS_PER_REQUEST);
            assert!(sizes[range.clone()].iter().sum::<usize>() <= MAX_BYTES_PER_REQUEST);
            next = range.end;
        }
        assert_eq!(next, sizes.len());
    }
}
