//! hone-train: the optimizers (AdamW, Muon), learning-rate schedules, gradient handling, the one
//! trainer loop every stage uses (accumulation, global-norm clipping, non-finite guard,
//! checkpoint/resume, metrics, progress, loss curve), and the stages built on it.

pub mod alloc;
pub mod config;
pub mod data;
pub mod dpo;
pub mod grads;
pub mod layout;
pub mod metrics;
pub mod optim;
pub mod pairdata;
pub mod plot;
pub mod pretrain;
pub mod reward;
pub mod reward_model;
pub mod rl;
pub mod schedule;
pub mod sft;
pub mod signal;
pub mod stage;
pub mod trainable;
pub mod trainer;

pub use burn;
pub use config::{OptimConfig, PretrainConfig};
pub use pretrain::{PretrainOptions, PretrainReport, run_pretrain};
pub use trainable::Trainable;
pub use trainer::{LoopSettings, Task, Trainer};
