//! The web app: its page and assets (embedded: it works offline), `/api/info`, the compare view
//! (one prompt answered by every model, with the automatic checks), the grade view (two answers,
//! a person's verdict appended to the run's feedback file) and the run's report files.

use crate::checks;
use crate::engine::Kind;
use crate::error::{ApiError, parse_error};
use crate::feedback::{self, Judgement, Shown};
use crate::generate;
use crate::state::Shared;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use hone_model::SampleConfig;
use serde::Deserialize;
use serde_json::{Value, json};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    match name.as_str() {
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response(),
        "app.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response(),
        _ => ApiError::invalid(None, format!("no asset `{name}`")).with_status(StatusCode::NOT_FOUND).into_response(),
    }
}

pub async fn health(State(st): State<Shared>) -> Json<Value> {
    let models: Vec<Value> =
        st.models.iter().map(|m| json!({"id": m.id, "running": m.running(), "waiting": m.waiting()})).collect();
    Json(json!({"status": "ok", "models": models}))
}

pub async fn info(State(st): State<Shared>) -> Json<Value> {
    let report =
        st.run_dir.as_ref().filter(|d| d.join("report").join("report.html").is_file()).map(|_| "/report/report.html");
    let models: Vec<Value> =
        st.models.iter().map(|m| json!({"id": m.id, "kind": m.kind, "context": m.context})).collect();
    Json(json!({
        "run": st.run_dir.as_ref().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()),
        "models": models,
        "report": report,
        "feedback": st.run_dir.is_some(),
        "auth": st.api_key.is_some(),
    }))
}

/// Sampling settings of the app's requests.
#[derive(Debug, Clone, Deserialize)]
struct Settings {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
}

impl Settings {
    fn sample(&self, st: &Shared, seed: u64) -> Result<SampleConfig, ApiError> {
        let s = crate::openai::Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: Some(seed as i64),
            ..Default::default()
        };
        Ok(s.check(&st.cfg, 128)?.sample)
    }
}

#[derive(Debug, Deserialize)]
struct CompareRequest {
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(flatten)]
    settings: Settings,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| parse_error(&e))
}

fn non_empty(field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() { Err(ApiError::field(field, format!("{field} is empty."))) } else { Ok(()) }
}

pub async fn compare(State(st): State<Shared>, body: Bytes) -> Response {
    into(compare_inner(st, body).await)
}

fn into(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn compare_inner(st: Shared, body: Bytes) -> Result<Value, ApiError> {
    let req: CompareRequest = parse(&body)?;
    non_empty("prompt", &req.prompt)?;
    let seed = req.settings.seed.unwrap_or(1);
    let sample = req.settings.sample(&st, seed)?;
    let deadline = st.deadline();
    // Every model's answer is queued before any is awaited: the engines work side by side.
    let pending: Vec<_> = st
        .models
        .iter()
        .map(|m| {
            let (st, m_id, sample, req_prompt, system) =
                (st.clone(), m.id.clone(), sample.clone(), req.prompt.clone(), req.system.clone());
            tokio::spawn(async move {
                let m = st.model(&m_id)?;
                generate::answer(m, system.as_deref(), &req_prompt, &sample, deadline).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for (m, p) in st.models.iter().zip(pending) {
        let c = p.await.map_err(|e| ApiError::internal(format!("{e}")))??;
        answers.push(json!({
            "model": m.id, "kind": m.kind, "text": c.text, "finish": generate::finish_reason(c.finish),
            "verdicts": checks::verdicts(&req.prompt, &c.text),
        }));
    }
    Ok(json!({"seed": seed, "answers": answers}))
}

#[derive(Debug, Deserialize)]
struct PairRequest {
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    a: String,
    b: String,
    #[serde(flatten)]
    settings: Settings,
}

pub async fn grade_pair(State(st): State<Shared>, body: Bytes) -> Response {
    into(grade_pair_inner(st, body).await)
}

async fn grade_pair_inner(st: Shared, body: Bytes) -> Result<Value, ApiError> {
    let req: PairRequest = parse(&body)?;
    non_empty("prompt", &req.prompt)?;
    let seed = req.settings.seed.unwrap_or(1);
    // Two samples of one model differ by seed; two models use the same one.
    let seeds = [seed, if req.a == req.b { seed + 1 } else { seed }];
    let deadline = st.deadline();
    let mut shown = Vec::new();
    for (field, id, seed) in [("a", &req.a, seeds[0]), ("b", &req.b, seeds[1])] {
        let m = st.model(id).map_err(|e| ApiError::field(field, e.message))?;
        if m.kind != Kind::Chat {
            return Err(ApiError::field(field, format!("`{id}` is a base model: grading compares chat answers.")));
        }
        let c =
            generate::answer(m, req.system.as_deref(), &req.prompt, &req.settings.sample(&st, seed)?, deadline).await?;
        shown.push(Shown { model: id.clone(), seed, text: c.text });
    }
    Ok(json!({"prompt": req.prompt, "system": req.system, "a": shown[0], "b": shown[1]}))
}

pub async fn grade(State(st): State<Shared>, body: Bytes) -> Response {
    into(grade_inner(st, body).await)
}

async fn grade_inner(st: Shared, body: Bytes) -> Result<Value, ApiError> {
    let j: Judgement = parse(&body)?;
    non_empty("prompt", &j.prompt)?;
    let Some(run) = st.run_dir.clone() else {
        return Err(ApiError::invalid(
            None,
            "This server serves no run folder, so judgements have nowhere to go: start it with a run folder.",
        ));
    };
    for (field, s) in [("a", &j.a), ("b", &j.b)] {
        st.model(&s.model).map_err(|e| ApiError::field(field, e.message))?;
    }
    let time = hone_data::lock::rfc3339_now();
    let lines = feedback::lines(&j, &time);
    let file = feedback::path(&run);
    let st2 = st.clone();
    let written = lines.len();
    let total = tokio::task::spawn_blocking(move || {
        let _one_writer = st2.feedback.lock().unwrap_or_else(|p| p.into_inner());
        feedback::append(&file, &lines)
    })
    .await
    .map_err(|e| ApiError::internal(format!("{e}")))?
    .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(json!({"written": written, "file": "feedback/preferences.jsonl", "total": total}))
}

/// A file of the run's report folder; nothing outside it (the path is resolved and checked).
pub async fn report(State(st): State<Shared>, UrlPath(rel): UrlPath<String>) -> Response {
    let not_found =
        || ApiError::invalid(None, "no such report file").with_status(StatusCode::NOT_FOUND).into_response();
    let Some(run) = &st.run_dir else { return not_found() };
    let root = match run.join("report").canonicalize() {
        Ok(r) => r,
        Err(_) => return not_found(),
    };
    if rel.split('/').any(|c| c == ".." || c.starts_with('.')) {
        return not_found();
    }
    let path = match root.join(&rel).canonicalize() {
        Ok(p) if p.starts_with(&root) && p.is_file() => p,
        _ => return not_found(),
    };
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => not_found(),
    }
}
