//! The reward-model stage: a [`RewardModel`] (the init model's trunk with a scalar head) trained on
//! preference pairs with the Bradley–Terry loss −log σ(r(chosen) − r(rejected)), reporting the
//! held-out pairwise accuracy. The result opens with [`RewardModel::load`] for RL and evaluation.

use crate::data::shuffled_index;
use crate::pairdata::{EncodedPair, PairData, PairRows, load_pairs};
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::Task;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use hone_data::RecordFormat;
use hone_model::llama::ids_tensor;

pub use crate::reward_model::RewardModel;

hone_data::config_section! {
    /// A reward model (trunk + scalar head) trained on preference pairs (Bradley–Terry).
    pub struct RewardConfig {
        /// `auto` (from the file name), `jsonl` or `json`.
        format: RecordFormat = RecordFormat::Auto,
        /// Count and drop bad records instead of stopping.
        skip_invalid: bool = false,
        /// Share of `data` held out when there is no `eval_data`.
        val_fraction: f64 = 0.05,
        /// Longest prompt + reply in tokens; longer ones are cut (and counted, and flagged in the
        /// report beyond 2%). 0: the model's context (`max_position_embeddings`).
        max_len: usize = 0,
        /// Pairs per micro-batch.
        batch_size: usize = 8,
        ..common: StageConfig = StageConfig {
            lr: 1e-4,
            warmup_steps: 10,
            run: LoopConfig { steps: 200, eval_every: 50, checkpoint_every: 100, ..LoopConfig::default() },
            ..StageConfig::default()
        },
    }
}

/// The reward-model stage.
pub struct Reward;

impl StageDef for Reward {
    type Config = RewardConfig;
    const INFO: StageInfo = StageInfo {
        name: "reward",
        about: "Train a reward model (trunk + scalar head) on preference pairs; Ctrl-C stops, rerun resumes.",
        starts_from: &["sft", "pretrain", "base"],
        reads: &[],
        role: Role::Auxiliary,
        label: "reward",
        data: Some(DataKind::Pairs),
    };

    fn common(cfg: &RewardConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut RewardConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &RewardConfig) -> anyhow::Result<()> {
        cfg.common.validate("reward")?;
        anyhow::ensure!(cfg.batch_size > 0, "reward.batch_size must be positive");
        anyhow::ensure!(cfg.max_len == 0 || cfg.max_len >= 2, "reward.max_len must be 0 (the model's context) or at least 2");
        anyhow::ensure!((0.0..1.0).contains(&cfg.val_fraction), "reward.val_fraction must be in [0, 1)");
        Ok(())
    }

    fn estimate_tokens(cfg: &RewardConfig) -> f64 {
        let run = &cfg.common.run;
        (run.steps * (cfg.batch_size * run.grad_accum * stage::nominal_len(cfg.max_len)) as u64) as f64
    }

    fn run(cfg: &RewardConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_reward(cfg, ctx)
    }
}

/// Rewards of chosen `[b]` and rejected `[b]` sides of `pairs`.
pub fn pair_rewards(model: &RewardModel, pairs: &[&EncodedPair], pad: u32, len: usize) -> (Tensor<1>, Tensor<1>) {
    let rows = PairRows::new(pairs, pad, len);
    let ids = ids_tensor(&rows.full, rows.rows, len, model.trunk.device());
    let r = model.forward(ids, &rows.last); // [2b]
    let b = pairs.len();
    (r.clone().narrow(0, 0, b), r.narrow(0, b, b))
}

/// Bradley–Terry: mean of −log σ(r_c − r_r).
pub fn bradley_terry(rc: Tensor<1>, rr: Tensor<1>) -> Tensor<1> {
    log_sigmoid(rc - rr).mean().neg()
}

/// The reward-model objective.
pub struct RewardTask {
    pub data: PairData,
    pub pad: u32,
    /// Fixed row length (tokens).
    pub len: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Sums of (accuracy, margin) and the pair count since the last `train_metrics`.
    acc: [f64; 3],
}

impl RewardTask {
    pub fn new(data: PairData, pad: u32, seed: u64, batch_size: usize, grad_accum: usize) -> RewardTask {
        let len = data.longest();
        RewardTask { data, pad, len, seed, batch_size, grad_accum, acc: [0.0; 3] }
    }
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.without_autodiff().to_data().try_into_vec().expect("f32")
}

impl Task<RewardModel> for RewardTask {
    fn loss(&mut self, model: &RewardModel, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let pairs: Vec<&EncodedPair> =
            (0..self.batch_size as u64).map(|r| &self.data.train[shuffled_index(n, self.seed, first + r)]).collect();
        let (rc, rr) = pair_rewards(model, &pairs, self.pad, self.len);
        for (c, r) in host(rc.clone()).iter().zip(host(rr.clone())) {
            self.acc[0] += if *c > r { 1.0 } else { 0.0 };
            self.acc[1] += (*c - r) as f64;
            self.acc[2] += 1.0;
        }
        let tokens: usize = pairs.iter().map(|p| p.chosen.ids.len() + p.rejected.ids.len()).sum();
        Ok((bradley_terry(rc, rr), tokens as u64))
    }

    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        let a = std::mem::take(&mut self.acc);
        let n = a[2].max(1.0);
        vec![("accuracy".into(), a[0] / n), ("reward_margin".into(), a[1] / n)]
    }

    fn evaluate(&mut self, model: &RewardModel) -> anyhow::Result<Vec<(String, f64)>> {
        if self.data.val.is_empty() {
            return Ok(Vec::new());
        }
        let m = RewardModel { trunk: model.trunk.to_inference(), score: model.score.clone().without_autodiff() };
        let (mut loss, mut right, mut margin, mut n) = (0f64, 0f64, 0f64, 0f64);
        for chunk in self.data.val.chunks(self.batch_size) {
            let pairs: Vec<&EncodedPair> = chunk.iter().collect();
            let (rc, rr) = pair_rewards(&m, &pairs, self.pad, self.len);
            let l: f32 = bradley_terry(rc.clone(), rr.clone()).into_scalar();
            loss += l as f64 * pairs.len() as f64;
            for (c, r) in host(rc).iter().zip(host(rr)) {
                right += if *c > r { 1.0 } else { 0.0 };
                margin += (*c - r) as f64;
            }
            n += pairs.len() as f64;
        }
        Ok(vec![
            ("val_loss".into(), loss / n),
            ("val_accuracy".into(), right / n),
            ("val_margin".into(), margin / n),
            ("val_pairs".into(), n),
        ])
    }

    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({
            "next_step": next_step,
            "order": "epoch-wise shuffle of the training pairs by ChaCha8(seed, epoch)",
            "train_pairs": self.data.train.len(),
            "val_pairs": self.data.val.len(),
        })
    }
}

/// `hone reward`: trains a reward model from the starting checkpoint's trunk into `<run_dir>/reward/`.
fn run_reward(cfg: &RewardConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let common = &cfg.common;
    let (opened, _) = stage::open_start(&ctx.run_dir, &Reward::INFO, common)?;
    let (data, notes) = load_pairs(
        "reward",
        &common.data_paths("reward")?,
        common.eval_path(),
        cfg.format.as_str(),
        cfg.skip_invalid,
        &opened,
        cfg.max_len,
        cfg.val_fraction,
        common.run.seed,
    )?;
    let notes = stage::print_notes(notes);
    eprintln!("reward: trunk from {}", opened.dir.display());
    let pad = opened.tokenizer.pad_id;
    let model = RewardModel::new(stage::adapt(opened.model, common, &opened.dir)?, common.run.seed);
    let stage_optim = common.optim(ctx.optim);
    let settings = common.run.settings("reward", &(&model.trunk.config, &stage_optim, cfg), ctx.progress);
    let files = hone_model::import::save::model_files(model.hf_config(pad), &opened.tokenizer, &opened.template)?;
    let mut task = RewardTask::new(data, pad, common.run.seed, cfg.batch_size, common.run.grad_accum);
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(model, &stage_optim, settings, files, &mut task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: Some(opened.dir), resumed_from, notes })
}
