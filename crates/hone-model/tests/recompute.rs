//! Activation checkpointing (`Llama::set_recompute`) changes what the backward pass keeps, never what
//! it computes: with it on, the loss and every gradient equal the plain graph's, for full
//! fine-tuning and for an adapter with dropout, with and without QK-norm: bit for bit under plain
//! causal attention (the fused kernels rerun on the same inputs), to rounding under packed rows
//! (whose masked path sums some gradients in another order); a frozen
//! model (a preference stage's reference) computes the same values and records nothing; and the
//! parameters' gradients still match central finite differences through the recomputed node.

use hone_model::burn::tensor::{Device, Tensor};
use hone_model::llama::{Layout, ids_tensor, token_log_probs};
use hone_model::lora::{Lora, LoraSpec, Target};
use hone_model::{Llama, LlamaConfig, Param};
use rand::{Rng, SeedableRng};

mod common;

fn config(qk_norm: bool) -> LlamaConfig {
    common::tiny_config(53, 32, 48, 3, qk_norm)
}

fn ad() -> Device {
    Device::flex().autodiff()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.without_autodiff().into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

const B: usize = 2;
const S: usize = 13;

fn tokens(seed: u64) -> Vec<u32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..B * S).map(|_| r.random_range(0..53)).collect()
}

/// Mean negative log-likelihood of the batch, plain causal or packed (two segments per row).
fn loss(m: &Llama, packed: bool) -> Tensor<1> {
    let d = m.device().clone();
    let (ids, tg) = (ids_tensor(&tokens(1), B, S, &d), ids_tensor(&tokens(2), B, S, &d));
    let logits = if packed {
        let segments: Vec<u32> = (0..B * S).map(|i| u32::from(i % S >= 5) + 2 * (i / S) as u32).collect();
        m.forward_with(ids, &Layout::packed(&segments, B, S, &d))
    } else {
        m.forward(ids)
    };
    token_log_probs(logits, tg).mean().neg()
}

/// The loss and the gradient of every trained tensor (the adapter's when there is one).
fn grads(m: &Llama, packed: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
    let l = loss(m, packed);
    let g = l.backward();
    let params = match m.lora() {
        Some(lora) => lora.params(),
        None => m.params(),
    };
    let gs = params
        .iter()
        .map(|(s, p)| match p.grad(&g) {
            Some(Param::Vector(t)) => host(t),
            Some(Param::Matrix(t)) => host(t),
            None => panic!("{} got no gradient", s.name),
        })
        .collect();
    (host(l), gs)
}

fn adapted(m: &mut Llama, dropout: f64) {
    let spec = LoraSpec { rank: 4, alpha: 8.0, dropout, targets: Target::ALL.to_vec(), rslora: false };
    let d = m.device().clone();
    let mut lora = Lora::init(spec, "base".into(), &m.config, 5, &d).unwrap();
    // A random B too: a fresh adapter's B is zero, which would hide a wrong A path.
    common::random_b(&mut lora, &d, 9);
    m.attach_lora(lora).unwrap();
    let lora = m.lora().unwrap().with_dropout_seed(77);
    *m.lora_mut().unwrap() = lora;
}

#[test]
fn recomputed_layers_give_the_plain_graphs_loss_and_gradients_exactly() {
    for qk in [false, true] {
        for lora in [false, true] {
            for packed in [false, true] {
                let mut m = Llama::init(&config(qk), 3, &ad()).unwrap();
                if lora {
                    adapted(&mut m, 0.25);
                }
                let (l0, g0) = grads(&m, packed);
                m.set_recompute(true);
                let (l1, g1) = grads(&m, packed);
                let case = format!("qk_norm {qk}, lora {lora}, packed {packed}");
                if packed {
                    // Off the graph the masked path's plain burn ops may lay out a product's
                    // operands otherwise (equal to rounding).
                    assert!((l0[0] - l1[0]).abs() <= 1e-6 * l0[0].abs(), "{case}: loss {l0:?} vs {l1:?}");
                } else {
                    assert_eq!(l0, l1, "{case}: loss");
                }
                assert_eq!(g0.len(), g1.len());
                for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
                    assert!(a.iter().any(|v| *v != 0.0), "{case}: gradient {i} is zero");
                    let top = a.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    if packed {
                        // The masked path sums a residual gradient's three terms in another order
                        // inside the recomputed graph: equal to rounding.
                        assert!(worst <= 1e-5 * top, "{case}: gradient {i} differs by {worst} (largest {top})");
                    } else {
                        assert!(worst == 0.0, "{case}: gradient {i} differs by {worst} (largest {top})");
                    }
                }
            }
        }
    }
}

#[test]
fn a_frozen_model_computes_the_same_and_records_nothing() {
    let mut m = Llama::init(&config(false), 3, &ad()).unwrap();
    adapted(&mut m, 0.0);
    let plain = host(loss(&m.without_lora(), false));
    m.set_recompute(true);
    let reference = m.without_lora();
    let l = loss(&reference, false);
    assert_eq!(plain, host(l.clone()));
    // The reference's tensors are constants: nothing to differentiate.
    assert!(!l.is_require_grad());
}

#[test]
fn gradients_through_the_recomputed_node_match_finite_differences() {
    let mut m = Llama::init(&config(true), 3, &ad()).unwrap();
    m.set_recompute(true);
    let (_, g) = grads(&m, true);
    let params = m.params();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let eps = 1e-2f32;
    let mut checked = 0;
    for (k, (spec, p)) in params.iter().enumerate() {
        // A few entries of every layer tensor (the embedding and head are outside the recomputed
        // layers; the plain-graph tests cover them).
        if !spec.name.contains("layers.") {
            continue;
        }
        let base = p.to_vec();
        for _ in 0..3 {
            let i = r.random_range(0..base.len());
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let mut probe = m.to_inference();
                probe
                    .update_params(|s, q| {
                        Ok(if s.name == spec.name {
                            q.like(Tensor::<1>::from_floats(v.as_slice(), &Device::flex()))
                        } else {
                            q
                        })
                    })
                    .unwrap();
                f64::from(host(loss(&probe, true))[0])
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            let an = f64::from(g[k][i]);
            assert!(
                (fd - an).abs() <= 2e-3 + 2e-2 * an.abs(),
                "{}[{i}]: analytic {an}, finite difference {fd}",
                spec.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 11 * 3);
}
