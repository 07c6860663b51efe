//! Collecting what a run left behind: configuration, sizes, each stage's checkpoints and training
//! numbers, and the evaluation results per stage. Missing pieces are simply absent (a report can be
//! written after any stage); unreadable ones are errors naming the file.

use crate::ReportStage;
use hone_metrics::read_series;
use hone_tasks::result::{TaskResult, load_results};
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
    /// The policy stages with an evaluation, in order: the report's columns as (name, label).
    pub columns: Vec<(String, String)>,
    /// Evaluation results per stage name.
    pub evals: BTreeMap<String, Vec<TaskResult>>,
    /// Wall seconds per step of the pipeline (`timings.json`, written by `hone run`).
    pub timings: Vec<(String, f64)>,
    /// Peak resident MiB per step of the pipeline (`memory.json`, written by `hone run` on Linux).
    pub peaks: Vec<(String, f64)>,
    /// The rounds of `hone iterate` (`iterate/round-*/round.json`); each kept round of the main line
    /// with an evaluation (`eval/round-N/`) is also a column.
    pub rounds: Vec<crate::iteration::RoundRecord>,
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
    /// What the stage's data loading left out (records cut to its length limit, dropped, skipped),
    /// from `<stage>/data_notes.json`.
    pub data_notes: hone_data::checkpoint::DataNotes,
}

fn read_json(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// Reads the run directory.
pub fn gather(run_dir: &Path, known: &[ReportStage]) -> anyhow::Result<RunFacts> {
    anyhow::ensure!(run_dir.is_dir(), "{}: no such run directory", run_dir.display());
    let name = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let config_toml = std::fs::read_to_string(run_dir.join("config.toml")).ok();
    let world = read_json(&run_dir.join("world/summary.json"))?;
    let data = read_json(&run_dir.join("data/index.json"))?;
    let metrics = run_dir.join("metrics.jsonl");
    let mut stages = Vec::new();
    let mut model = None;
    let mut model_params = None;
    for stage in known.iter().map(|s| s.name.as_str()) {
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
            model_params = count_params(&c.dir.join("model.safetensors"))?;
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
            hone_metrics::loss_curve(&metrics, stage, &dir)?
                .into_iter()
                .find(|p| p.extension().is_some_and(|e| e == "svg"))
        };
        let data_notes = hone_data::checkpoint::read_data_notes(&dir)?;
        stages.push(StageFacts {
            data_notes,
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
    let mut evals = BTreeMap::new();
    for stage in known.iter().filter(|s| s.policy).map(|s| s.name.as_str()) {
        let dir = run_dir.join("eval").join(stage);
        if dir.is_dir() {
            let results = load_results(&dir)?;
            if !results.is_empty() {
                evals.insert(stage.to_string(), results);
            }
        }
    }
    let per_step = |file: &str| -> anyhow::Result<Vec<(String, f64)>> {
        Ok(match read_json(&run_dir.join(file))? {
            Some(Value::Object(o)) => o.into_iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect(),
            _ => Vec::new(),
        })
    };
    let timings = per_step("timings.json")?;
    let peaks = per_step("memory.json")?;
    let mut columns: Vec<(String, String)> = known
        .iter()
        .filter(|s| s.policy && evals.contains_key(&s.name))
        .map(|s| (s.name.clone(), s.label.clone()))
        .collect();
    let rounds = crate::iteration::read_rounds(run_dir)?;
    for r in rounds.iter().filter(|r| r.branch.is_none() && r.kept) {
        let name = format!("round-{}", r.round);
        let dir = run_dir.join("eval").join(&name);
        if dir.is_dir() {
            let results = load_results(&dir)?;
            if !results.is_empty() {
                evals.insert(name.clone(), results);
                columns.push((name, format!("round {}", r.round)));
            }
        }
    }
    Ok(RunFacts {
        columns,
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
        peaks,
        rounds,
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

/// The number of parameters in a weights file, from its header alone (the tensors' shapes), so the
/// report needs no model code; `None` when the file is absent.
fn count_params(path: &Path) -> anyhow::Result<Option<usize>> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let bad = |what: &str| anyhow::anyhow!("{}: not a safetensors file ({what})", path.display());
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| bad("shorter than its 8-byte header length"))?;
    let len = u64::from_le_bytes(len);
    let file_len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A header cannot be longer than the file that holds it: never allocate what a file merely claims.
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(&format!("header length {len} exceeds the file")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|_| bad("truncated header"))?;
    let v: Value = serde_json::from_slice(&header).map_err(|e| bad(&format!("header is not JSON: {e}")))?;
    let Value::Object(o) = v else { return Err(bad("header is not a JSON object")) };
    let n = o
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| {
            t["shape"].as_array().map(|s| s.iter().map(|d| d.as_u64().unwrap_or(0) as usize).product::<usize>())
        })
        .sum::<Option<usize>>()
        .ok_or_else(|| bad("a tensor without a shape"))?;
    Ok(Some(n))
}
