//! Attention under an arbitrary additive mask, forward only, for inference: the layouts the fused
//! causal kernel does not cover (left padding, packed rows, queries after a KV cache). Grouped-query
//! heads as in [`super::attention`]: query head `h` reads kv head `h / (heads / kv_heads)`. Each
//! (row, head) is two single-threaded `gemm` calls and a softmax over the masked scores, in parallel
//! over rows and heads.
//!
//! burn's composition for the same thing (matmul, add, softmax, matmul on `[batch, kv_heads, n_rep ·
//! seq, kv]`) runs one small product per (row, kv head) through the multithreaded path and a
//! single-threaded softmax; scoring ARC-Easy's choices after their shared question spent most of its
//! time there. No gradient flows through this op: on an autodiff device the model keeps the plain
//! composition, and calling it there gives an untracked result.

use super::exp;
use super::host::{Mat, SharedMut, contiguous, dims, gemm, tensor, values};
use burn::backend::AutodiffBackend;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait MaskedAttentionBackend: Backend {
    /// `q [batch, heads, seq, head_dim]`, `k`, `v [batch, kv_heads, kv, head_dim]`, `mask [1 or batch,
    /// 1, seq, kv]` (0 or −∞) → `[batch, heads, seq, head_dim]`.
    fn fused_masked_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Query tokens per row.
    pub seq: usize,
    /// Key tokens per row.
    pub kv: usize,
    pub head_dim: usize,
    /// Rows of the mask: 1 (shared by every row) or `batch`.
    pub mask_rows: usize,
}

impl Dims {
    fn of(q: &[usize], k: &[usize], v: &[usize], mask: &[usize]) -> Dims {
        assert!(q.len() == 4 && k.len() == 4 && mask.len() == 4, "masked attention: 4-d inputs");
        assert_eq!(k, v, "masked attention: k and v differ in shape");
        assert!(q[0] == k[0] && q[3] == k[3], "masked attention: q {q:?} and k {k:?} do not match");
        assert!(k[1] > 0 && q[1].is_multiple_of(k[1]), "masked attention: {} query heads over {} kv heads", q[1], k[1]);
        assert!(
            (mask[0] == 1 || mask[0] == q[0]) && mask[1] == 1 && mask[2] == q[2] && mask[3] == k[2],
            "masked attention: mask {mask:?} is not [1 or {}, 1, {}, {}]",
            q[0],
            q[2],
            k[2]
        );
        Dims { batch: q[0], heads: q[1], kv_heads: k[1], seq: q[2], kv: k[2], head_dim: q[3], mask_rows: mask[0] }
    }
}

/// In place over one row of scores: add the mask row, then softmax. The softmax runs over the span
/// from the first to the last visible key (zero outside it), so a row whose visible keys are
/// `pad..=t` sums in the same lanes as the causal kernel's row `0..=t - pad` and gives its bits: a
/// question scored after a cached, left-padded context matches the question scored on its own. A
/// row whose keys are all masked comes out zero (it never occurs in the model's layouts, where a
/// query always sees itself).
///
/// Returns the index of the first visible key (0 for a fully masked row).
fn masked_softmax(row: &mut [f32], mask: &[f32]) -> usize {
    let visible = |m: &f32| *m != f32::NEG_INFINITY;
    let (Some(first), Some(last)) = (mask.iter().position(visible), mask.iter().rposition(visible)) else {
        row.fill(0.0);
        return 0;
    };
    let (head, rest) = row.split_at_mut(first);
    let (live, tail) = rest.split_at_mut(last + 1 - first);
    head.fill(0.0);
    tail.fill(0.0);
    for (x, m) in live.iter_mut().zip(&mask[first..=last]) {
        *x += m;
    }
    let top = exp::max(live);
    let sum = exp::exp_shifted_sum(live, top);
    super::attention::scale(live, 1.0 / sum);
    first
}

/// Forward on slices: `out [batch, heads, seq, head_dim]`.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], mask: &[f32], d: Dims, scale: f32) -> Vec<f32> {
    let Dims { batch, heads, kv_heads, seq, kv, head_dim: hd, mask_rows } = d;
    assert!(
        q.len() == batch * heads * seq * hd
            && k.len() == batch * kv_heads * kv * hd
            && v.len() == k.len()
            && mask.len() == mask_rows * seq * kv,
        "masked attention: buffer sizes do not match {d:?}"
    );
    let mut out = vec![0f32; q.len()];
    if seq == 0 || hd == 0 {
        return out;
    }
    let n_rep = heads / kv_heads;
    let o = SharedMut(out.as_mut_ptr());
    (0..batch * heads).into_par_iter().for_each_init(
        || (vec![0f32; seq * kv], vec![0f32; hd * seq]),
        |(p, qt), idx| {
            let (b, h) = (idx / heads, idx % heads);
            let kv_off = (b * kv_heads + h / n_rep) * kv * hd;
            let m = &mask[if mask_rows == 1 { 0 } else { b * seq * kv }..][..seq * kv];
            // The queries go in transposed (`[head_dim, seq]`, read back through a transposed view):
            // with both operands contiguous along head_dim and a product of at most 256 scores, the
            // `gemm` crate switches to dot-product kernels that sum in other lanes, so a few
            // continuation tokens against a cached context would score differently in the last bits
            // from the same tokens in a whole causal row (measured on ARC-Easy: 1,500 of 9,501 choices).
            for (t, row) in q[idx * seq * hd..(idx + 1) * seq * hd].chunks(hd).enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    qt[j * seq + t] = x;
                }
            }
            // SAFETY: views stay inside qt/k/v/p; this task alone writes head h of row b of `out`.
            unsafe {
                gemm(
                    seq,
                    kv,
                    hd,
                    p.as_mut_ptr(),
                    kv,
                    false,
                    Mat::rows(qt.as_ptr(), seq).t(),
                    Mat::rows(k[kv_off..].as_ptr(), hd).t(),
                    scale,
                );
            }
            let firsts: Vec<usize> =
                p.chunks_mut(kv).zip(m.chunks(kv)).map(|(row, mrow)| masked_softmax(row, mrow)).collect();
            // P·V per run of query rows whose first visible key is the same, starting the product
            // there: the reduction then adds the same terms in the same order as the causal kernel
            // (a product's bits depend on where its terms start, not on zeros after them).
            let mut i = 0;
            while i < seq {
                let f = firsts[i];
                let run = firsts[i..].iter().take_while(|&&x| x == f).count();
                // SAFETY: as above; rows i..i + run of this head.
                unsafe {
                    gemm(
                        run,
                        hd,
                        kv - f,
                        o.ptr().add(idx * seq * hd + i * hd),
                        hd,
                        false,
                        Mat::rows(p[i * kv + f..].as_ptr(), kv),
                        Mat::rows(v[kv_off + f * hd..].as_ptr(), hd),
                        1.0,
                    );
                }
                i += run;
            }
        },
    );
    out
}

fn flex_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, mask: FlexTensor, scale: f64) -> FlexTensor {
    let (q, k, v, mask) = (contiguous(q), contiguous(k), contiguous(v), contiguous(mask));
    let d = Dims::of(&dims(&q), &dims(&k), &dims(&v), &dims(&mask));
    tensor(forward(values(&q), values(&k), values(&v), values(&mask), d, scale as f32), dims(&q))
}

impl MaskedAttentionBackend for Flex {
    fn fused_masked_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, mask: FlexTensor, scale: f64) -> FlexTensor {
        flex_forward(q, k, v, mask, scale)
    }
}

impl<C: CheckpointStrategy> MaskedAttentionBackend for Autodiff<Flex, C> {
    /// Untracked: the result carries no gradient (see the module header).
    fn fused_masked_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        let inner = |t: FloatTensor<Self>| <Autodiff<Flex, C> as AutodiffBackend>::inner(t);
        <Autodiff<Flex, C> as AutodiffBackend>::from_inner(flex_forward(
            inner(q),
            inner(k),
            inner(v),
            inner(mask),
            scale,
        ))
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::masked_attention` for the choice).
pub fn apply(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4>, scale: f64) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as MaskedAttentionBackend>::fused_masked_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        mask.into_dispatch(),
        scale,
    ))
}
