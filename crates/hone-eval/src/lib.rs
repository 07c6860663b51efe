//! hone-eval: evaluation of a checkpoint on tasks described by task files (the world's format,
//! `hone_tasks::tasks::TaskFile`, modelled on lm-evaluation-harness):
//!
//! - `loglikelihood_rolling`: held-out loss, perplexity and bits per byte ([`rolling`]);
//! - `multiple_choice`: `acc`, `acc_norm`, Brier score and calibration error from choice
//!   log-likelihoods ([`mc`]);
//! - `generate`: sampled outputs scored by the world's scorers ([`generate`]).
//!
//! [`run_task`] evaluates one task and returns a [`TaskResult`] (metrics with 95% intervals and every
//! item's record); [`compare::compare`] tells whether a model is worse than another beyond noise.

pub mod config;
pub mod doc;
pub mod fewshot;
pub mod generate;
pub mod items;
pub mod loglik;
pub mod mc;
pub mod rolling;
pub mod source;
pub mod spec;

/// Results, their statistics and comparison live in `hone-tasks` (no tensors), where the report reads
/// them too.
pub use hone_tasks::{compare, metrics, result, table};

pub use config::EvalConfig;
pub use result::{ChoiceScore, ItemRecord, Metric, TaskResult, load_results};
pub use spec::{TaskSpec, load_dir, resolve};

use anyhow::{Context, Result, bail};
use hone_data::chat::ChatTemplate;
use hone_data::tokenizer::Tokenizer;
use hone_model::{Llama, LoadedModel, SampleConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run tasks: the `[eval]` and `[sample]` sections, and whether to draw progress bars.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub eval: EvalConfig,
    pub sample: SampleConfig,
    pub progress: bool,
}

/// What is evaluated: a model with its tokenizer and chat template, and the checkpoint folder it came
/// from (recorded in the result; run and stage are derived from it).
pub struct Subject<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub dir: PathBuf,
}

impl<'a> From<&'a LoadedModel> for Subject<'a> {
    fn from(m: &'a LoadedModel) -> Self {
        Subject { model: &m.model, tokenizer: &m.tokenizer, template: &m.template, dir: m.dir.clone() }
    }
}

/// The run folder and stage of a checkpoint folder `<run>/<stage>/<checkpoint>`, when its parent is a
/// stage folder (holds a `final` marker or `step-*` checkpoints).
pub fn run_and_stage(checkpoint: &Path) -> Option<(PathBuf, String)> {
    let stage_dir = checkpoint.parent()?;
    let is_stage = stage_dir.join(hone_data::checkpoint::FINAL_MARKER).exists()
        || checkpoint.file_name()?.to_string_lossy().starts_with("step-");
    if !is_stage {
        return None;
    }
    let stage = stage_dir.file_name()?.to_string_lossy().into_owned();
    Some((stage_dir.parent()?.to_path_buf(), stage))
}

/// The default output folder of a checkpoint's results: `<run>/eval/<stage>/`.
pub fn default_out_dir(checkpoint: &Path) -> Option<PathBuf> {
    run_and_stage(checkpoint).map(|(run, stage)| run.join("eval").join(stage))
}

/// Evaluates a loaded model on one task.
pub fn run_task(model: &LoadedModel, task: &TaskSpec, opts: &EvalOptions) -> Result<TaskResult> {
    run_task_on(&Subject::from(model), task, opts)
}

/// Evaluates `subject` on one task.
pub fn run_task_on(subject: &Subject, task: &TaskSpec, opts: &EvalOptions) -> Result<TaskResult> {
    let t0 = Instant::now();
    let f = &task.file;
    f.check()?;
    let e = &opts.eval;
    let inference;
    let model = if subject.model.device().is_autodiff() {
        inference = subject.model.to_inference();
        &inference
    } else {
        subject.model
    };
    let tok = subject.tokenizer;
    let model_max = model.config.max_position_embeddings;
    let max_len = if e.max_length == 0 { model_max } else { e.max_length.min(model_max) };
    let records = task.records()?;
    let total = records.len();
    let limit = e.limit_for(&f.name);
    let pick = match e.limit_mode {
        config::LimitMode::Spread => source::spread(total, limit),
        config::LimitMode::First => (0..if limit == 0 { total } else { limit.min(total) }).collect(),
    };
    let group = f.group_field.as_deref();
    let bar = hone_data::progress::steps_bar(pick.len() as u64, "eval", opts.progress);
    bar.set_message(f.name.clone());
    let mut on_progress = |done: usize, all: usize| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    };
    let mut settings = serde_json::json!({ "max_length": max_len, "limit": limit, "limit_mode": e.limit_mode });
    let items: Vec<ItemRecord> = match f.kind.as_str() {
        "multiple_choice" => {
            let m = f.multiple_choice.as_ref().expect("checked");
            let items = task_mc_items(task, &records, &pick)?;
            if let Some(fs) = &f.fewshot {
                settings["num_fewshot"] = fs.num.into();
            }
            let reqs = mc::requests(tok, &items, m.mutual_info)?;
            let lls = score(model, &reqs, max_len, e, tok.pad_id, &mut on_progress)?;
            mc::records(&items, &lls)
        }
        "loglikelihood" => {
            let items = task_single_items(task, &records, &pick)?;
            if let Some(fs) = &f.fewshot {
                settings["num_fewshot"] = fs.num.into();
            }
            let reqs = mc::single_requests(tok, &items)?;
            let lls = score(model, &reqs, max_len, e, tok.pad_id, &mut on_progress)?;
            mc::single_records(&items, &lls)
        }
        "loglikelihood_rolling" => {
            let r = f.loglikelihood_rolling.as_ref().expect("checked");
            let items: Vec<items::TextItem> =
                pick.iter().map(|&i| items::text_item(&records[i], r, group)).collect::<Result<_>>()?;
            let (reqs, spans) = rolling::requests(tok, &items, max_len, e.rolling_context)?;
            let lls = score(model, &reqs, max_len, e, tok.pad_id, &mut on_progress)?;
            settings["rolling_context"] = e.rolling_context.into();
            rolling::records(&items, &spans, &lls)
        }
        "generate" => {
            let g = f.generate.as_ref().expect("checked");
            let chat = match e.format.as_str() {
                "task" => g.chat,
                "chat" => true,
                "text" => false,
                other => bail!("eval.format: `{other}` is not one of task, chat, text"),
            };
            let mut items: Vec<items::GenItem> =
                pick.iter().map(|&i| items::gen_item(&records[i], g, group)).collect::<Result<_>>()?;
            let mut g = g.clone();
            if !chat {
                anyhow::ensure!(
                    e.text_template.contains("{prompt}"),
                    "eval.text_template must contain {{prompt}} (where the item's prompt goes)"
                );
                for it in &mut items {
                    it.prompt = e.text_template.replace("{prompt}", &it.prompt);
                }
                g.stop.extend(e.text_stop.iter().cloned());
                settings["text_template"] = e.text_template.clone().into();
            }
            let g = &g;
            let cfg = generate::sample_config(g, &opts.sample);
            settings["format"] = (if chat { "chat" } else { "text" }).into();
            settings["sample"] = serde_json::to_value(&cfg)?;
            settings["samples"] = g.samples.into();
            settings["scorer"] = g.scorer.clone().into();
            generate::run(model, tok, subject.template, &items, g, chat, &opts.sample, e.gen_batch, &mut on_progress)?
        }
        other => bail!("task `{}`: unknown kind `{other}`", f.name),
    };
    bar.finish_and_clear();
    let scorer = f.generate.as_ref().map(|g| g.scorer.as_str());
    let defs = metrics::defs(&f.kind, &f.metric, scorer);
    let metrics = metrics::compute(&defs, &items, group, e.bootstrap, e.seed);
    let rs = run_and_stage(&subject.dir);
    Ok(TaskResult {
        version: result::FORMAT_VERSION,
        task: f.name.clone(),
        kind: f.kind.clone(),
        description: f.description.clone(),
        headline: if f.kind == "generate" { f.metric.clone() } else { headline_of(&f.kind, &f.metric) },
        task_file: task.path.display().to_string(),
        model: subject.dir.display().to_string(),
        run: rs.as_ref().map(|(r, _)| r.display().to_string()),
        stage: rs.map(|(_, s)| s),
        items_total: total,
        items_evaluated: items.len(),
        settings,
        elapsed_s: t0.elapsed().as_secs_f64(),
        metrics,
        items,
    })
}

/// The headline of a log-likelihood task: the task file's `metric` when the kind computes it, else the
/// kind's usual one.
/// The multiple-choice items of records `pick` of a task, few-shot contexts included.
pub fn task_mc_items(task: &TaskSpec, records: &[source::Record], pick: &[usize]) -> Result<Vec<items::McItem>> {
    let f = &task.file;
    let m = f.multiple_choice.as_ref().ok_or_else(|| anyhow::anyhow!("task `{}` is not multiple_choice", f.name))?;
    let group = f.group_field.as_deref();
    let templates = items::mc_templates(m).with_context(|| format!("task file {}", task.path.display()))?;
    let item_of = |r: &source::Record| items::mc_item_with(r, m, templates.as_ref(), group);
    let mut items: Vec<items::McItem> = pick.iter().map(|&i| item_of(&records[i])).collect::<Result<_>>()?;
    if let Some(fs) = &f.fewshot {
        anyhow::ensure!(!m.multiple_input, "task `{}`: [fewshot] with multiple_input is not supported", f.name);
        let pool = fewshot_pool(task, fs).with_context(|| format!("task file {}: [fewshot]", task.path.display()))?;
        let pool = pool.as_deref().unwrap_or(records);
        for (it, &i) in items.iter_mut().zip(pick) {
            let own = fs.source.is_none().then_some(i);
            it.fewshot = fewshot::prefix(fs, pool.len(), own, &mut |j| {
                let ex = item_of(&pool[j])?;
                Ok(format!("{}{}{}", ex.context, ex.prefix, ex.choices[ex.gold]))
            })
            .with_context(|| format!("task file {}: [fewshot]", task.path.display()))?;
        }
    }
    Ok(items)
}

/// The single-target items of records `pick` of a `loglikelihood` task, few-shot contexts included.
pub fn task_single_items(
    task: &TaskSpec,
    records: &[source::Record],
    pick: &[usize],
) -> Result<Vec<items::SingleItem>> {
    let f = &task.file;
    let sgl = f.loglikelihood.as_ref().ok_or_else(|| anyhow::anyhow!("task `{}` is not loglikelihood", f.name))?;
    let group = f.group_field.as_deref();
    let t = doc::DocTemplates::new(&[("doc_to_text", &sgl.doc_to_text), ("doc_to_target", &sgl.doc_to_target)])
        .with_context(|| format!("task file {}", task.path.display()))?;
    let item_of = |r: &source::Record| items::single_item(r, sgl, &t, group);
    let mut items: Vec<items::SingleItem> = pick.iter().map(|&i| item_of(&records[i])).collect::<Result<_>>()?;
    if let Some(fs) = &f.fewshot {
        let pool = fewshot_pool(task, fs).with_context(|| format!("task file {}: [fewshot]", task.path.display()))?;
        let pool = pool.as_deref().unwrap_or(records);
        for (it, &i) in items.iter_mut().zip(pick) {
            let own = fs.source.is_none().then_some(i);
            let prefix = fewshot::prefix(fs, pool.len(), own, &mut |j| {
                let ex = item_of(&pool[j])?;
                Ok(format!("{}{}", ex.context, ex.target))
            })
            .with_context(|| format!("task file {}: [fewshot]", task.path.display()))?;
            it.context = format!("{prefix}{}", it.context);
        }
    }
    Ok(items)
}

/// The records few-shot examples come from when `[fewshot]` names its own `source` (relative to
/// the task file); `None`: the task's own records.
fn fewshot_pool(task: &TaskSpec, fs: &hone_tasks::tasks::Fewshot) -> Result<Option<Vec<source::Record>>> {
    match &fs.source {
        None => Ok(None),
        Some(src) => {
            let path = task.path.parent().unwrap_or(Path::new(".")).join(src);
            source::read_records(&path, None).map(Some)
        }
    }
}

/// Log-likelihoods of `reqs` as `[eval]` says (batch size, shared contexts).
fn score(
    model: &Llama,
    reqs: &[loglik::Request],
    max_len: usize,
    e: &EvalConfig,
    pad: u32,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<loglik::LogLik>> {
    let sharing = if e.share_context { loglik::Sharing::Context } else { loglik::Sharing::None };
    loglik::loglikelihoods_with(model, reqs, max_len, e.batch_tokens, pad, sharing, on_progress)
}

fn headline_of(kind: &str, metric: &str) -> String {
    let known: &[&str] = match kind {
        "multiple_choice" => &["acc", "acc_norm", "brier", "ece"],
        _ => &["loss", "perplexity", "bits_per_byte"],
    };
    if known.contains(&metric) {
        metric.to_string()
    } else {
        known[if kind == "multiple_choice" { 0 } else { 2 }].to_string()
    }
}
