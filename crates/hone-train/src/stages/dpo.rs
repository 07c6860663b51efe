//! Direct preference optimisation: the policy learns to raise the likelihood of the chosen reply
//! relative to the rejected one, measured against a frozen reference model, with the losses of TRL's
//! `DPOTrainer`:
//!
//! - `sigmoid` (DPO, Rafailov et al. 2023): z = β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))],
//!   loss = −(1−ε)·log σ(z) − ε·log σ(−z) (ε = label smoothing, cDPO);
//! - `ipo` (Azar et al. 2023): with log-probabilities averaged per reply token (as TRL does),
//!   h = (π(c) − π_ref(c)) − (π(r) − π_ref(r)), loss = (h − 1/(2β))²;
//! - `simpo` (Meng et al. 2024): reference-free, length-normalised: z = β·(avg log π(c) − avg log π(r)) − γ,
//!   loss as for `sigmoid`.
//!
//! The reference's log-probabilities of every pair are computed once, before training, by an
//! inference copy that is then dropped; they are cached in the stage folder (keyed by the reference
//! weights and the tokens), so a resumed run reuses them and the reference never changes.

use crate::data::shuffled_index;
use crate::pairdata::{EncodedPair, PairData, PairRows, load_pairs, sequence_logps};
use crate::reference::{self, Keyed};
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::Task;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use hone_data::RecordFormat;
use hone_model::Llama;
use hone_model::llama::constant;
use serde::{Deserialize, Serialize};
use std::path::Path;

hone_data::config_section! {
    /// Preference optimisation against a frozen reference (DPO, IPO) or without one (SimPO).
    pub struct DpoConfig {
        /// Reference checkpoint; empty = the starting checkpoint.
        reference: String = String::new(),
        /// `auto` (from the file name), `jsonl` or `json`.
        format: RecordFormat = RecordFormat::Auto,
        /// Count and drop bad records instead of stopping.
        skip_invalid: bool = false,
        /// Share of `data` held out when there is no `eval_data` (by a seeded hash of the prompt).
        val_fraction: f64 = 0.05,
        /// Train on at most this many pairs, a seeded sample of the training set (0 = all). The reference
        /// pass up front covers only these, so a short run does not pay for pairs it never sees.
        max_pairs: usize = 0,
        /// Longest prompt + reply in tokens; longer ones are cut (and counted, and flagged in the
        /// report beyond 2%). 0: the model's context (`max_position_embeddings`).
        max_len: usize = 0,
        /// `sigmoid` (DPO), `ipo`, or `simpo` (reference-free, length-normalised).
        loss: DpoLossKind = DpoLossKind::Sigmoid,
        /// β: the strength of the pull toward the reference (sigmoid, ipo) or the reward scale (simpo).
        beta: f64 = 0.1,
        /// Label smoothing ε in [0, 0.5): the assumed share of flipped labels (cDPO); sigmoid and simpo.
        label_smoothing: f64 = 0.0,
        /// Weight α of an added negative log-likelihood of the chosen reply (per token), as TRL's
        /// `rpo_alpha` (RPO): it keeps the chosen reply likely while the margin grows, which small
        /// models otherwise trade away (both replies' likelihood falls and generation degrades).
        /// 0 = plain DPO.
        rpo_alpha: f64 = 0.0,
        /// SimPO's target reward margin γ.
        simpo_gamma: f64 = 0.5,
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

/// The loss, as named in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLossKind {
    Sigmoid,
    Ipo,
    Simpo,
}

/// The DPO stage (and its IPO and SimPO variants).
pub struct Dpo;

impl StageDef for Dpo {
    type Config = DpoConfig;
    const INFO: StageInfo = StageInfo {
        name: "dpo",
        about: "Preference-tune (DPO, IPO, SimPO) against a frozen reference; Ctrl-C stops, rerun resumes.",
        starts_from: &["sft", "pretrain", "base"],
        reads: &[],
        role: Role::Policy,
        label: "dpo",
        data: Some(DataKind::Pairs),
    };

    fn common(cfg: &DpoConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut DpoConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &DpoConfig) -> anyhow::Result<()> {
        cfg.validate()
    }

    fn estimate_tokens(cfg: &DpoConfig) -> f64 {
        // Chosen and rejected, plus the reference pass up front.
        let run = &cfg.common.run;
        (run.steps * (cfg.batch_size * run.grad_accum * stage::nominal_len(cfg.max_len)) as u64) as f64 * 1.3
    }

    fn run(cfg: &DpoConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_dpo(cfg, ctx)
    }
}

/// The loss variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DpoLoss {
    Sigmoid { beta: f64, label_smoothing: f64 },
    Ipo { beta: f64 },
    Simpo { beta: f64, gamma: f64, label_smoothing: f64 },
}

impl DpoConfig {
    pub fn variant(&self) -> anyhow::Result<DpoLoss> {
        anyhow::ensure!(self.beta > 0.0, "dpo.beta must be positive");
        anyhow::ensure!((0.0..0.5).contains(&self.label_smoothing), "dpo.label_smoothing must be in [0, 0.5)");
        Ok(match self.loss {
            DpoLossKind::Sigmoid => DpoLoss::Sigmoid { beta: self.beta, label_smoothing: self.label_smoothing },
            DpoLossKind::Ipo => DpoLoss::Ipo { beta: self.beta },
            DpoLossKind::Simpo => {
                DpoLoss::Simpo { beta: self.beta, gamma: self.simpo_gamma, label_smoothing: self.label_smoothing }
            }
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.common.validate("dpo")?;
        self.variant()?;
        anyhow::ensure!(self.batch_size > 0, "dpo.batch_size must be positive");
        anyhow::ensure!(self.max_len == 0 || self.max_len >= 2, "dpo.max_len must be 0 (the model's context) or at least 2");
        anyhow::ensure!((0.0..1.0).contains(&self.val_fraction), "dpo.val_fraction must be in [0, 1)");
        anyhow::ensure!(self.rpo_alpha >= 0.0 && self.rpo_alpha.is_finite(), "dpo.rpo_alpha must be 0 or positive");
        Ok(())
    }
}

impl DpoLoss {
    /// Whether log-probabilities are averaged over the reply's tokens (IPO, SimPO) or summed (DPO).
    pub fn averaged(&self) -> bool {
        !matches!(self, DpoLoss::Sigmoid { .. })
    }

    pub fn uses_reference(&self) -> bool {
        !matches!(self, DpoLoss::Simpo { .. })
    }

    /// Per-pair losses `[b]` and the implied rewards of chosen and rejected `[b]` from the policy's
    /// (`pc`, `pr`) and the reference's (`rc`, `rr`) sequence log-probabilities `[b]` (already
    /// averaged when [`DpoLoss::averaged`]; the reference's are ignored by SimPO).
    pub fn losses(
        &self,
        pc: Tensor<1>,
        pr: Tensor<1>,
        rc: Tensor<1>,
        rr: Tensor<1>,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let smoothed = |z: Tensor<1>, eps: f64| {
            log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps)) - log_sigmoid(z.neg()).mul_scalar(eps)
        };
        match *self {
            DpoLoss::Sigmoid { beta, label_smoothing } => {
                let (dc, dr) = (pc - rc, pr - rr);
                let z = (dc.clone() - dr.clone()).mul_scalar(beta);
                (smoothed(z, label_smoothing), dc.mul_scalar(beta), dr.mul_scalar(beta))
            }
            DpoLoss::Ipo { beta } => {
                let (dc, dr) = (pc - rc, pr - rr);
                let h = (dc.clone() - dr.clone()).sub_scalar(1.0 / (2.0 * beta));
                (h.square(), dc.mul_scalar(beta), dr.mul_scalar(beta))
            }
            DpoLoss::Simpo { beta, gamma, label_smoothing } => {
                let z = (pc.clone() - pr.clone()).mul_scalar(beta).sub_scalar(gamma);
                (smoothed(z, label_smoothing), pc.mul_scalar(beta), pr.mul_scalar(beta))
            }
        }
    }
}

/// The reference's sequence log-probabilities of every pair: summed and per-token counts, so either
/// form can be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLogps {
    /// What they were computed from: sha256 of the reference weights, the tokens and the row length.
    pub key: String,
    /// `[chosen_sum, rejected_sum, chosen_tokens, rejected_tokens]` per training pair.
    pub train: Vec<[f32; 4]>,
    /// The same per held-out pair.
    pub val: Vec<[f32; 4]>,
}

impl ReferenceLogps {
    /// Computes them with an inference copy of `reference`, `batch` pairs at a time.
    pub fn compute(
        reference: &Llama,
        data: &PairData,
        pad: u32,
        len: usize,
        batch: usize,
        key: String,
    ) -> ReferenceLogps {
        let m = reference.to_inference();
        let run = |pairs: &[EncodedPair]| -> Vec<[f32; 4]> {
            let mut out = Vec::with_capacity(pairs.len());
            for chunk in pairs.chunks(batch.max(1)) {
                let refs: Vec<&EncodedPair> = chunk.iter().collect();
                let rows = PairRows::new(&refs, pad, len);
                let sums: Vec<f32> = sequence_logps(&m, &rows, false).to_data().try_into_vec().expect("f32");
                let counts = rows.counts();
                let b = chunk.len();
                out.extend((0..b).map(|i| [sums[i], sums[b + i], counts[i], counts[b + i]]));
            }
            out
        };
        ReferenceLogps { key, train: run(&data.train), val: run(&data.val) }
    }

}

impl Keyed for ReferenceLogps {
    fn key(&self) -> &str {
        &self.key
    }
}

/// The cache key: the reference weights, the tokens of every pair and the row length.
pub fn reference_key(reference: &Llama, data: &PairData, len: usize) -> anyhow::Result<String> {
    fn side(p: &EncodedPair) -> (&Vec<u32>, &Vec<u32>, &Vec<bool>, &Vec<bool>) {
        (&p.chosen.ids, &p.rejected.ids, &p.chosen.mask, &p.rejected.mask)
    }
    reference::key(
        reference,
        &(data.train.iter().map(side).collect::<Vec<_>>(), data.val.iter().map(side).collect::<Vec<_>>(), len),
    )
}

/// The DPO objective over encoded pairs with their reference log-probabilities.
pub struct DpoTask {
    pub data: PairData,
    pub reference: ReferenceLogps,
    pub loss: DpoLoss,
    pub pad: u32,
    /// Fixed row length (tokens).
    pub len: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Weight of the chosen reply's per-token negative log-likelihood added to the loss (RPO).
    pub rpo_alpha: f64,
    /// Sums of (reward chosen, reward rejected, margin, accuracy) and the pair count since the last
    /// `train_metrics`.
    acc: [f64; 5],
}

impl DpoTask {
    pub fn new(
        data: PairData,
        reference: ReferenceLogps,
        loss: DpoLoss,
        pad: u32,
        seed: u64,
        batch_size: usize,
        grad_accum: usize,
    ) -> DpoTask {
        let len = data.longest();
        DpoTask { data, reference, loss, pad, len, seed, batch_size, grad_accum, rpo_alpha: 0.0, acc: [0.0; 5] }
    }

    /// Loss (mean over pairs), and per-pair rewards of chosen and rejected, for `pairs` with
    /// reference values `refs`.
    fn pairs_loss(&self, model: &Llama, pairs: &[&EncodedPair], refs: &[[f32; 4]]) -> (Tensor<1>, Vec<f32>, Vec<f32>) {
        let d = model.device();
        let rows = PairRows::new(pairs, self.pad, self.len);
        let avg = self.loss.averaged();
        let logps = sequence_logps(model, &rows, avg); // [2b]
        let b = pairs.len();
        let (pc, pr) = (logps.clone().narrow(0, 0, b), logps.narrow(0, b, b));
        let side = |i: usize, j: usize| -> Vec<f32> {
            refs.iter().map(|r| if avg { r[i] / r[j].max(1.0) } else { r[i] }).collect()
        };
        let (rc, rr) = (constant(side(0, 2), [b], d), constant(side(1, 3), [b], d));
        let nll = if self.rpo_alpha > 0.0 {
            // Per-token log-likelihood of each chosen reply `[b]`.
            let per_token = if avg {
                pc.clone()
            } else {
                pc.clone() / constant(rows.counts()[..b].iter().map(|c| c.max(1.0)).collect(), [b], d)
            };
            Some(per_token.mean().neg().mul_scalar(self.rpo_alpha))
        } else {
            None
        };
        let (losses, wc, wr) = self.loss.losses(pc, pr, rc, rr);
        let host = |t: Tensor<1>| -> Vec<f32> { t.without_autodiff().to_data().try_into_vec().expect("f32") };
        let loss = match nll {
            Some(n) => losses.mean() + n,
            None => losses.mean(),
        };
        (loss, host(wc), host(wr))
    }
}

impl Task for DpoTask {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let idx: Vec<usize> = (0..self.batch_size as u64).map(|r| shuffled_index(n, self.seed, first + r)).collect();
        let pairs: Vec<&EncodedPair> = idx.iter().map(|&i| &self.data.train[i]).collect();
        let refs: Vec<[f32; 4]> = idx.iter().map(|&i| self.reference.train[i]).collect();
        let (loss, wc, wr) = self.pairs_loss(model, &pairs, &refs);
        for (c, r) in wc.iter().zip(&wr) {
            let (c, r) = (*c as f64, *r as f64);
            self.acc[0] += c;
            self.acc[1] += r;
            self.acc[2] += c - r;
            self.acc[3] += if c > r { 1.0 } else { 0.0 };
            self.acc[4] += 1.0;
        }
        let tokens: usize = pairs.iter().map(|p| p.chosen.ids.len() + p.rejected.ids.len()).sum();
        Ok((loss, tokens as u64))
    }

    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        let a = std::mem::take(&mut self.acc);
        let n = a[4].max(1.0);
        vec![
            ("reward_chosen".into(), a[0] / n),
            ("reward_rejected".into(), a[1] / n),
            ("reward_margin".into(), a[2] / n),
            ("accuracy".into(), a[3] / n),
        ]
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        if self.data.val.is_empty() {
            return Ok(Vec::new());
        }
        let m = model.to_inference();
        let (mut loss, mut right, mut margin, mut n) = (0f64, 0f64, 0f64, 0f64);
        for (chunk, refs) in self.data.val.chunks(self.batch_size).zip(self.reference.val.chunks(self.batch_size)) {
            let pairs: Vec<&EncodedPair> = chunk.iter().collect();
            let (l, wc, wr) = self.pairs_loss(&m, &pairs, refs);
            let l: f32 = l.into_scalar();
            loss += l as f64 * pairs.len() as f64;
            for (c, r) in wc.iter().zip(&wr) {
                right += if c > r { 1.0 } else { 0.0 };
                margin += (c - r) as f64;
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
            "reference_key": self.reference.key,
        })
    }
}

/// `hone dpo`: preference-tunes the starting checkpoint into `<run_dir>/dpo/`.
fn run_dpo(cfg: &DpoConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let common = &cfg.common;
    let loss = cfg.variant()?;
    let (opened, device) = stage::open_start(&ctx.run_dir, &Dpo::INFO, common)?;
    let (mut data, notes) = load_pairs(
        "dpo",
        &common.data_paths("dpo")?,
        common.eval_path(),
        cfg.format.as_str(),
        cfg.skip_invalid,
        &opened,
        cfg.max_len,
        cfg.val_fraction,
        common.run.seed,
    )?;
    let notes = stage::print_notes(notes);
    if cfg.max_pairs > 0 && data.train.len() > cfg.max_pairs {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..data.train.len()).collect();
        idx.shuffle(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(common.run.seed ^ 0x5eed_da1a));
        idx.truncate(cfg.max_pairs);
        idx.sort_unstable();
        let mut keep = vec![false; data.train.len()];
        for i in idx {
            keep[i] = true;
        }
        let mut k = keep.into_iter();
        data.train.retain(|_| k.next().unwrap_or(false));
        eprintln!("dpo: training on a seeded sample of {} pairs (dpo.max_pairs)", data.train.len());
    }
    let stage_dir = ctx.run_dir.join("dpo");
    std::fs::create_dir_all(&stage_dir).map_err(|e| anyhow::anyhow!("{}: {e}", stage_dir.display()))?;
    let len = data.longest();
    let reference = if !loss.uses_reference() {
        ReferenceLogps {
            key: "none (simpo)".into(),
            train: vec![[0.0; 4]; data.train.len()],
            val: vec![[0.0; 4]; data.val.len()],
        }
    } else {
        let ref_model = if cfg.reference.is_empty() {
            opened.model.clone()
        } else {
            stage::open(Path::new(&cfg.reference), &device)?.model
        };
        let key = reference_key(&ref_model, &data, len)?;
        let path = stage_dir.join("reference_logps.json");
        let (r, reused) = reference::cached(&path, &key, || {
            eprintln!(
                "dpo: computing the reference's log-probabilities of {} pairs",
                data.train.len() + data.val.len()
            );
            Ok(ReferenceLogps::compute(&ref_model, &data, opened.tokenizer.pad_id, len, cfg.batch_size, key.clone()))
        })?;
        if reused {
            eprintln!("dpo: reference log-probabilities from {}", path.display());
        }
        r
    };
    eprintln!("dpo: starting from {}", opened.dir.display());
    let stage_optim = common.optim(ctx.optim);
    let settings = common.run.settings("dpo", &(&opened.model.config, &stage_optim, cfg), ctx.progress);
    let files = hone_model::import::save::model_files(opened.model.config.to_hf_json(), &opened.tokenizer, &opened.template)?;
    let mut task = DpoTask::new(
        data,
        reference,
        loss,
        opened.tokenizer.pad_id,
        common.run.seed,
        cfg.batch_size,
        common.run.grad_accum,
    );
    task.rpo_alpha = cfg.rpo_alpha;
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(stage::adapt(opened.model, common, &opened.dir)?, &stage_optim, settings, files, &mut task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: Some(opened.dir), resumed_from, notes })
}
