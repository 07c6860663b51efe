//! `hone serve`: the OpenAI-compatible server and web app over a run's stages and any other
//! models (see `hone-serve`).

use crate::args::ConfigArgs;
use anyhow::{Context, Result};
use clap::Args;
use hone_serve::{Kind, Served};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A run folder: its trained stages are served, its report linked, and judgements made in the
    /// web app saved to its feedback/ folder. Default: the configured run (runs/default) when it
    /// exists and no -m is given.
    pub run: Option<PathBuf>,
    /// A model to serve besides the run's stages, as `PATH` or `ID=PATH` (a checkpoint, stage folder,
    /// Hugging Face folder or GGUF file); repeatable.
    #[arg(long, short = 'm', value_name = "[ID=]PATH")]
    pub model: Vec<String>,
    /// Address to bind (serve.host; loopback by default).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (serve.port; 0 = any free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Require `Authorization: Bearer KEY` on the API (also read from HONE_API_KEY).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Another host name to answer to (serve.allowed_hosts), e.g. this machine's name when binding
    /// to 0.0.0.0; repeatable.
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Decode with 8-bit weights (Q8_0), as `hone sample --q8`.
    #[arg(long)]
    pub q8: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The run's trained policy stages, in pipeline order: a stage trained from scratch continues text
/// (base), the others answer chat turns.
fn run_models(run: &Path, q8: bool) -> Result<Vec<Served>> {
    let mut out = Vec::new();
    for stage in hone_train::REGISTRY {
        let info = stage.info();
        let dir = run.join(info.name);
        if !crate::pipeline::is_policy(info) || hone_model::load::resolve_checkpoint(&dir).is_err() {
            continue;
        }
        let kind = if info.starts_from.is_empty() { Kind::Base } else { Kind::Chat };
        out.push(Served { id: info.name.to_string(), kind, model: load(&dir, q8)? });
    }
    Ok(out)
}

fn load(path: &Path, q8: bool) -> Result<hone_model::LoadedModel> {
    let mut m = hone_model::load(path, &hone_model::device::select("cpu")?)
        .with_context(|| format!("loading {}", path.display()))?;
    if q8 {
        m.model.quantize_q8()?;
    }
    Ok(m)
}

/// `ID=PATH` or `PATH` (the id then the file or folder name, without `.gguf`).
fn parse_model(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((id, path)) if !id.is_empty() && !id.contains('/') => (id.to_string(), PathBuf::from(path)),
        _ => {
            let p = PathBuf::from(spec);
            let id = p.file_stem().map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned());
            (id, p)
        }
    }
}

pub fn run(a: ServeArgs) -> Result<()> {
    let cfg = a.config.load(&[])?;
    let mut serve = cfg.serve.clone();
    if let Some(h) = a.host {
        serve.host = h;
    }
    if let Some(p) = a.port {
        serve.port = p;
    }
    serve.allowed_hosts.extend(a.allow_host);
    let run = match a.run {
        Some(r) => {
            anyhow::ensure!(r.is_dir(), "{}: no such run folder", r.display());
            Some(r)
        }
        None if a.model.is_empty() => {
            let r = cfg.run_dir();
            anyhow::ensure!(
                r.is_dir(),
                "{}: no run to serve; give a run folder (hone serve runs/NAME) or models (-m PATH)",
                r.display()
            );
            Some(r)
        }
        None => None,
    };
    let mut models = match &run {
        Some(r) => run_models(r, a.q8)?,
        None => Vec::new(),
    };
    if let Some(r) = &run {
        anyhow::ensure!(!models.is_empty(), "{}: no trained stage to serve yet (run `hone run` first)", r.display());
    }
    for spec in &a.model {
        let (id, path) = parse_model(spec);
        models.push(Served { id, kind: Kind::Chat, model: load(&path, a.q8)? });
    }
    let api_key = a.api_key.or_else(|| std::env::var("HONE_API_KEY").ok());
    let ids: Vec<String> = models.iter().map(|m| format!("{} ({:?})", m.id, m.kind).to_lowercase()).collect();
    let state = hone_serve::state(models, hone_serve::Options { cfg: serve, run_dir: run, api_key })?;
    let auth = state.api_key.is_some();
    hone_serve::serve(state, |addr| {
        eprintln!(
            "serving {} on http://{addr}/ (OpenAI API at http://{addr}/v1{})",
            ids.join(", "),
            if auth { ", API key required" } else { "" }
        );
        eprintln!("Ctrl-C stops");
    })
}
