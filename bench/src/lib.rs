//! `apogee-bench`: a load generator that measures any RocketMQ 4.x cluster — Apogee or Java
//! RocketMQ — the same way, so figures can be compared side by side.
//!
//! - [`load`]: producers on a schedule (sync, async or oneway sends, batches, a fixed rate
//!   without coordinated omission), a push consumer, the reporter that ends the run.
//! - [`stats`]: HDR histograms and counts; [`report`]: the figures, printed and as JSON, and
//!   the comparison of two reports.
//! - [`embedded`]: a standalone Apogee started as a child process on free ports.
//! - [`usage`]: CPU time and memory of the broker and of this program, and the machine's busy
//!   and stolen CPU time, from `/proc`.

pub mod embedded;
pub mod error;
pub mod load;
pub mod pace;
pub mod report;
pub mod stamp;
pub mod stats;
pub mod usage;

pub use error::{BenchError, Result};
