//! Training a LoRA adapter: the reference of a preference stage is the policy with its adapter off
//! (DPO's loss is ln 2 at step 0), only the adapter is trained and saved (PEFT's files, optimizer
//! state for the adapter alone), a run resumed from a checkpoint ends bit for bit where an
//! uninterrupted one does (dropout masks included), and a reward model's adapter and head
//! round-trip through its checkpoint.

mod post;

use hone_data::chat::ChatTemplate;
use hone_model::Llama;
use hone_model::burn::tensor::Device;
use hone_model::lora::{Lora, LoraSpec, Target};
use hone_train::pairdata::{PairData, encode_pairs};
use hone_train::reward_model::RewardModel;
use hone_train::stages::dpo::{DpoLoss, DpoTask, ReferenceLogps, reference_key};
use hone_train::{Task, Trainable, Trainer};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn spec(dropout: f64) -> LoraSpec {
    LoraSpec { rank: 4, alpha: 8.0, dropout, targets: Target::ALL.to_vec(), rslora: false }
}

fn adapted(base: &Llama, dropout: f64) -> Llama {
    let mut m = base.clone();
    let lora = Lora::init(spec(dropout), "/base".into(), &base.config, 3, base.device()).unwrap();
    m.attach_lora(lora).unwrap();
    m
}

fn setup() -> (hone_data::tokenizer::Tokenizer, PairData) {
    let tok = tokenizer();
    let all = pairs();
    let d = encode_pairs(&all[..6], &all[6..], &tok, &ChatTemplate::hone_default(), 128, 0.0, 1).unwrap();
    (tok, d)
}

fn dpo_task(tok: &hone_data::tokenizer::Tokenizer, d: &PairData, reference: &Llama) -> DpoTask {
    let len = d.longest();
    let key = reference_key(reference, d, len).unwrap();
    let refs = ReferenceLogps::compute(reference, d, tok.pad_id, len, 4, key);
    DpoTask::new(d.clone(), refs, DpoLoss::Sigmoid { beta: 0.5, label_smoothing: 0.0 }, tok.pad_id, 2, 4, 1)
}

/// A DPO trainer whose policy is `policy` (the micro model of seed 7 with an adapter).
fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, policy: Llama, steps: u64) -> Trainer {
    let mut t = preference_trainer(dir, tok, "dpo", steps, 1);
    t = Trainer::new(policy, &optim(), t.settings.clone(), &dir.join("dpo"), Some(&dir.join("metrics.jsonl"))).unwrap();
    t
}

#[test]
fn the_reference_is_the_base_and_only_the_adapter_trains_and_resumes_exactly() {
    const N: u64 = 3;
    let (tok, d) = setup();
    let base = model(&tok, 7, &Device::flex().autodiff());
    let policy = adapted(&base, 0.1);
    // The reference: the same tensors with the adapter off. B starts at zero, so at step 0 the
    // policy is the reference and the loss is ln 2.
    let reference = policy.without_lora();
    let mut t = dpo_task(&tok, &d, &reference);
    let v: f32 = t.loss(&policy, 0, 0).unwrap().0.without_autodiff().into_scalar();
    assert!((v as f64 - std::f64::consts::LN_2).abs() < 1e-6, "step-0 loss {v}");

    let a = tempfile::tempdir().unwrap();
    let base_bytes = hone_model::weights::model_to_safetensors(&base).unwrap();
    let mut ta = trainer(a.path(), &tok, policy.clone(), 2 * N);
    ta.run(&mut dpo_task(&tok, &d, &reference), &AtomicBool::new(false)).unwrap();
    // The base under the adapter did not move; the adapter did.
    assert!(hone_model::weights::model_to_safetensors(&ta.model).unwrap() == base_bytes, "the base moved");
    assert_ne!(ta.model.to_safetensors().unwrap(), policy.to_safetensors().unwrap());

    // The checkpoint is PEFT's: the adapter and its config, no full weights; the optimizer state
    // covers the adapter only.
    let ck = a.path().join(format!("dpo/step-{:08}", 2 * N));
    assert!(!ck.join("model.safetensors").exists());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(
        (cfg["r"].as_u64(), cfg["lora_alpha"].as_f64(), cfg["peft_type"].as_str()),
        (Some(4), Some(8.0), Some("LORA"))
    );
    assert_eq!(cfg["base_model_name_or_path"], "/base");
    let adapter = std::fs::metadata(ck.join("adapter_model.safetensors")).unwrap().len();
    let optimizer = std::fs::metadata(ck.join("optimizer.safetensors")).unwrap().len();
    // r · (in + out) per projection: q (32+32), k and v (32+16), o (32+32), gate and up (32+64), down (64+32).
    let per_layer = 4 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 3 * (32 + 64));
    let n: usize = Trainable::params(&ta.model).iter().map(|(_, p)| p.numel()).sum();
    assert_eq!(n, 2 * per_layer);
    assert!(adapter < 4 * n as u64 + 4096 && adapter * 5 < base_bytes.len() as u64, "{adapter} bytes");
    assert!(optimizer < 3 * adapter + 4096, "optimizer state {optimizer} bytes for an adapter of {adapter}");

    // Ctrl-C after N steps, then resume: the same adapter at the end (dropout masks included).
    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: dpo_task(&tok, &d, &reference), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, policy.clone(), 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut tb = trainer(b.path(), &tok, policy.clone(), 2 * N);
    assert_eq!(tb.resume().unwrap(), Some(N));
    tb.run(&mut dpo_task(&tok, &d, &reference), &AtomicBool::new(false)).unwrap();
    let f = |dir: &Path| std::fs::read(dir.join(format!("dpo/step-{:08}/adapter_model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "resumed adapter differs");
    let la = hone_metrics::read_series(&a.path().join("metrics.jsonl"), "dpo", "train", "loss");
    let lb = hone_metrics::read_series(&b.path().join("metrics.jsonl"), "dpo", "train", "loss");
    assert_eq!(la, lb);
    // Without dropout the run differs (the masks were applied).
    let c = tempfile::tempdir().unwrap();
    let mut tc = trainer(c.path(), &tok, adapted(&base, 0.0), 2 * N);
    tc.run(&mut dpo_task(&tok, &d, &reference), &AtomicBool::new(false)).unwrap();
    assert!(f(c.path()) != f(a.path()), "dropout had no effect");
}

#[test]
fn a_reward_models_adapter_and_head_round_trip() {
    let tok = tokenizer();
    let device = Device::flex().autodiff();
    let base = model(&tok, 7, &device);
    let rm = RewardModel::new(adapted(&base, 0.0), 5);
    // The trained parameters: the adapter's and the head.
    let names: Vec<String> = rm.params().into_iter().map(|(s, _)| s.name).collect();
    assert_eq!(names.last().unwrap(), "score.weight");
    assert!(names[..names.len() - 1].iter().all(|n| n.contains(".lora_")), "{names:?}");
    assert_eq!(rm.weights_file(), "adapter_model.safetensors");
    let bytes = rm.to_safetensors().unwrap();
    let back = rm.with_weights(&bytes, "mem").unwrap();
    assert!(back.to_safetensors().unwrap() == bytes);
    let seq: Vec<u32> = tok.encode("What is the capital of Varnok?").unwrap();
    assert_eq!(back.score(&seq), rm.score(&seq));
    let notes = rm.weight_notes().unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&notes[0].1).unwrap();
    assert_eq!((cfg["task_type"].as_str(), cfg["modules_to_save"][0].as_str()), (Some("SEQ_CLS"), Some("score")));
}
