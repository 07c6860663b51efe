//! What the post-training stages (SFT, DPO, reward, RL) share: where a stage's starting weights come
//! from (an explicit checkpoint, else the previous stage's `final` in the same run), the loop settings every stage section
//! carries, the optimizer settings a stage overrides, and the run of the loop itself.

use crate::config::OptimConfig;
use crate::trainable::Trainable;
use crate::trainer::{LoopSettings, RunSummary, Task, Trainer, fmt_metrics};
use burn::tensor::Device;
use hone_data::checkpoint::CheckpointDir;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use hone_model::load::LoadedModel as Opened;

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

/// Where a stage starts: the stage's starting checkpoint (`init_override`, else `explicit`, else the
/// final of the first of `previous`) opened on the autodiff device named `device`, with `max_len`
/// (when given) checked against the model's context. Returns the model and the device.
pub fn open_start(
    run_dir: &Path,
    init_override: Option<&Path>,
    explicit: &str,
    stage: &str,
    previous: &[&str],
    device: &str,
    max_len: Option<usize>,
) -> anyhow::Result<(Opened, Device)> {
    let init = match init_override {
        Some(p) => p.to_path_buf(),
        None => resolve_init(run_dir, explicit, stage, previous)?,
    };
    let device = hone_model::device::select_autodiff(device)?;
    let opened = open(&init, &device)?;
    if let Some(max_len) = max_len {
        let ctx = opened.model.config.max_position_embeddings;
        anyhow::ensure!(
            max_len <= ctx,
            "{stage}.max_len ({max_len}) exceeds the model's max_position_embeddings ({ctx})"
        );
    }
    Ok((opened, device))
}

/// The [`StageLoop`] of a post-training config section (`sft`, `dpo`, `reward`, `rl`): each declares
/// the loop fields under the same names; `grad_accum` may be given where a section has none.
macro_rules! stage_loop_of {
    ($c:expr) => {
        $crate::stage::stage_loop_of!($c, $c.grad_accum)
    };
    ($c:expr, $grad_accum:expr) => {
        $crate::stage::StageLoop {
            steps: $c.steps,
            grad_accum: $grad_accum,
            eval_every: $c.eval_every,
            checkpoint_every: $c.checkpoint_every,
            keep_last: $c.keep_last,
            log_every: $c.log_every,
            seed: $c.seed,
            lr: $c.lr,
            warmup_steps: $c.warmup_steps,
        }
    };
}
pub(crate) use stage_loop_of;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_lr_scales_muon_by_the_same_factor() {
        let lp = StageLoop {
            steps: 1,
            grad_accum: 1,
            eval_every: 0,
            checkpoint_every: 0,
            keep_last: 1,
            log_every: 1,
            seed: 0,
            lr: 3e-4,
            warmup_steps: 7,
        };
        let base = OptimConfig { optimizer: "muon".into(), lr: 3e-3, muon_lr: 0.02, ..Default::default() };
        let o = lp.optim(&base);
        assert_eq!(o.lr, 3e-4);
        assert_eq!(o.warmup_steps, 7);
        assert!((o.muon_lr - 0.002).abs() < 1e-12, "muon_lr {}", o.muon_lr);
        assert_eq!(o.optimizer, "muon");
    }
}
