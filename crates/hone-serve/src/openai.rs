//! The request bodies of OpenAI's `/v1/chat/completions` and `/v1/completions`, parsed with serde
//! (wrong types and malformed JSON become 400s naming the field), and their checks against the
//! server's limits. Fields OpenAI defines that change nothing here (`user`, `frequency_penalty` at
//! 0, ...) are accepted and ignored, as OpenAI-compatible servers do, so existing clients work.

use crate::config::ServeConfig;
use crate::error::ApiError;
use hone_model::SampleConfig;
use serde::Deserialize;

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A message's `content`: a string, or a list of parts of which only text parts are understood.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields both endpoints share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens` on chat.
    pub max_completion_tokens: Option<usize>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    pub n: Option<usize>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Generate exactly `max_tokens` (end-of-turn tokens are not drawn), as vLLM's extension of the
    /// same name: fixed-length requests for load tests.
    #[serde(default)]
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub sampling: Sampling,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<usize>,
}

/// `prompt`: text, texts, token ids, or lists of token ids (what lm-evaluation-harness sends).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(flatten)]
    pub sampling: Sampling,
    /// How many most likely tokens to report per position (0 = only the chosen token's).
    pub logprobs: Option<usize>,
    #[serde(default)]
    pub echo: bool,
}

/// Most `top_logprobs` / `logprobs` a request may ask for (OpenAI's limit on chat).
pub const MAX_TOP_LOGPROBS: usize = 20;
/// Most stop strings (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// What the engine needs to know about sampling, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sample: SampleConfig,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
}

impl Sampling {
    /// The sampling settings within `limits`; `default_max` when the request names no length.
    pub fn check(&self, limits: &ServeConfig, default_max: usize) -> Result<Checked, ApiError> {
        let mut s = SampleConfig::default();
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ApiError::field("temperature", format!("temperature must be between 0 and 2, got {t}.")));
            }
            s.temperature = t;
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ApiError::field("top_p", format!("top_p must be in (0, 1], got {p}.")));
            }
            s.top_p = p;
        }
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if v.is_some_and(|v| v != 0.0) {
                return Err(ApiError::field(name, format!("{name} is not supported: leave it out or send 0.")));
            }
        }
        let max = self.max_completion_tokens.or(self.max_tokens).unwrap_or(default_max);
        if max > limits.max_tokens {
            let field = if self.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
            return Err(ApiError::field(
                field,
                format!("{field} is {max}; this server allows at most {}.", limits.max_tokens),
            ));
        }
        s.max_new_tokens = max;
        if self.ignore_eos {
            s.min_new_tokens = max;
        }
        s.stop = match &self.stop {
            None => vec![],
            Some(Stop::One(x)) => vec![x.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        s.stop.retain(|x| !x.is_empty());
        if s.stop.len() > MAX_STOP {
            return Err(ApiError::field("stop", format!("at most {MAX_STOP} stop strings, got {}.", s.stop.len())));
        }
        s.seed = self.seed.unwrap_or(0) as u64;
        let n = self.n.unwrap_or(1);
        if n == 0 || n > limits.max_n {
            return Err(ApiError::field("n", format!("n must be between 1 and {}, got {n}.", limits.max_n)));
        }
        Ok(Checked {
            sample: s,
            n,
            stream: self.stream,
            include_usage: self.stream_options.as_ref().is_some_and(|o| o.include_usage),
        })
    }
}

impl ChatMessage {
    /// The text of the message; non-text parts are refused.
    pub fn text(&self, i: usize) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(t)) => Ok(t.clone()),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => out.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::field(
                                &format!("messages[{i}].content"),
                                format!("only text content parts are supported, got `{kind}`."),
                            ));
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

/// The roles a conversation may hold.
pub const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];
