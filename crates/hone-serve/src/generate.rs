//! Submitting generations to a model's engine and gathering what they report: the plumbing under
//! the OpenAI endpoints and the web app's compare and grade views.

use crate::engine::{Event, GenJob, Job, ModelHandle, ScoreJob, TokenLogprob};
use crate::error::ApiError;
use hone_model::{Finish, SampleConfig};
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// A finished completion.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub finish: Finish,
    pub tokens: usize,
    /// One per generated token when log-probabilities were asked for.
    pub logprobs: Vec<TokenLogprob>,
}

/// OpenAI's `finish_reason`.
pub fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::EndOfTurn | Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

/// Queues `n` completions of `prompt` (choice `i` samples from stream `i` of the seed); their
/// event streams, in choice order, token by token when `stream`, else all at the end.
pub fn submit(
    m: &ModelHandle,
    prompt: &[u32],
    sample: &SampleConfig,
    n: usize,
    top_logprobs: Option<usize>,
    stream: bool,
    deadline: Instant,
) -> Result<Vec<UnboundedReceiver<Event>>, ApiError> {
    // Callers check first to name their own field (`messages` of a chat); this names `prompt`.
    check_fits(m, prompt, "prompt", 1)?;
    let mut rxs = Vec::with_capacity(n);
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = unbounded_channel();
        jobs.push(Job::Generate(GenJob {
            prompt: prompt.to_vec(),
            sample: sample.clone(),
            stream: i as u64,
            top_logprobs,
            incremental: stream,
            deadline,
            events: tx,
        }));
        rxs.push(rx);
    }
    m.submit(jobs)?;
    Ok(rxs)
}

/// A 400 unless `prompt` leaves room for at least one token in `m`'s context.
pub fn check_fits(m: &ModelHandle, prompt: &[u32], param: &'static str, room: usize) -> Result<(), ApiError> {
    if prompt.is_empty() {
        return Err(ApiError::field(param, "the prompt is empty (no tokens)."));
    }
    if prompt.len() + room > m.context {
        let left = if room > 0 { ", leaving no room to answer" } else { "" };
        return Err(ApiError::field(
            param,
            format!("This model's context is {} tokens; the prompt has {}{left}. Shorten it.", m.context, prompt.len()),
        )
        .with_code("context_length_exceeded"));
    }
    Ok(())
}

/// Waits for one completion to finish.
pub async fn collect(mut rx: UnboundedReceiver<Event>) -> Result<Completion, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token { piece, logprob, .. } => {
                text.push_str(&piece);
                logprobs.extend(logprob);
            }
            Event::Done { finish, tokens } => return Ok(Completion { text, finish, tokens, logprobs }),
            Event::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal("the model's engine stopped"))
}

/// Waits for every completion, in order.
pub async fn collect_all(rxs: Vec<UnboundedReceiver<Event>>) -> Result<Vec<Completion>, ApiError> {
    let mut out = Vec::with_capacity(rxs.len());
    for rx in rxs {
        out.push(collect(rx).await?);
    }
    Ok(out)
}

/// The log-probability of every token of `prompt` after the first, with `top` alternatives.
pub async fn score(m: &ModelHandle, prompt: &[u32], top: usize) -> Result<Vec<TokenLogprob>, ApiError> {
    if prompt.len() > m.context {
        return Err(ApiError::field(
            "prompt",
            format!("This model's context is {} tokens; the prompt has {}.", m.context, prompt.len()),
        )
        .with_code("context_length_exceeded"));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    m.submit(vec![Job::Score(ScoreJob { prompt: prompt.to_vec(), top, reply: tx })])?;
    rx.await.map_err(|_| ApiError::internal("the model's engine stopped"))?
}

/// One generation for the web app: `text` continued by a base model, answered as a user turn
/// (after `system`) by a chat model.
pub async fn answer(
    m: &ModelHandle,
    system: Option<&str>,
    text: &str,
    sample: &SampleConfig,
    deadline: Instant,
) -> Result<Completion, ApiError> {
    let prompt = match m.kind {
        crate::engine::Kind::Base => base_prompt(m, text)?,
        crate::engine::Kind::Chat => {
            let mut msgs = Vec::new();
            if let Some(s) = system.filter(|s| !s.trim().is_empty()) {
                msgs.push(hone_data::chat::Message::new("system", s));
            }
            msgs.push(hone_data::chat::Message::new("user", text));
            m.template
                .encode_prompt(&m.tokenizer, &msgs)
                .map_err(|e| ApiError::field("messages", format!("the chat template failed: {e:#}")))?
        }
    };
    let rx = submit(m, &prompt, sample, 1, None, false, deadline)?.pop().expect("one");
    collect(rx).await
}

/// A text prompt as a base model sees it: BOS first where the tokenizer adds one.
pub fn base_prompt(m: &ModelHandle, text: &str) -> Result<Vec<u32>, ApiError> {
    let mut ids = if m.tokenizer.add_bos { vec![m.tokenizer.bos_id] } else { Vec::new() };
    ids.extend(m.tokenizer.encode(text).map_err(|e| ApiError::field("prompt", format!("could not tokenize: {e:#}")))?);
    Ok(ids)
}

/// The text of one token (bytes that are not UTF-8 on their own shown as `bytes:\xNN`, as OpenAI does).
pub fn token_text(m: &ModelHandle, t: u32) -> String {
    let b = m.tokenizer.token_bytes(t);
    match std::str::from_utf8(&b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|x| format!("bytes:\\x{x:02x}")).collect(),
    }
}
