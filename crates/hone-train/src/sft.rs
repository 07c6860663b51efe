//! The supervised fine-tuning stage: conversations rendered by the chat template, cross-entropy on the
//! assistant's tokens only (every assistant turn of a multi-turn conversation; system and user turns
//! are context), a held-out loss on a split of the conversations, all through the one trainer loop.
//!
//! Each optimizer step takes `batch_size` conversations from an epoch-wise shuffle that is a pure
//! function of (seed, step), so resume is exact. Rows are right-padded; with `packing` the same
//! conversations are packed into fewer rows (first fit) and attend only within themselves, which
//! changes the cost of a step, not its loss.

use crate::config::OptimConfig;
use crate::data::shuffled_index;
use crate::stage::{self, Opened, StageLoop, StageOptions, StageReport, stage_loop_of};
use crate::trainer::Task;
use burn::tensor::{Device, Tensor, TensorData};
use hone_data::chat::ChatTemplate;
use hone_data::sft::{Conversation, SftOptions, read_conversations};
use hone_data::tokenizer::Tokenizer;
use hone_model::Llama;
use hone_model::llama::{ids_tensor, token_log_probs};
use std::path::Path;

hone_data::config_section! {
    /// Supervised fine-tuning on conversations (loss on the assistant's tokens).
    pub struct SftConfig {
        /// Starting checkpoint (a checkpoint or stage folder); empty = `<run dir>/pretrain`'s final.
        init: String = String::new(),
        /// Conversation files or folders (JSONL, JSONL.gz, JSON); empty = `<run dir>/world/sft.jsonl`.
        data: Vec<String> = Vec::new(),
        /// `auto` (from the file name), `jsonl` or `json`.
        format: String = "auto".to_string(),
        /// Read this string field as the user turn (with `completion_field`), instead of detecting the
        /// format per record. Records with `question`/`answer` (GSM8K) are detected without it.
        prompt_field: String = String::new(),
        /// Read this string field as the assistant turn (with `prompt_field`).
        completion_field: String = String::new(),
        /// Count and drop bad records (no assistant turn, unknown role, …) instead of stopping.
        skip_invalid: bool = false,
        /// Longest conversation in tokens; longer ones are cut (and counted).
        max_len: usize = 256,
        /// Pack a step's conversations into fewer rows of `max_len` tokens (attention stays within
        /// each conversation).
        packing: bool = false,
        /// Share of the conversations held out for the validation loss (chosen by a seeded hash of
        /// each conversation, so it does not depend on file order).
        val_fraction: f64 = 0.05,
        /// Optimizer steps.
        steps: u64 = 300,
        /// Conversations per micro-batch.
        batch_size: usize = 16,
        /// Micro-batches per optimizer step.
        grad_accum: usize = 1,
        /// Peak learning rate (replaces `optim.lr` for this stage and scales `optim.muon_lr` by the same factor).
        lr: f64 = 3e-4,
        /// Warmup steps (replaces `optim.warmup_steps` for this stage).
        warmup_steps: u64 = 20,
        /// Held-out loss every N steps (and at the end); 0 = only at the end.
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

impl SftConfig {
    pub fn stage_loop(&self) -> StageLoop {
        stage_loop_of!(self)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.stage_loop().validate("sft")?;
        anyhow::ensure!(self.batch_size > 0, "sft.batch_size must be positive");
        anyhow::ensure!(self.max_len >= 2, "sft.max_len must be at least 2");
        anyhow::ensure!((0.0..1.0).contains(&self.val_fraction), "sft.val_fraction must be in [0, 1)");
        anyhow::ensure!(
            self.prompt_field.is_empty() == self.completion_field.is_empty(),
            "sft.prompt_field and sft.completion_field are set together"
        );
        Ok(())
    }
}

/// A tokenized conversation: `mask[t]` is true when token `t` is the assistant's (a training target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
}

/// Tokenized conversations split into training and held-out parts.
#[derive(Debug, Clone, Default)]
pub struct SftData {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    /// Conversations cut to `max_len` tokens.
    pub truncated: usize,
    /// Conversations dropped because no assistant token was left within `max_len`.
    pub dropped: usize,
}

/// Renders, tokenizes, cuts and splits conversations.
pub fn prepare(
    convs: &[Conversation],
    tok: &Tokenizer,
    template: &ChatTemplate,
    max_len: usize,
    val_fraction: f64,
    seed: u64,
) -> anyhow::Result<SftData> {
    let mut d = SftData::default();
    for c in convs {
        let enc = template.encode(tok, &c.messages).map_err(|e| anyhow::anyhow!("{}: {e:#}", c.origin()))?;
        let (mut ids, mut mask) = (enc.ids, enc.assistant_mask);
        if ids.len() > max_len {
            ids.truncate(max_len);
            mask.truncate(max_len);
            d.truncated += 1;
        }
        // Token 0 is never a target (nothing predicts it).
        if !mask.iter().skip(1).any(|m| *m) {
            d.dropped += 1;
            continue;
        }
        let key = serde_json::to_string(&c.messages).expect("messages serialise");
        let ex = Example { ids, mask };
        if hone_data::hash::split_point(seed, &key) < val_fraction { d.val.push(ex) } else { d.train.push(ex) }
    }
    if d.val.is_empty() && val_fraction > 0.0 && d.train.len() > 1 {
        d.val.push(d.train.pop().expect("non-empty"));
    }
    Ok(d)
}

/// Rows of inputs, next-token targets and target weights (1 on assistant targets), `[rows, seq]`
/// row-major. `segments` (packed rows) holds the example index of each input token.
#[derive(Debug, Clone, PartialEq)]
pub struct SftBatch {
    pub rows: usize,
    pub seq: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    pub segments: Option<Vec<u32>>,
    /// Tokens that are not padding.
    pub real_tokens: u64,
}

impl SftBatch {
    /// One right-padded row per example (`pad` fills; padded positions weigh 0).
    pub fn padded(examples: &[&Example], pad: u32) -> SftBatch {
        let seq = examples.iter().map(|e| e.ids.len() - 1).max().unwrap_or(1);
        let mut b = SftBatch::empty(examples.len(), seq, pad);
        for (r, e) in examples.iter().enumerate() {
            b.place(r * seq, e);
        }
        b
    }

    /// The examples packed first-fit into rows of `max_len - 1` input tokens.
    pub fn packed(examples: &[&Example], pad: u32, max_len: usize) -> SftBatch {
        let cap = max_len - 1;
        let mut rows: Vec<(usize, Vec<usize>)> = Vec::new(); // (used, example indices)
        for (i, e) in examples.iter().enumerate() {
            let n = e.ids.len() - 1;
            match rows.iter_mut().find(|(used, _)| used + n <= cap) {
                Some(row) => {
                    row.0 += n;
                    row.1.push(i);
                }
                None => rows.push((n, vec![i])),
            }
        }
        let seq = rows.iter().map(|r| r.0).max().unwrap_or(1);
        let mut b = SftBatch::empty(rows.len(), seq, pad);
        let mut segments = vec![u32::MAX; rows.len() * seq];
        for (r, (_, members)) in rows.iter().enumerate() {
            let mut at = r * seq;
            for &i in members {
                let n = b.place(at, examples[i]);
                segments[at..at + n].fill(i as u32);
                at += n;
            }
            // Padding forms its own segment so it attends to nothing real.
            for s in &mut segments[at..(r + 1) * seq] {
                *s = examples.len() as u32 + r as u32;
            }
        }
        b.segments = Some(segments);
        b
    }

    fn empty(rows: usize, seq: usize, pad: u32) -> SftBatch {
        SftBatch {
            rows,
            seq,
            inputs: vec![pad; rows * seq],
            targets: vec![pad; rows * seq],
            weights: vec![0.0; rows * seq],
            segments: None,
            real_tokens: 0,
        }
    }

    /// Writes `e` at flat position `at`; returns its input length.
    fn place(&mut self, at: usize, e: &Example) -> usize {
        let n = e.ids.len() - 1;
        self.inputs[at..at + n].copy_from_slice(&e.ids[..n]);
        self.targets[at..at + n].copy_from_slice(&e.ids[1..]);
        for t in 0..n {
            self.weights[at + t] = if e.mask[t + 1] { 1.0 } else { 0.0 };
        }
        self.real_tokens += n as u64;
        n
    }
}

/// Mean negative log-likelihood of the weighted (assistant) targets: a scalar `[1]`.
pub fn sft_loss(model: &Llama, b: &SftBatch) -> anyhow::Result<Tensor<1>> {
    let d = model.device();
    let ids = ids_tensor(&b.inputs, b.rows, b.seq, d);
    let logits = match &b.segments {
        Some(seg) => crate::layout::forward_packed(model, ids, seg, b.rows, b.seq)?,
        None => model.forward(ids),
    }; // [rows, seq, vocab]
    let logp = token_log_probs(logits, ids_tensor(&b.targets, b.rows, b.seq, d)); // [rows, seq]
    let w = weights_tensor(&b.weights, b.rows, b.seq, d); // [rows, seq]
    let n: f32 = b.weights.iter().sum();
    anyhow::ensure!(n > 0.0, "a batch without assistant tokens");
    Ok((logp * w).sum().div_scalar(n).neg())
}

/// f32 weights `[rows, seq]` (constants: they record no gradient).
pub fn weights_tensor(w: &[f32], rows: usize, seq: usize, device: &Device) -> Tensor<2> {
    let plain = device.clone().without_autodiff();
    let t = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [rows, seq]), &plain);
    if device.is_autodiff() { t.autodiff() } else { t }
}

/// The SFT objective.
pub struct SftTask {
    pub data: SftData,
    pub pad: u32,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub packing: bool,
    pub max_len: usize,
}

impl SftTask {
    /// The micro-batch `micro` of step `step`: a pure function of (seed, step, micro).
    pub fn batch(&self, step: u64, micro: usize) -> SftBatch {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let picked: Vec<&Example> =
            (0..self.batch_size as u64).map(|r| &self.data.train[shuffled_index(n, self.seed, first + r)]).collect();
        if self.packing {
            SftBatch::packed(&picked, self.pad, self.max_len)
        } else {
            SftBatch::padded(&picked, self.pad)
        }
    }
}

impl Task for SftTask {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let b = self.batch(step, micro);
        Ok((sft_loss(model, &b)?, b.real_tokens))
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        let m = model.to_inference();
        let (mut sum, mut n) = (0f64, 0f64);
        for chunk in self.data.val.chunks(self.batch_size.max(1)) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let b = SftBatch::padded(&refs, self.pad);
            let w: f64 = b.weights.iter().map(|&x| x as f64).sum();
            let l: f32 = sft_loss(&m, &b)?.into_scalar();
            sum += l as f64 * w;
            n += w;
        }
        if n == 0.0 {
            return Ok(Vec::new());
        }
        Ok(vec![("val_loss".into(), sum / n), ("val_tokens".into(), n)])
    }

    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({
            "next_step": next_step,
            "order": "epoch-wise shuffle of the training conversations by ChaCha8(seed, epoch)",
            "train_examples": self.data.train.len(),
            "val_examples": self.data.val.len(),
        })
    }
}

/// `hone sft`: fine-tunes the init checkpoint on conversations into `<run_dir>/sft/`.
pub fn run_sft(
    optim: &OptimConfig,
    cfg: &SftConfig,
    run_dir: &Path,
    init_override: Option<&Path>,
    opts: &StageOptions,
) -> anyhow::Result<StageReport> {
    cfg.validate()?;
    optim.validate()?;
    let (Opened { model, tokenizer, template, dir }, _) =
        stage::open_start(run_dir, init_override, &cfg.init, "sft", &["pretrain"], &cfg.device, Some(cfg.max_len))?;
    let inputs = if cfg.data.is_empty() {
        vec![run_dir.join("world/sft.jsonl").display().to_string()]
    } else {
        cfg.data.clone()
    };
    let paths = hone_data::read::expand_inputs(&inputs)?;
    let read_opts = SftOptions {
        format: cfg.format.clone(),
        prompt_field: cfg.prompt_field.clone(),
        completion_field: cfg.completion_field.clone(),
        skip_invalid: cfg.skip_invalid,
    };
    let loaded = read_conversations(&paths, &read_opts)?;
    let data = prepare(&loaded.items, &tokenizer, &template, cfg.max_len, cfg.val_fraction, cfg.seed)?;
    anyhow::ensure!(!data.train.is_empty(), "sft: no training conversations in {}", inputs.join(", "));
    let mut notes = vec![format!(
        "sft: {} conversations ({} train, {} held out) from {} file(s)",
        data.train.len() + data.val.len(),
        data.train.len(),
        data.val.len(),
        paths.len()
    )];
    if loaded.skipped > 0 {
        notes.push(format!("sft: {} bad records skipped, e.g. {}", loaded.skipped, loaded.skip_examples.join("; ")));
    }
    if data.truncated > 0 {
        notes.push(format!(
            "sft: warning: {} conversations cut to sft.max_len = {} tokens",
            data.truncated, cfg.max_len
        ));
    }
    if data.dropped > 0 {
        notes.push(format!(
            "sft: warning: {} conversations dropped: no assistant token within sft.max_len",
            data.dropped
        ));
    }
    for n in &notes {
        eprintln!("{n}");
    }
    eprintln!("sft: starting from {}", dir.display());
    let stage_optim = cfg.stage_loop().optim(optim);
    let mut settings = cfg.stage_loop().settings("sft", &(&model.config, &stage_optim, cfg), opts.progress);
    settings.extra_files.push(("config.json".into(), serde_json::to_vec_pretty(&model.config.to_hf_json())?));
    let mut task = SftTask {
        data,
        pad: tokenizer.pad_id,
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        grad_accum: cfg.grad_accum,
        packing: cfg.packing,
        max_len: cfg.max_len,
    };
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(model, &stage_optim, settings, run_dir, &mut task, opts)?;
    Ok(StageReport { summary, stage_dir, init: dir, resumed_from, notes })
}
