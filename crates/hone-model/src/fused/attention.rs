//! Fused causal self-attention with grouped-query heads, `softmax(QKᵀ·scale + causal) V`, with its
//! hand-written backward. Inputs stay in the projections' natural layout (`[batch, seq, heads,
//! head_dim]`, no transposes); each (row, head) is two single-threaded `gemm` calls and a masked
//! softmax, run in parallel over rows and heads. Forward keeps the attention probabilities
//! (`[batch, heads, seq, seq]`, what burn's composition keeps too); backward, per (row, kv head) so
//! the query heads sharing a kv head accumulate into it without races, is
//! `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P∘(dP − rowsum(dO∘O))`, `dQ = dS K·scale`, `dK = dSᵀ Q·scale`.
//! Query head `h` reads kv head `h / (heads / kv_heads)`, as Hugging Face's `repeat_kv`.

use super::exp;
use super::host::{Mat, SharedMut, contiguous, dims, gemm, tensor, values};
use crate::simd::simd_fn;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

#[backend_extension(Flex, Autodiff)]
pub trait AttentionBackend: Backend {
    /// `q [batch, seq, heads, head_dim]`, `k`, `v [batch, seq, kv_heads, head_dim]` →
    /// `[batch, seq, heads, head_dim]`.
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Dims {
    fn of(q: &[usize], k: &[usize], v: &[usize]) -> Dims {
        assert!(q.len() == 4 && k.len() == 4, "attention: q, k, v are [batch, seq, heads, head_dim]");
        assert_eq!(k, v, "attention: k and v differ in shape");
        assert!(q[0] == k[0] && q[1] == k[1] && q[3] == k[3], "attention: q {q:?} and k {k:?} do not match");
        assert!(k[2] > 0 && q[2].is_multiple_of(k[2]), "attention: {} query heads over {} kv heads", q[2], k[2]);
        Dims { batch: q[0], seq: q[1], heads: q[2], kv_heads: k[2], head_dim: q[3] }
    }
}

/// In place: row `i` of the `[seq, seq]` scores becomes the softmax over keys `0..=i`, zero after.
fn causal_softmax(p: &mut [f32], seq: usize) {
    for (i, row) in p.chunks_mut(seq).enumerate() {
        let (live, dead) = row.split_at_mut(i + 1);
        let m = exp::max(live);
        let sum = exp::exp_shifted_sum(live, m);
        scale(live, 1.0 / sum);
        dead.fill(0.0);
    }
}

simd_fn! {
    /// `x ← x · factor`.
    pub fn scale(xs: &mut [f32], factor: f32) {
        xs.iter_mut().for_each(|x| *x *= factor);
    }
}

simd_fn! {
    /// One query row of the softmax backward: `ds ← p · (ds − o·g)` (`o`, `g`: the row's output and
    /// its gradient, `[head_dim]`).
    pub fn softmax_grad_row(ds: &mut [f32], p: &[f32], o: &[f32], g: &[f32]) {
        let di: f32 = o.iter().zip(g).map(|(a, b)| a * b).sum();
        for (x, &pv) in ds.iter_mut().zip(p) {
            *x = pv * (*x - di);
        }
    }
}

/// Forward on slices: `(out, probs)`.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], d: Dims, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let Dims { batch, seq, heads, kv_heads, head_dim: hd } = d;
    let n_rep = heads / kv_heads;
    let mut out = vec![0f32; batch * seq * heads * hd];
    let mut probs = vec![0f32; batch * heads * seq * seq];
    if seq == 0 {
        return (out, probs);
    }
    let o = SharedMut(out.as_mut_ptr());
    probs.par_chunks_mut(seq * seq).enumerate().for_each(|(idx, p)| {
        let (b, h) = (idx / heads, idx % heads);
        let g = h / n_rep;
        let q = q[b * seq * heads * hd + h * hd..].as_ptr();
        let k = k[b * seq * kv_heads * hd + g * hd..].as_ptr();
        let v = v[b * seq * kv_heads * hd + g * hd..].as_ptr();
        // SAFETY: views stay inside q/k/v/probs; this task alone writes head h of row b of `out`.
        unsafe {
            gemm(
                seq,
                seq,
                hd,
                p.as_mut_ptr(),
                seq,
                false,
                Mat::rows(q, heads * hd),
                Mat::rows(k, kv_heads * hd).t(),
                scale,
            );
            causal_softmax(p, seq);
            let dst = o.ptr().add(b * seq * heads * hd + h * hd);
            gemm(seq, hd, seq, dst, heads * hd, false, Mat::rows(p.as_ptr(), seq), Mat::rows(v, kv_heads * hd), 1.0);
        }
    });
    (out, probs)
}

/// Backward on slices: `(dq, dk, dv)` for upstream `go` (shaped as `out`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    probs: &[f32],
    go: &[f32],
    d: Dims,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { batch, seq, heads, kv_heads, head_dim: hd } = d;
    let n_rep = heads / kv_heads;
    let mut dq = vec![0f32; q.len()];
    let mut dk = vec![0f32; k.len()];
    let mut dv = vec![0f32; v.len()];
    if seq == 0 {
        return (dq, dk, dv);
    }
    let (dqp, dkp, dvp) = (SharedMut(dq.as_mut_ptr()), SharedMut(dk.as_mut_ptr()), SharedMut(dv.as_mut_ptr()));
    (0..batch * kv_heads).into_par_iter().for_each_init(
        || vec![0f32; seq * seq],
        |ds, idx| {
            let (b, g) = (idx / kv_heads, idx % kv_heads);
            let kv_off = b * seq * kv_heads * hd + g * hd;
            let kr = Mat::rows(k[kv_off..].as_ptr(), kv_heads * hd);
            let vr = Mat::rows(v[kv_off..].as_ptr(), kv_heads * hd);
            for r in 0..n_rep {
                let h = g * n_rep + r;
                let q_off = b * seq * heads * hd + h * hd;
                let qr = Mat::rows(q[q_off..].as_ptr(), heads * hd);
                let gor = Mat::rows(go[q_off..].as_ptr(), heads * hd);
                let p = &probs[(b * heads + h) * seq * seq..][..seq * seq];
                // SAFETY: views stay inside their buffers; this task alone writes kv head g of row b
                // of dk/dv and query heads g*n_rep.. of row b of dq.
                unsafe {
                    let acc = r > 0;
                    gemm(
                        seq,
                        hd,
                        seq,
                        dvp.ptr().add(kv_off),
                        kv_heads * hd,
                        acc,
                        Mat::rows(p.as_ptr(), seq).t(),
                        gor,
                        1.0,
                    );
                    gemm(seq, seq, hd, ds.as_mut_ptr(), seq, false, gor, vr.t(), 1.0);
                }
                for i in 0..seq {
                    let o = &out[q_off + i * heads * hd..][..hd];
                    let gi = &go[q_off + i * heads * hd..][..hd];
                    softmax_grad_row(&mut ds[i * seq..(i + 1) * seq], &p[i * seq..(i + 1) * seq], o, gi);
                }
                // SAFETY: as above.
                unsafe {
                    let dsm = Mat::rows(ds.as_ptr(), seq);
                    gemm(seq, hd, seq, dqp.ptr().add(q_off), heads * hd, false, dsm, kr, scale);
                    gemm(seq, hd, seq, dkp.ptr().add(kv_off), kv_heads * hd, r > 0, dsm.t(), qr, scale);
                }
            }
        },
    );
    (dq, dk, dv)
}

fn flex_forward(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, scale: f64) -> (FlexTensor, Vec<f32>) {
    let d = Dims::of(&dims(q), &dims(k), &dims(v));
    let (out, probs) = forward(values(q), values(k), values(v), d, scale as f32);
    (tensor(out, dims(q)), probs)
}

impl AttentionBackend for Flex {
    fn fused_causal_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f64) -> FlexTensor {
        flex_forward(&contiguous(q), &contiguous(k), &contiguous(v), scale).0
    }
}

#[derive(Debug)]
struct AttentionBackward;

/// What backward needs: the inputs, the output and the probabilities.
#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    probs: Arc<Vec<f32>>,
    scale: f32,
}

impl Backward<Flex, 3> for AttentionBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let go = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let d = Dims::of(&dims(&s.q), &dims(&s.k), &dims(&s.v));
        let (dq, dk, dv) =
            backward(values(&s.q), values(&s.k), values(&s.v), values(&s.out), &s.probs, values(&go), d, s.scale);
        for (node, grad, like) in [(node_q, dq, &s.q), (node_k, dk, &s.k), (node_v, dv, &s.v)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor(grad, dims(like)));
            }
        }
    }
}

impl<C: CheckpointStrategy> AttentionBackend for Autodiff<Flex, C> {
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        let qp = contiguous(q.primitive().clone());
        let kp = contiguous(k.primitive().clone());
        let vp = contiguous(v.primitive().clone());
        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, probs) = flex_forward(&qp, &kp, &vp, scale);
                let saved =
                    Saved { q: qp, k: kp, v: vp, out: out.clone(), probs: Arc::new(probs), scale: scale as f32 };
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(&qp, &kp, &vp, scale).0),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::causal_attention` for the choice).
pub fn apply(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as AttentionBackend>::fused_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
    ))
}
