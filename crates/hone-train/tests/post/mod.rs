//! Shared pieces of the post-training tests: a small chat tokenizer, a micro model sized for it,
//! conversations and preference pairs about a made-up world, and a task wrapper that raises the stop
//! flag (as Ctrl-C does) during a given step.
#![allow(dead_code)]

use hone_data::chat::Message;
use hone_data::tokenizer::{Tokenizer, TokenizerConfig, train};
use hone_model::burn::tensor::{Device, Tensor};
use hone_model::{Llama, LlamaConfig};
use hone_train::{OptimConfig, Task};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const CITIES: [(&str, &str); 8] = [
    ("Varnok", "Tesmir"),
    ("Oskel", "Brandu"),
    ("Pellow", "Quist"),
    ("Ardin", "Molle"),
    ("Sefra", "Tarn"),
    ("Umbel", "Korro"),
    ("Dassin", "Vell"),
    ("Rimor", "Halt"),
];

pub fn tokenizer() -> Tokenizer {
    let docs: Vec<String> = CITIES
        .iter()
        .flat_map(|(c, k)| {
            (0..4).map(move |i| {
                format!("<|user|>\nWhat is the capital of {c}?<|end|>\n<|assistant|>\nThe capital of {c} is {k}. {i}<|end|>\n")
            })
        })
        .collect();
    train(docs.into_iter(), &TokenizerConfig { vocab_size: 300, ..Default::default() }).unwrap()
}

pub fn model_config(vocab: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size: vocab,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 128,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        qk_norm: false,
        initializer_range: 0.02,
        head_dim: None,
        rope_scaling: None,
    }
}

pub fn model(tok: &Tokenizer, seed: u64, device: &Device) -> Llama {
    Llama::init(&model_config(tok.vocab_size()), seed, device).unwrap()
}

pub fn optim() -> OptimConfig {
    OptimConfig { lr: 1e-2, warmup_steps: 2, grad_clip: 1.0, ..OptimConfig::default() }
}

/// Conversations: one question per city, some with a system turn, some two-turn.
pub fn conversations() -> Vec<Vec<Message>> {
    let mut out = Vec::new();
    for (i, (c, k)) in CITIES.iter().enumerate() {
        let mut m = Vec::new();
        if i % 3 == 0 {
            m.push(Message::new("system", "Answer briefly."));
        }
        m.push(Message::new("user", format!("What is the capital of {c}?")));
        m.push(Message::new("assistant", format!("The capital of {c} is {k}.")));
        if i % 2 == 1 {
            m.push(Message::new("user", "And again?"));
            m.push(Message::new("assistant", format!("{k}.")));
        }
        out.push(m);
    }
    out
}

/// Writes `records` as JSONL.
pub fn write_jsonl(path: &Path, records: &[serde_json::Value]) {
    let text: String = records.iter().map(|r| r.to_string() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// Raises `stop` while computing step `at` (1-based), so the loop stops after that step.
pub struct StopAt<T> {
    pub inner: T,
    pub stop: Arc<AtomicBool>,
    pub at: u64,
}

impl<M, T: Task<M>> Task<M> for StopAt<T> {
    fn loss(&mut self, model: &M, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        if step + 1 == self.at {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.inner.loss(model, step, micro)
    }
    fn evaluate(&mut self, model: &M) -> anyhow::Result<Vec<(String, f64)>> {
        self.inner.evaluate(model)
    }
    fn train_metrics(&mut self) -> Vec<(String, f64)> {
        self.inner.train_metrics()
    }
    fn data_state(&self, next_step: u64) -> serde_json::Value {
        self.inner.data_state(next_step)
    }
}

/// Preference pairs about the cities: the right capital chosen, another city's rejected (with a
/// number, so no two rejected replies are alike).
pub fn pairs() -> Vec<hone_data::pairs::Pair> {
    CITIES
        .iter()
        .enumerate()
        .map(|(i, (c, k))| {
            let wrong = CITIES[(i + 3) % CITIES.len()].1;
            hone_data::pairs::Pair {
                prompt: vec![Message::new("user", format!("What is the capital of {c}?"))],
                chosen: vec![Message::new("assistant", format!("The capital of {c} is {k}."))],
                rejected: vec![Message::new("assistant", format!("The capital of {c} is {wrong}. {i}"))],
                file: "mem.jsonl".into(),
                loc: hone_data::Location::Line { line: i as u64 + 1, offset: 0 },
            }
        })
        .collect()
}

/// The trainer of a preference stage's tests: seed 2, the micro model from seed 7, a metrics line
/// every step, no checkpoints but the final one and those Ctrl-C writes.
pub fn preference_trainer(
    dir: &Path,
    tok: &Tokenizer,
    stage: &str,
    steps: u64,
    grad_accum: usize,
) -> hone_train::Trainer {
    let settings = hone_train::LoopSettings {
        stage: stage.into(),
        steps,
        grad_accum,
        eval_every: 0,
        checkpoint_every: 0,
        keep_last: 2,
        log_every: 1,
        seed: 2,
        config_hash: "t".into(),
        progress: false,
        extra_files: vec![],
        activation_checkpointing: false,
    };
    let m = model(tok, 7, &Device::flex().autodiff());
    hone_train::Trainer::new(m, &optim(), settings, &dir.join(stage), Some(&dir.join("metrics.jsonl"))).unwrap()
}
