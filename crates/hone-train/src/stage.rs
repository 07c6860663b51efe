//! What the post-training stages (SFT, DPO, reward, RL) share: where a stage's starting weights come
//! from (an explicit checkpoint, else the previous stage's `final` in the same run), opening a
//! checkpoint with the run's tokenizer and chat template, the loop settings every stage section
//! carries, the optimizer settings a stage overrides, and the run of the loop itself.

use crate::config::OptimConfig;
use crate::trainable::Trainable;
use crate::trainer::{LoopSettings, RunSummary, Task, Trainer, fmt_metrics};
use burn::tensor::Device;
use hone_data::chat::ChatTemplate;
use hone_data::checkpoint::CheckpointDir;
use hone_data::tokenizer::Tokenizer;
use hone_model::{Llama, LlamaConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A model opened from a checkpoint, with the tokenizer and chat template it was trained with.
pub struct Opened {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// The checkpoint folder the weights came from.
    pub dir: PathBuf,
}

/// The checkpoint folder a stage starts from: `explicit` when set, else the `final` checkpoint of
/// the first of `previous` (stage names, in order of preference) that has one under `run_dir`.
pub fn resolve_init(run_dir: &Path, explicit: &str, stage: &str, previous: &[&str]) -> anyhow::Result<PathBuf> {
    if !explicit.is_empty() {
        return Ok(PathBuf::from(explicit));
    }
    for p in previous {
        if let Some(c) = CheckpointDir::new(&run_dir.join(p), 1).final_checkpoint()? {
            return Ok(c.dir);
        }
    }
    let tried: Vec<String> = previous.iter().map(|p| run_dir.join(p).join("final").display().to_string()).collect();
    anyhow::bail!(
        "{stage}: no starting model: none of {} exists; run the previous stage first, or pass --model <checkpoint> \
         (or set {stage}.init)",
        tried.join(", ")
    )
}

/// A checkpoint folder (holds `config.json` and `model.safetensors`), or a stage folder (its `final`
/// checkpoint, else the newest).
pub fn checkpoint_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("config.json").is_file() && path.join("model.safetensors").is_file() {
        return Ok(path.to_path_buf());
    }
    let stage = CheckpointDir::new(path, 1);
    if let Some(c) = stage.final_checkpoint()? {
        return Ok(c.dir);
    }
    if let Some(c) = stage.latest()? {
        return Ok(c.dir);
    }
    anyhow::bail!(
        "{}: not a checkpoint (no config.json + model.safetensors) nor a stage folder with checkpoints",
        path.display()
    )
}

/// The nearest `tokenizer.json` in `dir` or a folder above it.
pub fn find_tokenizer(dir: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.ancestors().map(|a| a.join("tokenizer.json")).find(|p| p.is_file()).ok_or_else(|| {
        anyhow::anyhow!("{}: no tokenizer.json in this folder or any folder above it", dir.display())
    })
}

/// The chat template in `tokenizer_config.json` beside `tokenizer_json`, else hone's default.
pub fn chat_template(tokenizer_json: &Path) -> anyhow::Result<ChatTemplate> {
    let cfg_path = tokenizer_json.with_file_name("tokenizer_config.json");
    let Ok(text) = std::fs::read_to_string(&cfg_path) else { return Ok(ChatTemplate::hone_default()) };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", cfg_path.display()))?;
    let Some(src) = v["chat_template"].as_str() else { return Ok(ChatTemplate::hone_default()) };
    let tok = |k: &str, d: &str| v[k].as_str().unwrap_or(d).to_string();
    ChatTemplate::new(
        src,
        &tok("bos_token", hone_data::tokenizer::BOS),
        &tok("eos_token", hone_data::tokenizer::END),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e:#}", cfg_path.display()))
}

/// Opens the model at `path` (see [`checkpoint_dir`]) on `device` with its tokenizer and template.
pub fn open(path: &Path, device: &Device) -> anyhow::Result<Opened> {
    let dir = checkpoint_dir(path)?;
    let cfg_path = dir.join("config.json");
    let cfg: LlamaConfig = serde_json::from_slice(
        &std::fs::read(&cfg_path).map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?,
    )
    .map_err(|e| anyhow::anyhow!("{}: not a model config: {e}", cfg_path.display()))?;
    let model = hone_model::weights::load_model(&dir.join("model.safetensors"), &cfg, device)?;
    let tok_path = find_tokenizer(&dir)?;
    let tokenizer = Tokenizer::load(&tok_path)?;
    let template = chat_template(&tok_path)?;
    anyhow::ensure!(
        tokenizer.vocab_size() <= cfg.vocab_size,
        "{}: the tokenizer has {} tokens but the model only {} embedding rows",
        tok_path.display(),
        tokenizer.vocab_size(),
        cfg.vocab_size
    );
    Ok(Opened { model, tokenizer, template, dir })
}

/// The loop settings every post-training section carries.
#[derive(Debug, Clone)]
pub struct StageLoop {
    pub steps: u64,
    pub grad_accum: usize,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    pub keep_last: usize,
    pub log_every: u64,
    pub seed: u64,
    /// Peak learning rate of this stage (replaces `optim.lr`).
    pub lr: f64,
    /// Warmup steps of this stage (replaces `optim.warmup_steps`).
    pub warmup_steps: u64,
}

impl StageLoop {
    pub fn validate(&self, stage: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps > 0, "{stage}.steps must be positive");
        anyhow::ensure!(self.grad_accum > 0, "{stage}.grad_accum must be positive");
        anyhow::ensure!(self.keep_last > 0, "{stage}.keep_last must be positive");
        anyhow::ensure!(self.lr > 0.0 && self.lr.is_finite(), "{stage}.lr must be positive");
        Ok(())
    }

    /// The loop settings of stage `stage`; `config` (anything serialisable: the resolved sections)
    /// is hashed into the checkpoints so a resume under other settings is flagged.
    pub fn settings(&self, stage: &str, config: &impl serde::Serialize, progress: bool) -> LoopSettings {
        LoopSettings {
            stage: stage.into(),
            steps: self.steps,
            grad_accum: self.grad_accum,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            keep_last: self.keep_last,
            log_every: self.log_every,
            seed: self.seed,
            config_hash: config_hash(config),
            progress,
            extra_files: Vec::new(),
        }
    }

    /// `optim` with this stage's learning rate and warmup.
    pub fn optim(&self, optim: &OptimConfig) -> OptimConfig {
        OptimConfig { lr: self.lr, warmup_steps: self.warmup_steps, ..optim.clone() }
    }
}

/// sha256 of a serialisable configuration.
pub fn config_hash(config: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(config).expect("configs serialise");
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// How a stage reports and can be stopped.
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Stop flag; `None` installs the Ctrl-C handler.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a stage did.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub summary: RunSummary,
    pub stage_dir: PathBuf,
    /// The checkpoint the stage started from.
    pub init: PathBuf,
    /// The step training resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// Lines worth printing about the data (counts, truncations, skips).
    pub notes: Vec<String>,
}

/// Runs the loop for `task` on `model` in `<run_dir>/<settings.stage>/`, resuming from the newest
/// checkpoint there; metrics go to `<run_dir>/metrics.jsonl`.
pub fn train_stage<M: Trainable>(
    model: M,
    optim: &OptimConfig,
    settings: LoopSettings,
    run_dir: &Path,
    task: &mut dyn Task<M>,
    opts: &StageOptions,
) -> anyhow::Result<(RunSummary, Option<u64>, PathBuf)> {
    let stage = settings.stage.clone();
    let stage_dir = run_dir.join(&stage);
    std::fs::create_dir_all(&stage_dir).map_err(|e| anyhow::anyhow!("{}: {e}", stage_dir.display()))?;
    let mut trainer = Trainer::new(model, optim, settings, &stage_dir, Some(&run_dir.join("metrics.jsonl")))?;
    let resumed_from = trainer.resume()?;
    if let Some(s) = resumed_from {
        eprintln!("{stage}: resuming from {} (step {s})", stage_dir.display());
    }
    let stop = opts.stop.clone().unwrap_or_else(crate::signal::stop_flag);
    let summary = trainer.run(task, &stop)?;
    eprintln!(
        "{stage}: {} at step {}: {}",
        if summary.interrupted { "stopped" } else { "done" },
        summary.steps_done,
        fmt_metrics(&summary.last_eval),
    );
    Ok((summary, resumed_from, stage_dir))
}

/// The value of metric `name`, NaN when absent.
pub fn metric(m: &[(String, f64)], name: &str) -> f64 {
    m.iter().find(|(k, _)| k == name).map(|(_, v)| *v).unwrap_or(f64::NAN)
}
