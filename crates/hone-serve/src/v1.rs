//! The OpenAI endpoints: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, with SSE
//! streaming, `n`, `seed`, stop strings, log-probabilities (chat: per generated token; completions:
//! with `echo`, over the prompt too, which is how lm-evaluation-harness scores choices) and usage.

use crate::engine::{Event, ModelHandle, TokenLogprob};
use crate::error::{ApiError, parse_error};
use crate::generate::{self, Completion, finish_reason, token_text};
use crate::openai::{ChatRequest, Checked, CompletionRequest, MAX_TOP_LOGPROBS, Prompt, ROLES};
use crate::state::Shared;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use hone_data::chat::Message;
use serde_json::{Value, json};
use std::convert::Infallible;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An id for a response: the kind, the time and a counter.
fn response_id(kind: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{kind}-{:x}{n:04x}", now())
}

pub async fn models(State(st): State<Shared>) -> Json<Value> {
    let data: Vec<Value> = st
        .models
        .iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": "hone", "kind": m.kind, "context": m.context}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The conversation of a chat request as template messages.
fn messages(req: &ChatRequest) -> Result<Vec<Message>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::field("messages", "messages is empty: send at least one message."));
    }
    let mut out = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(ApiError::field(
                &format!("messages[{i}].role"),
                format!("unknown role `{}`; expected one of {}.", m.role, ROLES.join(", ")),
            ));
        }
        let role = if m.role == "developer" { "system" } else { m.role.as_str() };
        out.push(Message::new(role, m.text(i)?));
    }
    Ok(out)
}

fn top_count(logprobs: bool, top: Option<usize>) -> Result<Option<usize>, ApiError> {
    match (logprobs, top) {
        (_, Some(k)) if k > MAX_TOP_LOGPROBS => {
            Err(ApiError::field("top_logprobs", format!("top_logprobs must be at most {MAX_TOP_LOGPROBS}, got {k}.")))
        }
        (false, Some(_)) => Err(ApiError::field("top_logprobs", "top_logprobs needs logprobs set to true.")),
        (true, k) => Ok(Some(k.unwrap_or(0))),
        (false, None) => Ok(None),
    }
}

/// Chat logprobs of a list of tokens: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
fn chat_logprobs(m: &ModelHandle, lps: &[TokenLogprob]) -> Value {
    let entry =
        |t: u32, lp: f32| json!({"token": token_text(m, t), "logprob": lp, "bytes": m.tokenizer.token_bytes(t)});
    let content: Vec<Value> = lps
        .iter()
        .map(|l| {
            let mut e = entry(l.token, l.logprob);
            e["top_logprobs"] = Value::Array(l.top.iter().map(|&(t, lp)| entry(t, lp)).collect());
            e
        })
        .collect();
    json!({"content": content})
}

/// A chat request body, parsed and checked against `cfg`'s limits: the request, its conversation,
/// its sampling settings and how many alternatives to report per token (when log-probabilities
/// are asked for).
pub fn parse_chat(
    body: &[u8],
    cfg: &crate::config::ServeConfig,
) -> Result<(ChatRequest, Vec<Message>, Checked, Option<usize>), ApiError> {
    let req: ChatRequest = serde_json::from_slice(body).map_err(|e| parse_error(&e))?;
    let msgs = messages(&req)?;
    let checked = req.sampling.check(cfg, cfg.default_max_tokens)?;
    let top = top_count(req.logprobs, req.top_logprobs)?;
    Ok((req, msgs, checked, top))
}

/// A completions request body, parsed and checked against `cfg`'s limits.
pub fn parse_completion(
    body: &[u8],
    cfg: &crate::config::ServeConfig,
) -> Result<(CompletionRequest, Checked), ApiError> {
    let req: CompletionRequest = serde_json::from_slice(body).map_err(|e| parse_error(&e))?;
    // OpenAI's default length for completions.
    let checked = req.sampling.check(cfg, 16)?;
    if let Some(k) = req.logprobs.filter(|&k| k > MAX_TOP_LOGPROBS) {
        return Err(ApiError::field("logprobs", format!("logprobs must be at most {MAX_TOP_LOGPROBS}, got {k}.")));
    }
    if checked.stream && req.echo && req.logprobs.is_some() {
        return Err(ApiError::field("echo", "echo with logprobs is answered without streaming: set stream to false."));
    }
    Ok((req, checked))
}

pub async fn chat(State(st): State<Shared>, body: Bytes) -> Response {
    match chat_inner(st, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(st: Shared, body: Bytes) -> Result<Response, ApiError> {
    let (req, msgs, checked, top) = parse_chat(&body, &st.cfg)?;
    let m = st.model(&req.model)?;
    let prompt = m
        .template
        .encode_prompt(&m.tokenizer, &msgs)
        .map_err(|e| ApiError::field("messages", format!("the model's chat template failed: {e:#}")))?;
    generate::check_fits(m, &prompt, "messages", 1)?;
    let rxs = generate::submit(m, &prompt, &checked.sample, checked.n, top, checked.stream, st.deadline())?;
    let id = response_id("chatcmpl");
    if checked.stream {
        return Ok(sse(chat_stream(st.clone(), req.model.clone(), id, prompt.len(), rxs, checked)));
    }
    let done = generate::collect_all(rxs).await?;
    let choices: Vec<Value> = done
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": top.map(|_| chat_logprobs(m, &c.logprobs)),
                "finish_reason": finish_reason(c.finish),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": now(), "model": m.id,
        "choices": choices, "usage": usage(prompt.len(), &done),
    }))
    .into_response())
}

fn usage(prompt: usize, done: &[Completion]) -> Value {
    let completion: usize = done.iter().map(|c| c.tokens).sum();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Events of several choices, interleaved as they come, tagged with their index.
fn merged(rxs: Vec<UnboundedReceiver<Event>>) -> impl Stream<Item = (usize, Event)> {
    futures_util::stream::select_all(
        rxs.into_iter().enumerate().map(|(i, rx)| UnboundedReceiverStream::new(rx).map(move |e| (i, e)).boxed()),
    )
}

fn sse<S: Stream<Item = Value> + Send + 'static>(chunks: S) -> Response {
    let events = chunks
        .map(|v| Ok::<_, Infallible>(Sse::default().data(v.to_string())))
        .chain(futures_util::stream::once(async { Ok(Sse::default().data("[DONE]")) }));
    axum::response::Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// Forwards the engine's events as chunks from a task, so the stream's state lives in plain loops;
/// when the client goes away the send fails, the task ends and dropping the event receivers
/// cancels the generations.
fn chat_stream(
    st: Shared,
    model: String,
    id: String,
    prompt_tokens: usize,
    rxs: Vec<UnboundedReceiver<Event>>,
    c: Checked,
) -> impl Stream<Item = Value> + Send + 'static {
    let (tx, out) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let Ok(m) = st.model(&model) else { return };
        let created = now();
        let chunk = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
        for i in 0..rxs.len() {
            let first = json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]);
            if tx.send(chunk(first)).is_err() {
                return;
            }
        }
        let mut events = merged(rxs);
        let mut completion = 0;
        while let Some((i, ev)) = events.next().await {
            let v = match ev {
                Event::Token { piece, logprob, .. } => {
                    if piece.is_empty() && logprob.is_none() {
                        continue;
                    }
                    let lp = logprob.map_or(Value::Null, |l| chat_logprobs(m, std::slice::from_ref(&l)));
                    chunk(json!([{"index": i, "delta": {"content": piece}, "logprobs": lp, "finish_reason": null}]))
                }
                Event::Done { finish, tokens } => {
                    completion += tokens;
                    chunk(json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": finish_reason(finish)}]))
                }
                Event::Failed(e) => {
                    let _ = tx.send(e.body());
                    return;
                }
            };
            if tx.send(v).is_err() {
                return;
            }
        }
        if c.include_usage {
            let mut v = chunk(json!([]));
            v["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion});
            let _ = tx.send(v);
        }
    });
    UnboundedReceiverStream::new(out)
}

pub async fn completions(State(st): State<Shared>, body: Bytes) -> Response {
    match completions_inner(st, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The prompts of a completion request as token ids (text through the tokenizer, BOS first where
/// the tokenizer adds one; ids as given, checked against the vocabulary).
fn prompt_ids(m: &ModelHandle, p: &Prompt) -> Result<Vec<Vec<u32>>, ApiError> {
    let lists = match p {
        Prompt::Text(t) => vec![generate::base_prompt(m, t)?],
        Prompt::Texts(ts) => ts.iter().map(|t| generate::base_prompt(m, t)).collect::<Result<_, _>>()?,
        Prompt::Ids(ids) => vec![ids.clone()],
        Prompt::IdLists(l) => l.clone(),
    };
    if lists.is_empty() {
        return Err(ApiError::field("prompt", "prompt is an empty list."));
    }
    for ids in &lists {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= m.vocab) {
            return Err(ApiError::field("prompt", format!("token id {bad} is outside the vocabulary of {}.", m.vocab)));
        }
    }
    Ok(lists)
}

/// Legacy completions logprobs: `{tokens, token_logprobs, top_logprobs, text_offset}` over `tokens`
/// (with `None` for the first prompt token when `echo` covers the prompt).
fn completion_logprobs(m: &ModelHandle, entries: &[(u32, Option<&TokenLogprob>)]) -> Value {
    let mut offset = 0usize;
    let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    for &(t, lp) in entries {
        let s = token_text(m, t);
        offsets.push(offset);
        offset += s.len();
        tokens.push(Value::String(s));
        lps.push(lp.map_or(Value::Null, |l| json!(l.logprob)));
        tops.push(lp.map_or(Value::Null, |l| {
            Value::Object(l.top.iter().map(|&(t, v)| (token_text(m, t), json!(v))).collect())
        }));
    }
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

async fn completions_inner(st: Shared, body: Bytes) -> Result<Response, ApiError> {
    let (req, checked) = parse_completion(&body, &st.cfg)?;
    let m = st.model(&req.model)?;
    let top = req.logprobs;
    let prompts = prompt_ids(m, &req.prompt)?;
    let deadline = st.deadline();
    // Every prompt's choices are queued before any is awaited, so they decode together.
    let mut all = Vec::new();
    for p in &prompts {
        if checked.sample.max_new_tokens == 0 {
            // Scoring only (`echo`): the prompt may fill the whole context.
            generate::check_fits(m, p, "prompt", 0)?;
            all.push(Vec::new());
        } else {
            all.push(generate::submit(m, p, &checked.sample, checked.n, top, checked.stream, deadline)?);
        }
    }
    let id = response_id("cmpl");
    if checked.stream {
        let rxs: Vec<_> = all.into_iter().flatten().collect();
        return Ok(sse(completion_stream(req.model.clone(), id, rxs)));
    }
    let mut choices = Vec::new();
    let mut prompt_tokens = 0;
    let mut done_all = Vec::new();
    for (p, rxs) in prompts.iter().zip(all) {
        prompt_tokens += p.len();
        let done = if rxs.is_empty() {
            vec![
                Completion { text: String::new(), finish: hone_model::Finish::Length, tokens: 0, logprobs: vec![] };
                checked.n
            ]
        } else {
            generate::collect_all(rxs).await?
        };
        let scored = match (req.echo, top) {
            (true, Some(k)) => Some(generate::score(m, p, k).await?),
            _ => None,
        };
        let echo_text = if req.echo { m.tokenizer.decode(p).unwrap_or_default() } else { String::new() };
        for c in &done {
            let logprobs = top.map(|_| {
                let mut entries: Vec<(u32, Option<&TokenLogprob>)> = Vec::new();
                if let Some(s) = &scored {
                    entries.push((p[0], None));
                    entries.extend(s.iter().map(|l| (l.token, Some(l))));
                }
                entries.extend(c.logprobs.iter().map(|l| (l.token, Some(l))));
                completion_logprobs(m, &entries)
            });
            choices.push(json!({
                "index": choices.len(), "text": format!("{echo_text}{}", c.text),
                "logprobs": logprobs, "finish_reason": finish_reason(c.finish),
            }));
        }
        done_all.extend(done);
    }
    let completion: usize = done_all.iter().map(|c| c.tokens).sum();
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": now(), "model": m.id, "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion},
    }))
    .into_response())
}

fn completion_stream(
    model: String,
    id: String,
    rxs: Vec<UnboundedReceiver<Event>>,
) -> impl Stream<Item = Value> + Send {
    let (tx, out) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let created = now();
        let mut events = merged(rxs);
        while let Some((i, ev)) = events.next().await {
            let chunk = |text: &str, finish: Value| {
                json!({"id": id, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": i, "text": text, "logprobs": null, "finish_reason": finish}]})
            };
            let v = match ev {
                Event::Token { piece, .. } if piece.is_empty() => continue,
                Event::Token { piece, .. } => chunk(&piece, Value::Null),
                Event::Done { finish, .. } => chunk("", json!(finish_reason(finish))),
                Event::Failed(e) => {
                    let _ = tx.send(e.body());
                    return;
                }
            };
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    UnboundedReceiverStream::new(out)
}
