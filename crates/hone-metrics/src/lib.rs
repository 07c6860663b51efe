//! hone-metrics: the training log of a run without tensors. Stages append to `metrics.jsonl`
//! ([`log`]); the trainer and the report draw loss curves from it ([`plot`]).

pub mod log;
pub mod plot;

pub use log::{MetricsLog, read_series};
pub use plot::loss_curve;
