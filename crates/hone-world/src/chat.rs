//! Chat messages in TRL's conversational format, shared by SFT conversations, preference pairs and RL
//! prompts.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

pub fn system(content: impl Into<String>) -> Message {
    Message { role: "system", content: content.into() }
}

pub fn user(content: impl Into<String>) -> Message {
    Message { role: "user", content: content.into() }
}

pub fn assistant(content: impl Into<String>) -> Message {
    Message { role: "assistant", content: content.into() }
}

/// System prompts used on a share of SFT conversations, so the model sees one without depending on it.
pub const SYSTEM_PROMPTS: &[&str] = &[
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer briefly.",
    "You are a knowledgeable guide to the world. Answer clearly and honestly.",
    "Answer the user's questions accurately. If you do not know something, say so.",
];
