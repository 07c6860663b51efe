//! hone-data: everything between raw files and token ids, with no tensors. Configuration, the
//! tokenizer and its chat template, readers for txt/JSONL/Parquet, token shards, the checkpoint
//! folder protocol and atomic writes. Kept free of burn so it builds and tests in seconds.

pub mod atomic;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod corpus;
pub mod error;
pub mod fault;
pub mod hash;
pub mod kinds;
pub mod lock;
pub mod mem;
pub mod pairs;
pub mod prepare;
pub mod progress;
pub mod read;
pub mod sft;
pub mod shards;
pub mod skip;
pub mod tokenizer;
pub mod unpaired;

pub use error::{DataError, Location};
pub use kinds::{DataKind, RecordFormat};
