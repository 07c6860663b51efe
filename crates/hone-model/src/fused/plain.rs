//! The unfused compositions of plain burn ops: what every non-Flex backend (cuda, wgpu) runs, and
//! the reference the fused ops are tested against.

use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::{Int, Tensor};

/// `x @ wᵀ` for a PyTorch-layout weight `w: [out, in]`; `x: [batch, seq, in]` → `[batch, seq, out]`.
pub fn linear(x: Tensor<3>, w: &Tensor<2>) -> Tensor<3> {
    let [b, s, i] = x.dims();
    let [o, _] = w.dims();
    x.reshape([b * s, i]).matmul(w.clone().transpose()).reshape([b, s, o])
}

/// RMSNorm over the last axis: `w · x / sqrt(mean(x²) + eps)`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    let ms = x.clone().square().mean_dim(D - 1); // [..., 1]
    x * ms.add_scalar(eps).sqrt().recip() * w.clone().unsqueeze::<D>()
}

/// `silu(gate) · up`.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    silu(gate) * up
}

/// Rotary embedding at positions `0..seq`: `x [batch, seq, heads, head_dim]`, `cos`, `sin
/// [seq, head_dim]`; `x·cos + rotate_half(x)·sin` with `rotate_half([x₁, x₂]) = [−x₂, x₁]`.
pub fn rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [_, s, _, hd] = x.dims();
    let half = hd / 2;
    let (cos, sin) = (cos.clone().reshape([1, s, 1, hd]), sin.clone().reshape([1, s, 1, hd]));
    let rotated = Tensor::cat(vec![x.clone().narrow(3, half, half).neg(), x.clone().narrow(3, 0, half)], 3);
    x * cos + rotated * sin
}

/// Causal attention on `q [batch, seq, heads, head_dim]`, `k`, `v [batch, seq, kv_heads, head_dim]`
/// → `[batch, seq, heads, head_dim]`; query head `h` uses kv head `h / (heads / kv_heads)`.
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    let [b, s, nh, hd] = q.dims();
    let nkv = k.dims()[2];
    let n_rep = nh / nkv;
    let mut m = vec![0f32; s * s];
    for i in 0..s {
        for j in i + 1..s {
            m[i * s + j] = f32::NEG_INFINITY;
        }
    }
    let mask = crate::llama::constant(m, [1, 1, s, s], &q.device());
    let q = q.swap_dims(1, 2); // [b, nh, s, hd]
    let (k, v) = (k.swap_dims(1, 2), v.swap_dims(1, 2)); // [b, nkv, s, hd]
    let (k, v) = if n_rep == 1 {
        (k, v)
    } else {
        let rep = |t: Tensor<4>| t.unsqueeze_dim::<5>(2).repeat_dim(2, n_rep).reshape([b, nh, s, hd]);
        (rep(k), rep(v))
    };
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + mask; // [b, nh, s, s]
    softmax(scores, 3).matmul(v).swap_dims(1, 2) // [b, s, nh, hd]
}

/// Attention under an additive mask on `q [batch, heads, seq, head_dim]`, `k`, `v [batch, kv_heads,
/// kv, head_dim]`, `mask [1 or batch, 1, seq, kv]` → `[batch, heads, seq, head_dim]`. Grouped-query
/// attention without copying K and V per query head: the `n_rep` query heads of one kv head are
/// stacked along the sequence axis (query head `h` uses kv head `h / n_rep`, as HF's `repeat_kv`)
/// and share one product with it.
pub fn masked_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4>, scale: f64) -> Tensor<4> {
    let [b, nh, s, hd] = q.dims();
    let nkv = k.dims()[1];
    let n_rep = nh / nkv;
    let q = q.reshape([b, nkv, n_rep * s, hd]);
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale); // [b, nkv, n_rep*s, kv]
    let kv = scores.dims()[3];
    // The mask broadcasts over kv heads and their n_rep query heads instead of being copied n_rep
    // times in every layer (this path runs in training with packed rows).
    let mb = mask.dims()[0];
    let scores = scores.reshape([b, nkv, n_rep, s, kv]) + mask.reshape([mb, 1, 1, s, kv]);
    softmax(scores.reshape([b, nkv, n_rep * s, kv]), 3).matmul(v).reshape([b, nh, s, hd])
}

/// Log-probability of each target token: `logits [batch, seq, vocab]`, `targets [batch, seq]` →
/// `[batch, seq]`.
pub fn token_log_probs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [b, s, v] = logits.dims();
    let logp = log_softmax(logits.reshape([b * s, v]), 1);
    logp.gather(1, targets.reshape([b * s, 1])).reshape([b, s])
}
