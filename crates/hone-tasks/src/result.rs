//! What an evaluation writes: one [`TaskResult`] per task as JSON, holding the metrics (value, item
//! count, 95% interval, direction) and every item's record, so a reader sees which items failed.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the result format.
pub const FORMAT_VERSION: u32 = 1;

/// One metric of a task (or of one group of its items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    /// `field=value` when the metric covers only the items of one group; `None` for the whole task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub value: f64,
    /// Items the value is computed over.
    pub n: usize,
    /// 95% interval.
    pub lo: f64,
    pub hi: f64,
    /// `wilson` (proportions) or `bootstrap` (percentile interval over items).
    pub interval: String,
    pub higher_is_better: bool,
}

/// Log-likelihood of one choice of a multiple-choice item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceScore {
    pub text: String,
    /// Sum of the log-probabilities (nats) of the choice's tokens given the context.
    pub loglik: f64,
    pub tokens: usize,
    /// UTF-8 bytes of the choice (`acc_norm` divides by its characters, as lm-evaluation-harness).
    pub bytes: usize,
    /// Whether every token of the choice is the model's most likely next token.
    pub greedy: bool,
}

/// One evaluated item. Fields not used by a kind are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The prompt, the multiple-choice context, or the start of a scored text.
    pub prompt: String,
    /// Acceptable answers (generate) or the gold choice's text (multiple choice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Generated outputs (one per sample).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<ChoiceScore>,
    /// Normalised probabilities of the choices (softmax of their log-likelihoods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probs: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold: Option<usize>,
    /// Choice with the highest log-likelihood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pred: Option<usize>,
    /// Choice with the highest log-likelihood per byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pred_norm: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_norm: Option<bool>,
    /// Whether the choice whose log-likelihood gains most from the context is the gold one
    /// (`acc_mutual_info`; multiple-choice tasks with `mutual_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_mi: Option<bool>,
    /// The scorer's score in 0..=1 (generate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The scorer's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Negative log-likelihood (nats) of a whole text (rolling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
}

/// The result of one task on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub version: u32,
    pub task: String,
    pub kind: String,
    pub description: String,
    /// Name of the headline metric.
    pub headline: String,
    /// The task file.
    pub task_file: String,
    /// The checkpoint folder evaluated.
    pub model: String,
    /// Run directory and stage, when the checkpoint is a stage of a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Items in the set, and how many were evaluated (`--limit`).
    pub items_total: usize,
    pub items_evaluated: usize,
    /// Settings that change the numbers (format, context length, sampling).
    pub settings: serde_json::Value,
    pub elapsed_s: f64,
    pub metrics: Vec<Metric>,
    pub items: Vec<ItemRecord>,
}

impl TaskResult {
    /// The whole-task metric named `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name && m.group.is_none())
    }

    /// The headline metric.
    pub fn headline_metric(&self) -> Option<&Metric> {
        self.metric(&self.headline)
    }

    /// Writes `<dir>/<task>.json` atomically, under the file's own lock (so a `hone eval` beside a
    /// running pipeline never interleaves with it), and returns its path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.task));
        let text = serde_json::to_string_pretty(self)?;
        hone_data::fault::point("eval-result");
        hone_data::lock::with_file_lock(&path, || {
            hone_data::atomic::write_atomic(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))
        })?;
        Ok(path)
    }

    /// Reads one result file.
    pub fn load(path: &Path) -> Result<TaskResult> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!("{}: not a hone eval result (expected the JSON that `hone eval` writes)", path.display())
        })
    }
}

/// Every result in `path`: a result file, or a folder of them (sorted by task name). Other JSON files
/// in a folder are skipped.
pub fn load_results(path: &Path) -> Result<Vec<TaskResult>> {
    if path.is_file() {
        return Ok(vec![TaskResult::load(path)?]);
    }
    let rd = std::fs::read_dir(path).with_context(|| format!("reading result folder {}", path.display()))?;
    let mut out = Vec::new();
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json")
            && let Ok(r) = TaskResult::load(&p)
        {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.task.cmp(&b.task));
    Ok(out)
}
