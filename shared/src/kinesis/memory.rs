//! An in-memory Kinesis for tests and benchmarks: streams are lists of
//! accepted entries; faults and latency can be scripted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Entry, EntryResult, PutError, PutRecordsApi};

/// Decides the answer to call number `call` (from 0) for `entries`;
/// `None` accepts everything.
pub type Fault =
    Box<dyn FnMut(usize, &[&Entry]) -> Option<Result<Vec<EntryResult>, PutError>> + Send>;

/// See the module docs.
#[derive(Default)]
pub struct InMemoryKinesis {
    state: Mutex<State>,
    latency: Duration,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, Vec<Entry>>,
    calls: usize,
    requests: Option<Vec<Vec<Entry>>>,
    fault: Option<Fault>,
}

impl InMemoryKinesis {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers calls as `fault` decides.
    pub fn with_fault(
        mut self,
        fault: impl FnMut(usize, &[&Entry]) -> Option<Result<Vec<EntryResult>, PutError>>
            + Send
            + 'static,
    ) -> Self {
        self.state_mut().fault = Some(Box::new(fault));
        self
    }

    /// Waits `latency` before answering each call.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Keeps a copy of every request, for [`Self::requests`].
    pub fn recording_requests(mut self) -> Self {
        self.state_mut().requests = Some(Vec::new());
        self
    }

    /// The entries accepted on `stream`, in the order they were accepted.
    pub fn records(&self, stream: &str) -> Vec<Entry> {
        self.lock().streams.get(stream).cloned().unwrap_or_default()
    }

    /// Every request sent, if recording (see [`Self::recording_requests`]).
    pub fn requests(&self) -> Vec<Vec<Entry>> {
        self.lock().requests.clone().unwrap_or_default()
    }

    /// Number of `PutRecords` calls answered.
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn answer(&self, stream: &str, entries: &[&Entry]) -> Result<Vec<EntryResult>, PutError> {
        let mut state = self.lock();
        let call = state.calls;
        state.calls += 1;
        if let Some(requests) = &mut state.requests {
            requests.push(entries.iter().map(|&entry| entry.clone()).collect());
        }
        let scripted = state.fault.as_mut().and_then(|fault| fault(call, entries));
        let results = scripted.unwrap_or_else(|| Ok(vec![EntryResult::Accepted; entries.len()]))?;
        let stream = state.streams.entry(stream.to_owned()).or_default();
        for (entry, result) in entries.iter().zip(&results) {
            if *result == EntryResult::Accepted {
                stream.push((*entry).clone());
            }
        }
        Ok(results)
    }
}

impl PutRecordsApi for InMemoryKinesis {
    async fn put_records(
        &self,
        stream: &str,
        entries: &[&Entry],
    ) -> Result<Vec<EntryResult>, PutError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.answer(stream, entries)
    }
}
