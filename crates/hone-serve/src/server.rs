//! The router and the listening loop: routes, the request guard, the body limit, and a graceful
//! stop on Ctrl-C (no new connections; requests in flight finish).

use crate::config::ServeConfig;
use crate::engine::{Kind, ModelHandle};
use crate::error::ApiError;
use crate::state::{AppState, Shared};
use crate::{app, guard, v1};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hone_model::LoadedModel;
use std::path::PathBuf;
use std::sync::Arc;

/// A model to serve: its id, how it is talked to, and the loaded weights.
pub struct Served {
    pub id: String,
    pub kind: Kind,
    pub model: LoadedModel,
}

/// What `hone serve` was asked for.
pub struct Options {
    pub cfg: ServeConfig,
    pub run_dir: Option<PathBuf>,
    pub api_key: Option<String>,
}

/// Starts an engine per model and builds the shared state.
pub fn state(models: Vec<Served>, opts: Options) -> anyhow::Result<Shared> {
    opts.cfg.validate()?;
    anyhow::ensure!(!models.is_empty(), "nothing to serve: give a run folder with trained stages, or models with -m");
    let mut handles: Vec<ModelHandle> = Vec::new();
    for s in models {
        anyhow::ensure!(
            !handles.iter().any(|h| h.id == s.id),
            "two models are called `{}`: name one with -m ID=PATH",
            s.id
        );
        handles.push(ModelHandle::start(&s.id, s.kind, s.model, opts.cfg.max_batch, opts.cfg.queue)?);
    }
    let hosts = guard::allowed_hosts(&opts.cfg.host, &opts.cfg.allowed_hosts);
    Ok(Arc::new(AppState {
        models: handles,
        cfg: opts.cfg,
        run_dir: opts.run_dir,
        api_key: opts.api_key.filter(|k| !k.is_empty()),
        hosts,
        feedback: std::sync::Mutex::new(()),
    }))
}

/// Every route, behind the guard and the body limit.
pub fn router(st: Shared) -> Router {
    let limit = st.cfg.max_body_bytes;
    Router::new()
        .route("/", get(app::index))
        .route("/assets/{name}", get(app::asset))
        .route("/health", get(app::health))
        .route("/api/info", get(app::info))
        .route("/api/compare", post(app::compare))
        .route("/api/grade/pair", post(app::grade_pair))
        .route("/api/grade", post(app::grade))
        .route("/report/{*path}", get(app::report))
        .route("/v1/models", get(v1::models))
        .route("/v1/chat/completions", post(v1::chat))
        .route("/v1/completions", post(v1::completions))
        .fallback(|| async {
            ApiError::invalid(None, "no such endpoint").with_status(axum::http::StatusCode::NOT_FOUND)
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(too_large_as_json))
        .layer(axum::middleware::from_fn_with_state(st.clone(), guard::layer))
        .with_state(st)
}

/// axum answers an over-limit body with a plain-text 413; clients expect OpenAI's JSON shape.
async fn too_large_as_json(r: axum::response::Response) -> axum::response::Response {
    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        && r.headers().get("content-type").is_none_or(|c| !c.as_bytes().starts_with(b"application/json"))
    {
        return ApiError::invalid(None, "The request body is larger than this server accepts (serve.max_body_bytes).")
            .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
            .with_code("body_too_large")
            .into_response();
    }
    r
}

/// Serves until Ctrl-C; `on_ready` receives the bound address.
pub fn serve(st: Shared, on_ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        // HTTP work is light; the engines' threads do the arithmetic.
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", st.cfg.host, st.cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (another server on this port? try --port)"))?;
        on_ready(listener.local_addr()?);
        axum::serve(listener, router(st))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
                eprintln!("stopping: finishing requests in flight");
            })
            .await?;
        Ok(())
    })
}
