//! What every training stage is to the rest of hone: a [`StageDef`] (its name, the stages it may start
//! from, its config section, the data it reads, its cost, how it runs) registered once in
//! [`crate::stages`]. The pipeline, the CLI, the report and the predecessor check read the registry
//! through the object-safe [`Stage`]; nothing else names a stage.
//!
//! Also what the stages share: the loop settings every section embeds ([`LoopConfig`], and
//! [`StageConfig`] for stages that start from a checkpoint), where the starting weights come from,
//! and the one run body ([`train_stage`]).

use crate::config::OptimConfig;
use crate::stages::StageSections;
use crate::trainable::Trainable;
use crate::trainer::{LoopSettings, RunSummary, Task, Trainer, fmt_metrics};
use burn::tensor::Device;
use hone_data::checkpoint::{CheckpointDir, DataNotes};
use hone_data::config::Documented;
use hone_model::lora::{Lora, LoraSpec, Target};
use hone_model::{Llama, LlamaConfig, ModelConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use hone_data::DataKind;
pub use hone_model::load::LoadedModel as Opened;

hone_data::config_section! {
    /// The loop settings every training stage carries under its own section's keys.
    pub struct LoopConfig {
        /// Optimizer steps.
        steps: u64 = 100,
        /// Micro-batches accumulated into one optimizer step.
        grad_accum: usize = 1,
        /// Held-out evaluation every N steps (and at the end); 0 = only at the end.
        eval_every: u64 = 50,
        /// Checkpoint every N steps (and at the end); 0 = only at the end.
        checkpoint_every: u64 = 100,
        /// Checkpoints kept (the newest) besides the final one.
        keep_last: usize = 2,
        /// A metrics line every N steps.
        log_every: u64 = 10,
        /// Seed of the stage's randomness: initial weights or head, data order, held-out split, sampling.
        seed: u64 = 0,
        /// Device: `cpu` (burn Flex), `cuda[:N]` or `wgpu` (when built with those features).
        device: String = "cpu".to_string(),
    }
}

hone_data::config_section! {
    /// What a stage that starts from a trained model carries: where it starts, its data, its learning
    /// rate, and the loop settings.
    pub struct StageConfig {
        /// Starting checkpoint or stage folder; empty = the final checkpoint of the first stage in this
        /// stage's `starts_from` list (`hone <stage> --help`) that the run has.
        init: String = String::new(),
        /// Data files or folders; empty = the built-in world's file for this stage when the run has a
        /// world (`<run dir>/world/`).
        data: Vec<String> = Vec::new(),
        /// Held-out file; empty = the world's held-out file for this stage when `data` is the world's,
        /// else a `val_fraction` split of `data`.
        eval_data: String = String::new(),
        /// Peak learning rate (replaces `optim.lr` for this stage and scales `optim.muon_lr` by the same
        /// factor).
        lr: f64 = 1e-4,
        /// Warmup steps (replaces `optim.warmup_steps` for this stage).
        warmup_steps: u64 = 10,
        /// LoRA rank: train a low-rank adapter on the projections instead of every weight, saved in
        /// PEFT's format (the base stays frozen: no gradients or optimizer state for it, and a
        /// preference stage's reference is the base with the adapter off); 0 = full fine-tuning.
        lora_rank: usize = 0,
        /// LoRA alpha: the adapter's output is scaled by lora_alpha / lora_rank (PEFT's `lora_alpha`).
        lora_alpha: f64 = 16.0,
        /// Dropout on the adapter's input while training (PEFT's `lora_dropout`); 0 = none.
        lora_dropout: f64 = 0.0,
        /// The projections that get an adapter: any of q_proj, k_proj, v_proj, o_proj, gate_proj,
        /// up_proj, down_proj (PEFT's `target_modules`; all of them is its `all-linear`).
        lora_targets: Vec<Target> = Target::ALL.to_vec(),
        ..run: LoopConfig = LoopConfig::default(),
    }
}

impl LoopConfig {
    pub fn validate(&self, stage: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps > 0, "{stage}.steps must be positive");
        anyhow::ensure!(self.grad_accum > 0, "{stage}.grad_accum must be positive");
        anyhow::ensure!(self.keep_last > 0, "{stage}.keep_last must be positive");
        Ok(())
    }

    /// The trainer's settings for stage `stage`; `config` (anything serialisable: the resolved
    /// sections) is hashed into the checkpoints so a resume under other settings is flagged.
    pub fn settings(&self, stage: &str, config: &impl Serialize, progress: bool) -> LoopSettings {
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
            activation_checkpointing: false,
        }
    }
}

impl StageConfig {
    pub fn validate(&self, stage: &str) -> anyhow::Result<()> {
        self.run.validate(stage)?;
        anyhow::ensure!(self.lr > 0.0 && self.lr.is_finite(), "{stage}.lr must be positive");
        if let Some(spec) = self.lora_spec() {
            spec.validate().map_err(|e| anyhow::anyhow!("{stage}: {e} (lora_* settings)"))?;
        }
        Ok(())
    }

    /// The adapter to train, when `lora_rank` > 0.
    pub fn lora_spec(&self) -> Option<LoraSpec> {
        (self.lora_rank > 0).then(|| {
            let mut targets = self.lora_targets.clone();
            targets.sort();
            targets.dedup();
            LoraSpec {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                targets,
                rslora: false,
            }
        })
    }

    /// `optim` with this stage's learning rate and warmup. The stage's `lr` replaces `optim.lr` and
    /// scales `optim.muon_lr` by the same factor: Muon's orthogonalised update has a fixed size
    /// whatever the gradient's, so an unscaled pretraining `muon_lr` would move the hidden matrices
    /// of a fine-tuning stage as far per step as pretraining did and wipe out what the model learnt.
    pub fn optim(&self, optim: &OptimConfig) -> OptimConfig {
        OptimConfig {
            lr: self.lr,
            muon_lr: optim.muon_lr * self.lr / optim.lr,
            warmup_steps: self.warmup_steps,
            ..optim.clone()
        }
    }

    /// The data files as paths (folders expanded).
    pub fn data_paths(&self, stage: &str) -> anyhow::Result<Vec<PathBuf>> {
        anyhow::ensure!(
            !self.data.is_empty(),
            "{stage}.data is empty: name the data files (`--data FILE` or `--set {stage}.data=[...]`), or run \
             `hone world generate` into the run folder for the built-in world's"
        );
        Ok(hone_data::read::expand_inputs(&self.data)?)
    }

    /// The held-out file, when one is set.
    pub fn eval_path(&self) -> Option<PathBuf> {
        (!self.eval_data.is_empty()).then(|| PathBuf::from(&self.eval_data))
    }
}

/// What a stage is for, which decides where it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A language model: evaluated after it runs and a column of the report.
    Policy,
    /// A model other stages use (the reward model): trained and reported, not evaluated as a policy.
    Auxiliary,
}

/// A stage's description, read by the pipeline, the CLI and the report.
#[derive(Debug, Clone, Copy)]
pub struct StageInfo {
    /// The name of everything about the stage: pipeline key, subcommand, config section, run-folder
    /// subfolder, metrics `stage`, report column.
    pub name: &'static str,
    /// One line for `hone --help`.
    pub about: &'static str,
    /// Stages whose final checkpoint it may start from, in order of preference; empty = it starts
    /// from scratch.
    pub starts_from: &'static [&'static str],
    /// Other steps whose output it reads (their keys chain into its key), e.g. a reward model.
    pub reads: &'static [&'static str],
    pub role: Role,
    /// The report's column label.
    pub label: &'static str,
    /// The kind of data its `data` setting reads, which the built-in world supplies by default.
    pub data: Option<DataKind>,
}

/// How a stage run reports and can be stopped, and what it shares with the other stages.
#[derive(Clone)]
pub struct StageContext<'a> {
    pub run_dir: PathBuf,
    pub optim: &'a OptimConfig,
    /// The `[model]` section (the architecture a stage that starts from scratch builds).
    pub model: &'a ModelConfig,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Recompute each decoder layer in the backward pass (`run.activation_checkpointing`).
    pub activation_checkpointing: bool,
    /// Stop flag; `None` installs the Ctrl-C handler.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a stage did.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub summary: RunSummary,
    pub stage_dir: PathBuf,
    /// The checkpoint the stage started from (`None`: from scratch).
    pub init: Option<PathBuf>,
    /// The step training resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// What the data loading read and left out, and the lines printed about it.
    pub notes: hone_data::checkpoint::DataNotes,
}

/// A training stage, typed: one file under `stages/` implements it and one line registers it.
pub trait StageDef: Sync + 'static {
    /// Its config section (`[<name>]`).
    type Config: Documented + Clone + std::fmt::Debug + PartialEq;
    const INFO: StageInfo;
    /// The shared settings inside its section, for stages that start from a checkpoint.
    fn common(cfg: &Self::Config) -> Option<&StageConfig>;
    fn common_mut(cfg: &mut Self::Config) -> Option<&mut StageConfig>;
    fn validate(cfg: &Self::Config) -> anyhow::Result<()>;
    /// Tokens the stage processes in all (forward passes of training rows, samples, reference passes),
    /// for the pipeline's time estimate.
    fn estimate_tokens(cfg: &Self::Config) -> f64;
    fn run(cfg: &Self::Config, ctx: &StageContext) -> anyhow::Result<StageReport>;
    /// The config overrides that `--model` and `--data` on its subcommand stand for.
    fn flag_overrides(model: Option<&Path>, data: &[String]) -> anyhow::Result<Vec<String>> {
        let name = Self::INFO.name;
        let mut out = Vec::new();
        if let Some(m) = model {
            anyhow::ensure!(!Self::INFO.starts_from.is_empty(), "{name} starts from scratch: --model does not apply");
            out.push(format!("{name}.init={}", toml::Value::String(m.display().to_string())));
        }
        if !data.is_empty() {
            let quoted: Vec<String> = data.iter().map(|s| toml::Value::String(s.clone()).to_string()).collect();
            out.push(format!("{name}.data=[{}]", quoted.join(", ")));
        }
        Ok(out)
    }
}

/// Where a stage's section is in the whole config: implemented by its registry line.
pub trait Sectioned: StageDef {
    /// The registry key (the section's name), which must equal `INFO.name`.
    const KEY: &'static str;
    fn section(all: &StageSections) -> &Self::Config;
    fn section_mut(all: &mut StageSections) -> &mut Self::Config;
}

/// A registered stage, as the pipeline, the CLI and the report see it.
pub trait Stage: Sync {
    fn info(&self) -> &'static StageInfo;
    /// Its registry key (equal to `info().name`; a test checks).
    fn key(&self) -> &'static str;
    /// Its section as TOML (part of its pipeline key).
    fn section_toml(&self, all: &StageSections) -> String;
    /// The shared settings inside its section, for stages that start from a checkpoint.
    fn common<'a>(&self, all: &'a StageSections) -> Option<&'a StageConfig>;
    fn common_mut<'a>(&self, all: &'a mut StageSections) -> Option<&'a mut StageConfig>;
    fn validate(&self, all: &StageSections) -> anyhow::Result<()>;
    fn estimate_tokens(&self, all: &StageSections) -> f64;
    fn run(&self, all: &StageSections, ctx: &StageContext) -> anyhow::Result<StageReport>;
    fn flag_overrides(&self, model: Option<&Path>, data: &[String]) -> anyhow::Result<Vec<String>>;
}

impl<T: Sectioned> Stage for T {
    fn info(&self) -> &'static StageInfo {
        &T::INFO
    }
    fn key(&self) -> &'static str {
        T::KEY
    }
    fn section_toml(&self, all: &StageSections) -> String {
        toml::to_string(T::section(all)).unwrap_or_default()
    }
    fn common<'a>(&self, all: &'a StageSections) -> Option<&'a StageConfig> {
        T::common(T::section(all))
    }
    fn common_mut<'a>(&self, all: &'a mut StageSections) -> Option<&'a mut StageConfig> {
        T::common_mut(T::section_mut(all))
    }
    fn validate(&self, all: &StageSections) -> anyhow::Result<()> {
        T::validate(T::section(all))
    }
    fn estimate_tokens(&self, all: &StageSections) -> f64 {
        T::estimate_tokens(T::section(all))
    }
    fn run(&self, all: &StageSections, ctx: &StageContext) -> anyhow::Result<StageReport> {
        T::validate(T::section(all))?;
        ctx.optim.validate()?;
        T::run(T::section(all), ctx)
    }
    fn flag_overrides(&self, model: Option<&Path>, data: &[String]) -> anyhow::Result<Vec<String>> {
        T::flag_overrides(model, data)
    }
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

/// Opens the model at `path` (a checkpoint or stage folder) on `device`, with its run's tokenizer
/// and chat template.
pub fn open(path: &Path, device: &Device) -> anyhow::Result<Opened> {
    hone_model::load::load(path, device)
}

/// Where stage `info` starts: its starting checkpoint (`common.init`, else the final of the first of
/// its `starts_from`) opened on the autodiff device of `common.run.device`. Returns the model and
/// the device.
pub fn open_start(run_dir: &Path, info: &StageInfo, common: &StageConfig) -> anyhow::Result<(Opened, Device)> {
    let init = resolve_init(run_dir, &common.init, info.name, info.starts_from)?;
    let device = hone_model::device::select_autodiff(&common.run.device)?;
    let opened = open(&init, &device)?;
    Ok((opened, device))
}

/// `model` (opened from `init`) ready to train under `common`: with a new adapter when
/// `lora_rank` > 0 (its `base_model_name_or_path` is `init`, made absolute so that PEFT and
/// `transformers` find it from anywhere), else as it is.
pub fn adapt(mut model: Llama, common: &StageConfig, init: &Path) -> anyhow::Result<Llama> {
    let Some(spec) = common.lora_spec() else { return Ok(model) };
    let base = std::path::absolute(init).unwrap_or_else(|_| init.to_path_buf());
    // The adapter's seed differs from the data order's, which shares `run.seed`.
    let lora =
        Lora::init(spec, base.display().to_string(), &model.config, common.run.seed ^ 0x4c6f_5241, model.device())?;
    let (n, total) = (
        lora.params().iter().map(|(_, p)| p.numel()).sum::<usize>(),
        model.params().iter().map(|(_, p)| p.numel()).sum::<usize>(),
    );
    eprintln!(
        "LoRA: rank {}, alpha {}, on {}: {n} trained parameters ({:.2}% of {total})",
        lora.spec.rank,
        lora.spec.alpha,
        lora.spec.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        100.0 * n as f64 / total.max(1) as f64
    );
    model.attach_lora(lora)?;
    Ok(model)
}

/// The checkpoint files of a model built from scratch with `config` in `run_dir`: with the run's
/// tokenizer (the `tokenizer.json` in `run_dir` or above it) when there is one, else the config alone.
pub fn scratch_model_files(config: &LlamaConfig, run_dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    match hone_model::load::tokenizer_above(run_dir)? {
        Some((tok, template)) => hone_model::import::save::model_files(config.to_hf_json(), &tok, &template),
        None => Ok(vec![("config.json".into(), serde_json::to_vec_pretty(&config.to_hf_json())?)]),
    }
}

/// sha256 of a serialisable configuration.
pub fn config_hash(config: &impl Serialize) -> String {
    let text = serde_json::to_string(config).expect("configs serialise");
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The one run body: trains `task` on `model` in `<run_dir>/<settings.stage>/`, resuming from the
/// newest checkpoint there; metrics go to `<run_dir>/metrics.jsonl`. `model_files` (the model's HF
/// `config.json`, its generation config and tokenizer files: `hone_model::import::save::model_files`)
/// are written into every checkpoint, so that each opens on its own.
pub fn train_stage<M: Trainable>(
    model: M,
    optim: &OptimConfig,
    mut settings: LoopSettings,
    model_files: Vec<(String, Vec<u8>)>,
    task: &mut dyn Task<M>,
    ctx: &StageContext,
) -> anyhow::Result<(RunSummary, Option<u64>, PathBuf)> {
    settings.extra_files.extend(model_files);
    settings.activation_checkpointing = ctx.activation_checkpointing;
    let stage = settings.stage.clone();
    let stage_dir = ctx.run_dir.join(&stage);
    std::fs::create_dir_all(&stage_dir).map_err(|e| anyhow::anyhow!("{}: {e}", stage_dir.display()))?;
    let mut trainer = Trainer::new(model, optim, settings, &stage_dir, Some(&ctx.run_dir.join("metrics.jsonl")))?;
    let resumed_from = trainer.resume()?;
    if let Some(s) = resumed_from {
        eprintln!("{stage}: resuming from {} (step {s})", stage_dir.display());
    }
    let stop = ctx.stop.clone().unwrap_or_else(crate::signal::stop_flag);
    let summary = trainer.run(task, &stop)?;
    eprintln!(
        "{stage}: {} at step {}: {} ({:.0} tokens/s)",
        if summary.interrupted { "stopped" } else { "done" },
        summary.steps_done,
        fmt_metrics(&summary.last_eval),
        summary.tokens_per_s
    );
    Ok((summary, resumed_from, stage_dir))
}

/// What reading and encoding a stage's records left out, for the lines printed before training.
#[derive(Debug, Clone, Default)]
pub struct DataCuts<'a> {
    /// What one record is called in messages ("conversations", "pairs", "examples").
    pub unit: &'a str,
    /// Which tokens a record needs within `max_len` ("assistant", "reply").
    pub target: &'a str,
    pub max_len: usize,
    /// Records read, bad ones included.
    pub records: usize,
    /// Bad records skipped (`skip_invalid`), and a few of their messages.
    pub skipped: usize,
    pub skip_examples: Vec<String>,
    /// Records cut to `max_len`, and records dropped for having no target token left.
    pub truncated: usize,
    pub dropped: usize,
    /// Judgements that prefer neither answer (a person's tie or "both bad"), counted and not used.
    pub set_aside: usize,
}

impl DataCuts<'_> {
    /// The notes of stage `stage`: `head` (counts), then a warning per kind of loss (none when
    /// nothing was left out), each with its share of the records.
    pub fn notes(&self, stage: &str, head: Vec<String>) -> DataNotes {
        let mut lines = head;
        let pct = |n: usize| if self.records == 0 { 0.0 } else { 100.0 * n as f64 / self.records as f64 };
        if self.skipped > 0 {
            let ex: Vec<&str> = self.skip_examples.iter().take(3).map(String::as_str).collect();
            let (n, p) = (self.skipped, pct(self.skipped));
            lines.push(format!("{stage}: {n} bad records ({p:.1}%) skipped, e.g. {}", ex.join("; ")));
        }
        if self.set_aside > 0 {
            let (n, p) = (self.set_aside, pct(self.set_aside));
            lines.push(format!("{stage}: {n} judgements ({p:.1}%) prefer neither answer (tie, both bad): set aside"));
        }
        if self.truncated > 0 {
            let (n, unit, len, p) = (self.truncated, self.unit, self.max_len, pct(self.truncated));
            lines.push(format!("{stage}: warning: {n} {unit} ({p:.1}%) cut to {stage}.max_len = {len} tokens"));
        }
        if self.dropped > 0 {
            let (n, unit, target, p) = (self.dropped, self.unit, self.target, pct(self.dropped));
            lines.push(format!(
                "{stage}: warning: {n} {unit} ({p:.1}%) dropped: no {target} token within {stage}.max_len = {}",
                self.max_len
            ));
        }
        DataNotes { lines, records: self.records, cut: self.truncated, dropped: self.dropped + self.skipped }
    }
}

/// Prints the lines of `notes` on stderr and returns them.
pub fn print_notes(notes: DataNotes) -> DataNotes {
    for n in &notes.lines {
        eprintln!("{n}");
    }
    notes
}

/// A stage's length limit: `configured`, or the model's context when 0; more than the context is an
/// error naming the setting.
pub fn max_len(stage: &str, configured: usize, opened: &Opened) -> anyhow::Result<usize> {
    let ctx = opened.model.config.max_position_embeddings;
    anyhow::ensure!(
        configured <= ctx,
        "{stage}.max_len ({configured}) exceeds the model's max_position_embeddings ({ctx}); \
         set it to {ctx} or less, or to 0 for the model's context"
    );
    Ok(if configured == 0 { ctx } else { configured })
}

/// A length for the time estimates made before a model is opened (0 = the model's context, not
/// known yet: a typical one).
pub fn nominal_len(configured: usize) -> usize {
    if configured == 0 { 512 } else { configured }
}

/// The value of metric `name`, NaN when absent.
pub fn metric(m: &[(String, f64)], name: &str) -> f64 {
    m.iter().find(|(k, _)| k == name).map(|(_, v)| *v).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerKind;

    #[test]
    fn a_stage_lr_scales_muon_by_the_same_factor() {
        let s = StageConfig { lr: 3e-4, warmup_steps: 7, ..StageConfig::default() };
        let base = OptimConfig { optimizer: OptimizerKind::Muon, lr: 3e-3, muon_lr: 0.02, ..Default::default() };
        let o = s.optim(&base);
        assert_eq!(o.lr, 3e-4);
        assert_eq!(o.warmup_steps, 7);
        assert!((o.muon_lr - 0.002).abs() < 1e-12, "muon_lr {}", o.muon_lr);
        assert_eq!(o.optimizer, OptimizerKind::Muon);
    }
}
