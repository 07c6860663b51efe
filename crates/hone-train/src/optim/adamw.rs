//! AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments, ε added to the
//! bias-corrected √v; the same arithmetic as `torch.optim.AdamW` (single-tensor path), on flat tensors.

use burn::tensor::Tensor;

#[derive(Debug, Clone, Copy)]
pub struct AdamWHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One AdamW step for a parameter `p` with gradient `g` and moments `m`, `v` (all `[numel]`), at
/// 1-based step `t`. Returns the new `(p, m, v)`.
pub fn step(
    p: Tensor<1>,
    g: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    h: &AdamWHyper,
    t: u64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let p = if h.weight_decay != 0.0 { p.mul_scalar(1.0 - h.lr * h.weight_decay) } else { p };
    // m ← m + (g − m)(1 − β₁): PyTorch's lerp form.
    let m = m.clone() + (g.clone() - m).mul_scalar(1.0 - h.beta1);
    let v = v.mul_scalar(h.beta2) + g.square().mul_scalar(1.0 - h.beta2);
    let bc1 = 1.0 - h.beta1.powi(t as i32);
    let bc2 = 1.0 - h.beta2.powi(t as i32);
    let denom = v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(h.eps);
    let p = p - (m.clone() / denom).mul_scalar(h.lr / bc1);
    (p, m, v)
}
