//! The fused CPU ops (`hone_model::fused`) against the plain burn compositions they replace, on random
//! shapes including odd sizes: forward values and every input gradient to ~1e-5 relative. Then each
//! hand-written backward against central finite differences of its own forward (small shapes, loss
//! accumulated in f64). Finally the whole model, fused against unfused, and with a packed layout.

use hone_model::burn::tensor::{Device, Int, Tensor, TensorData};
use hone_model::fused::{self, attention, cross_entropy, linear, masked_attention, plain, rms_norm, rope, swiglu};
use hone_model::llama::{Layout, cross_entropy as mean_ce, ids_tensor};
use hone_model::{Llama, LlamaConfig};
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn randn(r: &mut impl Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (1.0 - r.random::<f32>(), r.random());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos() * std
        })
        .collect()
}

fn ad() -> Device {
    Device::flex().autodiff()
}

fn leaf<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(v.to_vec(), shape), &ad()).require_grad()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.without_autodiff().into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f64) {
    let e = rel_err(a, b);
    assert!(e <= tol, "{what}: fused and plain differ by {e:.3e} relative (tolerance {tol:.0e})");
}

/// `Σ out ∘ r` for a fixed random `r`, so every output element gets a distinct upstream gradient.
fn weighted_sum<const D: usize>(out: Tensor<D>, r: &[f32]) -> Tensor<1> {
    let w = Tensor::<D>::from_data(TensorData::new(r.to_vec(), out.dims()), &out.device());
    (out * w).sum()
}

/// Central finite differences of `f` (a scalar of the inputs, in f64) against `grad`.
fn check_fd(what: &str, x: &mut [f32], grad: &[f32], f: &mut dyn FnMut(&[f32]) -> f64) {
    let h = 1e-2f32;
    let scale = grad.iter().fold(0f32, |m, g| m.max(g.abs())).max(1e-3);
    for i in 0..x.len() {
        let x0 = x[i];
        x[i] = x0 + h;
        let up = f(x);
        x[i] = x0 - h;
        let down = f(x);
        x[i] = x0;
        let fd = (up - down) / (2.0 * h as f64);
        let err = (fd - grad[i] as f64).abs() / scale as f64;
        assert!(
            err < 2e-3,
            "{what}[{i}]: backward gives {}, finite differences {fd} (error {err:.2e} of max)",
            grad[i]
        );
    }
}

fn dot(a: &[f32], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(a, r)| *a as f64 * *r as f64).sum()
}

#[test]
fn linear_matches_plain_composition() {
    let mut r = rng(10);
    for &(b, s, i, o) in &[(1, 1, 1, 1), (1, 3, 17, 33), (2, 17, 33, 3), (3, 33, 64, 70), (4, 64, 256, 688)] {
        let (x, w, up) = (randn(&mut r, b * s * i, 1.0), randn(&mut r, o * i, 0.1), randn(&mut r, b * s * o, 1.0));
        let run = |fused: bool| {
            let (xt, wt) = (leaf(&x, [b, s, i]), leaf(&w, [o, i]));
            let y = if fused { linear::apply(xt.clone(), &wt) } else { plain::linear(xt.clone(), &wt) };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(xt.grad(&g).unwrap()), host(wt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        let tag = format!("linear [{b}, {s}, {i}] -> {o}");
        assert_close(&format!("{tag} forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("{tag} dx"), &f.1, &p.1, 1e-5);
        assert_close(&format!("{tag} dw"), &f.2, &p.2, 1e-5);
    }
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut r = rng(11);
    let (rows, i, o) = (3, 5, 4);
    let (mut x, mut w, up) = (randn(&mut r, rows * i, 1.0), randn(&mut r, o * i, 1.0), randn(&mut r, rows * o, 1.0));
    let (dx, dw) = linear::backward(&x, &w, &up, rows, i, o);
    let (x0, w0) = (x.clone(), w.clone());
    check_fd("linear dx", &mut x, &dx, &mut |x| dot(&linear::forward(x, &w0, rows, i, o), &up));
    check_fd("linear dw", &mut w, &dw, &mut |w| dot(&linear::forward(&x0, w, rows, i, o), &up));
}

#[test]
fn rms_norm_matches_plain_composition() {
    let mut r = rng(1);
    for &(rows, d) in &[(1, 1), (3, 17), (33, 8), (70, 33), (5, 256)] {
        let x = randn(&mut r, rows * d, 1.0);
        let w = randn(&mut r, d, 1.0);
        let up = randn(&mut r, rows * d, 1.0);
        let run = |fused: bool| {
            let (xt, wt) = (leaf(&x, [1, rows, d]), leaf(&w, [d]));
            let y = if fused { rms_norm::apply(xt.clone(), &wt, 1e-5) } else { plain::rms_norm(xt.clone(), &wt, 1e-5) };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(xt.grad(&g).unwrap()), host(wt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        let tag = format!("rms_norm [{rows}, {d}]");
        assert_close(&format!("{tag} forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("{tag} dx"), &f.1, &p.1, 1e-5);
        assert_close(&format!("{tag} dw"), &f.2, &p.2, 1e-5);
    }
}

#[test]
fn rms_norm_backward_matches_finite_differences() {
    let mut r = rng(2);
    let (rows, d) = (3, 5);
    let mut x = randn(&mut r, rows * d, 1.0);
    let mut w = randn(&mut r, d, 1.0);
    let up = randn(&mut r, rows * d, 1.0);
    let (_, rstd) = rms_norm::forward(&x, &w, 1e-5);
    let (dx, dw) = rms_norm::backward(&x, &w, &rstd, &up);
    let (x0, w0) = (x.clone(), w.clone());
    check_fd("rms_norm dx", &mut x, &dx, &mut |x| dot(&rms_norm::forward(x, &w0, 1e-5).0, &up));
    check_fd("rms_norm dw", &mut w, &dw, &mut |w| dot(&rms_norm::forward(&x0, w, 1e-5).0, &up));
}

#[test]
fn swiglu_matches_plain_composition() {
    let mut r = rng(3);
    for &n in &[1usize, 3, 17, 33, 70_001] {
        let (a, b, up) = (randn(&mut r, n, 2.0), randn(&mut r, n, 1.0), randn(&mut r, n, 1.0));
        let run = |fused: bool| {
            let (at, bt) = (leaf(&a, [n]), leaf(&b, [n]));
            let y = if fused { swiglu::apply(at.clone(), bt.clone()) } else { plain::swiglu(at.clone(), bt.clone()) };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(at.grad(&g).unwrap()), host(bt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        assert_close(&format!("swiglu [{n}] forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("swiglu [{n}] d_gate"), &f.1, &p.1, 1e-5);
        assert_close(&format!("swiglu [{n}] d_up"), &f.2, &p.2, 1e-5);
    }
}

#[test]
fn swiglu_backward_matches_finite_differences() {
    let mut r = rng(4);
    let (mut a, mut b, up) = (randn(&mut r, 9, 2.0), randn(&mut r, 9, 1.0), randn(&mut r, 9, 1.0));
    let (da, db) = swiglu::backward(&a, &b, &up);
    let (a0, b0) = (a.clone(), b.clone());
    check_fd("swiglu d_gate", &mut a, &da, &mut |a| dot(&swiglu::forward(a, &b0), &up));
    check_fd("swiglu d_up", &mut b, &db, &mut |b| dot(&swiglu::forward(&a0, b), &up));
}

#[test]
fn token_log_probs_matches_plain_composition() {
    let mut r = rng(5);
    for &(b, s, v) in &[(1, 1, 1), (1, 3, 17), (2, 17, 33), (3, 33, 300), (2, 5, 4096)] {
        let logits = randn(&mut r, b * s * v, 3.0);
        let t: Vec<i64> = (0..b * s).map(|_| r.random_range(0..v as i64)).collect();
        let up = randn(&mut r, b * s, 1.0);
        let run = |fused: bool| {
            let lt = leaf(&logits, [b, s, v]);
            let tt = Tensor::<2, Int>::from_data(TensorData::new(t.clone(), [b, s]), &ad());
            let y = if fused { cross_entropy::apply(lt.clone(), tt) } else { plain::token_log_probs(lt.clone(), tt) };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(lt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        assert_close(&format!("log_probs [{b}, {s}, {v}] forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("log_probs [{b}, {s}, {v}] d_logits"), &f.1, &p.1, 1e-5);
    }
}

#[test]
fn token_log_probs_backward_matches_finite_differences() {
    let mut r = rng(6);
    let (rows, v) = (4, 7);
    let mut logits = randn(&mut r, rows * v, 2.0);
    let t = vec![0usize, 6, 3, 3];
    let up = randn(&mut r, rows, 1.0);
    let (_, lse) = cross_entropy::forward(&logits, &t, v);
    let d = cross_entropy::backward(&logits, &t, &lse, &up, v);
    check_fd("log_probs d_logits", &mut logits, &d, &mut |x| dot(&cross_entropy::forward(x, &t, v).0, &up));
}

#[test]
fn token_log_probs_rejects_an_out_of_vocabulary_target() {
    let l = Tensor::<3>::zeros([1, 2, 5], &Device::flex());
    let t = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 5], [1, 2]), &Device::flex());
    let err = std::panic::catch_unwind(|| cross_entropy::apply(l, t)).expect_err("target 5 of vocab 5");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("target id 5 is outside the vocabulary of 5"), "{msg}");
}

#[test]
fn rope_matches_plain_composition() {
    let mut r = rng(12);
    for &(b, s, n, hd) in &[(1, 1, 1, 2), (2, 3, 3, 4), (1, 17, 2, 16), (3, 33, 1, 6)] {
        let (x, up) = (randn(&mut r, b * s * n * hd, 1.0), randn(&mut r, b * s * n * hd, 1.0));
        let (cos, sin) = (randn(&mut r, s * hd, 1.0), randn(&mut r, s * hd, 1.0));
        let run = |fused: bool| {
            let xt = leaf(&x, [b, s, n, hd]);
            let table =
                |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [s, hd]), &Device::flex()).autodiff();
            let (ct, st) = (table(&cos), table(&sin));
            let y = if fused { rope::apply(xt.clone(), &ct, &st) } else { plain::rope(xt.clone(), &ct, &st) };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(xt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        assert_close(&format!("rope [{b}, {s}, {n}, {hd}] forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("rope [{b}, {s}, {n}, {hd}] dx"), &f.1, &p.1, 1e-5);
    }
}

#[test]
fn rope_backward_matches_finite_differences() {
    let mut r = rng(13);
    let (s, n, hd) = (3, 2, 4);
    let (mut x, up) = (randn(&mut r, 2 * s * n * hd, 1.0), randn(&mut r, 2 * s * n * hd, 1.0));
    let (cos, sin) = (randn(&mut r, s * hd, 1.0), randn(&mut r, s * hd, 1.0));
    let dx = rope::backward(&up, &cos, &sin, s, n, hd);
    check_fd("rope dx", &mut x, &dx, &mut |x| dot(&rope::forward(x, &cos, &sin, s, n, hd), &up));
}

#[test]
fn attention_matches_plain_composition() {
    let mut r = rng(7);
    // (batch, seq, heads, kv_heads, head_dim)
    for &(b, s, nh, nkv, hd) in
        &[(1, 1, 1, 1, 1), (2, 3, 2, 1, 3), (1, 17, 4, 2, 8), (3, 33, 3, 3, 17), (2, 70, 4, 1, 16)]
    {
        let (q, k, v) = (
            randn(&mut r, b * s * nh * hd, 1.0),
            randn(&mut r, b * s * nkv * hd, 1.0),
            randn(&mut r, b * s * nkv * hd, 1.0),
        );
        let up = randn(&mut r, b * s * nh * hd, 1.0);
        let scale = 1.0 / (hd as f64).sqrt();
        let run = |fused: bool| {
            let (qt, kt, vt) = (leaf(&q, [b, s, nh, hd]), leaf(&k, [b, s, nkv, hd]), leaf(&v, [b, s, nkv, hd]));
            let y = if fused {
                attention::apply(qt.clone(), kt.clone(), vt.clone(), scale)
            } else {
                plain::causal_attention(qt.clone(), kt.clone(), vt.clone(), scale)
            };
            let g = weighted_sum(y.clone(), &up).backward();
            (host(y), host(qt.grad(&g).unwrap()), host(kt.grad(&g).unwrap()), host(vt.grad(&g).unwrap()))
        };
        let (f, p) = (run(true), run(false));
        let tag = format!("attention b{b} s{s} h{nh}/{nkv} d{hd}");
        assert_close(&format!("{tag} forward"), &f.0, &p.0, 1e-5);
        assert_close(&format!("{tag} dq"), &f.1, &p.1, 1e-5);
        assert_close(&format!("{tag} dk"), &f.2, &p.2, 1e-5);
        assert_close(&format!("{tag} dv"), &f.3, &p.3, 1e-5);
    }
}

/// The forward-only masked kernel (inference) against the plain composition: masks per row and
/// shared, grouped-query heads, more keys than queries (a KV cache), rows with masked-out keys
/// (padding) and, on the plain device, a fully masked row (zero where the composition gives NaN).
#[test]
fn masked_attention_matches_plain_composition() {
    let mut r = rng(17);
    let plain_dev = Device::flex();
    // (batch, heads, kv_heads, seq, kv, head_dim, mask rows)
    for &(b, nh, nkv, s, kv, hd, mr) in &[
        (1, 1, 1, 1, 1, 1, 1),
        (2, 2, 1, 3, 5, 3, 2),
        (3, 4, 2, 6, 17, 8, 3),
        (2, 3, 3, 33, 33, 17, 1),
        (4, 4, 1, 1, 40, 16, 4),
    ] {
        let t = |v: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, shape), &plain_dev);
        let (q, k, v) = (
            randn(&mut r, b * nh * s * hd, 1.0),
            randn(&mut r, b * nkv * kv * hd, 1.0),
            randn(&mut r, b * nkv * kv * hd, 1.0),
        );
        // Each row masks a random ~third of its keys, but never the key its query sits on.
        let mask: Vec<f32> = (0..mr * s * kv)
            .map(|i| {
                let (q, k) = ((i / kv) % s, i % kv);
                if k != (kv - s + q) && r.random_range(0..3) == 0 { f32::NEG_INFINITY } else { 0.0 }
            })
            .collect();
        let scale = 1.0 / (hd as f64).sqrt();
        let args = || {
            (
                t(q.clone(), [b, nh, s, hd]),
                t(k.clone(), [b, nkv, kv, hd]),
                t(v.clone(), [b, nkv, kv, hd]),
                t(mask.clone(), [mr, 1, s, kv]),
            )
        };
        let (qa, ka, va, ma) = args();
        let fused_out = host(masked_attention::apply(qa, ka, va, ma, scale));
        let (qa, ka, va, ma) = args();
        let plain_out = host(plain::masked_attention(qa, ka, va, ma, scale));
        assert_close(
            &format!("masked attention b{b} h{nh}/{nkv} s{s} kv{kv} d{hd} m{mr}"),
            &fused_out,
            &plain_out,
            1e-5,
        );
        // The dispatch picks the kernel on a plain device and the composition on an autodiff one.
        let (qa, ka, va, ma) = args();
        assert_eq!(host(fused::masked_attention(qa, ka, va, ma, scale)), fused_out);
    }
    let t = |v: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, shape), &plain_dev);
    let out = masked_attention::apply(
        t(vec![1.0; 4], [1, 1, 2, 2]),
        t(vec![1.0; 4], [1, 1, 2, 2]),
        t(vec![1.0; 4], [1, 1, 2, 2]),
        t(vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY], [1, 1, 2, 2]),
        1.0,
    );
    assert_eq!(host(out), vec![0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn attention_backward_matches_finite_differences() {
    let mut r = rng(8);
    let d = attention::Dims { batch: 2, seq: 5, heads: 4, kv_heads: 2, head_dim: 3 };
    let nq = d.batch * d.seq * d.heads * d.head_dim;
    let nk = d.batch * d.seq * d.kv_heads * d.head_dim;
    let (mut q, mut k, mut v) = (randn(&mut r, nq, 1.0), randn(&mut r, nk, 1.0), randn(&mut r, nk, 1.0));
    let up = randn(&mut r, nq, 1.0);
    let sc = 0.5f32;
    let (out, probs) = attention::forward(&q, &k, &v, d, sc);
    let (dq, dk, dv) = attention::backward(&q, &k, &v, &out, &probs, &up, d, sc);
    let (q0, k0, v0) = (q.clone(), k.clone(), v.clone());
    check_fd("attention dq", &mut q, &dq, &mut |q| dot(&attention::forward(q, &k0, &v0, d, sc).0, &up));
    check_fd("attention dk", &mut k, &dk, &mut |k| dot(&attention::forward(&q0, k, &v0, d, sc).0, &up));
    check_fd("attention dv", &mut v, &dv, &mut |v| dot(&attention::forward(&q0, &k0, v, d, sc).0, &up));
}

fn tiny_config(qk_norm: bool, tie: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 97,
        hidden_size: 32,
        intermediate_size: 40,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        tie_word_embeddings: tie,
        qk_norm,
        initializer_range: 0.2,
        head_dim: None,
        rope_scaling: None,
    }
}

/// The whole model's loss and every gradient with the fused ops and without (the only test here that
/// switches the process-wide choice, so it cannot disturb the others, which call the ops directly).
#[test]
fn model_loss_and_gradients_match_unfused() {
    let (b, s) = (3, 19);
    let mut r = rng(9);
    let ids: Vec<u32> = (0..b * s).map(|_| r.random_range(0..97)).collect();
    let tg: Vec<u32> = (0..b * s).map(|_| r.random_range(0..97)).collect();
    let segments: Vec<u32> = (0..b * s).map(|i| ((i % s) / 7) as u32).collect();
    for (qk_norm, tie) in [(false, false), (true, true)] {
        let model = Llama::init(&tiny_config(qk_norm, tie), 11, &ad()).unwrap();
        for packed in [false, true] {
            let run = |on: bool| {
                fused::set_enabled(on);
                let dev = ad();
                let layout = if packed { Layout::packed(&segments, b, s, &dev) } else { Layout::causal(b, s, &dev) };
                let logits = model.forward_with(ids_tensor(&ids, b, s, &dev), &layout);
                let loss = mean_ce(logits, ids_tensor(&tg, b, s, &dev));
                let g = loss.clone().backward();
                let grads: Vec<Vec<f32>> = model.params().iter().map(|(_, p)| p.grad(&g).unwrap().to_vec()).collect();
                (host(loss), grads)
            };
            let (f, p) = (run(true), run(false));
            fused::set_enabled(true);
            let tag = format!("model qk_norm={qk_norm} tie={tie} packed={packed}");
            assert_close(&format!("{tag} loss"), &f.0, &p.0, 1e-5);
            for (i, (a, b)) in f.1.iter().zip(&p.1).enumerate() {
                assert_close(&format!("{tag} gradient {i}"), a, b, 2e-5);
            }
        }
    }
}
