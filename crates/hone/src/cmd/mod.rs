//! One module per subcommand group.

pub mod chat;
pub mod data;
pub mod pretrain;
pub mod sample;
pub mod tokenizer;
pub mod world;
