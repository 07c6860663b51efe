//! The optimizer every stage uses: AdamW for all parameters, or Muon for hidden weight matrices with
//! AdamW for the rest. Its state (moments, momentum buffers, step count) saves to and loads from a
//! safetensors file as raw f32, so a resumed run continues bit for bit.

pub mod adamw;
pub mod fused;
pub mod fused_muon;
pub mod muon;

use crate::config::{OptimConfig, OptimizerKind};
use crate::grads::Grads;
use crate::trainable::Trainable;
use burn::tensor::{Device, Tensor, TensorData};
use hone_model::weights::{HostTensor, read_f32, write_f32};
use hone_model::{Param, ParamKind, ParamSpec};
use std::collections::{BTreeMap, HashMap};

/// Per-parameter optimizer state (tensor handles; the variants differ only in handle size).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum State {
    Adam { m: Tensor<1>, v: Tensor<1> },
    Muon { momentum: Tensor<2> },
}

#[derive(Debug, Clone)]
pub struct Optimizer {
    cfg: OptimConfig,
    /// AdamW steps taken (for bias correction); skipped steps do not count.
    pub step: u64,
    states: Vec<State>,
    specs: Vec<ParamSpec>,
}

impl Optimizer {
    /// Fresh state (zero moments) for `model`'s parameters.
    pub fn new(cfg: &OptimConfig, model: &impl Trainable) -> anyhow::Result<Optimizer> {
        cfg.validate()?;
        let plain = model.device().clone().without_autodiff();
        let specs: Vec<ParamSpec> = model.params().into_iter().map(|(s, _)| s).collect();
        let states = specs
            .iter()
            .map(|s| {
                let n: usize = s.shape.iter().product();
                if uses_muon(cfg, s) {
                    State::Muon { momentum: Tensor::<2>::zeros([s.shape[0], s.shape[1]], &plain) }
                } else {
                    State::Adam { m: Tensor::<1>::zeros([n], &plain), v: Tensor::<1>::zeros([n], &plain) }
                }
            })
            .collect();
        Ok(Optimizer { cfg: cfg.clone(), step: 0, states, specs })
    }

    /// The peak AdamW learning rate (the one logged as `lr`).
    pub fn peak_lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Whether `spec` is decayed by AdamW under this config: 2-D weight matrices (projections and an
    /// untied head) always, embeddings and norm gains only when asked.
    pub fn decays(&self, spec: &ParamSpec) -> bool {
        match spec.kind {
            ParamKind::Matrix | ParamKind::Head | ParamKind::Adapter => true,
            ParamKind::Embedding => self.cfg.decay_embeddings,
            ParamKind::Norm => self.cfg.decay_norms,
        }
    }

    /// One update of every parameter with `grads`, at `lr_mult` times the peak learning rates.
    pub fn apply(&mut self, model: &mut impl Trainable, grads: &Grads, lr_mult: f64) -> anyhow::Result<()> {
        anyhow::ensure!(grads.tensors.len() == self.states.len(), "gradient count does not match the model");
        self.step += 1;
        let t = self.step;
        let c = self.cfg.clone();
        let decays: Vec<bool> = self.specs.iter().map(|s| self.decays(s)).collect();
        let mut i = 0;
        let states = &mut self.states;
        model.update_params(&mut |spec, p| {
            let g = grads.tensors[i].clone();
            let flat = p.flat().without_autodiff();
            let new = match &mut states[i] {
                State::Adam { m, v } => {
                    let h = adamw::AdamWHyper {
                        lr: c.lr * lr_mult,
                        beta1: c.beta1,
                        beta2: c.beta2,
                        eps: c.eps,
                        weight_decay: if decays[i] { c.weight_decay } else { 0.0 },
                    };
                    // One fused parallel pass on Flex; tensor ops on other backends.
                    let (np, nm, nv) = if hone_model::fused::active(&flat.device()) {
                        fused::adamw(flat, g, m.clone(), v.clone(), &h, t)
                    } else {
                        adamw::step(flat, g, m.clone(), v.clone(), &h, t)
                    };
                    (*m, *v) = (nm, nv);
                    p.like(np)
                }
                State::Muon { momentum } => {
                    let [r, cols] = [spec.shape[0], spec.shape[1]];
                    let (lr, mu, ns) = (c.muon_lr * lr_mult, c.muon_momentum, c.muon_ns_steps);
                    let (p2, g2) = (flat.reshape([r, cols]), g.reshape([r, cols]));
                    // Parallel host passes and multithreaded gemm on Flex; tensor ops on other backends.
                    let (np, nb) = if hone_model::fused::active(&p2.device()) {
                        fused_muon::muon(p2, g2, momentum.clone(), lr, mu, ns)
                    } else {
                        muon::step(p2, g2, momentum.clone(), lr, mu, ns)
                    };
                    *momentum = nb;
                    Param::Matrix(np)
                }
            };
            i += 1;
            Ok(new)
        })
    }

    /// The state as a safetensors file: `adam.m/<param>`, `adam.v/<param>`, `muon.momentum/<param>`
    /// (raw f32), with the step count and optimizer kind in the metadata.
    pub fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = BTreeMap::new();
        let host = |t: &Tensor<1>| -> HostTensor {
            HostTensor { shape: t.dims().to_vec(), data: t.to_data().convert::<f32>().try_into_vec().expect("f32") }
        };
        for (spec, st) in self.specs.iter().zip(&self.states) {
            match st {
                State::Adam { m, v } => {
                    out.insert(format!("adam.m/{}", spec.name), host(m));
                    out.insert(format!("adam.v/{}", spec.name), host(v));
                }
                State::Muon { momentum } => {
                    let mut h = host(&momentum.clone().reshape([-1]));
                    h.shape = spec.shape.clone();
                    out.insert(format!("muon.momentum/{}", spec.name), h);
                }
            }
        }
        // One metadata key, so the file's bytes do not depend on hash-map order.
        let state = serde_json::json!({ "optimizer": self.cfg.optimizer, "step": self.step }).to_string();
        let meta = HashMap::from([("hone.optimizer".to_string(), state)]);
        write_f32(&out, Some(meta))
    }

    /// Restores state written by [`Optimizer::to_safetensors`]; `origin` names the file in errors.
    pub fn load_safetensors(&mut self, bytes: &[u8], origin: &str, device: &Device) -> anyhow::Result<()> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| anyhow::anyhow!("{origin}: not a valid safetensors file: {e}"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let state: serde_json::Value = meta
            .get("hone.optimizer")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| anyhow::anyhow!("{origin}: metadata field `hone.optimizer` missing or not JSON"))?;
        let kind = state["optimizer"].as_str().unwrap_or("?");
        anyhow::ensure!(
            kind == self.cfg.optimizer.to_string(),
            "{origin}: optimizer state is for `{kind}`, the config says optim.optimizer = `{}`",
            self.cfg.optimizer
        );
        self.step = state["step"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("{origin}: metadata `hone.optimizer.step` missing or not a number"))?;
        let mut tensors = read_f32(bytes, origin)?;
        let plain = device.clone().without_autodiff();
        let mut take = |key: String, shape: &[usize]| -> anyhow::Result<TensorData> {
            let t = tensors.remove(&key).ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{key}`"))?;
            let n: usize = shape.iter().product();
            anyhow::ensure!(t.data.len() == n, "{origin}: tensor `{key}` has {} values, expected {n}", t.data.len());
            Ok(TensorData::new(t.data, shape.to_vec()))
        };
        for (spec, st) in self.specs.iter().zip(self.states.iter_mut()) {
            let n: usize = spec.shape.iter().product();
            match st {
                State::Adam { m, v } => {
                    *m = Tensor::<1>::from_data(take(format!("adam.m/{}", spec.name), &[n])?, &plain);
                    *v = Tensor::<1>::from_data(take(format!("adam.v/{}", spec.name), &[n])?, &plain);
                }
                State::Muon { momentum } => {
                    *momentum =
                        Tensor::<2>::from_data(take(format!("muon.momentum/{}", spec.name), &spec.shape)?, &plain);
                }
            }
        }
        Ok(())
    }
}

fn uses_muon(cfg: &OptimConfig, spec: &ParamSpec) -> bool {
    cfg.optimizer == OptimizerKind::Muon && spec.kind == ParamKind::Matrix
}
