//! One module per subcommand group.

pub mod chat;
pub mod data;
pub mod dpo;
pub mod eval;
pub mod pretrain;
pub mod report;
pub mod reward;
pub mod rl;
pub mod run;
pub mod sample;
pub mod sft;
pub mod stage;
pub mod tokenizer;
pub mod world;
