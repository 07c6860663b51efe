//! Fused CPU ops with hand-written backward passes, and the one place that chooses between them and
//! the plain burn compositions.
//!
//! On Flex (burn's CPU backend, with or without autodiff) each function here runs a fused kernel:
//! one parallel pass over the data (rayon), GEMMs through the `gemm` crate into outputs allocated
//! once, and a
//! backward written by hand and registered with burn's autodiff through the backend `extension`
//! feature. On every other backend (cuda, wgpu) it runs the plain burn composition in [`plain`],
//! which burn differentiates itself. `HONE_FUSED=0` in the environment, or [`set_enabled`], selects
//! the plain compositions on Flex too (for comparisons).
//!
//! Each op lives in its own file with its slice kernels (`forward`, `backward`), its Flex
//! implementation and its autodiff node; `tests/fused.rs` checks every one against [`plain`] and
//! against central finite differences.

pub mod attention;
pub mod cross_entropy;
pub mod exp;
mod host;
pub mod linear;
pub mod masked_attention;
pub mod plain;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;

/// Products on host slices, for the optimizer updates that run outside autodiff (Muon).
pub use host::{View, gemm_slices};
/// Reading Flex tensors in place (the host decoder's f32 weights) and their shapes (the recomputed layers).
pub(crate) use host::{contiguous as host_contiguous, dims as host_dims, values as host_values};

use burn::backend::DispatchDevice;
use burn::tensor::{Device, Int, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not decided yet (read `HONE_FUSED`), 1: fused, 2: plain.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Turns the fused ops on or off for the whole process (they are on unless `HONE_FUSED=0`).
pub fn set_enabled(on: bool) {
    MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the fused ops are switched on (independent of the device).
pub fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("HONE_FUSED").map_or(true, |v| v != "0");
            set_enabled(on);
            on
        }
        m => m == 1,
    }
}

/// Whether tensors on `device` go through the fused kernels: Flex, plain or autodiff, when enabled.
pub fn active(device: &Device) -> bool {
    enabled() && matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// `x @ wᵀ` for a PyTorch-layout weight `w: [out, in]`; `[batch, seq, in]` → `[batch, seq, out]`.
pub fn linear(x: Tensor<3>, w: &Tensor<2>) -> Tensor<3> {
    if active(&x.device()) { linear::apply(x, w) } else { plain::linear(x, w) }
}

/// RMSNorm over the last axis: `w · x / sqrt(mean(x²) + eps)`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    if active(&x.device()) { rms_norm::apply(x, w, eps) } else { plain::rms_norm(x, w, eps) }
}

/// The SwiGLU gate `silu(gate) · up`.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    if active(&gate.device()) { swiglu::apply(gate, up) } else { plain::swiglu(gate, up) }
}

/// Rotary embedding at positions `0..seq` (rotate-half form): `x [batch, seq, heads, head_dim]`,
/// `cos`, `sin [seq, head_dim]` → shaped as `x`.
pub fn rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    if active(&x.device()) { rope::apply(x, cos, sin) } else { plain::rope(x, cos, sin) }
}

/// Plain causal attention (every query sees keys `0..=i` of its own row) with grouped-query heads:
/// `q [batch, seq, heads, head_dim]`, `k`, `v [batch, seq, kv_heads, head_dim]` →
/// `[batch, seq, heads, head_dim]`. Packed or padded layouts and the KV cache use the masked path
/// in `llama.rs` instead.
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    if active(&q.device()) { attention::apply(q, k, v, scale) } else { plain::causal_attention(q, k, v, scale) }
}

/// Attention under an additive mask (padding, packing, a KV cache): `q [batch, heads, seq, head_dim]`,
/// `k`, `v [batch, kv_heads, kv, head_dim]`, `mask [1 or batch, 1, seq, kv]` →
/// `[batch, heads, seq, head_dim]`. The fused kernel is forward only, so it runs on plain Flex
/// devices (evaluation, sampling); on autodiff devices the plain composition carries the gradients.
pub fn masked_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4>, scale: f64) -> Tensor<4> {
    let device = q.device();
    if active(&device) && !device.is_autodiff() {
        masked_attention::apply(q, k, v, mask, scale)
    } else {
        plain::masked_attention(q, k, v, mask, scale)
    }
}

/// Log-probability of each target token: `logits [batch, seq, vocab]`, `targets [batch, seq]` →
/// `[batch, seq]`.
pub fn token_log_probs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    if active(&logits.device()) {
        cross_entropy::apply(logits, targets)
    } else {
        plain::token_log_probs(logits, targets)
    }
}
