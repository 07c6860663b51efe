//! One module per subcommand group.

pub mod data;
pub mod pretrain;
pub mod tokenizer;
pub mod world;
