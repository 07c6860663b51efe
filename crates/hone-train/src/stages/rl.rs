//! Online reinforcement learning from verifiable rewards (or a reward model): each step samples a
//! group of `group_size` completions for each of `prompts_per_step` prompts with the current policy
//! (`hone_model::sample::generate`, seeded by the step so a resumed run samples the same), scores
//! them, turns the scores into advantages within each group, and takes one policy-gradient step.
//!
//! - Advantages: GRPO (Shao et al. 2024) normalises each group, A = (r − mean) / (std + 1e-4);
//!   RLOO (Ahmadian et al. 2024) subtracts the mean of the other completions, A = r − mean₋ᵢ.
//! - Objective per completion token: min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) − β·KL, with ρ the ratio to the
//!   sampling policy (1 in value here, one update per batch of samples, as TRL with one iteration)
//!   and KL the k3 estimator exp(q − p) − (q − p) − 1 of KL(π‖π_ref) (Schulman 2020), q the frozen
//!   reference's log-probability; averaged over each completion's tokens, then over completions.
//! - Rewards: the record's verifier (`hone_tasks::score::Scorer`: `number`, `contains_any`, …) or a
//!   reward model from `hone reward`.

use crate::batch::{Example, Rows};
use crate::data::shuffled_index;
use crate::reward_model::RewardModel;
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::Task;
use burn::tensor::Tensor;
use hone_data::chat::{ChatTemplate, Message};
use hone_data::read::{ByteCounter, records};
use hone_data::sft::turns;
use hone_data::tokenizer::Tokenizer;
use hone_data::{DataError, Location};
use hone_model::Llama;
use hone_model::llama::{constant, ids_tensor, token_log_probs};
use hone_model::sample::{Finish, SampleConfig, generate};
use hone_tasks::score::Scorer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::str::FromStr;

hone_data::config_section! {
    /// Online RL (GRPO or RLOO) with a verifier or a reward model, KL-regularised to a frozen reference.
    pub struct RlConfig {
        /// Reference checkpoint for the KL penalty; empty = the starting checkpoint.
        reference: String = String::new(),
        /// Only prompts whose `kind` is one of these (empty = all), e.g. ["arithmetic"].
        kinds: Vec<String> = Vec::new(),
        /// `verifier` (each record's scorer) or `model` (the reward model at `reward_model`).
        reward: RewardKind = RewardKind::Verifier,
        /// Reward model checkpoint or stage folder; empty = `<run dir>/reward`.
        reward_model: String = String::new(),
        /// `grpo` (group-normalised advantages) or `rloo` (leave-one-out baseline).
        algorithm: Algorithm = Algorithm::Grpo,
        /// Completions sampled per prompt.
        group_size: usize = 8,
        /// Prompts per micro-batch.
        prompts_per_step: usize = 4,
        /// Longest completion in tokens.
        max_new_tokens: usize = 32,
        /// Sampling temperature of the rollouts (1 = the policy's own distribution).
        temperature: f64 = 1.0,
        /// Clipping range ε of the policy ratio.
        clip_eps: f64 = 0.2,
        /// Weight β of the KL penalty to the reference.
        kl_beta: f64 = 0.04,
        /// Share of the prompts held out for evaluation (greedy, verifier score) when there is no
        /// `eval_data`.
        val_fraction: f64 = 0.1,
        /// Most held-out prompts evaluated.
        eval_prompts: usize = 64,
        ..common: StageConfig = StageConfig {
            lr: 2e-5,
            warmup_steps: 5,
            run: LoopConfig { steps: 100, eval_every: 25, checkpoint_every: 25, log_every: 1, ..LoopConfig::default() },
            ..StageConfig::default()
        },
    }
}

/// Where RL's rewards come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardKind {
    /// Each prompt's scorer.
    Verifier,
    /// The reward model of `rl.reward_model`.
    Model,
}

/// The RL stage.
pub struct Rl;

impl StageDef for Rl {
    type Config = RlConfig;
    const INFO: StageInfo = StageInfo {
        name: "rl",
        about: "Online RL (GRPO, RLOO) with verifiers or a reward model; Ctrl-C stops, rerun resumes.",
        starts_from: &["dpo", "sft", "pretrain", "base"],
        reads: &["reward"],
        role: Role::Policy,
        label: "rl",
        data: Some(DataKind::Prompts),
    };

    fn common(cfg: &RlConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut RlConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &RlConfig) -> anyhow::Result<()> {
        cfg.validate()
    }

    fn estimate_tokens(cfg: &RlConfig) -> f64 {
        // Sampling costs about as much as training on what was sampled, several times over.
        let run = &cfg.common.run;
        (run.steps * (run.grad_accum * cfg.prompts_per_step * cfg.group_size * cfg.max_new_tokens) as u64) as f64 * 4.0
    }

    fn run(cfg: &RlConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_rl(cfg, ctx)
    }
}

impl RlConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.common.validate("rl")?;
        anyhow::ensure!(self.group_size >= 2, "rl.group_size must be at least 2 (advantages compare a group)");
        anyhow::ensure!(self.prompts_per_step > 0, "rl.prompts_per_step must be positive");
        anyhow::ensure!(self.max_new_tokens > 0, "rl.max_new_tokens must be positive");
        anyhow::ensure!(self.clip_eps > 0.0, "rl.clip_eps must be positive");
        anyhow::ensure!(self.kl_beta >= 0.0, "rl.kl_beta must not be negative");
        anyhow::ensure!((0.0..1.0).contains(&self.val_fraction), "rl.val_fraction must be in [0, 1)");
        Ok(())
    }
}

/// How advantages are computed from a group's rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Grpo,
    Rloo,
}

impl Algorithm {
    /// Advantages of one group's rewards.
    pub fn advantages(self, r: &[f64]) -> Vec<f64> {
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        match self {
            Algorithm::Grpo => {
                // Sample standard deviation, as TRL's GRPOTrainer (torch.std).
                let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                r.iter().map(|x| (x - mean) / (var.sqrt() + 1e-4)).collect()
            }
            Algorithm::Rloo => r.iter().map(|x| x - (n * mean - x) / (n - 1.0)).collect(),
        }
    }
}

/// One RL prompt: the conversation so far, and the record (the verifier reads `targets` etc.).
#[derive(Debug, Clone)]
pub struct RlPrompt {
    pub messages: Vec<Message>,
    pub scorer: Option<Scorer>,
    pub kind: String,
    pub record: Value,
    pub origin: String,
}

/// Reads RL prompts; `need_scorer` makes a missing or unknown `scorer` an error.
pub fn read_prompts(paths: &[PathBuf], need_scorer: bool, kinds: &[String]) -> Result<Vec<RlPrompt>, DataError> {
    let mut out = Vec::new();
    for path in paths {
        for r in records(path, "auto", ByteCounter::default())? {
            let (loc, v) = r?;
            let bad = |msg: String, loc: &Location| DataError::record(path, loc.clone(), msg, "fix the record");
            let p = v.get("prompt").ok_or_else(|| bad("no field `prompt`".into(), &loc))?;
            let messages = turns(path, &loc, p, "prompt", "user")?;
            let scorer = match v.get("scorer").and_then(Value::as_str) {
                Some(s) => Some(Scorer::from_str(s).map_err(|e| bad(format!("field `scorer`: {e}"), &loc))?),
                None if need_scorer => {
                    return Err(bad("no field `scorer`: the verifier reward needs one (e.g. \"number\")".into(), &loc));
                }
                None => None,
            };
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            if !kinds.is_empty() && !kinds.contains(&kind) {
                continue;
            }
            out.push(RlPrompt { messages, scorer, kind, origin: format!("{}{loc}", path.display()), record: v });
        }
    }
    Ok(out)
}

/// Where rewards come from.
pub enum RewardSource {
    Verifier,
    Model(Box<RewardModel>),
}

/// The RL objective: samples, scores and the clipped, KL-penalised policy gradient.
pub struct RlTask {
    pub train: Vec<RlPrompt>,
    pub val: Vec<RlPrompt>,
    /// Prompt ids (chat template with the generation prompt) of `train` and `val`.
    pub train_ids: Vec<Vec<u32>>,
    pub val_ids: Vec<Vec<u32>>,
    pub tokenizer: Tokenizer,
    /// Inference copy of the frozen reference.
    pub reference: Llama,
    pub reward: RewardSource,
    pub algorithm: Algorithm,
    pub group_size: usize,
    pub prompts_per_step: usize,
    /// Micro-batches per optimizer step (each samples its own prompts).
    pub grad_accum: usize,
    pub sample: SampleConfig,
    pub clip_eps: f64,
    pub kl_beta: f64,
    pub seed: u64,
    /// Metrics of each micro-batch since the last `train_metrics`, averaged there.
    metrics: Vec<Vec<(String, f64)>>,
}

impl RlTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        train: Vec<RlPrompt>,
        val: Vec<RlPrompt>,
        tokenizer: Tokenizer,
        template: &ChatTemplate,
        reference: &Llama,
        reward: RewardSource,
        cfg: &RlConfig,
    ) -> anyhow::Result<RlTask> {
        let enc = |ps: &[RlPrompt]| -> anyhow::Result<Vec<Vec<u32>>> {
            ps.iter()
                .map(|p| {
                    template.encode_prompt(&tokenizer, &p.messages).map_err(|e| anyhow::anyhow!("{}: {e:#}", p.origin))
                })
                .collect()
        };
        let (train_ids, val_ids) = (enc(&train)?, enc(&val)?);
        let sample = SampleConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            ..SampleConfig::default()
        };
        Ok(RlTask {
            train,
            val,
            train_ids,
            val_ids,
            tokenizer,
            reference: reference.to_inference(),
            reward,
            algorithm: cfg.algorithm,
            group_size: cfg.group_size,
            prompts_per_step: cfg.prompts_per_step,
            grad_accum: cfg.common.run.grad_accum,
            sample,
            clip_eps: cfg.clip_eps,
            kl_beta: cfg.kl_beta,
            seed: cfg.common.run.seed,
            metrics: Vec::new(),
        })
    }

    /// Rewards of completions `gens` of prompts `which` (indices into `prompts`/`ids`).
    fn rewards(
        &self,
        prompts: &[RlPrompt],
        ids: &[Vec<u32>],
        which: &[usize],
        gens: &[hone_model::sample::Generation],
    ) -> anyhow::Result<Vec<f64>> {
        Ok(match &self.reward {
            RewardSource::Verifier => which
                .iter()
                .zip(gens)
                .map(|(&i, g)| {
                    let p = &prompts[i];
                    let s = p.scorer.ok_or_else(|| anyhow::anyhow!("{}: no scorer", p.origin))?;
                    Ok(s.score(&g.text, &p.record).score)
                })
                .collect::<anyhow::Result<Vec<f64>>>()?,
            RewardSource::Model(rm) => {
                let seqs: Vec<Vec<u32>> =
                    which.iter().zip(gens).map(|(&i, g)| ids[i].iter().chain(&g.tokens).copied().collect()).collect();
                rm.scores(&seqs).into_iter().map(|x| x as f64).collect()
            }
        })
    }
}

/// One step's samples: prompt ids and completions row by row (prompt k / G, sample k % G), with
/// their rewards and advantages.
pub struct Rollouts {
    pub prompts: Vec<Vec<u32>>,
    pub gens: Vec<hone_model::sample::Generation>,
    pub rewards: Vec<f64>,
    pub advantages: Vec<f64>,
}

impl RlTask {
    /// Samples and scores step `step`'s groups with the current policy: a pure function of (weights,
    /// step), so a resumed run draws the same samples.
    pub fn rollouts(&self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<Rollouts> {
        // One sampling slot per micro-batch; with one micro-batch per step the slot is the step.
        let slot = step * self.grad_accum as u64 + micro as u64;
        let n = self.train.len();
        let first = slot * self.prompts_per_step as u64;
        let chosen: Vec<usize> =
            (0..self.prompts_per_step as u64).map(|r| shuffled_index(n, self.seed, first + r)).collect();
        // Row k = prompt k / G, sample k % G; each row has its own RNG stream of this step's seed.
        let which: Vec<usize> = chosen.iter().flat_map(|&i| std::iter::repeat_n(i, self.group_size)).collect();
        let prompts: Vec<Vec<u32>> = which.iter().map(|&i| self.train_ids[i].clone()).collect();
        let cfg =
            SampleConfig { seed: self.seed ^ (slot + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), ..self.sample.clone() };
        let gens = generate(&model.to_inference(), &self.tokenizer, &prompts, &cfg, &mut |_, _| {})?;
        let rewards = self.rewards(&self.train, &self.train_ids, &which, &gens)?;
        let advantages: Vec<f64> = rewards.chunks(self.group_size).flat_map(|g| self.algorithm.advantages(g)).collect();
        Ok(Rollouts { prompts, gens, rewards, advantages })
    }

    /// The clipped, KL-penalised policy-gradient loss of `r` under `model` (to be minimised), and the
    /// number of real tokens in its batch; records the step's metrics.
    pub fn objective(&mut self, model: &Llama, r: &Rollouts) -> (Tensor<1>, u64) {
        // Prompt + completion as one row; the completion's tokens are the targets.
        let examples: Vec<Example> = r
            .prompts
            .iter()
            .zip(&r.gens)
            .map(|(p, g)| {
                let mut ids = p.clone();
                let mut mask = vec![false; p.len()];
                let toks: &[u32] = if g.tokens.is_empty() { &[self.tokenizer.end_id] } else { &g.tokens };
                ids.extend_from_slice(toks);
                mask.extend(std::iter::repeat_n(true, toks.len()));
                Example { ids, mask }
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let b = Rows::padded(&refs, self.tokenizer.pad_id);
        let d = model.device();
        let (rows, seq) = (b.rows, b.seq);
        let new =
            token_log_probs(model.forward(ids_tensor(&b.inputs, rows, seq, d)), ids_tensor(&b.targets, rows, seq, d)); // [rows, seq]
        let plain = d.clone().without_autodiff();
        let reference = token_log_probs(
            self.reference.forward(ids_tensor(&b.inputs, rows, seq, &plain)),
            ids_tensor(&b.targets, rows, seq, &plain),
        ); // [rows, seq]
        let reference = if d.is_autodiff() { reference.autodiff() } else { reference };
        let old = new.clone().detach();
        let w = constant(b.weights.clone(), [rows, seq], d); // [rows, seq]
        let a_rows: Vec<f32> = r.advantages.iter().flat_map(|&a| std::iter::repeat_n(a as f32, seq)).collect();
        let a = constant(a_rows, [rows, seq], d); // [rows, seq]
        let ratio = (new.clone() - old).exp();
        let surr = (ratio.clone() * a.clone()).min_pair(ratio.clamp(1.0 - self.clip_eps, 1.0 + self.clip_eps) * a);
        let diff = reference - new; // q − p
        let k3 = diff.clone().exp() - diff - 1.0; // [rows, seq]
        let per_token = (surr - k3.clone().mul_scalar(self.kl_beta)).neg() * w.clone();
        let counts: Vec<f32> = b.weights.chunks(seq).map(|c| c.iter().sum::<f32>().max(1.0)).collect();
        let counts_t = constant(counts, [rows], d);
        let loss = (per_token.sum_dim(1).reshape([rows]) / counts_t).mean();

        let kl: f32 = (k3 * w).without_autodiff().sum().into_scalar();
        let tokens: f32 = b.weights.iter().sum();
        let rewards = &r.rewards;
        let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
        let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rewards.len() as f64).sqrt();
        let ended = r.gens.iter().filter(|g| g.finish == Finish::EndOfTurn).count() as f64 / r.gens.len() as f64;
        // Groups whose completions all scored the same have zero advantage everywhere: they teach
        // nothing but the KL term (TRL logs the same share as `frac_reward_zero_std`).
        let groups: Vec<&[f64]> = rewards.chunks(self.group_size).collect();
        let uniform = groups.iter().filter(|g| g.iter().all(|x| *x == g[0])).count() as f64 / groups.len() as f64;
        self.metrics.push(vec![
            ("reward_mean".into(), mean),
            ("reward_std".into(), std),
            ("kl".into(), kl as f64 / tokens.max(1.0) as f64),
            ("completion_len".into(), tokens as f64 / rows as f64),
            ("ended_share".into(), ended),
            ("uniform_groups".into(), uniform),
        ]);
        (loss, b.real_tokens)
    }
}

impl Task for RlTask {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let r = self.rollouts(model, step, micro)?;
        Ok(self.objective(model, &r))
    }

    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        // Every micro-batch has the same number of groups, so the plain mean is the step's value.
        let micro = std::mem::take(&mut self.metrics);
        let Some(first) = micro.first() else { return Vec::new() };
        let n = micro.len() as f64;
        first
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), micro.iter().map(|m| m[i].1).sum::<f64>() / n))
            .collect()
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        if self.val.is_empty() {
            return Ok(Vec::new());
        }
        let which: Vec<usize> = (0..self.val.len()).collect();
        let cfg = SampleConfig { temperature: 0.0, ..self.sample.clone() };
        let gens = generate(&model.to_inference(), &self.tokenizer, &self.val_ids, &cfg, &mut |_, _| {})?;
        let scores = self.rewards(&self.val, &self.val_ids, &which, &gens)?;
        let mut out = vec![("val_reward".into(), scores.iter().sum::<f64>() / scores.len() as f64)];
        let mut kinds: Vec<&str> = self.val.iter().map(|p| p.kind.as_str()).filter(|k| !k.is_empty()).collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            let s: Vec<f64> = self.val.iter().zip(&scores).filter(|(p, _)| p.kind == k).map(|(_, s)| *s).collect();
            out.push((format!("val_reward_{k}"), s.iter().sum::<f64>() / s.len() as f64));
        }
        out.push(("val_prompts".into(), scores.len() as f64));
        Ok(out)
    }

    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({
            "next_step": next_step,
            "order": "epoch-wise shuffle of the prompts by ChaCha8(seed, epoch); sampling seeded by (seed, step)",
            "train_prompts": self.train.len(),
            "val_prompts": self.val.len(),
        })
    }
}

/// `hone rl`: trains the starting checkpoint with GRPO/RLOO into `<run_dir>/rl/`.
fn run_rl(cfg: &RlConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let common = &cfg.common;
    let seed = common.run.seed;
    let (opened, device) = stage::open_start(&ctx.run_dir, &Rl::INFO, common)?;
    let verifier = cfg.reward == RewardKind::Verifier;
    let all = read_prompts(&common.data_paths("rl")?, verifier, &cfg.kinds)?;
    let (mut train, mut val): (Vec<RlPrompt>, Vec<RlPrompt>) = match common.eval_path() {
        Some(p) => (all, read_prompts(&[p], verifier, &cfg.kinds)?),
        None => {
            all.into_iter().partition(|p| hone_data::hash::split_point(seed, &p.record.to_string()) >= cfg.val_fraction)
        }
    };
    val.truncate(cfg.eval_prompts);
    if train.is_empty() && val.len() > 1 {
        train.push(val.pop().expect("non-empty"));
    }
    anyhow::ensure!(!train.is_empty(), "rl: no prompts in {}", common.data.join(", "));
    let notes = stage::print_notes(hone_data::checkpoint::DataNotes::lines(vec![format!(
        "rl: {} training prompts, {} held out",
        train.len(),
        val.len()
    )]));
    let reference = if cfg.reference.is_empty() {
        opened.model.clone()
    } else {
        stage::open(Path::new(&cfg.reference), &device)?.model
    };
    let reward = match cfg.reward {
        RewardKind::Verifier => RewardSource::Verifier,
        RewardKind::Model => {
            let p =
                if cfg.reward_model.is_empty() { ctx.run_dir.join("reward") } else { PathBuf::from(&cfg.reward_model) };
            RewardSource::Model(Box::new(RewardModel::load(&p, &device.clone().without_autodiff())?))
        }
    };
    eprintln!("rl: starting from {}", opened.dir.display());
    let stage_optim = common.optim(ctx.optim);
    let settings = common.run.settings("rl", &(&opened.model.config, &stage_optim, cfg), ctx.progress);
    let files = hone_model::import::save::model_files(opened.model.config.to_hf_json(), &opened.tokenizer, &opened.template)?;
    let mut task = RlTask::new(train, val, opened.tokenizer, &opened.template, &reference, reward, cfg)?;
    drop(reference);
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(stage::adapt(opened.model, common, &opened.dir)?, &stage_optim, settings, files, &mut task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: Some(opened.dir), resumed_from, notes })
}
