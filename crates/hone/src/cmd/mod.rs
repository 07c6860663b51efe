//! One module per subcommand group.

pub mod chat;
pub mod data;
pub mod eval;
pub mod export;
pub mod import;
pub mod iterate;
pub mod report;
pub mod run;
pub mod sample;
pub mod serve;
pub mod stage;
pub mod tokenizer;
pub mod world;
