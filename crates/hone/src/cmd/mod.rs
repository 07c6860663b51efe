//! One module per subcommand group.

pub mod data;
pub mod tokenizer;
pub mod world;
