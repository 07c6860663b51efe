//! ORPO, odds-ratio preference optimisation (Hong et al. 2024): one stage that does instruction
//! tuning and preference learning together, without a reference model, so it may start from the
//! pretrained model. As TRL's `ORPOTrainer` defines it, with log-probabilities averaged over each
//! reply's tokens (`p̄_c`, `p̄_r`):
//!
//! - log odds(y) = p̄ − log(1 − exp(p̄)); log-odds ratio z = log odds(chosen) − log odds(rejected);
//! - loss = NLL(chosen) − λ · mean(log σ(z)), the NLL being the cross-entropy over every chosen reply
//!   token of the batch (a token-weighted mean, as TRL computes it over the chosen half);
//! - logged rewards are λ·p̄, accuracy is the share of pairs with reward(chosen) > reward(rejected).

use crate::data::shuffled_index;
use crate::pairdata::{EncodedPair, PairData, PairRows, load_pairs, sequence_logps};
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::Task;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use hone_data::RecordFormat;
use hone_model::Llama;
use hone_model::llama::constant;

hone_data::config_section! {
    /// ORPO: SFT on the chosen reply plus an odds-ratio preference term; no reference model.
    pub struct OrpoConfig {
        /// `auto` (from the file name), `jsonl` or `json`.
        format: RecordFormat = RecordFormat::Auto,
        /// Count and drop bad records instead of stopping.
        skip_invalid: bool = false,
        /// Share of `data` held out when there is no `eval_data` (by a seeded hash of the prompt).
        val_fraction: f64 = 0.05,
        /// Longest prompt + reply in tokens; longer ones are cut (and counted, and flagged in the
        /// report beyond 2%). 0: the model's context (`max_position_embeddings`).
        max_len: usize = 0,
        /// λ, the weight of the odds-ratio term against the chosen reply's NLL (TRL's `beta`).
        lambda: f64 = 0.1,
        /// Pairs per micro-batch.
        batch_size: usize = 8,
        ..common: StageConfig = StageConfig {
            lr: 3e-4,
            warmup_steps: 10,
            run: LoopConfig { steps: 200, eval_every: 50, checkpoint_every: 100, ..LoopConfig::default() },
            ..StageConfig::default()
        },
    }
}

/// The ORPO stage.
pub struct Orpo;

impl StageDef for Orpo {
    type Config = OrpoConfig;
    const INFO: StageInfo = StageInfo {
        name: "orpo",
        about: "Preference-tune with ORPO (chosen-reply NLL + odds ratio, no reference); Ctrl-C stops, rerun resumes.",
        starts_from: &["sft", "pretrain", "base"],
        reads: &[],
        role: Role::Policy,
        label: "orpo",
        data: Some(DataKind::Pairs),
    };

    fn common(cfg: &OrpoConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut OrpoConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &OrpoConfig) -> anyhow::Result<()> {
        cfg.common.validate("orpo")?;
        anyhow::ensure!(cfg.batch_size > 0, "orpo.batch_size must be positive");
        anyhow::ensure!(cfg.max_len == 0 || cfg.max_len >= 2, "orpo.max_len must be 0 (the model's context) or at least 2");
        anyhow::ensure!((0.0..1.0).contains(&cfg.val_fraction), "orpo.val_fraction must be in [0, 1)");
        anyhow::ensure!(cfg.lambda >= 0.0 && cfg.lambda.is_finite(), "orpo.lambda must be 0 or positive");
        Ok(())
    }

    fn estimate_tokens(cfg: &OrpoConfig) -> f64 {
        let run = &cfg.common.run;
        (run.steps * (cfg.batch_size * run.grad_accum * stage::nominal_len(cfg.max_len)) as u64) as f64
    }

    fn run(cfg: &OrpoConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        let common = &cfg.common;
        let (opened, _) = stage::open_start(&ctx.run_dir, &Self::INFO, common)?;
        let (data, notes) = load_pairs(
            "orpo",
            &common.data_paths("orpo")?,
            common.eval_path(),
            cfg.format.as_str(),
            cfg.skip_invalid,
            &opened,
            cfg.max_len,
            cfg.val_fraction,
            common.run.seed,
        )?;
        let notes = stage::print_notes(notes);
        eprintln!("orpo: starting from {}", opened.dir.display());
        let stage_optim = common.optim(ctx.optim);
        let settings = common.run.settings("orpo", &(&opened.model.config, &stage_optim, cfg), ctx.progress);
        let files = hone_model::import::save::model_files(opened.model.config.to_hf_json(), &opened.tokenizer, &opened.template)?;
        let mut task = OrpoTask::new(
            data,
            opened.tokenizer.pad_id,
            cfg.lambda,
            common.run.seed,
            cfg.batch_size,
            common.run.grad_accum,
        );
        let (summary, resumed_from, stage_dir) =
            stage::train_stage(stage::adapt(opened.model, common, &opened.dir)?, &stage_optim, settings, files, &mut task, ctx)?;
        Ok(StageReport { summary, stage_dir, init: Some(opened.dir), resumed_from, notes })
    }
}

/// The parts of the ORPO loss of a batch of pairs.
pub struct OrpoLoss {
    /// NLL(chosen) − λ·mean(log σ(z)), a scalar `[1]`.
    pub loss: Tensor<1>,
    /// The chosen replies' cross-entropy per token `[1]`.
    pub nll: Tensor<1>,
    /// The log-odds ratio z per pair `[b]`.
    pub log_odds: Tensor<1>,
    /// Length-averaged log-probabilities of chosen and rejected `[b]`.
    pub chosen: Tensor<1>,
    pub rejected: Tensor<1>,
}

/// ORPO's loss from the summed reply log-probabilities `sums` `[2b]` (chosen rows first, then
/// rejected) and their reply token counts `counts` (`2b`).
pub fn orpo_loss(sums: Tensor<1>, counts: &[f32], lambda: f64) -> OrpoLoss {
    let b = counts.len() / 2;
    let d = sums.device();
    let avg = sums.clone() / constant(counts.iter().map(|c| c.max(1.0)).collect(), [2 * b], &d); // [2b]
    let (pc, pr) = (avg.clone().narrow(0, 0, b), avg.narrow(0, b, b));
    // log(1 − exp(p̄)): p̄ < 0 for any reply with a token of probability below 1.
    let log_odds = |p: Tensor<1>| p.clone() - p.exp().neg().log1p();
    let z = log_odds(pc.clone()) - log_odds(pr.clone()); // [b]
    let chosen_tokens: f32 = counts[..b].iter().sum();
    let nll = sums.narrow(0, 0, b).sum().div_scalar(chosen_tokens.max(1.0)).neg(); // [1]
    let loss = nll.clone() - log_sigmoid(z.clone()).mean().mul_scalar(lambda);
    OrpoLoss { loss, nll, log_odds: z, chosen: pc, rejected: pr }
}

/// The ORPO objective over encoded pairs.
pub struct OrpoTask {
    pub data: PairData,
    pub pad: u32,
    /// Fixed row length (tokens), so a pair's numbers do not depend on its batch.
    pub len: usize,
    pub lambda: f64,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Sums of (reward chosen, reward rejected, margin, accuracy, log-odds ratio, nll) and the
    /// pair count since the last `train_metrics`.
    acc: [f64; 7],
}

impl OrpoTask {
    pub fn new(data: PairData, pad: u32, lambda: f64, seed: u64, batch_size: usize, grad_accum: usize) -> OrpoTask {
        let len = data.longest();
        OrpoTask { data, pad, len, lambda, seed, batch_size, grad_accum, acc: [0.0; 7] }
    }

    /// The loss of `pairs` and its host-side numbers.
    pub fn pairs_loss(&self, model: &Llama, pairs: &[&EncodedPair]) -> (OrpoLoss, PairStats) {
        let rows = PairRows::new(pairs, self.pad, self.len);
        let out = orpo_loss(sequence_logps(model, &rows, false), &rows.counts(), self.lambda);
        let host = |t: &Tensor<1>| -> Vec<f32> { t.clone().without_autodiff().to_data().try_into_vec().expect("f32") };
        let nll: Vec<f32> = host(&out.nll);
        let stats = PairStats {
            chosen: host(&out.chosen).iter().map(|x| *x as f64 * self.lambda).collect(),
            rejected: host(&out.rejected).iter().map(|x| *x as f64 * self.lambda).collect(),
            log_odds: host(&out.log_odds).iter().map(|x| *x as f64).collect(),
            nll: nll[0] as f64,
        };
        (out, stats)
    }
}

/// Per-pair rewards (λ·p̄), log-odds ratios, and the batch's chosen NLL, on the host.
pub struct PairStats {
    pub chosen: Vec<f64>,
    pub rejected: Vec<f64>,
    pub log_odds: Vec<f64>,
    pub nll: f64,
}

impl Task for OrpoTask {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let pairs: Vec<&EncodedPair> =
            (0..self.batch_size as u64).map(|r| &self.data.train[shuffled_index(n, self.seed, first + r)]).collect();
        let (out, s) = self.pairs_loss(model, &pairs);
        for i in 0..pairs.len() {
            let (c, r) = (s.chosen[i], s.rejected[i]);
            let a = &mut self.acc;
            a[0] += c;
            a[1] += r;
            a[2] += c - r;
            a[3] += if c > r { 1.0 } else { 0.0 };
            a[4] += s.log_odds[i];
            a[5] += s.nll;
            a[6] += 1.0;
        }
        let tokens: usize = pairs.iter().map(|p| p.chosen.ids.len() + p.rejected.ids.len()).sum();
        Ok((out.loss, tokens as u64))
    }

    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        let a = std::mem::take(&mut self.acc);
        let n = a[6].max(1.0);
        vec![
            ("reward_chosen".into(), a[0] / n),
            ("reward_rejected".into(), a[1] / n),
            ("reward_margin".into(), a[2] / n),
            ("accuracy".into(), a[3] / n),
            ("log_odds_ratio".into(), a[4] / n),
            ("nll".into(), a[5] / n),
        ]
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        if self.data.val.is_empty() {
            return Ok(Vec::new());
        }
        let m = model.to_inference();
        let (mut loss, mut nll, mut right, mut margin, mut n) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for chunk in self.data.val.chunks(self.batch_size) {
            let pairs: Vec<&EncodedPair> = chunk.iter().collect();
            let (out, s) = self.pairs_loss(&m, &pairs);
            let l: f32 = out.loss.into_scalar();
            let k = pairs.len() as f64;
            loss += l as f64 * k;
            nll += s.nll * k;
            for (c, r) in s.chosen.iter().zip(&s.rejected) {
                right += if c > r { 1.0 } else { 0.0 };
                margin += c - r;
            }
            n += k;
        }
        Ok(vec![
            ("val_loss".into(), loss / n),
            ("val_nll".into(), nll / n),
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
