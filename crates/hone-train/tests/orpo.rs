//! ORPO: the loss equals TRL's formula computed in f64 on a fixture of log-probabilities; training
//! moves the preference the right way; the stage resumes bit for bit.

mod post;

use hone_data::chat::ChatTemplate;
use hone_metrics::read_series;
use hone_model::burn::tensor::{Device, Tensor, TensorData};
use hone_train::Trainer;
use hone_train::pairdata::{PairData, encode_pairs};
use hone_train::stages::orpo::{OrpoTask, orpo_loss};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// TRL's `odds_ratio_loss` and NLL term, in f64: the reference the tensor code must match.
fn reference(sums: &[f64], counts: &[f64], lambda: f64) -> (f64, Vec<f64>) {
    let b = sums.len() / 2;
    let avg: Vec<f64> = sums.iter().zip(counts).map(|(s, c)| s / c).collect();
    let log_odds: Vec<f64> =
        (0..b).map(|i| (avg[i] - avg[b + i]) - ((-avg[i].exp()).ln_1p() - (-avg[b + i].exp()).ln_1p())).collect();
    let log_sigmoid = |x: f64| -(1.0 + (-x).exp()).ln();
    let ratio: f64 = log_odds.iter().map(|z| log_sigmoid(*z)).sum::<f64>() / b as f64;
    let nll = -sums[..b].iter().sum::<f64>() / counts[..b].iter().sum::<f64>();
    (nll - lambda * ratio, log_odds)
}

#[test]
fn loss_matches_the_reference_formula() {
    // Summed reply log-probabilities [chosen × 3, rejected × 3] and reply lengths, including a pair
    // where the rejected reply is the likelier one and a one-token reply.
    let sums = [-4.2, -30.5, -0.35, -9.1, -12.0, -2.5];
    let counts = [6.0, 20.0, 1.0, 5.0, 16.0, 3.0];
    for lambda in [0.1, 1.0, 0.0] {
        let t = Tensor::<1>::from_data(
            TensorData::new(sums.iter().map(|x| *x as f32).collect::<Vec<_>>(), [6]),
            &Device::flex(),
        );
        let out = orpo_loss(t, &counts.iter().map(|x| *x as f32).collect::<Vec<_>>(), lambda);
        let (want, want_z) = reference(&sums, &counts, lambda);
        let got: f32 = out.loss.into_scalar();
        assert!((got as f64 - want).abs() < 1e-6, "λ {lambda}: loss {got} vs {want}");
        let z: Vec<f32> = out.log_odds.to_data().try_into_vec().unwrap();
        for (g, w) in z.iter().zip(&want_z) {
            assert!((*g as f64 - w).abs() < 1e-6, "log-odds ratio {g} vs {w}");
        }
        assert!(want_z[1] < 0.0 && want_z[0] > 0.0, "the fixture has pairs on both sides");
    }
}

fn setup() -> (hone_data::tokenizer::Tokenizer, PairData) {
    let tok = tokenizer();
    let all = pairs();
    let d = encode_pairs(&all[..6], &all[6..], &tok, &ChatTemplate::hone_default(), 128, 0.0, 1).unwrap();
    (tok, d)
}

fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64) -> Trainer {
    preference_trainer(dir, tok, "orpo", steps, 2)
}

fn task(tok: &hone_data::tokenizer::Tokenizer, d: &PairData, lambda: f64) -> OrpoTask {
    OrpoTask::new(d.clone(), tok.pad_id, lambda, 2, 3, 2)
}

#[test]
fn training_raises_the_chosen_replies_odds() {
    let (tok, d) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &tok, 12);
    let s = t.run(&mut task(&tok, &d, 1.0), &AtomicBool::new(false)).unwrap();
    let m = dir.path().join("metrics.jsonl");
    let odds = read_series(&m, "orpo", "train", "log_odds_ratio");
    let nll = read_series(&m, "orpo", "train", "nll");
    assert!(odds.last().unwrap().1 > odds[0].1 + 0.1, "log-odds ratio rose: {odds:?}");
    assert!(nll.last().unwrap().1 < nll[0].1 - 0.5, "chosen NLL fell: {nll:?}");
    let margin = read_series(&m, "orpo", "train", "reward_margin");
    assert!(margin.last().unwrap().1 > margin[0].1, "the chosen replies' reward pulled ahead: {margin:?}");
    // The held-out pairs ask about cities the training pairs never name: only their numbers are checked.
    assert!(hone_train::stage::metric(&s.last_eval, "val_nll").is_finite(), "{:?}", s.last_eval);
}

#[test]
fn orpo_resume_is_bit_exact() {
    const N: u64 = 3;
    let (tok, d) = setup();
    let a = tempfile::tempdir().unwrap();
    trainer(a.path(), &tok, 2 * N).run(&mut task(&tok, &d, 0.5), &AtomicBool::new(false)).unwrap();
    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: task(&tok, &d, 0.5), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut t = trainer(b.path(), &tok, 2 * N);
    assert_eq!(t.resume().unwrap(), Some(N));
    t.run(&mut task(&tok, &d, 0.5), &AtomicBool::new(false)).unwrap();
    for field in ["loss", "log_odds_ratio", "nll", "accuracy"] {
        let la = read_series(&a.path().join("metrics.jsonl"), "orpo", "train", field);
        let lb = read_series(&b.path().join("metrics.jsonl"), "orpo", "train", field);
        assert_eq!(la.len(), 2 * N as usize);
        assert_eq!(la, lb, "{field}");
    }
    let f = |dir: &Path| std::fs::read(dir.join(format!("orpo/step-{:08}/model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "final weights differ");
}
