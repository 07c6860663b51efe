//! RL: GRPO and RLOO advantages match hand computations; a step's samples and loss are a pure
//! function of (weights, step), so resume is bit for bit; at step 0 the KL to the reference is 0; one
//! optimizer step raises the likelihood of the rewarded samples against the others, measured on the host.

mod post;

use hone_data::chat::ChatTemplate;
use hone_metrics::read_series;
use hone_model::Llama;
use hone_model::burn::tensor::Device;
use hone_model::llama::ids_tensor;
use hone_train::stages::rl::{Algorithm, RewardSource, RlConfig, RlTask, Rollouts, read_prompts};
use hone_train::{LoopSettings, Task, Trainer};
use post::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[test]
fn advantages_match_hand_computation() {
    let r = [1.0, 0.0, 0.0, 1.0];
    // mean 0.5, sample std sqrt(1/3).
    let g = Algorithm::Grpo.advantages(&r);
    let s = (1.0f64 / 3.0).sqrt() + 1e-4;
    for (a, x) in g.iter().zip(r) {
        assert!((a - (x - 0.5) / s).abs() < 1e-12, "{g:?}");
    }
    // Leave-one-out: 1 − (0 + 0 + 1)/3 = 2/3; 0 − 2/3.
    let l = Algorithm::Rloo.advantages(&r);
    assert!((l[0] - 2.0 / 3.0).abs() < 1e-12 && (l[1] + 2.0 / 3.0).abs() < 1e-12, "{l:?}");
    assert!(Algorithm::Grpo.advantages(&[1.0, 1.0, 1.0]).iter().all(|a| *a == 0.0), "no signal in a uniform group");
}

fn task(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, reference: &hone_model::Llama) -> RlTask {
    task_with(dir, tok, reference, &["a"], "contains_any")
}

/// The RL task over the city questions; a completion is rewarded when `scorer` matches it with the
/// capital or one of `common`, which lets an untrained model's samples be rewarded some of the time.
fn task_with(
    dir: &Path,
    tok: &hone_data::tokenizer::Tokenizer,
    reference: &hone_model::Llama,
    common: &[&str],
    scorer: &str,
) -> RlTask {
    let records: Vec<serde_json::Value> = CITIES
        .iter()
        .map(|(c, k)| {
            let targets = [&[*k], common].concat();
            serde_json::json!({"prompt": format!("What is the capital of {c}?"), "targets": targets,
                "scorer": scorer, "kind": "fact"})
        })
        .collect();
    let path = dir.join("rl.jsonl");
    write_jsonl(&path, &records);
    let prompts = read_prompts(&[path], true, &[]).unwrap();
    let (train, val) = (prompts[..6].to_vec(), prompts[6..].to_vec());
    let mut cfg =
        RlConfig { group_size: 4, prompts_per_step: 2, max_new_tokens: 6, kl_beta: 0.1, ..RlConfig::default() };
    cfg.common.run.seed = 3;
    RlTask::new(train, val, tok.clone(), &ChatTemplate::hone_default(), reference, RewardSource::Verifier, &cfg)
        .unwrap()
}

fn trainer(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64) -> Trainer {
    trainer_with(dir, tok, steps, &optim())
}

fn trainer_with(dir: &Path, tok: &hone_data::tokenizer::Tokenizer, steps: u64, o: &hone_train::OptimConfig) -> Trainer {
    let settings = LoopSettings {
        stage: "rl".into(),
        steps,
        grad_accum: 1,
        eval_every: 0,
        checkpoint_every: 0,
        keep_last: 2,
        log_every: 1,
        seed: 3,
        config_hash: "t".into(),
        progress: false,
        extra_files: vec![],
        activation_checkpointing: false,
    };
    let m = model(tok, 6, &Device::flex().autodiff());
    Trainer::new(m, o, settings, &dir.join("rl"), Some(&dir.join("metrics.jsonl"))).unwrap()
}

#[test]
fn step_zero_kl_is_zero_and_resume_is_bit_exact() {
    const N: u64 = 2;
    let tok = tokenizer();
    let reference = model(&tok, 6, &Device::flex());
    let a = tempfile::tempdir().unwrap();
    let mut t = task(a.path(), &tok, &reference);
    let mut tr = trainer(a.path(), &tok, 2 * N);
    t.loss(&tr.model, 0, 0).unwrap();
    let m = t.train_metrics();
    let kl = m.iter().find(|(k, _)| k == "kl").unwrap().1;
    assert!(kl.abs() < 1e-6, "policy = reference at step 0, KL {kl}");
    assert!(m.iter().any(|(k, v)| k == "completion_len" && *v > 0.0), "{m:?}");
    let s = tr.run(&mut t, &AtomicBool::new(false)).unwrap();
    assert!(s.last_eval.iter().any(|(k, _)| k == "val_reward_fact"), "{:?}", s.last_eval);

    let b = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopping = StopAt { inner: task(b.path(), &tok, &reference), stop: stop.clone(), at: N };
    let s = trainer(b.path(), &tok, 2 * N).run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted && s.steps_done == N);
    let mut tr = trainer(b.path(), &tok, 2 * N);
    assert_eq!(tr.resume().unwrap(), Some(N));
    tr.run(&mut task(b.path(), &tok, &reference), &AtomicBool::new(false)).unwrap();
    for field in ["loss", "reward_mean", "kl", "completion_len"] {
        let la = read_series(&a.path().join("metrics.jsonl"), "rl", "train", field);
        let lb = read_series(&b.path().join("metrics.jsonl"), "rl", "train", field);
        assert_eq!(la.len(), 2 * N as usize, "{field}");
        assert_eq!(la, lb, "{field}");
    }
    let kl = read_series(&a.path().join("metrics.jsonl"), "rl", "train", "kl");
    assert!(kl.last().unwrap().1 > 0.0, "the policy moved away from the reference: {kl:?}");
    let f = |dir: &Path| std::fs::read(dir.join(format!("rl/step-{:08}/model.safetensors", 2 * N))).unwrap();
    assert!(f(a.path()) == f(b.path()), "final weights differ");
}

#[test]
fn bad_rl_records_are_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("rl.jsonl");
    write_jsonl(&p, &[serde_json::json!({"prompt": "x", "scorer": "telepathy"})]);
    let e = read_prompts(std::slice::from_ref(&p), true, &[]).unwrap_err().to_string();
    assert!(e.contains("rl.jsonl:1") && e.contains("unknown scorer `telepathy`"), "{e}");
    write_jsonl(&p, &[serde_json::json!({"prompt": "x"})]);
    let e = read_prompts(&[p], true, &[]).unwrap_err().to_string();
    assert!(e.contains("no field `scorer`"), "{e}");
}

/// Mean log-probability of each row's completion tokens under `model`, from its logits on the host in
/// f64: a second computation, independent of the training code's `token_log_probs` and batching.
fn completion_logps(model: &Llama, r: &Rollouts) -> Vec<f64> {
    let m = model.to_inference();
    let d = Device::flex();
    r.prompts
        .iter()
        .zip(&r.gens)
        .map(|(p, g)| {
            let ids: Vec<u32> = p.iter().chain(&g.tokens).copied().collect();
            let logits: Vec<f32> =
                m.forward(ids_tensor(&ids, 1, ids.len(), &d)).into_data().try_to_vec::<f32>().unwrap(); // [1, len, vocab]
            let v = logits.len() / ids.len();
            let lp: f64 = (p.len()..ids.len())
                .map(|t| {
                    let row = &logits[(t - 1) * v..t * v];
                    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                    let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
                    row[ids[t] as usize] as f64 - lse
                })
                .sum();
            lp / g.tokens.len() as f64
        })
        .collect()
}

#[test]
fn a_step_raises_the_rewarded_samples_against_the_others() {
    let tok = tokenizer();
    let reference = model(&tok, 6, &Device::flex());
    let dir = tempfile::tempdir().unwrap();
    let mut t = task_with(dir.path(), &tok, &reference, &["e"], "regex");
    // A small first step, so the change in log-probability is close to its first-order value.
    let o = hone_train::OptimConfig { lr: 1e-3, warmup_steps: 0, ..optim() };
    let mut tr = trainer_with(dir.path(), &tok, 1, &o);
    let r = t.rollouts(&tr.model, 0, 0).unwrap();
    assert!(r.gens.iter().all(|g| !g.tokens.is_empty()), "every sample has tokens");
    let (won, lost) =
        (r.advantages.iter().filter(|a| **a > 0.1).count(), r.advantages.iter().filter(|a| **a < -0.1).count());
    assert!(
        won > 0 && lost > 0,
        "step 0 needs groups with mixed rewards: {:?} {:?}",
        r.rewards,
        r.gens.iter().map(|g| &g.text).collect::<Vec<_>>()
    );
    // The share of groups that teach nothing (every completion scored the same), as logged.
    let g = t.group_size;
    let uniform =
        r.rewards.chunks(g).filter(|c| c.iter().all(|x| *x == c[0])).count() as f64 / (r.rewards.len() / g) as f64;
    t.objective(&tr.model, &r);
    let logged = t.train_metrics().into_iter().find(|(k, _)| k == "uniform_groups").expect("uniform_groups logged").1;
    assert_eq!(logged, uniform, "rewards {:?}", r.rewards);
    assert!(uniform < 1.0, "some group is mixed (checked above)");
    // A step of two micro-batches logs their mean, not the last one's.
    let r1 = t.rollouts(&tr.model, 0, 1).unwrap();
    t.objective(&tr.model, &r);
    t.objective(&tr.model, &r1);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let logged = t.train_metrics().into_iter().find(|(k, _)| k == "reward_mean").unwrap().1;
    assert_ne!(mean(&r.rewards), mean(&r1.rewards), "the check needs micro-batches that differ");
    let want = (mean(&r.rewards) + mean(&r1.rewards)) / 2.0;
    assert!((logged - want).abs() < 1e-12, "logged {logged}, mean of the two micro-batches {want}");
    let before = completion_logps(&tr.model, &r);
    tr.run(&mut t, &AtomicBool::new(false)).unwrap();
    let after = completion_logps(&tr.model, &r);
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // The objective's first-order change: advantage-weighted rise in per-token log-probability.
    let gain: f64 = r.advantages.iter().zip(&delta).map(|(a, d)| a * d).sum();
    assert!(gain > 0.0, "advantage-weighted change {gain}: advantages {:?}, changes {delta:?}", r.advantages);
    let mean = |pos: bool| {
        let v: Vec<f64> =
            r.advantages.iter().zip(&delta).filter(|(a, _)| (**a > 0.0) == pos).map(|(_, d)| *d).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(true) > mean(false), "rewarded samples gained {} per token, the others {}", mean(true), mean(false));
    // Not only relatively: the rewarded samples' own likelihood rose and the others' fell.
    assert!(mean(true) > 0.0, "the rewarded samples' per-token log-probability changed by {}", mean(true));
    assert!(mean(false) < 0.0, "the other samples' per-token log-probability changed by {}", mean(false));
}
