//! The pretraining stage: next-token cross-entropy on every position of rows cut from the packed
//! token stream (documents joined with BOS), held-out loss and bits per byte, all through the one
//! trainer loop. Run it again with the same arguments to resume from the newest checkpoint.

use crate::config::{OptimConfig, PretrainConfig};
use crate::data::{TokenSource, check_len, eval_batches, train_batch};
use crate::trainer::{LoopSettings, RunSummary, Task, Trainer, fmt_metrics};
use burn::tensor::{Device, Tensor};
use hone_data::shards::{Split, TokenData};
use hone_model::llama::{cross_entropy, ids_tensor};
use hone_model::{Llama, LlamaConfig, ModelConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The pretraining objective over a training and a held-out token stream.
pub struct PretrainTask<'a> {
    pub train: &'a dyn TokenSource,
    pub val: &'a dyn TokenSource,
    /// Held-out tokens per UTF-8 byte of text, to turn nats per token into bits per byte.
    pub val_tokens_per_byte: f64,
    pub seed: u64,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub eval_rows: usize,
}

impl Task for PretrainTask<'_> {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let b = train_batch(self.train, self.seed, step, micro, self.grad_accum, self.batch_size, self.seq_len);
        let d = model.device();
        let logits = model.forward(ids_tensor(&b.inputs, b.rows, b.seq, d)); // [rows, seq, vocab]
        let loss = cross_entropy(logits, ids_tensor(&b.targets, b.rows, b.seq, d));
        Ok((loss, (b.rows * b.seq) as u64))
    }

    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        let (loss, tokens) =
            held_out_loss(&model.to_inference(), self.val, self.eval_rows, self.batch_size, self.seq_len);
        let bpb = loss / std::f64::consts::LN_2 * self.val_tokens_per_byte;
        Ok(vec![("val_loss".into(), loss), ("val_bpb".into(), bpb), ("val_tokens".into(), tokens as f64)])
    }

    fn data_state(&self, next_step: u64) -> serde_json::Value {
        serde_json::json!({
            "next_step": next_step,
            "order": "rows at offsets drawn by ChaCha8(seed), stream step * grad_accum + micro",
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
        })
    }
}

/// Mean cross-entropy (nats/token) of `model` over the fixed held-out windows, and the token count.
pub fn held_out_loss(model: &Llama, val: &dyn TokenSource, rows: usize, batch: usize, seq: usize) -> (f64, u64) {
    let d = model.device();
    let (mut sum, mut n) = (0f64, 0u64);
    for b in eval_batches(val, rows, batch, seq) {
        let logits = model.forward(ids_tensor(&b.inputs, b.rows, b.seq, d));
        let l: f32 = cross_entropy(logits, ids_tensor(&b.targets, b.rows, b.seq, d)).into_scalar();
        let t = (b.rows * b.seq) as u64;
        sum += l as f64 * t as f64;
        n += t;
    }
    (sum / n.max(1) as f64, n)
}

/// How `run_pretrain` reports and can be stopped.
#[derive(Debug, Clone, Default)]
pub struct PretrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Stop flag; `None` installs the Ctrl-C handler.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What `run_pretrain` did.
#[derive(Debug, Clone)]
pub struct PretrainReport {
    pub summary: RunSummary,
    pub model: LlamaConfig,
    pub params: usize,
    pub flops_per_token: f64,
    pub stage_dir: PathBuf,
    /// The step training resumed from, if it did.
    pub resumed_from: Option<u64>,
}

/// `hone pretrain`: trains from `pretrain.data_dir` (default `<run_dir>/data`) into
/// `<run_dir>/pretrain/`, logging to `<run_dir>/metrics.jsonl`. Resumes from the newest checkpoint
/// there; a finished stage is not trained again.
pub fn run_pretrain(
    model_cfg: &ModelConfig,
    optim: &OptimConfig,
    pre: &PretrainConfig,
    run_dir: &Path,
    opts: &PretrainOptions,
) -> anyhow::Result<PretrainReport> {
    pre.validate()?;
    optim.validate()?;
    let data_dir = if pre.data_dir.is_empty() { run_dir.join("data") } else { PathBuf::from(&pre.data_dir) };
    let td =
        TokenData::open(&data_dir).map_err(|e| anyhow::anyhow!("pretrain.data_dir {}: {e:#}", data_dir.display()))?;
    let cfg = model_cfg.resolve(Some(td.vocab_size))?;
    anyhow::ensure!(
        cfg.vocab_size >= td.vocab_size,
        "model.vocab_size ({}) is smaller than the tokenizer's ({})",
        cfg.vocab_size,
        td.vocab_size
    );
    anyhow::ensure!(
        pre.seq_len <= cfg.max_position_embeddings,
        "pretrain.seq_len ({}) exceeds model.max_position_embeddings ({})",
        pre.seq_len,
        cfg.max_position_embeddings
    );
    let (train, val) = (td.split(Split::Train), td.split(Split::Val));
    check_len(train, pre.seq_len, &format!("{}: train split", data_dir.display()))?;
    check_len(val, pre.seq_len, &format!("{}: validation split", data_dir.display()))?;
    let device = hone_model::device::select_autodiff(&pre.device)?;
    let mut task = PretrainTask {
        train,
        val,
        val_tokens_per_byte: val.num_tokens() as f64 / val.text_bytes().max(1) as f64,
        seed: pre.seed,
        batch_size: pre.batch_size,
        seq_len: pre.seq_len,
        grad_accum: pre.grad_accum,
        eval_rows: pre.eval_rows,
    };
    let report = train_with(&cfg, optim, pre, run_dir, opts, &device, &mut task)?;
    Ok(report)
}

/// The stage's body once the data is open: used by [`run_pretrain`] and by tests with in-memory data.
pub fn train_with(
    cfg: &LlamaConfig,
    optim: &OptimConfig,
    pre: &PretrainConfig,
    run_dir: &Path,
    opts: &PretrainOptions,
    device: &Device,
    task: &mut PretrainTask<'_>,
) -> anyhow::Result<PretrainReport> {
    let params = cfg.num_params();
    let flops = cfg.train_flops_per_token(pre.seq_len);
    let tokens_per_step = (pre.batch_size * pre.seq_len * pre.grad_accum) as f64;
    eprintln!(
        "pretrain: {:.2}M parameters, {:.1} MFLOP/token (train), {} tokens/step = {:.2} GFLOP/step, device {}, {} threads",
        params as f64 / 1e6,
        flops / 1e6,
        tokens_per_step,
        flops * tokens_per_step / 1e9,
        pre.device,
        rayon::current_num_threads()
    );
    let model = Llama::init(cfg, pre.seed, device)?;
    let stage_dir = run_dir.join("pretrain");
    let mut settings = LoopSettings::from_pretrain(pre, config_hash(cfg, optim, pre), opts.progress);
    settings.extra_files.push(("config.json".into(), serde_json::to_vec_pretty(&cfg.to_hf_json())?));
    std::fs::create_dir_all(run_dir).map_err(|e| anyhow::anyhow!("{}: {e}", run_dir.display()))?;
    let mut trainer = Trainer::new(model, optim, settings, &stage_dir, Some(&run_dir.join("metrics.jsonl")))?;
    let resumed_from = trainer.resume()?;
    if let Some(s) = resumed_from {
        eprintln!("pretrain: resuming from {} (step {s})", stage_dir.display());
    }
    let stop = opts.stop.clone().unwrap_or_else(crate::signal::stop_flag);
    let summary = trainer.run(task, &stop)?;
    eprintln!(
        "pretrain: {} at step {}: {} ({:.0} tokens/s)",
        if summary.interrupted { "stopped" } else { "done" },
        summary.steps_done,
        fmt_metrics(&summary.last_eval),
        summary.tokens_per_s
    );
    Ok(PretrainReport { summary, model: cfg.clone(), params, flops_per_token: flops, stage_dir, resumed_from })
}

impl LoopSettings {
    /// The loop settings of the pretraining stage.
    pub fn from_pretrain(pre: &PretrainConfig, config_hash: String, progress: bool) -> LoopSettings {
        LoopSettings {
            stage: "pretrain".into(),
            steps: pre.steps,
            grad_accum: pre.grad_accum,
            eval_every: pre.eval_every,
            checkpoint_every: pre.checkpoint_every,
            keep_last: pre.keep_last,
            log_every: pre.log_every,
            seed: pre.seed,
            config_hash,
            progress,
            extra_files: Vec::new(),
        }
    }
}

/// sha256 of the resolved model, optimizer and stage configuration.
fn config_hash(cfg: &LlamaConfig, optim: &OptimConfig, pre: &PretrainConfig) -> String {
    let text = serde_json::to_string(&(cfg, optim, pre)).expect("configs serialise");
    hex::encode(Sha256::digest(text.as_bytes()))
}
