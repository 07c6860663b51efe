//! Shared pieces of the trainer tests: a micro model, in-memory token streams, and a task wrapper
//! that raises the stop flag (as Ctrl-C does) after a given step.
#![allow(dead_code)]

use hone_model::LlamaConfig;
use hone_model::burn::tensor::Tensor;
use hone_train::config::OptimizerKind;
use hone_train::stage::LoopConfig;
use hone_train::stages::pretrain::PretrainTask;
use hone_train::{OptimConfig, PretrainConfig, Task};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub fn micro_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 96,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        qk_norm: false,
        initializer_range: 0.02,
        head_dim: None,
        rope_scaling: None,
    }
}

/// A token stream with some structure to learn: runs of ascending ids, BOS (0) between "documents".
pub fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        v.push(0);
        let start = rng.random_range(1..90u32);
        for i in 0..rng.random_range(5..30u32) {
            v.push(1 + (start + i) % 95);
        }
    }
    v.truncate(n);
    v
}

pub fn pretrain_config(steps: u64) -> PretrainConfig {
    PretrainConfig {
        batch_size: 4,
        seq_len: 16,
        eval_rows: 8,
        run: LoopConfig {
            steps,
            grad_accum: 2,
            eval_every: 0,
            checkpoint_every: 0,
            keep_last: 2,
            seed: 11,
            log_every: 1,
            ..LoopConfig::default()
        },
        ..PretrainConfig::default()
    }
}

pub fn optim_config(optimizer: &str) -> OptimConfig {
    let optimizer = match optimizer {
        "muon" => OptimizerKind::Muon,
        _ => OptimizerKind::Adamw,
    };
    OptimConfig { optimizer, lr: 1e-2, warmup_steps: 2, grad_clip: 0.5, ..OptimConfig::default() }
}

pub fn task<'a>(train: &'a Vec<u32>, val: &'a Vec<u32>, p: &PretrainConfig) -> PretrainTask<'a> {
    PretrainTask {
        train,
        val,
        val_tokens_per_byte: 0.25,
        seed: p.run.seed,
        batch_size: p.batch_size,
        seq_len: p.seq_len,
        grad_accum: p.run.grad_accum,
        eval_rows: p.eval_rows,
    }
}

/// Raises `stop` while computing step `at` (1-based), so the loop stops after that step.
pub struct StopAfter<'a> {
    pub inner: PretrainTask<'a>,
    pub stop: Arc<AtomicBool>,
    pub at: u64,
}

impl Task for StopAfter<'_> {
    fn loss(&mut self, model: &hone_model::Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        if step + 1 == self.at {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.inner.loss(model, step, micro)
    }
    fn evaluate(&mut self, model: &hone_model::Llama) -> anyhow::Result<Vec<(String, f64)>> {
        self.inner.evaluate(model)
    }
}
