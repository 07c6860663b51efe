//! The supervised fine-tuning stage: conversations rendered by the chat template, cross-entropy on the
//! assistant's tokens only (every assistant turn of a multi-turn conversation; system and user turns
//! are context), a held-out loss on a split of the conversations, all through the one trainer loop.
//!
//! Each optimizer step takes `batch_size` conversations from an epoch-wise shuffle that is a pure
//! function of (seed, step), so resume is exact. Rows are right-padded; with `packing` the same
//! conversations are packed into fewer rows (first fit) and attend only within themselves, which
//! changes the cost of a step, not its loss.

use crate::batch::{Example, Rows};
use crate::data::shuffled_index;
use crate::stage::{
    self, DataKind, LoopConfig, Opened, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport,
};
use crate::trainer::Task;
use burn::tensor::Tensor;
use hone_data::RecordFormat;
use hone_data::chat::ChatTemplate;
use hone_data::sft::{Conversation, SftOptions, read_conversations};
use hone_data::tokenizer::Tokenizer;
use hone_model::Llama;
use hone_model::llama::{constant, ids_tensor, token_log_probs};

hone_data::config_section! {
    /// Supervised fine-tuning on conversations (loss on the assistant's tokens).
    pub struct SftConfig {
        /// `auto` (from the file name), `jsonl` or `json`.
        format: RecordFormat = RecordFormat::Auto,
        /// Read this string field as the user turn (with `completion_field`), instead of detecting the
        /// format per record. Records with `question`/`answer` (GSM8K) are detected without it.
        prompt_field: String = String::new(),
        /// Read this string field as the assistant turn (with `prompt_field`).
        completion_field: String = String::new(),
        /// Count and drop bad records (no assistant turn, unknown role, …) instead of stopping.
        skip_invalid: bool = false,
        /// Longest conversation in tokens; longer ones are cut (and counted, and flagged in the
        /// report beyond 2%). 0: the model's context (`max_position_embeddings`).
        max_len: usize = 0,
        /// Pack a step's conversations into fewer rows of `max_len` tokens (attention stays within
        /// each conversation).
        packing: bool = false,
        /// Share of the conversations held out for the validation loss when there is no `eval_data`
        /// (chosen by a seeded hash of each conversation, so it does not depend on file order).
        val_fraction: f64 = 0.05,
        /// Conversations per micro-batch.
        batch_size: usize = 16,
        ..common: StageConfig = StageConfig {
            lr: 3e-4,
            warmup_steps: 20,
            run: LoopConfig { steps: 300, eval_every: 50, checkpoint_every: 100, ..LoopConfig::default() },
            ..StageConfig::default()
        },
    }
}

/// The SFT stage.
pub struct Sft;

impl StageDef for Sft {
    type Config = SftConfig;
    const INFO: StageInfo = StageInfo {
        name: "sft",
        about: "Fine-tune on conversations (loss on the assistant's turns); Ctrl-C stops, rerun resumes.",
        starts_from: &["pretrain", "base"],
        reads: &[],
        role: Role::Policy,
        label: "sft",
        data: Some(DataKind::Conversations),
    };

    fn common(cfg: &SftConfig) -> Option<&StageConfig> {
        Some(&cfg.common)
    }
    fn common_mut(cfg: &mut SftConfig) -> Option<&mut StageConfig> {
        Some(&mut cfg.common)
    }

    fn validate(cfg: &SftConfig) -> anyhow::Result<()> {
        cfg.common.validate("sft")?;
        anyhow::ensure!(cfg.batch_size > 0, "sft.batch_size must be positive");
        anyhow::ensure!(cfg.max_len == 0 || cfg.max_len >= 2, "sft.max_len must be 0 (the model's context) or at least 2");
        anyhow::ensure!((0.0..1.0).contains(&cfg.val_fraction), "sft.val_fraction must be in [0, 1)");
        anyhow::ensure!(
            cfg.prompt_field.is_empty() == cfg.completion_field.is_empty(),
            "sft.prompt_field and sft.completion_field are set together"
        );
        Ok(())
    }

    fn estimate_tokens(cfg: &SftConfig) -> f64 {
        // Conversations are up to max_len long; half is typical.
        let run = &cfg.common.run;
        (run.steps * (cfg.batch_size * run.grad_accum * stage::nominal_len(cfg.max_len) / 2) as u64) as f64
    }

    fn run(cfg: &SftConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_sft(cfg, ctx)
    }
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
        let (mut ids, mut mask) = match &c.text {
            // A plain document, as pretraining reads it: BOS, then the text, every token a target.
            Some(t) => {
                let mut ids = vec![tok.bos_id];
                ids.extend(tok.encode(t).map_err(|e| anyhow::anyhow!("{}: {e:#}", c.origin()))?);
                let n = ids.len();
                (ids, vec![true; n])
            }
            None => {
                let enc = template.encode(tok, &c.messages).map_err(|e| anyhow::anyhow!("{}: {e:#}", c.origin()))?;
                (enc.ids, enc.assistant_mask)
            }
        };
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
        let key = match &c.text {
            Some(t) => t.clone(),
            None => serde_json::to_string(&c.messages).expect("messages serialise"),
        };
        let ex = Example { ids, mask };
        if hone_data::hash::split_point(seed, &key) < val_fraction { d.val.push(ex) } else { d.train.push(ex) }
    }
    if d.val.is_empty() && val_fraction > 0.0 && d.train.len() > 1 {
        d.val.push(d.train.pop().expect("non-empty"));
    }
    Ok(d)
}

/// Mean negative log-likelihood of the weighted (assistant) targets: a scalar `[1]`.
pub fn sft_loss(model: &Llama, b: &Rows) -> anyhow::Result<Tensor<1>> {
    let d = model.device();
    let ids = ids_tensor(&b.inputs, b.rows, b.seq, d);
    let logits = match &b.segments {
        Some(seg) => crate::layout::forward_packed(model, ids, seg, b.rows, b.seq)?,
        None => model.forward(ids),
    }; // [rows, seq, vocab]
    let logp = token_log_probs(logits, ids_tensor(&b.targets, b.rows, b.seq, d)); // [rows, seq]
    let w = constant(b.weights.clone(), [b.rows, b.seq], d); // [rows, seq]
    let n: f32 = b.weights.iter().sum();
    anyhow::ensure!(n > 0.0, "a batch without assistant tokens");
    Ok((logp * w).sum().div_scalar(n).neg())
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
    pub fn batch(&self, step: u64, micro: usize) -> Rows {
        let n = self.data.train.len();
        let first = (step * self.grad_accum as u64 + micro as u64) * self.batch_size as u64;
        let picked: Vec<&Example> =
            (0..self.batch_size as u64).map(|r| &self.data.train[shuffled_index(n, self.seed, first + r)]).collect();
        if self.packing {
            Rows::packed(&picked, self.pad, self.max_len)
        } else {
            Rows::padded(&picked, self.pad)
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
            let b = Rows::padded(&refs, self.pad);
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

/// `hone sft`: fine-tunes the starting checkpoint on conversations into `<run_dir>/sft/`.
fn run_sft(cfg: &SftConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let common = &cfg.common;
    let (opened, _) = stage::open_start(&ctx.run_dir, &Sft::INFO, common)?;
    let max_len = stage::max_len("sft", cfg.max_len, &opened)?;
    let Opened { model, tokenizer, template, dir } = opened;
    let read_opts = SftOptions {
        format: cfg.format.as_str().to_string(),
        prompt_field: cfg.prompt_field.clone(),
        completion_field: cfg.completion_field.clone(),
        skip_invalid: cfg.skip_invalid,
    };
    let paths = common.data_paths("sft")?;
    let loaded = read_conversations(&paths, &read_opts)?;
    let held = match common.eval_path() {
        Some(p) => Some(read_conversations(&[p], &read_opts)?),
        None => None,
    };
    let mut data = prepare(&loaded.items, &tokenizer, &template, max_len, cfg.val_fraction, common.run.seed)?;
    if let Some(h) = &held {
        // A held-out file replaces the split: every conversation of `data` trains.
        let val = prepare(&h.items, &tokenizer, &template, max_len, 0.0, common.run.seed)?;
        data.train.append(&mut data.val);
        data.val = val.train;
        data.truncated += val.truncated;
        data.dropped += val.dropped;
    }
    anyhow::ensure!(!data.train.is_empty(), "sft: no training conversations in {}", common.data.join(", "));
    let head = vec![format!(
        "sft: {} conversations ({} train, {} held out) from {} file(s), up to {max_len} tokens each",
        data.train.len() + data.val.len(),
        data.train.len(),
        data.val.len(),
        paths.len()
    )];
    let held_skips = held.as_ref().map(|h| h.skip_examples.clone()).unwrap_or_default();
    let skipped = loaded.skipped + held.as_ref().map_or(0, |h| h.skipped);
    let notes = stage::DataCuts {
        unit: "conversations",
        target: "assistant",
        max_len,
        records: loaded.items.len() + held.as_ref().map_or(0, |h| h.items.len()) + skipped,
        skipped,
        skip_examples: loaded.skip_examples.iter().chain(&held_skips).cloned().collect(),
        truncated: data.truncated,
        dropped: data.dropped,
        set_aside: 0,
    }
    .notes("sft", head);
    let notes = stage::print_notes(notes);
    eprintln!("sft: starting from {}", dir.display());
    let stage_optim = common.optim(ctx.optim);
    let settings = common.run.settings("sft", &(&model.config, &stage_optim, cfg), ctx.progress);
    let files = hone_model::import::save::model_files(model.config.to_hf_json(), &tokenizer, &template)?;
    let mut task = SftTask {
        data,
        pad: tokenizer.pad_id,
        seed: common.run.seed,
        batch_size: cfg.batch_size,
        grad_accum: common.run.grad_accum,
        packing: cfg.packing,
        max_len,
    };
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(stage::adapt(model, common, &dir)?, &stage_optim, settings, files, &mut task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: Some(dir), resumed_from, notes })
}
