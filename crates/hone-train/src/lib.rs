//! hone-train: the optimizers (AdamW, Muon), learning-rate schedules, gradient handling, the one
//! trainer loop every stage uses (accumulation, global-norm clipping, non-finite guard,
//! checkpoint/resume, metrics, progress, loss curve), and the training stages, each one file under
//! [`stages`] registered in [`stages::REGISTRY`].

pub mod alloc;
pub mod batch;
pub mod config;
pub mod data;
pub mod grads;
pub mod layout;
pub mod optim;
pub mod pairdata;
pub mod reference;
pub mod reward_model;
pub mod schedule;
pub mod signal;
pub mod stage;
pub mod stages;
pub mod trainable;
pub mod trainer;

pub use burn;
pub use config::OptimConfig;
pub use stage::{Stage, StageConfig, StageContext, StageReport};
pub use stages::pretrain::{PretrainConfig, run_pretrain};
pub use stages::{REGISTRY, StageSections};
pub use trainable::Trainable;
pub use trainer::{LoopSettings, Task, Trainer};
