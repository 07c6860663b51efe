//! The pretraining stage: next-token cross-entropy on every position of rows cut from the packed
//! token stream (documents joined with BOS), held-out loss and bits per byte, all through the one
//! trainer loop. Run it again with the same arguments to resume from the newest checkpoint.

use crate::config::OptimConfig;
use crate::data::{TokenSource, check_len, eval_batches, train_batch};
use crate::stage::{self, DataKind, LoopConfig, Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::{LoopSettings, Task};
use burn::tensor::{Device, Tensor};
use hone_data::shards::{Split, TokenData};
use hone_model::llama::{cross_entropy, ids_tensor};
use hone_model::{Llama, LlamaConfig};
use std::path::{Path, PathBuf};

hone_data::config_section! {
    /// The pretraining stage: next-token prediction on packed token shards.
    pub struct PretrainConfig {
        /// Folder of token shards (from `hone data prepare`); empty = `<run dir>/data`.
        data_dir: String = String::new(),
        /// Rows per micro-batch.
        batch_size: usize = 16,
        /// Tokens per row (the context length trained).
        seq_len: usize = 128,
        /// Held-out rows per evaluation (fixed windows from the start of the validation split).
        eval_rows: usize = 64,
        ..run: LoopConfig = LoopConfig {
            steps: 2000,
            eval_every: 100,
            checkpoint_every: 200,
            keep_last: 3,
            ..LoopConfig::default()
        },
    }
}

impl PretrainConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.run.validate("pretrain")?;
        anyhow::ensure!(self.batch_size > 0, "pretrain.batch_size must be positive");
        anyhow::ensure!(self.seq_len > 0, "pretrain.seq_len must be positive");
        Ok(())
    }
}

/// The pretraining stage.
pub struct Pretrain;

impl StageDef for Pretrain {
    type Config = PretrainConfig;
    const INFO: StageInfo = StageInfo {
        name: "pretrain",
        about: "Pretrain a model on prepared token shards (next-token prediction); Ctrl-C stops, rerun resumes.",
        starts_from: &[],
        reads: &["data"],
        role: Role::Policy,
        label: "base",
        data: Some(DataKind::Text),
    };

    fn common(_: &PretrainConfig) -> Option<&StageConfig> {
        None
    }
    fn common_mut(_: &mut PretrainConfig) -> Option<&mut StageConfig> {
        None
    }

    fn validate(cfg: &PretrainConfig) -> anyhow::Result<()> {
        cfg.validate()
    }

    fn estimate_tokens(cfg: &PretrainConfig) -> f64 {
        (cfg.run.steps * (cfg.batch_size * cfg.seq_len * cfg.run.grad_accum) as u64) as f64
    }

    fn run(cfg: &PretrainConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        run_pretrain(cfg, ctx)
    }

    fn flag_overrides(model: Option<&Path>, data: &[String]) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(model.is_none(), "pretrain starts from scratch: --model does not apply");
        anyhow::ensure!(data.len() <= 1, "pretrain --data takes one folder of token shards");
        Ok(data.iter().map(|d| format!("pretrain.data_dir={}", toml::Value::String(d.clone()))).collect())
    }
}

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

/// `hone pretrain`: trains from `pretrain.data_dir` (default `<run_dir>/data`) into
/// `<run_dir>/pretrain/`, logging to `<run_dir>/metrics.jsonl`. Resumes from the newest checkpoint
/// there; a finished stage is not trained again.
pub fn run_pretrain(pre: &PretrainConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
    let run_dir = &ctx.run_dir;
    let data_dir = if pre.data_dir.is_empty() { run_dir.join("data") } else { PathBuf::from(&pre.data_dir) };
    let td =
        TokenData::open(&data_dir).map_err(|e| anyhow::anyhow!("pretrain.data_dir {}: {e:#}", data_dir.display()))?;
    let cfg = ctx.model.resolve(Some(td.vocab_size))?;
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
    let device = hone_model::device::select_autodiff(&pre.run.device)?;
    let mut task = PretrainTask {
        train,
        val,
        val_tokens_per_byte: val.num_tokens() as f64 / val.text_bytes().max(1) as f64,
        seed: pre.run.seed,
        batch_size: pre.batch_size,
        seq_len: pre.seq_len,
        grad_accum: pre.run.grad_accum,
        eval_rows: pre.eval_rows,
    };
    train_with(&cfg, ctx.optim, pre, ctx, &device, &mut task)
}

/// The stage's body once the data is open: used by [`run_pretrain`] and by tests with in-memory data.
pub fn train_with(
    cfg: &LlamaConfig,
    optim: &OptimConfig,
    pre: &PretrainConfig,
    ctx: &StageContext,
    device: &Device,
    task: &mut PretrainTask<'_>,
) -> anyhow::Result<StageReport> {
    let flops = cfg.train_flops_per_token(pre.seq_len);
    let tokens_per_step = (pre.batch_size * pre.seq_len * pre.run.grad_accum) as f64;
    eprintln!(
        "pretrain: {:.2}M parameters, {:.1} MFLOP/token (train), {} tokens/step = {:.2} GFLOP/step, device {}, {} threads",
        cfg.num_params() as f64 / 1e6,
        flops / 1e6,
        tokens_per_step,
        flops * tokens_per_step / 1e9,
        pre.run.device,
        rayon::current_num_threads()
    );
    let model = Llama::init(cfg, pre.run.seed, device)?;
    let settings = LoopSettings::from_pretrain(pre, stage::config_hash(&(cfg, optim, pre)), ctx.progress);
    let (summary, resumed_from, stage_dir) =
        stage::train_stage(model, optim, settings, stage::scratch_model_files(cfg, &ctx.run_dir)?, task, ctx)?;
    Ok(StageReport { summary, stage_dir, init: None, resumed_from, notes: Default::default() })
}

impl LoopSettings {
    /// The loop settings of the pretraining stage.
    pub fn from_pretrain(pre: &PretrainConfig, config_hash: String, progress: bool) -> LoopSettings {
        let mut s = pre.run.settings("pretrain", &(), progress);
        s.config_hash = config_hash;
        s
    }
}
