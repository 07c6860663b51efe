//! DPO: the loss is ln 2 at step 0 when the policy is the reference; each variant's loss equals a
//! hand computation; the reference's log-probabilities never change while the policy trains; the
//! stage resumes bit for bit.

mod post;

use hone_data::chat::ChatTemplate;
use hone_metrics::read_series;
use hone_model::burn::tensor::{Device, Tensor};
use hone_train::pairdata::{PairData, encode_pairs};
use hone_train::stages::dpo::{DpoLoss, DpoTask, ReferenceLogps, reference_key};
use hone_train::{Task, Trainer};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn setup() -> (hone_data::tokenizer::Tokenizer, PairData) {
    let tok = tokenizer();
    let all = pairs();
    let d = encode_pairs(&all[..6], &all[6..], &tok, &ChatTemplate::hone_default(), 128, 0.0, 1).unwrap();
    (tok, d)
}

fn task(tok: &hone_data::tokenizer::Tokenizer, d: &PairData, loss: DpoLoss, reference: &hone_model::Llama) -> DpoTask {
    let len = d.longest();
    let key = reference_key(reference, d, len).unwrap();
    let refs = ReferenceLogps::compute(reference, d, tok.pad_id, len, 4, key);
    DpoTask::new(d.clone(), refs, loss, tok.pad_id, 2, 4, 1)
}

#[test]
fn step_zero_loss_is_ln2_when_policy_is_reference() {
    let (tok, d) = setup();
    let device = Device::flex().autodiff();
    let policy = model(&tok, 7, &device);
    let mut t = task(&tok, &d, DpoLoss::Sigmoid { beta: 0.1, label_smoothing: 0.0 }, &policy);
    for micro in 0..2 {
        let (loss, _) = t.loss(&policy, 0, micro).unwrap();
        let v: f32 = loss.without_autodiff().into_scalar();
        assert!((v as f64 - std::f64::consts::LN_2).abs() < 1e-6, "step-0 loss {v}");
    }
    let m = t.train_metrics();
    assert!(m.iter().any(|(k, v)| k == "reward_margin" && v.abs() < 1e-5), "{m:?}");
    // A much larger β would expose any reference/policy mismatch.
    let mut t = task(&tok, &d, DpoLoss::Sigmoid { beta: 100.0, label_smoothing: 0.0 }, &policy);
    let v: f32 = t.loss(&policy, 0, 0).unwrap().0.without_autodiff().into_scalar();
    assert!((v as f64 - std::f64::consts::LN_2).abs() < 1e-3, "β = 100: {v}");
}

fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn each_variant_matches_a_hand_computation() {
    let d = Device::flex();
    let v = |x: &[f32]| Tensor::<1>::from_floats(x, &d);
    let (pc, pr, rc, rr) = ([-10.0f32, -4.0], [-12.0f32, -3.0], [-11.0f32, -5.0], [-11.5f32, -2.5]);
    let host = |t: Tensor<1>| -> Vec<f32> { t.to_data().try_into_vec().unwrap() };
    let run = |l: DpoLoss| {
        let (loss, wc, wr) = l.losses(v(&pc), v(&pr), v(&rc), v(&rr));
        (host(loss), host(wc), host(wr))
    };
    // sigmoid, ε = 0.1: z = β((pc − rc) − (pr − rr)); loss = 0.9·softplus(−z) + 0.1·softplus(z).
    let (beta, eps) = (0.1, 0.1);
    let (loss, wc, wr) = run(DpoLoss::Sigmoid { beta, label_smoothing: eps });
    for i in 0..2 {
        let z = beta * ((pc[i] - rc[i]) as f64 - (pr[i] - rr[i]) as f64);
        let want = (1.0 - eps) * softplus(-z) + eps * softplus(z);
        assert!((loss[i] as f64 - want).abs() < 1e-6, "sigmoid {i}: {} vs {want}", loss[i]);
        assert!((wc[i] as f64 - beta * (pc[i] - rc[i]) as f64).abs() < 1e-6);
        assert!((wr[i] as f64 - beta * (pr[i] - rr[i]) as f64).abs() < 1e-6);
    }
    // Pair 0 by hand: z = 0.1·((−10 + 11) − (−12 + 11.5)) = 0.15.
    assert!((loss[0] as f64 - (0.9 * softplus(-0.15) + 0.1 * softplus(0.15))).abs() < 1e-6);
    // ipo: (h − 1/(2β))², h = (pc − rc) − (pr − rr).
    let beta = 0.5;
    let (loss, _, _) = run(DpoLoss::Ipo { beta });
    for i in 0..2 {
        let h = (pc[i] - rc[i]) as f64 - (pr[i] - rr[i]) as f64;
        let want = (h - 1.0 / (2.0 * beta)).powi(2);
        assert!((loss[i] as f64 - want).abs() < 1e-5, "ipo {i}: {} vs {want}", loss[i]);
    }
    assert!((loss[0] - 0.25).abs() < 1e-6, "pair 0: h = 1.5, (1.5 − 1)² = 0.25");
    // simpo: z = β(pc − pr) − γ, reference ignored.
    let (beta, gamma) = (2.0, 0.5);
    let (loss, wc, _) = run(DpoLoss::Simpo { beta, gamma, label_smoothing: 0.0 });
    for i in 0..2 {
        let z = beta * (pc[i] - pr[i]) as f64 - gamma;
        assert!((loss[i] as f64 - softplus(-z)).abs() < 1e-5, "simpo {i}: {} vs {}", loss[i], softplus(-z));
        assert!((wc[i] as f64 - beta * pc[i] as f64).abs() < 1e-5);
    }
}

fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64) -> Trainer {
    preference_trainer(dir, tok, "dpo", steps, 1)
}

#[test]
fn reference_is_frozen_and_training_learns_the_preference() {
    let (tok, d) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &tok, 12);
    let reference = t.model.to_inference();
    let ref_bytes = hone_model::weights::model_to_safetensors(&reference).unwrap();
    let loss = DpoLoss::Sigmoid { beta: 0.5, label_smoothing: 0.0 };
    let mut dpo = task(&tok, &d, loss, &reference);
    let before = dpo.reference.clone();
    let s = t.run(&mut dpo, &AtomicBool::new(false)).unwrap();
    assert_eq!(dpo.reference, before, "cached reference values changed");
    assert!(hone_model::weights::model_to_safetensors(&reference).unwrap() == ref_bytes, "reference weights changed");
    let again = task(&tok, &d, loss, &reference).reference;
    assert_eq!(again, before, "the reference recomputed after training gives the same values");
    assert_ne!(hone_model::weights::model_to_safetensors(&t.model).unwrap(), ref_bytes, "the policy moved");
    let losses = read_series(&dir.path().join("metrics.jsonl"), "dpo", "train", "loss");
    assert!(losses.last().unwrap().1 < losses[0].1 - 0.05, "{losses:?}");
    let acc = hone_train::stage::metric(&s.last_eval, "val_accuracy");
    assert!(acc.is_finite(), "{:?}", s.last_eval);
    let margins = read_series(&dir.path().join("metrics.jsonl"), "dpo", "train", "reward_margin");
    assert!(margins.last().unwrap().1 > 0.0, "{margins:?}");
}

#[test]
fn reference_cache_is_reused_only_for_the_same_key() {
    let (tok, d) = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference_logps.json");
    let m = model(&tok, 7, &Device::flex());
    let len = d.longest();
    let key = reference_key(&m, &d, len).unwrap();
    let (a, reused) = hone_train::reference::cached(&path, &key, || {
        Ok(ReferenceLogps::compute(&m, &d, tok.pad_id, len, 4, key.clone()))
    })
    .unwrap();
    assert!(!reused);
    let (b, reused) = hone_train::reference::cached(&path, &key, || panic!("must not recompute")).unwrap();
    assert!(reused && a == b, "f32 values survive the JSON round trip exactly");
    let other = model(&tok, 8, &Device::flex());
    assert_ne!(reference_key(&other, &d, len).unwrap(), key);
}

#[test]
fn dpo_resume_is_bit_exact() {
    const N: u64 = 3;
    let (tok, d) = setup();
    let reference = model(&tok, 7, &Device::flex());
    let loss = DpoLoss::Sigmoid { beta: 0.1, label_smoothing: 0.0 };
    let a = tempfile::tempdir().unwrap();
    trainer(a.path(), &tok, 2 * N).run(&mut task(&tok, &d, loss, &reference), &AtomicBool::new(false)).unwrap();
    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: task(&tok, &d, loss, &reference), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut t = trainer(b.path(), &tok, 2 * N);
    assert_eq!(t.resume().unwrap(), Some(N));
    t.run(&mut task(&tok, &d, loss, &reference), &AtomicBool::new(false)).unwrap();
    for field in ["loss", "reward_margin", "accuracy"] {
        let la = read_series(&a.path().join("metrics.jsonl"), "dpo", "train", field);
        let lb = read_series(&b.path().join("metrics.jsonl"), "dpo", "train", field);
        assert_eq!(la.len(), 2 * N as usize);
        assert_eq!(la, lb, "{field}");
    }
    let f = |dir: &Path| std::fs::read(dir.join(format!("dpo/step-{:08}/model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "final weights differ");
}

#[test]
fn rpo_adds_the_chosen_replies_per_token_nll() {
    let (tok, d) = setup();
    let device = Device::flex().autodiff();
    let policy = model(&tok, 7, &device);
    let len = d.longest();
    let key = reference_key(&policy, &d, len).unwrap();
    let refs = ReferenceLogps::compute(&policy, &d, tok.pad_id, len, 4, key);
    // One batch of every training pair, so the batch's mean is over all of them.
    let n = d.train.len();
    let mut t = DpoTask::new(
        d.clone(),
        refs.clone(),
        DpoLoss::Sigmoid { beta: 0.1, label_smoothing: 0.0 },
        tok.pad_id,
        2,
        n,
        1,
    );
    t.rpo_alpha = 0.5;
    let v: f32 = t.loss(&policy, 0, 0).unwrap().0.without_autodiff().into_scalar();
    // At step 0 the policy is the reference: the DPO part is ln 2 and the chosen replies' per-token
    // log-likelihoods are the reference's cached sums over token counts.
    let nll: f64 = refs.train.iter().map(|r| -(r[0] as f64) / (r[2] as f64)).sum::<f64>() / n as f64;
    let want = std::f64::consts::LN_2 + 0.5 * nll;
    assert!(nll > 0.1, "a random model's replies are unlikely: {nll}");
    assert!((v as f64 - want).abs() < 1e-4 * want, "loss {v}, hand {want}");
}

/// `sequence_logps` against a hand computation that does not share its code: each side encoded
/// alone, the model's logits for it read back, the log-softmax taken on the host in f64, and the
/// log-probabilities of the reply tokens (the mask's positions, never the prompt or the padding)
/// summed, or averaged over the reply's token count.
#[test]
fn sequence_logps_sum_the_reply_tokens_only() {
    use hone_model::llama::ids_tensor;
    use hone_train::pairdata::{PairRows, sequence_logps};
    let (tok, d) = setup();
    let device = Device::flex();
    let m = model(&tok, 3, &device);
    let pairs: Vec<_> = d.train.iter().take(2).collect();
    let len = pairs.iter().map(|p| p.chosen.ids.len().max(p.rejected.ids.len())).max().unwrap() + 5; // padding too
    let rows = PairRows::new(&pairs, tok.pad_id, len);
    let host = |t: Tensor<1>| t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let (sums, means) = (host(sequence_logps(&m, &rows, false)), host(sequence_logps(&m, &rows, true)));
    let sides: Vec<_> = pairs.iter().map(|p| &p.chosen).chain(pairs.iter().map(|p| &p.rejected)).collect();
    for (i, e) in sides.iter().enumerate() {
        let n = e.ids.len();
        let logits: Vec<f32> = m
            .forward(ids_tensor(&e.ids[..n - 1], 1, n - 1, &device))
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let vocab = logits.len() / (n - 1);
        let (mut reply, mut all, mut count) = (0f64, 0f64, 0usize);
        for t in 0..n - 1 {
            let row = &logits[t * vocab..(t + 1) * vocab];
            let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = top + row.iter().map(|&x| (x as f64 - top).exp()).sum::<f64>().ln();
            let lp = row[e.ids[t + 1] as usize] as f64 - lse;
            all += lp;
            if e.mask[t + 1] {
                reply += lp;
                count += 1;
            }
        }
        assert!(count > 0 && count < n - 1, "row {i}: the reply is part of the sequence");
        assert!((sums[i] as f64 - reply).abs() < 1e-3, "row {i}: {} vs {reply}", sums[i]);
        assert!(
            (means[i] as f64 - reply / count as f64).abs() < 1e-4,
            "row {i}: {} vs {}",
            means[i],
            reply / count as f64
        );
        // Counting the prompt would be far off: the check can tell the two apart.
        assert!((all - reply).abs() > 0.5, "row {i}: the prompt's tokens carry weight");
    }
}
