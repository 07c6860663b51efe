//! KTO, Kahneman-Tversky optimisation (Ethayarajh et al. 2024): preference learning from unpaired
//! judgements (one completion labelled desirable or undesirable), as TRL's `KTOTrainer` defines it
//! (`loss_type = "kto"`), with summed reply log-probabilities and a frozen reference:
//!
//! - r(x, y) = log π(y|x) − log π_ref(y|x);
//! - the reference point z₀ = max(0, mean over the batch of r(x, y′)) for *mismatched* pairs (each
//!   prompt with another example's completion), detached: an estimate of KL(π‖π_ref);
//! - desirable: w_d · (1 − σ(β·(r − z₀))); undesirable: w_u · (1 − σ(β·(z₀ − r))); the loss is the
//!   mean over the batch.
//!
//! Each example's mismatched completion is the next example's (in file order, within its split), as
//! TRL pairs each prompt with the previous one's in a batch; fixing it per example lets the
//! reference's log-probabilities of both be computed once and cached like DPO's.

use crate::batch::Example;
use crate::data::shuffled_index;
use crate::pairdata::{EncodedPair, PairRows, sequence_logps};
use crate::reference::{self, Keyed};
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::Task;
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use hone_data::RecordFormat;
use hone_data::chat::ChatTemplate;
use hone_data::pairs::encode_reply;
use hone_data::tokenizer::Tokenizer;
use hone_data::unpaired::{Unpaired, read_unpaired};
use hone_model::Llama;
use hone_model::llama::constant;
use serde::{Deserialize, Serialize};
use std::path::Path;

hone_data::config_section! {
    /// KTO on unpaired judgements (TRL prompt/completion/label; preference pairs are unpaired).
    pub struct KtoConfig {
        /// Reference checkpoint; empty = the starting checkpoint.
        reference: String = String::new(),
        /// `auto` (from the file name), `jsonl` or `json`.
        format: RecordFormat = RecordFormat::Auto,
        /// Count and drop bad records instead of stopping.
        skip_invalid: bool = false,
        /// Share of `data` held out when there is no `eval_data` (by a seeded hash of the example).
        val_fraction: f64 = 0.05,
        /// Longest prompt + completion in tokens; longer ones are cut (and counted).
        max_len: usize = 256,
        /// β: how sharply the value function saturates (TRL's default 0.1).
        beta: f64 = 0.1,
        /// Weight of the desirable examples' losses.
        desirable_weight: f64 = 1.0,
        /// Weight of the undesirable examples' losses (raise it when they are rarer, as the paper
        /// suggests, so both kinds weigh about the same in all).
        undesirable_weight: f64 = 1.0,
        /// Examples per micro-batch.
        batch_size: usize = 8,
        ..common: StageConfig = StageConfig {
            lr: 1e-4,
            warmup_steps: 10,
            run: LoopConfig { steps: 200, eval_every: 50, checkpoint_every: 100, ..LoopConfig::default() },
            ..StageConfig::default()
        },
    }
}

/// The KTO stage.
pub struct Kto;

impl StageDef for Kto {
    type Config = KtoConfig;
    const INFO: StageInfo = StageInfo {
        name: "kto",
        about: "Preference-tune with KTO on unpaired good/bad judgements against a frozen reference; Ctrl-C \
                stops, rerun resumes.",
        starts_from: &["sft", "pretrain", "base"],
        reads: &[],
        role: Role::Policy,
        label: "kto",
        data: Some(DataKind::Unpaired),
    };

    fn common(cfg: &KtoConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut KtoConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &KtoConfig) -> anyhow::Result<()> {
        cfg.common.validate("kto")?;
        anyhow::ensure!(cfg.batch_size > 0, "kto.batch_size must be positive");
        anyhow::ensure!(cfg.max_len == 0 || cfg.max_len >= 2, "kto.max_len must be 0 (the model's context) or at least 2");
        anyhow::ensure!((0.0..1.0).contains(&cfg.val_fraction), "kto.val_fraction must be in [0, 1)");
        anyhow::ensure!(cfg.beta > 0.0 && cfg.beta.is_finite(), "kto.beta must be positive");
        anyhow::ensure!(
            cfg.desirable_weight >= 0.0 && cfg.undesirable_weight >= 0.0,
            "kto.desirable_weight and kto.undesirable_weight must not be negative"
        );
        Ok(())
    }

    fn estimate_tokens(cfg: &KtoConfig) -> f64 {
        // The examples, their mismatched completions, and the reference pass up front.
        let run = &cfg.common.run;
        (run.steps * (cfg.batch_size * run.grad_accum * stage::nominal_len(cfg.max_len)) as u64) as f64 * 1.3
    }

    fn run(cfg: &KtoConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_kto(cfg, ctx)
    }
}

/// One encoded example: `pair.chosen` is prompt + its completion, `pair.rejected` is prompt + the
/// mismatched completion (so the pair machinery lays out both as rows).
#[derive(Debug, Clone, PartialEq)]
pub struct KtoExample {
    pub pair: EncodedPair,
    pub label: bool,
}

/// Encoded examples and what encoding did to them.
#[derive(Debug, Clone, Default)]
pub struct KtoData {
    pub train: Vec<KtoExample>,
    pub val: Vec<KtoExample>,
    pub truncated: usize,
    pub dropped: usize,
}

impl KtoData {
    /// Longest row in tokens over both splits.
    pub fn longest(&self) -> usize {
        let pairs = self.train.iter().chain(&self.val).map(|e| &e.pair);
        pairs.flat_map(|p| [p.chosen.ids.len(), p.rejected.ids.len()]).max().unwrap_or(2)
    }
}

/// Encodes `train` (a `val_fraction` split of it held out, by a seeded hash of each example, unless
/// `val` is given) with each example's mismatched completion.
pub fn encode(
    train: &[Unpaired],
    val: &[Unpaired],
    tok: &Tokenizer,
    template: &ChatTemplate,
    max_len: usize,
    val_fraction: f64,
    seed: u64,
) -> anyhow::Result<KtoData> {
    let mut d = KtoData::default();
    let (mut tr, mut va): (Vec<&Unpaired>, Vec<&Unpaired>) = (Vec::new(), val.iter().collect());
    for u in train {
        let key = serde_json::to_string(&(&u.prompt, &u.completion, u.label)).expect("messages serialise");
        if val.is_empty() && hone_data::hash::split_point(seed, &key) < val_fraction { va.push(u) } else { tr.push(u) }
    }
    for (split, out) in [(tr, &mut d.train), (va, &mut d.val)] {
        let n = split.len();
        for (i, u) in split.iter().enumerate() {
            let other = split[(i + 1) % n];
            let side = |completion| -> anyhow::Result<(Example, bool)> {
                let enc = encode_reply(template, tok, &u.prompt, completion)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", u.origin()))?;
                let (mut ids, mut mask) = (enc.ids, enc.assistant_mask);
                let cut = ids.len() > max_len;
                ids.truncate(max_len);
                mask.truncate(max_len);
                Ok((Example { ids, mask }, cut))
            };
            let ((own, c1), (kl, c2)) = (side(&u.completion)?, side(&other.completion)?);
            d.truncated += usize::from(c1 || c2);
            if !own.mask.iter().skip(1).any(|m| *m) || !kl.mask.iter().skip(1).any(|m| *m) {
                d.dropped += 1;
                continue;
            }
            out.push(KtoExample { pair: EncodedPair { chosen: own, rejected: kl }, label: u.label });
        }
    }
    Ok(d)
}

/// The reference's summed log-probabilities `[completion, mismatched completion]` of every example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KtoReference {
    pub key: String,
    pub train: Vec<[f32; 2]>,
    pub val: Vec<[f32; 2]>,
}

impl Keyed for KtoReference {
    fn key(&self) -> &str {
        &self.key
    }
}

impl KtoReference {
    /// Computes them with an inference copy of `reference`, `batch` examples at a time.
    pub fn compute(reference: &Llama, data: &KtoData, pad: u32, batch: usize, key: String) -> KtoReference {
        let m = reference.to_inference();
        let len = data.longest();
        let run = |xs: &[KtoExample]| -> Vec<[f32; 2]> {
            let mut out = Vec::with_capacity(xs.len());
            for chunk in xs.chunks(batch.max(1)) {
                let pairs: Vec<&EncodedPair> = chunk.iter().map(|e| &e.pair).collect();
                let sums: Vec<f32> = sequence_logps(&m, &PairRows::new(&pairs, pad, len), false)
                    .to_data()
                    .try_into_vec()
                    .expect("f32");
                let b = chunk.len();
                out.extend((0..b).map(|i| [sums[i], sums[b + i]]));
            }
            out
        };
        KtoReference { key, train: run(&data.train), val: run(&data.val) }
    }

    /// The cache key: the reference's weights, every example's tokens and labels, the row length.
    pub fn key(reference: &Llama, data: &KtoData) -> anyhow::Result<String> {
        fn tokens(e: &KtoExample) -> (&Vec<u32>, &Vec<u32>, &Vec<bool>, &Vec<bool>, bool) {
            (&e.pair.chosen.ids, &e.pair.rejected.ids, &e.pair.chosen.mask, &e.pair.rejected.mask, e.label)
        }
        let all: (Vec<_>, Vec<_>, usize) =
            (data.train.iter().map(tokens).collect(), data.val.iter().map(tokens).collect(), data.longest());
        reference::key(reference, &all)
    }
}

/// KTO's weights and temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KtoLoss {
    pub beta: f64,
    pub desirable_weight: f64,
    pub undesirable_weight: f64,
}

impl KtoLoss {
    /// The reference point from the policy's and the reference's summed log-probabilities of the
    /// mismatched completions (host values: it is detached): max(0, mean(policy − reference)).
    pub fn reference_point(policy_kl: &[f32], reference_kl: &[f32]) -> f64 {
        let n = policy_kl.len().max(1) as f64;
        let mean = policy_kl.iter().zip(reference_kl).map(|(p, r)| (*p - *r) as f64).sum::<f64>() / n;
        mean.max(0.0)
    }

    /// Per-example losses `[b]` and implied rewards β·r `[b]` from the policy's summed
    /// log-probabilities `policy` `[b]`, the reference's `reference` and the labels, at reference
    /// point `z0`.
    pub fn losses(&self, policy: Tensor<1>, reference: &[f32], labels: &[bool], z0: f64) -> (Tensor<1>, Tensor<1>) {
        let d = policy.device();
        let b = labels.len();
        let r = policy - constant(reference.to_vec(), [b], &d); // [b]
        // Desirable: 1 − σ(β(r − z₀)); undesirable: 1 − σ(β(z₀ − r)) = 1 − σ(−β(r − z₀)).
        let sign: Vec<f32> = labels.iter().map(|&l| if l { 1.0 } else { -1.0 }).collect();
        let weight: Vec<f32> =
            labels.iter().map(|&l| if l { self.desirable_weight } else { self.undesirable_weight } as f32).collect();
        let z = (r.clone().sub_scalar(z0) * constant(sign, [b], &d)).mul_scalar(self.beta);
        let losses = (sigmoid(z).neg().add_scalar(1.0)) * constant(weight, [b], &d);
        (losses, r.mul_scalar(self.beta))
    }
}

/// The KTO objective over encoded examples with their reference log-probabilities.
pub struct KtoTask {
    pub data: KtoData,
    pub reference: KtoReference,
    pub loss: KtoLoss,
    pub pad: u32,
    /// Fixed row length (tokens).
    pub len: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Sums of (reward desirable, count desirable, reward undesirable, count undesirable, reference
    /// point, micro-batches) since the last `train_metrics`.
    acc: [f64; 6],
}

impl KtoTask {
    pub fn new(
        data: KtoData,
        reference: KtoReference,
        loss: KtoLoss,
        pad: u32,
        seed: u64,
        batch_size: usize,
        grad_accum: usize,
    ) -> KtoTask {
        let len = data.longest();
        KtoTask { data, reference, loss, pad, len, seed, batch_size, grad_accum, acc: [0.0; 6] }
    }

    /// Mean loss `[1]`, rewards β·r on the host, and the reference point of `xs` (with reference
    /// values `refs`).
    fn batch_loss(&self, model: &Llama, xs: &[&KtoExample], refs: &[[f32; 2]]) -> (Tensor<1>, Vec<f32>, f64) {
        let b = xs.len();
        let pairs: Vec<&EncodedPair> = xs.iter().map(|e| &e.pair).collect();
        let rows = PairRows::new(&pairs, self.pad, self.len);
        // Rows 0..b are the examples' own completions, b..2b the mismatched ones, which only give
        // the (detached) reference point: those are scored without a graph, the others with one.
        let seq = rows.seq;
        let part = |r: std::ops::Range<usize>| PairRows {
            rows: r.len(),
            seq,
            inputs: rows.inputs[r.start * seq..r.end * seq].to_vec(),
            targets: rows.targets[r.start * seq..r.end * seq].to_vec(),
            weights: rows.weights[r.start * seq..r.end * seq].to_vec(),
            last: rows.last[r.clone()].to_vec(),
            full: rows.full[r.start * (seq + 1)..r.end * (seq + 1)].to_vec(),
        };
        let (own, mismatched) = (part(0..b), part(b..2 * b));
        let policy_kl: Vec<f32> =
            sequence_logps(&model.to_inference(), &mismatched, false).to_data().try_into_vec().expect("f32");
        let ref_kl: Vec<f32> = refs.iter().map(|r| r[1]).collect();
        let z0 = KtoLoss::reference_point(&policy_kl, &ref_kl);
        let ref_own: Vec<f32> = refs.iter().map(|r| r[0]).collect();
        let labels: Vec<bool> = xs.iter().map(|e| e.label).collect();
        let (losses, rewards) = self.loss.losses(sequence_logps(model, &own, false), &ref_own, &labels, z0);
        let rewards: Vec<f32> = rewards.without_autodiff().to_data().try_into_vec().expect("f32");
        (losses.mean(), rewards, z0)
    }
}

impl Task for KtoTask {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let idx: Vec<usize> = (0..self.batch_size as u64).map(|r| shuffled_index(n, self.seed, first + r)).collect();
        let xs: Vec<&KtoExample> = idx.iter().map(|&i| &self.data.train[i]).collect();
        let refs: Vec<[f32; 2]> = idx.iter().map(|&i| self.reference.train[i]).collect();
        let (loss, rewards, z0) = self.batch_loss(model, &xs, &refs);
        for (x, r) in xs.iter().zip(&rewards) {
            let at = if x.label { 0 } else { 2 };
            self.acc[at] += *r as f64;
            self.acc[at + 1] += 1.0;
        }
        self.acc[4] += z0;
        self.acc[5] += 1.0;
        let tokens: usize = xs.iter().map(|e| e.pair.chosen.ids.len() + e.pair.rejected.ids.len()).sum();
        Ok((loss, tokens as u64))
    }

    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        let a = std::mem::take(&mut self.acc);
        let (d, u) = (a[0] / a[1].max(1.0), a[2] / a[3].max(1.0));
        vec![
            ("reward_desirable".into(), d),
            ("reward_undesirable".into(), u),
            ("reward_margin".into(), d - u),
            ("kl".into(), a[4] / a[5].max(1.0)),
        ]
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        if self.data.val.is_empty() {
            return Ok(Vec::new());
        }
        let m = model.to_inference();
        let (mut loss, mut n) = (0f64, 0f64);
        let mut sums = [0f64; 4];
        for (chunk, refs) in self.data.val.chunks(self.batch_size).zip(self.reference.val.chunks(self.batch_size)) {
            let xs: Vec<&KtoExample> = chunk.iter().collect();
            let (l, rewards, _) = self.batch_loss(&m, &xs, refs);
            let l: f32 = l.into_scalar();
            loss += l as f64 * xs.len() as f64;
            n += xs.len() as f64;
            for (x, r) in xs.iter().zip(&rewards) {
                let at = if x.label { 0 } else { 2 };
                sums[at] += *r as f64;
                sums[at + 1] += 1.0;
            }
        }
        let (d, u) = (sums[0] / sums[1].max(1.0), sums[2] / sums[3].max(1.0));
        Ok(vec![
            ("val_loss".into(), loss / n),
            ("val_reward_desirable".into(), d),
            ("val_reward_undesirable".into(), u),
            ("val_margin".into(), d - u),
            ("val_examples".into(), n),
        ])
    }

    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({
            "next_step": next_step,
            "order": "epoch-wise shuffle of the training examples by ChaCha8(seed, epoch)",
            "train_examples": self.data.train.len(),
            "val_examples": self.data.val.len(),
            "reference_key": self.reference.key,
        })
    }
}

/// `hone kto`: preference-tunes the starting checkpoint on unpaired judgements into `<run_dir>/kto/`.
fn run_kto(cfg: &KtoConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let common = &cfg.common;
    let (opened, device) = stage::open_start(&ctx.run_dir, &Kto::INFO, common)?;
    let max_len = stage::max_len("kto", cfg.max_len, &opened)?;
    let paths = common.data_paths("kto")?;
    let train = read_unpaired(&paths, cfg.format.as_str(), cfg.skip_invalid)?;
    let val = match common.eval_path() {
        Some(p) => read_unpaired(&[p], cfg.format.as_str(), cfg.skip_invalid)?,
        None => Default::default(),
    };
    let data = encode(
        &train.items,
        &val.items,
        &opened.tokenizer,
        &opened.template,
        max_len,
        cfg.val_fraction,
        common.run.seed,
    )?;
    anyhow::ensure!(data.train.len() >= 2, "kto: fewer than 2 training examples in {}", common.data.join(", "));
    let desirable = data.train.iter().filter(|e| e.label).count();
    let head = vec![format!(
        "kto: {} training examples ({desirable} desirable, {} undesirable), {} held out, up to {max_len} tokens each",
        data.train.len(),
        data.train.len() - desirable,
        data.val.len()
    )];
    let notes = stage::DataCuts {
        unit: "examples",
        target: "reply",
        max_len,
        records: train.items.len() + val.items.len() + train.skipped + val.skipped + train.set_aside + val.set_aside,
        skipped: train.skipped + val.skipped,
        skip_examples: train.skip_examples.iter().chain(&val.skip_examples).cloned().collect(),
        truncated: data.truncated,
        dropped: data.dropped,
        set_aside: train.set_aside + val.set_aside,
    }
    .notes("kto", head);
    let notes = stage::print_notes(notes);
    let stage_dir = ctx.run_dir.join("kto");
    std::fs::create_dir_all(&stage_dir).map_err(|e| anyhow::anyhow!("{}: {e}", stage_dir.display()))?;
    let ref_model =
        if cfg.reference.is_empty() { opened.model.clone() } else { stage::open(Path::new(&cfg.reference), &device)?.model };
    let key = KtoReference::key(&ref_model, &data)?;
    let path = stage_dir.join("reference_logps.json");
    let (reference, reused) = reference::cached(&path, &key, || {
        eprintln!("kto: computing the reference's log-probabilities of {} examples", data.train.len() + data.val.len());
        Ok(KtoReference::compute(&ref_model, &data, opened.tokenizer.pad_id, cfg.batch_size, key.clone()))
    })?;
    if reused {
        eprintln!("kto: reference log-probabilities from {}", path.display());
    }
    drop(ref_model);
    eprintln!("kto: starting from {}", opened.dir.display());
    let stage_optim = common.optim(ctx.optim);
    let settings = common.run.settings("kto", &(&opened.model.config, &stage_optim, cfg), ctx.progress);
    let files = hone_model::import::save::model_files(opened.model.config.to_hf_json(), &opened.tokenizer, &opened.template)?;
    let loss =
        KtoLoss { beta: cfg.beta, desirable_weight: cfg.desirable_weight, undesirable_weight: cfg.undesirable_weight };
    let mut task = KtoTask::new(
        data,
        reference,
        loss,
        opened.tokenizer.pad_id,
        common.run.seed,
        cfg.batch_size,
        common.run.grad_accum,
    );
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(stage::adapt(opened.model, common, &opened.dir)?, &stage_optim, settings, files, &mut task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: Some(opened.dir), resumed_from, notes })
}
