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

use crate::config::OptimConfig;
use crate::data::shuffled_index;
use crate::pairdata::{EncodedPair, PairData, PairRows, encode_pairs};
use crate::sft::weights_tensor;
use crate::stage::{self, Opened, StageLoop, StageOptions, StageReport, stage_loop_of};
use crate::trainer::Task;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use hone_data::pairs::read_pairs;
use hone_model::Llama;
use hone_model::llama::{ids_tensor, token_log_probs};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

hone_data::config_section! {
    /// Preference optimisation against a frozen reference (DPO, IPO) or without one (SimPO).
    pub struct DpoConfig {
        /// Starting checkpoint; empty = `<run dir>/sft`'s final.
        init: String = String::new(),
        /// Reference checkpoint; empty = the starting checkpoint.
        reference: String = String::new(),
        /// Preference files or folders; empty = `<run dir>/world/preference.jsonl`.
        data: Vec<String> = Vec::new(),
        /// Held-out preference file; empty = `<run dir>/world/preference_eval.jsonl` when `data` is
        /// empty, else a `val_fraction` split of `data`.
        eval_data: String = String::new(),
        /// `auto` (from the file name), `jsonl` or `json`.
        format: String = "auto".to_string(),
        /// Count and drop bad records instead of stopping.
        skip_invalid: bool = false,
        /// Share of `data` held out when there is no `eval_data` (by a seeded hash of the prompt).
        val_fraction: f64 = 0.05,
        /// Train on at most this many pairs, a seeded sample of the training set (0 = all). The reference
        /// pass up front covers only these, so a short run does not pay for pairs it never sees.
        max_pairs: usize = 0,
        /// Longest prompt + reply in tokens; longer ones are cut (and counted).
        max_len: usize = 256,
        /// `sigmoid` (DPO), `ipo`, or `simpo` (reference-free, length-normalised).
        loss: String = "sigmoid".to_string(),
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
        /// Optimizer steps.
        steps: u64 = 200,
        /// Pairs per micro-batch.
        batch_size: usize = 8,
        /// Micro-batches per optimizer step.
        grad_accum: usize = 1,
        /// Peak learning rate (replaces `optim.lr` for this stage and scales `optim.muon_lr` by the same factor).
        lr: f64 = 1e-4,
        /// Warmup steps (replaces `optim.warmup_steps` for this stage).
        warmup_steps: u64 = 10,
        /// Held-out loss and preference accuracy every N steps (and at the end); 0 = only at the end.
        eval_every: u64 = 50,
        /// Checkpoint every N steps (and at the end); 0 = only at the end.
        checkpoint_every: u64 = 100,
        /// Checkpoints kept besides the final one.
        keep_last: usize = 2,
        /// Seed of the data order and the validation split.
        seed: u64 = 0,
        /// `cpu`, `cuda[:N]` or `wgpu` (when built with those features).
        device: String = "cpu".to_string(),
        /// A metrics line every N steps.
        log_every: u64 = 10,
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
    pub fn stage_loop(&self) -> StageLoop {
        stage_loop_of!(self)
    }

    pub fn variant(&self) -> anyhow::Result<DpoLoss> {
        anyhow::ensure!(self.beta > 0.0, "dpo.beta must be positive");
        anyhow::ensure!((0.0..0.5).contains(&self.label_smoothing), "dpo.label_smoothing must be in [0, 0.5)");
        Ok(match self.loss.as_str() {
            "sigmoid" => DpoLoss::Sigmoid { beta: self.beta, label_smoothing: self.label_smoothing },
            "ipo" => DpoLoss::Ipo { beta: self.beta },
            "simpo" => {
                DpoLoss::Simpo { beta: self.beta, gamma: self.simpo_gamma, label_smoothing: self.label_smoothing }
            }
            other => anyhow::bail!("dpo.loss: `{other}` is not one of sigmoid, ipo, simpo"),
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.stage_loop().validate("dpo")?;
        self.variant()?;
        anyhow::ensure!(self.batch_size > 0, "dpo.batch_size must be positive");
        anyhow::ensure!(self.max_len >= 2, "dpo.max_len must be at least 2");
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

/// Sequence log-probabilities `[rows]` of the reply tokens: sums, or means when `averaged`.
pub fn sequence_logps(model: &Llama, rows: &PairRows, averaged: bool) -> Tensor<1> {
    let d = model.device();
    let logits = model.forward(ids_tensor(&rows.inputs, rows.rows, rows.seq, d)); // [rows, seq, vocab]
    let logp = token_log_probs(logits, ids_tensor(&rows.targets, rows.rows, rows.seq, d)); // [rows, seq]
    let w = weights_tensor(&rows.weights, rows.rows, rows.seq, d);
    let sums = (logp * w).sum_dim(1).reshape([rows.rows]); // [rows]
    if averaged { sums / vector(&rows.counts(), d) } else { sums }
}

/// A constant `[n]` tensor on `device`.
pub fn vector(v: &[f32], device: &Device) -> Tensor<1> {
    let plain = device.clone().without_autodiff();
    let t = Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &plain);
    if device.is_autodiff() { t.autodiff() } else { t }
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

    /// The cached values at `path` when their key is `key`, else computes and caches them.
    pub fn cached(
        path: &Path,
        key: &str,
        compute: impl FnOnce() -> anyhow::Result<ReferenceLogps>,
    ) -> anyhow::Result<(ReferenceLogps, bool)> {
        if let Ok(bytes) = std::fs::read(path)
            && let Ok(r) = serde_json::from_slice::<ReferenceLogps>(&bytes)
            && r.key == key
        {
            return Ok((r, true));
        }
        let r = compute()?;
        hone_data::atomic::write_atomic(path, &serde_json::to_vec(&r)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok((r, false))
    }
}

/// The cache key: the reference weights, the tokens of every pair and the row length.
pub fn reference_key(reference: &Llama, data: &PairData, len: usize) -> anyhow::Result<String> {
    let weights = hone_model::weights::model_to_safetensors(reference)?;
    let tokens = serde_json::to_vec(&(
        data.train
            .iter()
            .map(|p| (&p.chosen.ids, &p.rejected.ids, &p.chosen.mask, &p.rejected.mask))
            .collect::<Vec<_>>(),
        data.val.iter().map(|p| (&p.chosen.ids, &p.rejected.ids, &p.chosen.mask, &p.rejected.mask)).collect::<Vec<_>>(),
        len,
    ))?;
    Ok(hone_data::hash::sha256_hex(
        &[hone_data::hash::sha256_hex(&weights), hone_data::hash::sha256_hex(&tokens)].concat().into_bytes(),
    ))
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
        let (rc, rr) = (vector(&side(0, 2), d), vector(&side(1, 3), d));
        let nll = if self.rpo_alpha > 0.0 {
            // Per-token log-likelihood of each chosen reply `[b]`.
            let per_token = if avg {
                pc.clone()
            } else {
                pc.clone() / vector(&rows.counts()[..b].iter().map(|c| c.max(1.0)).collect::<Vec<_>>(), d)
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

/// The preference files of a stage: `data` (default the world's `preference.jsonl`) and the
/// held-out file (default the world's `preference_eval.jsonl` when `data` is the default).
pub fn preference_inputs(run_dir: &Path, data: &[String], eval_data: &str) -> (Vec<String>, Option<PathBuf>) {
    if data.is_empty() {
        let eval =
            if eval_data.is_empty() { run_dir.join("world/preference_eval.jsonl") } else { PathBuf::from(eval_data) };
        (vec![run_dir.join("world/preference.jsonl").display().to_string()], Some(eval))
    } else {
        (data.to_vec(), (!eval_data.is_empty()).then(|| PathBuf::from(eval_data)))
    }
}

/// Reads and encodes the pairs of a preference stage; returns the data and lines to print.
#[allow(clippy::too_many_arguments)]
pub fn load_pairs(
    stage: &str,
    run_dir: &Path,
    data: &[String],
    eval_data: &str,
    format: &str,
    skip_invalid: bool,
    opened: &Opened,
    max_len: usize,
    val_fraction: f64,
    seed: u64,
) -> anyhow::Result<(PairData, Vec<String>)> {
    let (inputs, eval) = preference_inputs(run_dir, data, eval_data);
    let paths = hone_data::read::expand_inputs(&inputs)?;
    let train = read_pairs(&paths, format, skip_invalid)?;
    let val = match &eval {
        Some(p) => read_pairs(std::slice::from_ref(p), format, skip_invalid)?,
        None => Default::default(),
    };
    let d = encode_pairs(&train.items, &val.items, &opened.tokenizer, &opened.template, max_len, val_fraction, seed)?;
    anyhow::ensure!(!d.train.is_empty(), "{stage}: no training pairs in {}", inputs.join(", "));
    let mut notes = vec![format!(
        "{stage}: {} training pairs, {} held out{}",
        d.train.len(),
        d.val.len(),
        eval.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default()
    )];
    let skipped = train.skipped + val.skipped;
    if skipped > 0 {
        let ex: Vec<String> = train.skip_examples.iter().chain(&val.skip_examples).take(3).cloned().collect();
        notes.push(format!("{stage}: {skipped} bad records skipped, e.g. {}", ex.join("; ")));
    }
    if d.truncated > 0 {
        notes.push(format!("{stage}: warning: {} pairs cut to {stage}.max_len = {max_len} tokens", d.truncated));
    }
    if d.dropped > 0 {
        notes.push(format!("{stage}: warning: {} pairs dropped: no reply token within {stage}.max_len", d.dropped));
    }
    Ok((d, notes))
}

/// `hone dpo`: preference-tunes the init checkpoint into `<run_dir>/dpo/`.
pub fn run_dpo(
    optim: &OptimConfig,
    cfg: &DpoConfig,
    run_dir: &Path,
    init_override: Option<&Path>,
    opts: &StageOptions,
) -> anyhow::Result<StageReport> {
    cfg.validate()?;
    optim.validate()?;
    let loss = cfg.variant()?;
    let (opened, device) =
        stage::open_start(run_dir, init_override, &cfg.init, "dpo", &["sft"], &cfg.device, Some(cfg.max_len))?;
    let (data, notes) = load_pairs(
        "dpo",
        run_dir,
        &cfg.data,
        &cfg.eval_data,
        &cfg.format,
        cfg.skip_invalid,
        &opened,
        cfg.max_len,
        cfg.val_fraction,
        cfg.seed,
    )?;
    for n in &notes {
        eprintln!("{n}");
    }
    let mut data = data;
    if cfg.max_pairs > 0 && data.train.len() > cfg.max_pairs {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..data.train.len()).collect();
        idx.shuffle(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(cfg.seed ^ 0x5eed_da1a));
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
    let stage_dir = run_dir.join("dpo");
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
        let (r, reused) = ReferenceLogps::cached(&stage_dir.join("reference_logps.json"), &key, || {
            eprintln!(
                "dpo: computing the reference's log-probabilities of {} pairs",
                data.train.len() + data.val.len()
            );
            Ok(ReferenceLogps::compute(&ref_model, &data, opened.tokenizer.pad_id, len, cfg.batch_size, key.clone()))
        })?;
        if reused {
            eprintln!("dpo: reference log-probabilities from {}", stage_dir.join("reference_logps.json").display());
        }
        r
    };
    eprintln!("dpo: starting from {}", opened.dir.display());
    let stage_optim = cfg.stage_loop().optim(optim);
    let mut settings = cfg.stage_loop().settings("dpo", &(&opened.model.config, &stage_optim, cfg), opts.progress);
    settings.extra_files.push(("config.json".into(), serde_json::to_vec_pretty(&opened.model.config.to_hf_json())?));
    let mut task =
        DpoTask::new(data, reference, loss, opened.tokenizer.pad_id, cfg.seed, cfg.batch_size, cfg.grad_accum);
    task.rpo_alpha = cfg.rpo_alpha;
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(opened.model, &stage_optim, settings, run_dir, &mut task, opts)?;
    Ok(StageReport { summary, stage_dir, init: opened.dir, resumed_from, notes })
}
