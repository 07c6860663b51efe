//! SFT: the loss covers exactly the assistant's tokens (checked against a hand computation from the
//! logits, and by changing the targets of prompt tokens, which must change neither the loss nor any
//! gradient), long conversations are cut and counted, and resume is bit for bit.

mod post;

use hone_data::chat::ChatTemplate;
use hone_data::sft::Conversation;
use hone_metrics::read_series;
use hone_model::burn::tensor::Device;
use hone_model::llama::ids_tensor;
use hone_train::batch::{Example, Rows as SftBatch};
use hone_train::grads::Grads;
use hone_train::stages::sft::{SftData, SftTask, prepare, sft_loss};
use hone_train::{LoopSettings, Trainer};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn convs() -> Vec<Conversation> {
    conversations()
        .into_iter()
        .enumerate()
        .map(|(i, messages)| Conversation {
            messages,
            text: None,
            file: "mem.jsonl".into(),
            loc: hone_data::Location::Line { line: i as u64 + 1, offset: 0 },
        })
        .collect()
}

fn data(val_fraction: f64) -> (hone_data::tokenizer::Tokenizer, SftData) {
    let tok = tokenizer();
    let d = prepare(&convs(), &tok, &ChatTemplate::hone_default(), 128, val_fraction, 3).unwrap();
    (tok, d)
}

#[test]
fn a_plain_document_is_trained_on_every_token_after_bos() {
    let tok = tokenizer();
    let doc = Conversation {
        messages: Vec::new(),
        text: Some("The capital of Oskel is Brandu.".into()),
        file: "mem.jsonl".into(),
        loc: hone_data::Location::Line { line: 1, offset: 0 },
    };
    let d = prepare(&[doc], &tok, &ChatTemplate::hone_default(), 128, 0.0, 3).unwrap();
    let ex = &d.train[0];
    assert_eq!(ex.ids[0], tok.bos_id);
    assert_eq!(tok.decode(&ex.ids[1..]).unwrap(), "The capital of Oskel is Brandu.");
    assert!(ex.mask.iter().all(|&m| m), "every token is a target");
}

#[test]
fn loss_is_the_mean_over_assistant_tokens() {
    let (tok, d) = data(0.0);
    let refs: Vec<&Example> = d.train.iter().take(4).collect();
    let b = SftBatch::padded(&refs, tok.pad_id);
    // The weighted targets decode to exactly the assistant replies (with their end tokens).
    let first: Vec<u32> = (0..b.seq).filter(|&t| b.weights[t] > 0.0).map(|t| b.targets[t]).collect();
    let text = tok.decode(&first).unwrap();
    assert!(!text.contains("What is") && text.contains("The capital of") && text.contains("<|end|>"), "{text}");
    let second: Vec<u32> = (0..b.seq).filter(|&t| b.weights[b.seq + t] > 0.0).map(|t| b.targets[b.seq + t]).collect();
    let text = tok.decode(&second).unwrap();
    assert_eq!(text, "The capital of Oskel is Brandu.<|end|>\nBrandu.<|end|>\n", "both assistant turns, no user turn");

    let device = Device::flex();
    let m = model(&tok, 1, &device);
    let got: f32 = sft_loss(&m, &b).unwrap().into_scalar();
    // By hand: log-softmax of the logits in f64, averaged over the weighted positions.
    let logits = m.forward(ids_tensor(&b.inputs, b.rows, b.seq, &device));
    let v = tok.vocab_size();
    let flat: Vec<f32> = logits.to_data().try_into_vec().unwrap();
    let (mut sum, mut n) = (0f64, 0f64);
    for p in 0..b.rows * b.seq {
        if b.weights[p] == 0.0 {
            continue;
        }
        let row = &flat[p * v..(p + 1) * v];
        let mx = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) as f64;
        let lse = mx + row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln();
        sum += lse - row[b.targets[p] as usize] as f64;
        n += 1.0;
    }
    let want = sum / n;
    assert!((got as f64 - want).abs() < 1e-5, "loss {got} vs hand {want}");
}

#[test]
fn prompt_tokens_get_no_gradient() {
    let (tok, d) = data(0.0);
    let refs: Vec<&Example> = d.train.iter().take(4).collect();
    let b = SftBatch::padded(&refs, tok.pad_id);
    let mut changed = b.clone();
    let mut n_changed = 0;
    for p in 0..b.targets.len() {
        if b.weights[p] == 0.0 {
            changed.targets[p] = (b.targets[p] + 7) % tok.vocab_size() as u32;
            n_changed += 1;
        }
    }
    assert!(n_changed > 20, "the batch has prompt positions");
    let device = Device::flex().autodiff();
    let m = model(&tok, 2, &device);
    let run = |b: &SftBatch| {
        let loss = sft_loss(&m, b).unwrap();
        let v: f32 = loss.clone().without_autodiff().into_scalar();
        let g = Grads::collect(&m, &loss.backward());
        let flat: Vec<Vec<f32>> = g.tensors.iter().map(|t| t.to_data().try_into_vec().unwrap()).collect();
        (v, flat)
    };
    let (la, ga) = run(&b);
    let (lb, gb) = run(&changed);
    assert_eq!(la, lb, "prompt targets changed the loss");
    assert!(ga == gb, "prompt targets changed a gradient");
    assert!(ga.iter().flatten().any(|x| *x != 0.0), "the assistant tokens do give gradients");
    // Changing an assistant target does change it (the check above can fail).
    let mut hit = b.clone();
    let p = b.weights.iter().position(|w| *w > 0.0).unwrap();
    hit.targets[p] = (b.targets[p] + 7) % tok.vocab_size() as u32;
    assert_ne!(run(&hit).0, la);
}

#[test]
fn long_conversations_are_cut_and_counted() {
    let tok = tokenizer();
    let t = ChatTemplate::hone_default();
    let full = prepare(&convs(), &tok, &t, 128, 0.0, 3).unwrap();
    let longest = full.train.iter().map(|e| e.ids.len()).max().unwrap();
    let cut = prepare(&convs(), &tok, &t, longest - 3, 0.0, 3).unwrap();
    assert!(cut.truncated >= 1);
    assert!(cut.train.iter().all(|e| e.ids.len() <= longest - 3));
    // So short that no assistant token is left: dropped and counted.
    let tiny = prepare(&convs(), &tok, &t, 4, 0.0, 3).unwrap();
    assert_eq!(tiny.dropped, convs().len());
    let split = prepare(&convs(), &tok, &t, 128, 0.3, 3).unwrap();
    assert!(!split.val.is_empty() && split.train.len() + split.val.len() == convs().len());
}

fn task(d: &SftData, pad: u32) -> SftTask {
    SftTask { data: d.clone(), pad, seed: 4, batch_size: 3, grad_accum: 2, packing: false, max_len: 128 }
}

fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64) -> Trainer {
    trainer_with(dir, tok, steps, false)
}

fn trainer_with(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64, recompute: bool) -> Trainer {
    let settings = LoopSettings {
        stage: "sft".into(),
        steps,
        grad_accum: 2,
        eval_every: 0,
        checkpoint_every: 0,
        keep_last: 2,
        log_every: 1,
        seed: 4,
        config_hash: "t".into(),
        progress: false,
        extra_files: vec![],
        activation_checkpointing: recompute,
    };
    let m = model(tok, 5, &Device::flex().autodiff());
    Trainer::new(m, &optim(), settings, &dir.join("sft"), Some(&dir.join("metrics.jsonl"))).unwrap()
}

#[test]
fn sft_resume_is_bit_exact() {
    const N: u64 = 3;
    let (tok, d) = data(0.2);
    let a = tempfile::tempdir().unwrap();
    let s = trainer(a.path(), &tok, 2 * N).run(&mut task(&d, tok.pad_id), &AtomicBool::new(false)).unwrap();
    assert_eq!(s.steps_done, 2 * N);
    assert!(s.last_eval.iter().any(|(k, v)| k == "val_loss" && v.is_finite()));

    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: task(&d, tok.pad_id), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut t = trainer(b.path(), &tok, 2 * N);
    assert_eq!(t.resume().unwrap(), Some(N));
    t.run(&mut task(&d, tok.pad_id), &AtomicBool::new(false)).unwrap();

    let la = read_series(&a.path().join("metrics.jsonl"), "sft", "train", "loss");
    let lb = read_series(&b.path().join("metrics.jsonl"), "sft", "train", "loss");
    assert_eq!(la.len(), 2 * N as usize);
    assert_eq!(la, lb, "losses after resume equal the uninterrupted run's");
    assert!(la.last().unwrap().1 < la[0].1, "the loss went down: {la:?}");
    let f = |dir: &Path| std::fs::read(dir.join(format!("sft/step-{:08}/model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "final weights differ");
}

#[test]
fn activation_checkpointing_trains_the_same_weights() {
    // The stage setting reaches the model through the trainer, and recomputing each layer in the
    // backward pass changes nothing the optimizer sees: the same losses and final weights, bit for bit.
    let (tok, d) = data(0.2);
    let run = |recompute: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut t = trainer_with(dir.path(), &tok, 3, recompute);
        assert_eq!(t.model.recompute(), recompute);
        t.run(&mut task(&d, tok.pad_id), &AtomicBool::new(false)).unwrap();
        let losses = read_series(&dir.path().join("metrics.jsonl"), "sft", "train", "loss");
        (losses, std::fs::read(dir.path().join("sft/step-00000003/model.safetensors")).unwrap())
    };
    let (plain, on) = (run(false), run(true));
    assert_eq!(plain.0.len(), 3);
    assert_eq!(plain.0, on.0, "losses");
    assert!(plain.1 == on.1, "final weights differ");
}

#[test]
fn packing_changes_the_layout_not_the_loss() {
    let (tok, d) = data(0.0);
    let refs: Vec<&Example> = d.train.iter().collect();
    let padded = SftBatch::padded(&refs, tok.pad_id);
    let packed = SftBatch::packed(&refs, tok.pad_id, 128);
    assert!(packed.rows < padded.rows, "{} packed rows for {} conversations", packed.rows, padded.rows);
    assert_eq!(packed.real_tokens, padded.real_tokens);
    let m = model(&tok, 3, &Device::flex());
    let a: f32 = sft_loss(&m, &padded).unwrap().into_scalar();
    let b: f32 = sft_loss(&m, &packed).unwrap().into_scalar();
    assert!((a - b).abs() < 1e-5, "padded {a} vs packed {b}: packed conversations must not see each other");
    // Without the segment mask (plain causal attention over the packed row) the loss differs, so
    // the check above can fail.
    let mut leaky = packed.clone();
    leaky.segments = Some(vec![0; packed.rows * packed.seq]);
    let c: f32 = sft_loss(&m, &leaky).unwrap().into_scalar();
    assert!((a - c).abs() > 1e-4, "{a} vs {c}");
}
