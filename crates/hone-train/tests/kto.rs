//! KTO: the loss equals TRL's formula computed in f64 on a fixture of log-probabilities (reference
//! point from mismatched completions, detached and clamped at zero, separate weights); each example
//! is scored against another example's completion; the stage resumes bit for bit.

mod post;

use hone_data::Location;
use hone_data::chat::{ChatTemplate, Message};
use hone_data::unpaired::Unpaired;
use hone_metrics::read_series;
use hone_model::burn::tensor::{Device, Tensor, TensorData};
use hone_train::stages::kto::{KtoData, KtoLoss, KtoReference, KtoTask, encode};
use hone_train::{Task, Trainer};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// TRL's `kto_loss` (loss_type "kto") in f64: the reference the tensor code must match.
fn reference(policy: &[f64], reference: &[f64], kl_policy: &[f64], kl_ref: &[f64], labels: &[bool], l: KtoLoss) -> f64 {
    let n = kl_policy.len() as f64;
    let kl = (kl_policy.iter().zip(kl_ref).map(|(p, r)| p - r).sum::<f64>() / n).max(0.0);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let losses: Vec<f64> = (0..labels.len())
        .map(|i| {
            let r = policy[i] - reference[i];
            if labels[i] {
                l.desirable_weight * (1.0 - sigmoid(l.beta * (r - kl)))
            } else {
                l.undesirable_weight * (1.0 - sigmoid(l.beta * (kl - r)))
            }
        })
        .collect();
    losses.iter().sum::<f64>() / losses.len() as f64
}

#[test]
fn loss_matches_the_reference_formula() {
    let policy = [-12.5, -30.25, -7.0, -18.0, -3.5];
    let refs = [-13.0, -28.0, -7.25, -15.5, -3.0];
    let labels = [true, false, true, false, false];
    // Mismatched completions: once with the policy above the reference (a positive reference point),
    // once below it (clamped to zero).
    for (kl_policy, kl_ref) in [
        ([-40.0, -35.5, -52.0, -20.0, -33.0], [-41.0, -36.0, -51.5, -22.0, -33.25]),
        ([-44.0, -38.0, -55.0, -23.0, -36.0], [-41.0, -36.0, -51.5, -22.0, -33.25]),
    ] {
        for l in [
            KtoLoss { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0 },
            KtoLoss { beta: 0.5, desirable_weight: 1.0, undesirable_weight: 1.33 },
        ] {
            let f = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
            let z0 = KtoLoss::reference_point(&f(&kl_policy), &f(&kl_ref));
            assert!(z0 >= 0.0);
            let t = Tensor::<1>::from_data(TensorData::new(f(&policy), [5]), &Device::flex());
            let (losses, rewards) = l.losses(t, &f(&refs), &labels, z0);
            let got: f32 = losses.mean().into_scalar();
            let want = reference(&policy, &refs, &kl_policy, &kl_ref, &labels, l);
            assert!((got as f64 - want).abs() < 1e-6, "{l:?} z0 {z0}: loss {got} vs {want}");
            let rewards: Vec<f32> = rewards.to_data().try_into_vec().unwrap();
            for i in 0..5 {
                assert!((rewards[i] as f64 - l.beta * (policy[i] - refs[i])).abs() < 1e-6);
            }
        }
    }
    let z_pos = KtoLoss::reference_point(&[-40.0, -35.5], &[-41.0, -36.0]);
    let z_neg = KtoLoss::reference_point(&[-44.0, -38.0], &[-41.0, -36.0]);
    assert!((z_pos - 0.75).abs() < 1e-9 && z_neg == 0.0, "{z_pos} {z_neg}");
}

fn examples() -> Vec<Unpaired> {
    CITIES
        .iter()
        .enumerate()
        .flat_map(|(i, (c, k))| {
            let wrong = CITIES[(i + 3) % CITIES.len()].1;
            let one = move |reply: String, label: bool, line: u64| Unpaired {
                prompt: vec![Message::new("user", format!("What is the capital of {c}?"))],
                completion: vec![Message::new("assistant", reply)],
                label,
                file: "mem.jsonl".into(),
                loc: Location::Line { line, offset: 0 },
            };
            [
                one(format!("The capital of {c} is {k}."), true, 2 * i as u64 + 1),
                one(format!("The capital of {c} is {wrong}. {i}"), false, 2 * i as u64 + 2),
            ]
        })
        .collect()
}

fn setup() -> (hone_data::tokenizer::Tokenizer, KtoData) {
    let tok = tokenizer();
    let all = examples();
    let d = encode(&all[..12], &all[12..], &tok, &ChatTemplate::hone_default(), 128, 0.0, 1).unwrap();
    (tok, d)
}

#[test]
fn each_example_is_scored_against_another_examples_completion() {
    let (tok, d) = setup();
    assert_eq!((d.train.len(), d.val.len()), (12, 4));
    for (i, e) in d.train.iter().enumerate() {
        let next = &d.train[(i + 1) % d.train.len()];
        let reply = |ex: &hone_train::batch::Example| -> Vec<u32> {
            ex.ids.iter().zip(&ex.mask).filter(|(_, m)| **m).map(|(t, _)| *t).collect()
        };
        assert_eq!(reply(&e.pair.rejected), reply(&next.pair.chosen), "example {i}: mismatched completion");
        assert_ne!(reply(&e.pair.rejected), reply(&e.pair.chosen), "example {i}: not its own completion");
        let prompt = |ex: &hone_train::batch::Example| ex.ids.iter().zip(&ex.mask).take_while(|(_, m)| !**m).count();
        assert_eq!(e.pair.chosen.ids[..prompt(&e.pair.chosen)], e.pair.rejected.ids[..prompt(&e.pair.rejected)]);
    }
    assert_eq!(d.train.iter().filter(|e| e.label).count(), 6);
    let _ = tok;
}

fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64) -> Trainer {
    preference_trainer(dir, tok, "kto", steps, 1)
}

fn task(tok: &hone_data::tokenizer::Tokenizer, d: &KtoData, reference: &hone_model::Llama, beta: f64) -> KtoTask {
    let key = KtoReference::key(reference, d).unwrap();
    let refs = KtoReference::compute(reference, d, tok.pad_id, 4, key);
    let loss = KtoLoss { beta, desirable_weight: 1.0, undesirable_weight: 1.0 };
    KtoTask::new(d.clone(), refs, loss, tok.pad_id, 2, 4, 1)
}

#[test]
fn step_zero_is_half_and_training_separates_the_labels() {
    let (tok, d) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &tok, 15);
    let reference = t.model.to_inference();
    let mut kto = task(&tok, &d, &reference, 0.5);
    // Policy = reference: every log-ratio and the reference point are 0, so each loss is 1 − σ(0).
    let (loss, _) = kto.loss(&t.model, 0, 0).unwrap();
    let v: f32 = loss.without_autodiff().into_scalar();
    assert!((v - 0.5).abs() < 1e-4, "step-0 loss {v}");
    kto.train_metrics();
    t.run(&mut kto, &AtomicBool::new(false)).unwrap();
    let m = dir.path().join("metrics.jsonl");
    let margin = read_series(&m, "kto", "train", "reward_margin");
    assert!(margin.last().unwrap().1 > margin[0].1 + 0.1, "desirable rewards pulled ahead: {margin:?}");
    let kl = read_series(&m, "kto", "train", "kl");
    assert!(kl.iter().all(|(_, k)| *k >= 0.0), "the reference point is clamped at 0: {kl:?}");
}

#[test]
fn kto_resume_is_bit_exact() {
    const N: u64 = 3;
    let (tok, d) = setup();
    let reference = model(&tok, 7, &Device::flex());
    let a = tempfile::tempdir().unwrap();
    trainer(a.path(), &tok, 2 * N).run(&mut task(&tok, &d, &reference, 0.1), &AtomicBool::new(false)).unwrap();
    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: task(&tok, &d, &reference, 0.1), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut t = trainer(b.path(), &tok, 2 * N);
    assert_eq!(t.resume().unwrap(), Some(N));
    t.run(&mut task(&tok, &d, &reference, 0.1), &AtomicBool::new(false)).unwrap();
    for field in ["loss", "reward_margin", "kl"] {
        let la = read_series(&a.path().join("metrics.jsonl"), "kto", "train", field);
        let lb = read_series(&b.path().join("metrics.jsonl"), "kto", "train", field);
        assert_eq!(la.len(), 2 * N as usize);
        assert_eq!(la, lb, "{field}");
    }
    let f = |dir: &Path| std::fs::read(dir.join(format!("kto/step-{:08}/model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "final weights differ");
}
