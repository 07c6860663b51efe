//! One module per subcommand group.

pub mod chat;
pub mod data;
pub mod eval;
pub mod pretrain;
pub mod report;
pub mod sample;
pub mod tokenizer;
pub mod world;
