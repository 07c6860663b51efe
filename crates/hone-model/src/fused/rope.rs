//! Fused rotary embedding (Hugging Face's rotate-half form) for the fused attention path:
//! `y = x·cos + rotate_half(x)·sin` with `rotate_half([x₁, x₂]) = [−x₂, x₁]` over the two halves of
//! the head dimension, for `x [batch, seq, heads, head_dim]` at positions `0..seq` (`cos`, `sin`
//! `[seq, head_dim]`). Its hand-written backward is the transposed rotation,
//! `dx₁ = g₁·cos₁ + g₂·sin₂`, `dx₂ = g₂·cos₂ − g₁·sin₁`. One parallel pass instead of burn's
//! narrow/neg/cat/mul/add chain and its backward; the tables are constants (no gradient).

use super::host::{contiguous, dims, tensor, values};
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
pub trait RopeBackend: Backend {
    /// `x [batch, seq, heads, head_dim]`, `cos`, `sin [seq, head_dim]` → shaped as `x`.
    fn fused_rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self>;
}

simd_fn! {
    /// One position's heads `x [heads, hd]` rotated by one table row (`c`, `s`: `[hd]`): the rotation
    /// for `sign > 0`, its transpose otherwise.
    pub fn rotate_position(y: &mut [f32], x: &[f32], c: &[f32], s: &[f32], hd: usize, sign: f32) {
        let half = hd / 2;
        for (y, x) in y.chunks_mut(hd).zip(x.chunks(hd)) {
            let (y, x, c, s) = (&mut y[..hd], &x[..hd], &c[..hd], &s[..hd]);
            let (y_lo, y_hi) = y.split_at_mut(half);
            let (x_lo, x_hi) = x.split_at(half);
            if sign > 0.0 {
                for j in 0..half {
                    let (a, b) = (x_lo[j], x_hi[j]);
                    y_lo[j] = a * c[j] - b * s[j];
                    y_hi[j] = b * c[j + half] + a * s[j + half];
                }
            } else {
                for j in 0..half {
                    let (a, b) = (x_lo[j], x_hi[j]);
                    y_lo[j] = a * c[j] + b * s[j + half];
                    y_hi[j] = b * c[j + half] - a * s[j];
                }
            }
        }
    }
}

/// Applies the rotation (`sign = 1`) or its transpose (`sign = −1`) to `x [rows, seq, heads, hd]`.
fn rotate(x: &[f32], cos: &[f32], sin: &[f32], seq: usize, heads: usize, hd: usize, sign: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    if hd == 0 || seq == 0 {
        return y;
    }
    // One task per (row, position): heads × head_dim elements sharing one table row.
    y.par_chunks_mut(heads * hd).zip(x.par_chunks(heads * hd)).enumerate().for_each(|(idx, (y, x))| {
        let t = idx % seq;
        let (c, s) = (&cos[t * hd..(t + 1) * hd], &sin[t * hd..(t + 1) * hd]);
        rotate_position(y, x, c, s, hd, sign);
    });
    y
}

/// Forward on slices.
pub fn forward(x: &[f32], cos: &[f32], sin: &[f32], seq: usize, heads: usize, hd: usize) -> Vec<f32> {
    rotate(x, cos, sin, seq, heads, hd, 1.0)
}

/// Backward on slices: `dx` for upstream `g`.
pub fn backward(g: &[f32], cos: &[f32], sin: &[f32], seq: usize, heads: usize, hd: usize) -> Vec<f32> {
    rotate(g, cos, sin, seq, heads, hd, -1.0)
}

/// `(seq, heads, head_dim)` after checking the shapes.
fn sizes(x: &FlexTensor, cos: &FlexTensor) -> (usize, usize, usize) {
    let (xs, cs) = (dims(x), dims(cos));
    assert!(xs.len() == 4 && cs == [xs[1], xs[3]], "rope: x {xs:?} does not match the tables {cs:?}");
    assert!(xs[3] % 2 == 0, "rope: head_dim {} is odd", xs[3]);
    (xs[1], xs[2], xs[3])
}

fn flex_forward(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> FlexTensor {
    let (s, n, hd) = sizes(x, cos);
    tensor(forward(values(x), values(cos), values(sin), s, n, hd), dims(x))
}

impl RopeBackend for Flex {
    fn fused_rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
        flex_forward(&contiguous(x), &contiguous(cos), &contiguous(sin))
    }
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    /// The tables and `(seq, heads, head_dim)`.
    type State = (Arc<(FlexTensor, FlexTensor)>, (usize, usize, usize));

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (tables, (s, n, hd)) = ops.state;
        if let Some(node) = node {
            let dx = backward(values(&g), values(&tables.0), values(&tables.1), s, n, hd);
            grads.register::<Flex>(node.id, tensor(dx, dims(&g)));
        }
    }
}

impl<C: CheckpointStrategy> RopeBackend for Autodiff<Flex, C> {
    fn fused_rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self> {
        let xp = contiguous(x.primitive().clone());
        let (cp, sp) = (contiguous(cos.into_primitive()), contiguous(sin.into_primitive()));
        match RopeBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = flex_forward(&xp, &cp, &sp);
                let sizes = sizes(&xp, &cp);
                prep.finish((Arc::new((cp, sp)), sizes), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(&xp, &cp, &sp)),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::rope` for the choice).
pub fn apply(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as RopeBackend>::fused_rope(
        x.into_dispatch(),
        cos.clone().into_dispatch(),
        sin.clone().into_dispatch(),
    ))
}
