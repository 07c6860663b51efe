//! hone-tasks: what evaluation means, without a model or tensors, so that the world generator, the
//! trainer's verifiers and the report can use it without linking the model:
//!
//! - [`tasks`]: the task-file format (modelled on lm-evaluation-harness), read by `hone-eval` and
//!   written by the built-in world;
//! - [`score`]: the scorers of generated text (exact match, numbers, refusals, formats, …), also RL's
//!   verifiers;
//! - [`result`]: the result file of one task on one model (metrics with 95% intervals and every item);
//! - [`metrics`]: metrics as functions of item sets, with Wilson and bootstrap intervals;
//! - [`compare`], [`table`]: whether one evaluation is worse than another beyond the noise, and the
//!   terminal tables.

pub mod compare;
pub mod metrics;
pub mod result;
pub mod score;
pub mod table;
pub mod tasks;

pub use result::{ChoiceScore, ItemRecord, Metric, TaskResult, load_results};
pub use score::{ScoreResult, Scorer};
