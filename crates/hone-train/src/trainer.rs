//! The one trainer loop. A stage supplies a [`Task`] (the loss of a micro-batch, and held-out
//! metrics); the loop does the rest: gradient accumulation, the non-finite guard, global-norm
//! clipping, the schedule and the optimizer step, metrics, progress, periodic evaluation,
//! checkpoints (`hone_data::checkpoint`'s protocol) and exact resume.
//!
//! Resume is bit for bit because everything a step depends on is either saved exactly (weights and
//! optimizer moments as raw f32, the step count) or a pure function of the step (data order, the
//! learning rate).

use crate::config::{OnNonFinite, OptimConfig};
use crate::grads::Grads;
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::trainable::Trainable;
use burn::tensor::Tensor;
use hone_data::checkpoint::{Checkpoint, CheckpointDir};
use hone_metrics::MetricsLog;
use hone_model::Llama;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What a stage plugs into the loop.
pub trait Task<M = Llama> {
    /// The loss (a scalar on the model's autodiff device) of micro-batch `micro` of optimizer step
    /// `step` (0-based), and the number of tokens it covers. Must be a pure function of
    /// `(model, step, micro)` for resume to be exact.
    fn loss(&mut self, model: &M, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)>;

    /// Held-out metrics (name, value), e.g. `val_loss`, `val_bpb`.
    fn evaluate(&mut self, model: &M) -> anyhow::Result<Vec<(String, f64)>>;

    /// Extra numbers about the micro-batches since the last call (e.g. DPO's reward margins),
    /// averaged by the task and logged with the step's training line.
    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// How the data order is determined, recorded in `state.json`.
    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({ "next_step": next_step })
    }
}

/// Loop settings shared by every stage.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Stage name: the folder under the run directory and the `stage` of metrics lines.
    pub stage: String,
    pub steps: u64,
    pub grad_accum: usize,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    pub keep_last: usize,
    pub log_every: u64,
    pub seed: u64,
    /// A hash of the resolved configuration, recorded in `state.json` and compared on resume.
    pub config_hash: String,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Files written into every checkpoint besides the weights and optimizer (e.g. `config.json`).
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// Recompute each decoder layer in the backward pass ([`Trainable::set_recompute`]).
    pub activation_checkpointing: bool,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub stage: String,
    /// Optimizer steps completed.
    pub step: u64,
    pub seed: u64,
    pub config_hash: String,
    /// The RNG that orders the data: ChaCha8 seeded with `seed`, stream `step * grad_accum + micro`.
    pub rng: serde_json::Value,
    pub data: serde_json::Value,
    pub tokens_seen: u64,
    pub skipped_steps: u64,
}

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// The step's number (1-based: the count of steps completed after it).
    pub step: u64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr_mult: f64,
    pub tokens: u64,
    /// The step was skipped by the non-finite guard in `skip` mode.
    pub skipped: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps_done: u64,
    /// Stopped by the stop flag (Ctrl-C) before the last step; a checkpoint was written.
    pub interrupted: bool,
    pub last_eval: Vec<(String, f64)>,
    pub tokens_per_s: f64,
    pub checkpoint: Option<PathBuf>,
}

pub struct Trainer<M: Trainable = Llama> {
    pub model: M,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub settings: LoopSettings,
    /// Optimizer steps completed.
    pub step: u64,
    pub tokens_seen: u64,
    pub skipped_steps: u64,
    grad_clip: f64,
    skip_nonfinite: bool,
    checkpoints: CheckpointDir,
    metrics: Option<MetricsLog>,
    metrics_path: Option<PathBuf>,
}

impl<M: Trainable> Trainer<M> {
    /// A trainer for `model` writing checkpoints under `stage_dir` and metrics to `metrics_path`.
    pub fn new(
        mut model: M,
        optim: &OptimConfig,
        settings: LoopSettings,
        stage_dir: &Path,
        metrics_path: Option<&Path>,
    ) -> anyhow::Result<Trainer<M>> {
        model.set_recompute(settings.activation_checkpointing);
        let optimizer = Optimizer::new(optim, &model)?;
        let schedule = Schedule::from_config(optim, settings.steps)?;
        let metrics = metrics_path.map(|p| MetricsLog::open(p, &settings.stage)).transpose()?;
        Ok(Trainer {
            model,
            optimizer,
            schedule,
            checkpoints: CheckpointDir::new(stage_dir, settings.keep_last),
            settings,
            step: 0,
            tokens_seen: 0,
            skipped_steps: 0,
            grad_clip: optim.grad_clip,
            skip_nonfinite: optim.on_nonfinite == OnNonFinite::Skip,
            metrics,
            metrics_path: metrics_path.map(Path::to_path_buf),
        })
    }

    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// One optimizer step: `grad_accum` micro-batches, their gradients averaged, the guard, clipping,
    /// and the update.
    pub fn train_step(&mut self, task: &mut dyn Task<M>) -> anyhow::Result<StepOutcome> {
        let accum = self.settings.grad_accum.max(1);
        let mut total: Option<Grads> = None;
        let (mut loss_sum, mut tokens) = (0f64, 0u64);
        for micro in 0..accum {
            // Dropout masks (an adapter's) are a pure function of the seed and the micro-batch.
            let stream = (self.settings.seed ^ 0x6c6f_7261).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ (self.step * accum as u64 + micro as u64);
            let model = self.model.for_micro_batch(stream);
            let (loss, n) = task.loss(&model, self.step, micro)?;
            let value: f32 = loss.clone().without_autodiff().into_scalar();
            loss_sum += value as f64;
            tokens += n;
            let g = Grads::collect(&model, &loss.backward());
            match total.as_mut() {
                None => total = Some(g),
                Some(t) => t.add(g),
            }
        }
        let mut grads = total.expect("at least one micro-batch");
        if accum > 1 {
            grads.scale(1.0 / accum as f64);
        }
        let loss = loss_sum / accum as f64;
        let grad_norm = grads.global_norm();
        let number = self.step + 1;
        let lr_mult = self.schedule.multiplier(self.step);
        if !loss.is_finite() || !grad_norm.is_finite() {
            if !self.skip_nonfinite {
                anyhow::bail!(
                    "step {number}: loss {loss} or gradient norm {grad_norm} is not finite; stopping. The last \
                     checkpoint is intact; lower optim.lr, or set optim.on_nonfinite = \"skip\" to skip such steps"
                );
            }
            tracing::warn!("step {number}: loss {loss} / gradient norm {grad_norm} not finite: step skipped");
            self.step += 1;
            self.skipped_steps += 1;
            return Ok(StepOutcome { step: number, loss, grad_norm, lr_mult, tokens, skipped: true });
        }
        grads.clip(grad_norm, self.grad_clip);
        self.optimizer.apply(&mut self.model, &grads, lr_mult)?;
        self.step += 1;
        self.tokens_seen += tokens;
        Ok(StepOutcome { step: number, loss, grad_norm, lr_mult, tokens, skipped: false })
    }

    /// Runs `warmup + steps` optimizer steps, printing each one's loss and time, and returns the
    /// median time of the steps after the warmup and the first and last losses (the throughput
    /// benchmarks).
    pub fn time_steps(
        &mut self,
        task: &mut dyn Task<M>,
        warmup: usize,
        steps: usize,
    ) -> anyhow::Result<(f64, f64, f64)> {
        let mut times = Vec::new();
        let (mut first, mut last) = (f64::NAN, f64::NAN);
        for i in 0..warmup + steps {
            let t = Instant::now();
            let out = self.train_step(task)?;
            let dt = t.elapsed().as_secs_f64();
            if i == 0 {
                first = out.loss;
            }
            last = out.loss;
            if i >= warmup {
                times.push(dt);
            }
            eprintln!("step {i}: loss {:.4}, {dt:.3} s", out.loss);
        }
        anyhow::ensure!(!times.is_empty(), "no timed steps");
        times.sort_by(|a, b| a.total_cmp(b));
        Ok((times[times.len() / 2], first, last))
    }

    /// Writes a checkpoint of the current step.
    pub fn save(&self, task: &dyn Task<M>, is_final: bool) -> anyhow::Result<PathBuf> {
        let state = TrainState {
            stage: self.settings.stage.clone(),
            step: self.step,
            seed: self.settings.seed,
            config_hash: self.settings.config_hash.clone(),
            rng: serde_json::json!({
                "kind": "chacha8",
                "seed": self.settings.seed,
                "stream": "step * grad_accum + micro",
                "grad_accum": self.settings.grad_accum,
            }),
            data: task.data_state(self.step),
            tokens_seen: self.tokens_seen,
            skipped_steps: self.skipped_steps,
        };
        let mut files = vec![
            (self.model.weights_file().to_string(), self.model.to_safetensors()?),
            ("optimizer.safetensors".to_string(), self.optimizer.to_safetensors()?),
            ("state.json".to_string(), serde_json::to_vec_pretty(&state)?),
        ];
        files.extend(self.model.weight_notes()?);
        files.extend(self.settings.extra_files.iter().filter(|(n, _)| self.model.keeps_file(n)).cloned());
        self.checkpoints.save(self.step, files, is_final)
    }

    /// Loads the newest complete checkpoint, if any; returns its step. A corrupted file is an
    /// error naming it.
    ///
    /// A checkpoint whose files do not match their MANIFEST (a damaged disk, a file edited by hand)
    /// is skipped with a warning and the one before it is used; only when none is intact is it an
    /// error.
    pub fn resume(&mut self) -> anyhow::Result<Option<u64>> {
        let all = self.checkpoints.list()?;
        if all.is_empty() {
            return Ok(None);
        }
        let mut damaged = Vec::new();
        for ckpt in all.iter().rev() {
            let checked = hone_data::checkpoint::verify(&ckpt.dir).and_then(|_| self.load(ckpt));
            match checked {
                Ok(()) => {
                    for d in &damaged {
                        eprintln!("warning: {d}; resumed from {} instead", ckpt.dir.display());
                    }
                    return Ok(Some(self.step));
                }
                Err(e) => damaged.push(format!("{e:#}")),
            }
        }
        anyhow::bail!(
            "{}: no intact checkpoint to resume from ({}); delete the folder to start the stage over",
            self.checkpoints.root().display(),
            damaged.join("; ")
        )
    }

    /// Loads a given checkpoint.
    pub fn load(&mut self, ckpt: &Checkpoint) -> anyhow::Result<()> {
        let state_path = ckpt.dir.join("state.json");
        let state: TrainState = serde_json::from_slice(&ckpt.read("state.json")?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", state_path.display()))?;
        if state.config_hash != self.settings.config_hash {
            tracing::warn!(
                "{}: written with a different configuration; training continues but is not bit-identical \
                 to an uninterrupted run",
                state_path.display()
            );
        }
        let file = self.model.weights_file();
        let model_path = ckpt.dir.join(file);
        self.model = self.model.with_weights(&ckpt.read(file)?, &model_path.display().to_string())?;
        let opt_path = ckpt.dir.join("optimizer.safetensors");
        self.optimizer.load_safetensors(
            &ckpt.read("optimizer.safetensors")?,
            &opt_path.display().to_string(),
            &self.model.device().clone(),
        )?;
        self.step = state.step;
        self.tokens_seen = state.tokens_seen;
        self.skipped_steps = state.skipped_steps;
        Ok(())
    }

    fn log(&mut self, kind: &str, step: u64, fields: &[(&str, f64)]) -> anyhow::Result<()> {
        match self.metrics.as_mut() {
            Some(m) => m.write(kind, step, fields),
            None => Ok(()),
        }
    }

    fn evaluate(&mut self, task: &mut dyn Task<M>) -> anyhow::Result<Vec<(String, f64)>> {
        let metrics = task.evaluate(&self.model)?;
        let fields: Vec<(&str, f64)> = metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let step = self.step;
        self.log("eval", step, &fields)?;
        Ok(metrics)
    }

    /// Draws the loss curve into the stage folder (best effort: a plotting failure is logged).
    pub fn plot(&self) {
        if let Some(p) = &self.metrics_path
            && let Err(e) = hone_metrics::loss_curve(p, &self.settings.stage, self.checkpoints.root())
        {
            tracing::warn!("loss curve not drawn: {e}");
        }
    }

    /// Trains from the current step to `settings.steps`, evaluating and checkpointing on schedule.
    /// When `stop` is raised (Ctrl-C) it finishes the current step, writes a checkpoint and returns.
    pub fn run(&mut self, task: &mut dyn Task<M>, stop: &AtomicBool) -> anyhow::Result<RunSummary> {
        let s = self.settings.clone();
        std::fs::create_dir_all(self.checkpoints.root())
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.checkpoints.root().display()))?;
        let mut last_eval = Vec::new();
        if self.step == 0 && s.eval_every > 0 {
            last_eval = self.evaluate(task)?;
        }
        let bar = hone_data::progress::steps_bar(s.steps, &s.stage, s.progress);
        bar.set_position(self.step);
        let started = Instant::now();
        let first_step = self.step;
        let (mut run_tokens, mut ema_rate) = (0u64, 0f64);
        let mut last_ckpt = None;
        while self.step < s.steps {
            if stop.load(Ordering::SeqCst) {
                bar.abandon();
                let path = self.save(task, false)?;
                self.plot();
                return Ok(RunSummary {
                    steps_done: self.step,
                    interrupted: true,
                    last_eval,
                    tokens_per_s: run_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    checkpoint: Some(path),
                });
            }
            let t0 = Instant::now();
            let out = self.train_step(task)?;
            let extra = task.train_metrics();
            let dt = t0.elapsed().as_secs_f64();
            run_tokens += out.tokens;
            let rate = out.tokens as f64 / dt.max(1e-9);
            ema_rate = if ema_rate == 0.0 { rate } else { 0.9 * ema_rate + 0.1 * rate };
            bar.set_position(self.step);
            bar.set_message(format!("loss {:.4} | {:.0} tok/s", out.loss, ema_rate));
            let at = self.step;
            if s.log_every > 0 && (at.is_multiple_of(s.log_every) || at == 1) || out.skipped {
                let lr = out.lr_mult * self.optimizer.peak_lr();
                let mut fields = vec![
                    ("loss", out.loss),
                    ("grad_norm", out.grad_norm),
                    ("lr", lr),
                    ("tokens_per_s", rate),
                    ("tokens", self.tokens_seen as f64),
                    ("step_s", dt),
                    ("skipped", if out.skipped { 1.0 } else { 0.0 }),
                ];
                fields.extend(extra.iter().map(|(k, v)| (k.as_str(), *v)));
                self.log("train", at, &fields)?;
            }
            let last = at == s.steps;
            if !last && s.eval_every > 0 && at.is_multiple_of(s.eval_every) {
                last_eval = self.evaluate(task)?;
                hone_data::progress::println(
                    &bar,
                    &format!("{}: step {at}: {}", self.settings.stage, fmt_metrics(&last_eval)),
                );
                self.plot();
            }
            if !last && s.checkpoint_every > 0 && at.is_multiple_of(s.checkpoint_every) {
                last_ckpt = Some(self.save(task, false)?);
            }
        }
        bar.finish_and_clear();
        if self.step > first_step || last_eval.is_empty() {
            last_eval = self.evaluate(task)?;
        }
        let path = match self.checkpoints.final_checkpoint()? {
            Some(c) if c.step == self.step => c.dir,
            _ => self.save(task, true)?,
        };
        last_ckpt.replace(path);
        self.plot();
        Ok(RunSummary {
            steps_done: self.step,
            interrupted: false,
            last_eval,
            tokens_per_s: run_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
            checkpoint: last_ckpt,
        })
    }
}

/// `name value, …` for printing.
pub fn fmt_metrics(m: &[(String, f64)]) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ")
}
