//! Resume is bit for bit: training 2N steps straight, and training N steps, stopping (the Ctrl-C
//! path: the loop finishes the step, writes a checkpoint, returns), then resuming in a fresh trainer
//! to 2N, give `==` losses for steps N+1..2N and identical final weights and optimizer state.
//! Also: the non-finite guard, and a corrupted checkpoint file named in the error.

mod common;

use common::*;
use hone_metrics::read_series;
use hone_model::Llama;
use hone_model::burn::tensor::{Device, Tensor};
use hone_train::{LoopSettings, OptimConfig, PretrainConfig, Task, Trainer};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn trainer(dir: &Path, optim: &OptimConfig, p: &PretrainConfig) -> Trainer {
    let device = Device::flex().autodiff();
    let model = Llama::init(&micro_config(), p.run.seed, &device).unwrap();
    let settings = LoopSettings::from_pretrain(p, "test".into(), false);
    Trainer::new(model, optim, settings, &dir.join("pretrain"), Some(&dir.join("metrics.jsonl"))).unwrap()
}

fn final_files(dir: &Path, step: u64) -> (Vec<u8>, Vec<u8>) {
    let c = dir.join(format!("pretrain/step-{step:08}"));
    (std::fs::read(c.join("model.safetensors")).unwrap(), std::fs::read(c.join("optimizer.safetensors")).unwrap())
}

fn resume_case(optimizer: &str) {
    const N: u64 = 3;
    let p = pretrain_config(2 * N);
    let optim = optim_config(optimizer);
    let (train, val) = (tokens(4000, 1), tokens(1000, 2));

    let straight = tempfile::tempdir().unwrap();
    let mut t = trainer(straight.path(), &optim, &p);
    let s = t.run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    assert!(!s.interrupted);
    assert_eq!(s.steps_done, 2 * N);

    let resumed = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut t = trainer(resumed.path(), &optim, &p);
    let mut stopping = StopAfter { inner: task(&train, &val, &p), stop: stop.clone(), at: N };
    let s = t.run(&mut stopping, &stop).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.steps_done, N);
    drop(t);
    let mut t = trainer(resumed.path(), &optim, &p);
    assert_eq!(t.resume().unwrap(), Some(N));
    let s = t.run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    assert_eq!(s.steps_done, 2 * N);

    let la = read_series(&straight.path().join("metrics.jsonl"), "pretrain", "train", "loss");
    let lb = read_series(&resumed.path().join("metrics.jsonl"), "pretrain", "train", "loss");
    assert_eq!(la.len(), 2 * N as usize);
    assert_eq!(lb.len(), 2 * N as usize);
    for i in N as usize..2 * N as usize {
        assert_eq!(la[i].0, lb[i].0);
        assert!(la[i].1 == lb[i].1, "{optimizer}: step {}: loss {} straight vs {} resumed", la[i].0, la[i].1, lb[i].1);
    }
    assert!(la[2 * N as usize - 1].1 < la[0].1, "the loss went down: {la:?}");
    let (ma, oa) = final_files(straight.path(), 2 * N);
    let (mb, ob) = final_files(resumed.path(), 2 * N);
    assert!(ma == mb, "{optimizer}: final weights differ");
    assert!(oa == ob, "{optimizer}: final optimizer state differs");
}

#[test]
fn resume_is_bit_exact_adamw() {
    resume_case("adamw");
}

#[test]
fn resume_is_bit_exact_muon() {
    resume_case("muon");
}

#[test]
fn corrupted_checkpoint_file_is_named() {
    let p = pretrain_config(2);
    let optim = optim_config("adamw");
    let (train, val) = (tokens(2000, 1), tokens(500, 2));
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &optim, &p);
    t.run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    let f = dir.path().join("pretrain/step-00000002/optimizer.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&f, bytes).unwrap();
    let mut t = trainer(dir.path(), &optim, &p);
    let e = format!("{:#}", t.resume().unwrap_err());
    assert!(e.contains("optimizer.safetensors") && e.contains("corrupted"), "{e}");
}

/// A damaged newest checkpoint is skipped (its MANIFEST no longer matches) and training resumes
/// from the one before it, ending with the same weights as a run that was never damaged.
#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous() {
    let mut p = pretrain_config(4);
    p.run.checkpoint_every = 2;
    let optim = optim_config("adamw");
    let (train, val) = (tokens(2000, 1), tokens(500, 2));
    let straight = tempfile::tempdir().unwrap();
    trainer(straight.path(), &optim, &p).run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    p.run.steps = 3; // checkpoints at 2 and 3 (the last step writes one)
    trainer(dir.path(), &optim, &p).run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    let f = dir.path().join("pretrain/step-00000003/model.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(&f, bytes).unwrap();
    p.run.steps = 4;
    let mut t = trainer(dir.path(), &optim, &p);
    assert_eq!(t.resume().unwrap(), Some(2), "resumed from the intact checkpoint");
    t.run(&mut task(&train, &val, &p), &AtomicBool::new(false)).unwrap();
    assert_eq!(final_files(dir.path(), 4), final_files(straight.path(), 4), "the same weights as an undamaged run");
}

/// Returns a non-finite loss at step `bad` (1-based).
struct Poisoned<'a> {
    inner: hone_train::stages::pretrain::PretrainTask<'a>,
    bad: u64,
}

impl Task for Poisoned<'_> {
    fn loss(&mut self, model: &Llama, step: u64, micro: usize) -> anyhow::Result<(Tensor<1>, u64)> {
        let (l, n) = self.inner.loss(model, step, micro)?;
        Ok(if step + 1 == self.bad { (l.mul_scalar(f32::NAN), n) } else { (l, n) })
    }
    fn evaluate(&mut self, model: &Llama) -> anyhow::Result<Vec<(String, f64)>> {
        self.inner.evaluate(model)
    }
}

#[test]
fn nonfinite_loss_stops_with_the_step_or_is_skipped() {
    let p = pretrain_config(4);
    let (train, val) = (tokens(2000, 1), tokens(500, 2));
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &optim_config("adamw"), &p);
    let mut task_ = Poisoned { inner: task(&train, &val, &p), bad: 3 };
    let e = t.run(&mut task_, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(e.contains("step 3") && e.contains("not finite"), "{e}");
    assert_eq!(t.step, 2, "stopped before updating at step 3");

    let skip = OptimConfig { on_nonfinite: hone_train::config::OnNonFinite::Skip, ..optim_config("adamw") };
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), &skip, &p);
    let mut task_ = Poisoned { inner: task(&train, &val, &p), bad: 3 };
    for _ in 0..2 {
        t.train_step(&mut task_).unwrap();
    }
    let before = hone_model::weights::model_to_safetensors(&t.model).unwrap();
    let out = t.train_step(&mut task_).unwrap();
    assert!(out.skipped && out.step == 3);
    assert!(before == hone_model::weights::model_to_safetensors(&t.model).unwrap(), "a skipped step changes nothing");
    assert_eq!(t.optimizer.step, 2, "nor the optimizer's step count");
    let out = t.train_step(&mut task_).unwrap();
    assert!(!out.skipped && out.loss.is_finite());
    assert_eq!(t.skipped_steps, 1);
}
