//! The one seam between a benchmark and the engine it measures.

use std::future::Future;

use aws_lambda_events::event::kinesis::KinesisEventRecord;

/// A delivery engine as Lambda drives a stream function: invoked with DPL
/// batches by the event source mapping, and on a schedule.
pub trait Engine {
    /// One invocation with a DPL batch. `Ok(Some(sequence number))` is a
    /// partial batch response: the mapping invokes again from that record.
    fn deliver(
        &self,
        batch: &[KinesisEventRecord],
    ) -> impl Future<Output = anyhow::Result<Option<String>>>;

    /// One run of the scheduled work. Returns whether the engine still
    /// holds events it has not delivered (an engine without scheduled work
    /// returns `false`).
    fn scheduled(&self) -> impl Future<Output = anyhow::Result<bool>>;
}
