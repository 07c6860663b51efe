//! Collecting what a run left behind: configuration, sizes, each stage's checkpoints and training
//! numbers, and the evaluation results per stage. Missing pieces are simply absent (a report can be
//! written after any stage); unreadable ones are errors naming the file.

use hone_eval::result::{TaskResult, load_results};
use hone_train::metrics::read_series;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything the report shows about a run.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub run_dir: PathBuf,
    pub name: String,
    /// The resolved configuration as written at start (`config.toml`).
    pub config_toml: Option<String>,
    /// `world/summary.json` when the run used the built-in world.
    pub world: Option<Value>,
    /// `data/index.json` of the pretraining shards.
    pub data: Option<Value>,
    /// The base model's `config.json`.
    pub model: Option<Value>,
    pub model_params: Option<usize>,
    /// Stages with a folder in the run, in pipeline order.
    pub stages: Vec<StageFacts>,
    /// Evaluation results per stage name.
    pub evals: BTreeMap<String, Vec<TaskResult>>,
    /// Wall seconds per step of the pipeline (`timings.json`, written by `hone run`).
    pub timings: Vec<(String, f64)>,
}

/// One training stage.
#[derive(Debug, Clone)]
pub struct StageFacts {
    pub name: String,
    pub dir: PathBuf,
    /// Step of the final checkpoint, if the stage finished.
    pub final_step: Option<u64>,
    /// Newest checkpoint step (an unfinished stage has one without a final).
    pub latest_step: Option<u64>,
    pub train_loss: Vec<(u64, f64)>,
    /// The last held-out numbers the stage logged (name, value).
    pub last_eval: Vec<(String, f64)>,
    /// Median tokens per second over the logged steps.
    pub tokens_per_s: Option<f64>,
    /// Tokens trained on (the newest logged cumulative count).
    pub tokens: Option<f64>,
    /// The loss curve drawn into the stage folder (SVG), if there was anything to draw.
    pub curve_svg: Option<PathBuf>,
}

/// Every stage the report knows, in pipeline order.
pub const ALL_STAGES: &[&str] = &["pretrain", "sft", "reward", "dpo", "rl"];

fn read_json(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// Reads the run directory.
pub fn gather(run_dir: &Path) -> anyhow::Result<RunFacts> {
    anyhow::ensure!(run_dir.is_dir(), "{}: no such run directory", run_dir.display());
    let name = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let config_toml = std::fs::read_to_string(run_dir.join("config.toml")).ok();
    let world = read_json(&run_dir.join("world/summary.json"))?;
    let data = read_json(&run_dir.join("data/index.json"))?;
    let metrics = run_dir.join("metrics.jsonl");
    let mut stages = Vec::new();
    let mut model = None;
    for &stage in ALL_STAGES {
        let dir = run_dir.join(stage);
        if !dir.is_dir() {
            continue;
        }
        let ckpts = hone_data::checkpoint::CheckpointDir::new(&dir, usize::MAX);
        let final_ckpt = ckpts.final_checkpoint()?;
        let latest = ckpts.latest()?;
        if model.is_none()
            && let Some(c) = final_ckpt.as_ref().or(latest.as_ref())
        {
            model = read_json(&c.dir.join("config.json"))?;
        }
        let train_loss = read_series(&metrics, stage, "train", "loss");
        let mut tps: Vec<f64> = read_series(&metrics, stage, "train", "tokens_per_s")
            .into_iter()
            .map(|p| p.1)
            .filter(|x| x.is_finite())
            .collect();
        tps.sort_by(f64::total_cmp);
        let tokens = read_series(&metrics, stage, "train", "tokens").last().map(|p| p.1);
        let curve_svg = if train_loss.is_empty() {
            None
        } else {
            hone_train::plot::loss_curve(&metrics, stage, &dir)?
                .into_iter()
                .find(|p| p.extension().is_some_and(|e| e == "svg"))
        };
        stages.push(StageFacts {
            name: stage.to_string(),
            dir,
            final_step: final_ckpt.as_ref().map(|c| c.step),
            latest_step: latest.as_ref().map(|c| c.step),
            train_loss,
            last_eval: last_eval(&metrics, stage),
            tokens_per_s: tps.get(tps.len() / 2).copied(),
            tokens,
            curve_svg,
        });
    }
    let model_params = model
        .as_ref()
        .and_then(|m| serde_json::from_value::<hone_model::LlamaConfig>(m.clone()).ok())
        .map(|c| c.num_params());
    let mut evals = BTreeMap::new();
    for &stage in ALL_STAGES {
        let dir = run_dir.join("eval").join(stage);
        if dir.is_dir() {
            let results = load_results(&dir)?;
            if !results.is_empty() {
                evals.insert(stage.to_string(), results);
            }
        }
    }
    let timings = match read_json(&run_dir.join("timings.json"))? {
        Some(Value::Object(o)) => o.into_iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect(),
        _ => Vec::new(),
    };
    Ok(RunFacts {
        run_dir: run_dir.to_path_buf(),
        name,
        config_toml,
        world,
        data,
        model,
        model_params,
        stages,
        evals,
        timings,
    })
}

/// The fields of the newest `eval` line of a stage.
fn last_eval(metrics: &Path, stage: &str) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(metrics) else { return Vec::new() };
    let mut last = None;
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line)
            && v["stage"] == stage
            && v["kind"] == "eval"
        {
            last = Some(v);
        }
    }
    let Some(Value::Object(o)) = last else { return Vec::new() };
    o.into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "stage" | "kind" | "step"))
        .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
        .collect()
}
