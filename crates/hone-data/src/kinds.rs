//! Closed sets of choices about data that several crates share: what kind of records a training stage
//! reads (so the built-in world can supply its file), and how a record file is read.

use serde::{Deserialize, Serialize};

/// The kind of records a training stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Token shards of plain text (`hone data prepare`).
    Text,
    /// Conversations (TRL `messages`, Alpaca, ShareGPT, question/answer).
    Conversations,
    /// Preference pairs (TRL prompt/chosen/rejected, HH-RLHF, LLaMA-Factory).
    Pairs,
    /// Unpaired judged completions (TRL prompt/completion/label), or pairs unpaired.
    Unpaired,
    /// Prompts with a verifier (RL).
    Prompts,
}

/// How a record file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// From the file name: `.jsonl`, `.jsonl.gz`, `.json`.
    Auto,
    /// One JSON object per line (gzip when the name ends in `.gz`).
    Jsonl,
    /// A JSON array of objects.
    Json,
}

impl RecordFormat {
    /// The name the readers take.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFormat::Auto => "auto",
            RecordFormat::Jsonl => "jsonl",
            RecordFormat::Json => "json",
        }
    }
}
