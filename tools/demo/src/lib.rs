//! `make demo`: the whole pipeline on a local AWS emulator (moto), with the
//! real handlers called in-process.
//!
//! - [`stack`]: the resources of `template.yaml`, created by
//!   `scripts/create-resources.py`, and each function's resolved
//!   environment and event source mappings;
//! - [`customers`]: two OEMs' subscriptions, to a Kinesis stream and to a
//!   local event hub;
//! - [`fleet`]: a simulated fleet's twin changes and the events each must
//!   produce; [`twins`] writes them to the twins table;
//! - [`esm`]: a local event source mapping (DynamoDB Streams and Kinesis
//!   to an in-process handler, batch sizes, partial batch responses,
//!   retries, on-failure queue); [`functions`]: the handlers behind it;
//! - [`pipeline`]: one run, start to end; [`report`]: what it printed;
//!   [`pretty`]: JSON laid out in its own key order; [`output`]: what it
//!   left on disk; [`console`]: the OEM console (`functions/api`) on the
//!   emulator, with a token per example OEM.

pub mod console;
pub mod customers;
pub mod esm;
pub mod fleet;
pub mod functions;
pub mod output;
pub mod pipeline;
pub mod pretty;
pub mod report;
pub mod stack;
pub mod twins;
