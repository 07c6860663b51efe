//! Fused RMSNorm over the last axis, `y = w · x / sqrt(mean(x²) + eps)`, with its hand-written
//! backward. Forward saves one reciprocal RMS per row; backward is, per row with `r` that value and
//! `d` the width, `dx = r·(w∘g) − x · r³/d · Σ(w∘g∘x)` and, summed over rows, `dw = Σ g∘x·r`.
//! Rows run in parallel; the `dw` sum adds fixed blocks of rows in a fixed order, so results do not
//! depend on the thread count.

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

/// Rows per parallel task (and per partial `dw` sum).
const BLOCK: usize = 32;

#[backend_extension(Flex, Autodiff)]
pub trait RmsNormBackend: Backend {
    /// `x [..., d]`, `w [d]` → `[..., d]`.
    fn fused_rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f64) -> FloatTensor<Self>;
}

simd_fn! {
    /// One row: `y ← x · rstd · w`; returns `rstd = 1 / sqrt(mean(x²) + eps)`.
    pub fn forward_row(y: &mut [f32], x: &[f32], w: &[f32], eps: f32) -> f32 {
        let d = w.len();
        let (y, x) = (&mut y[..d], &x[..d]);
        let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
            *y = *x * r * *w;
        }
        r
    }
}

simd_fn! {
    /// One row of the backward: `dx ← r·w·g − x·c` with `c = r³ (x·g·w) / d`, and `dw += g·x·r`.
    pub fn backward_row(dx: &mut [f32], dw: &mut [f32], x: &[f32], w: &[f32], g: &[f32], r: f32) {
        let d = w.len();
        let (dx, dw, x, g) = (&mut dx[..d], &mut dw[..d], &x[..d], &g[..d]);
        let dot: f32 = x.iter().zip(g).zip(w).map(|((x, g), w)| x * g * w).sum();
        let c = r * r * r * dot / d as f32;
        for j in 0..d {
            dx[j] = r * w[j] * g[j] - x[j] * c;
            dw[j] += g[j] * x[j] * r;
        }
    }
}

/// Forward on slices: returns `(y, rstd)` with `rstd [rows]`.
pub fn forward(x: &[f32], w: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let rows = x.len() / d.max(1);
    let mut y = vec![0f32; x.len()];
    let mut rstd = vec![0f32; rows];
    if d == 0 {
        return (y, rstd);
    }
    y.par_chunks_mut(d * BLOCK).zip(rstd.par_chunks_mut(BLOCK)).zip(x.par_chunks(d * BLOCK)).for_each(|((y, r), x)| {
        for ((y, r), x) in y.chunks_mut(d).zip(r.iter_mut()).zip(x.chunks(d)) {
            *r = forward_row(y, x, w, eps as f32);
        }
    });
    (y, rstd)
}

/// Backward on slices: `(dx, dw)` for upstream gradient `g`.
pub fn backward(x: &[f32], w: &[f32], rstd: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let mut dx = vec![0f32; x.len()];
    if d == 0 {
        return (dx, vec![]);
    }
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * BLOCK)
        .zip(x.par_chunks(d * BLOCK))
        .zip(g.par_chunks(d * BLOCK))
        .zip(rstd.par_chunks(BLOCK))
        .map(|(((dx, x), g), rstd)| {
            let mut dw = vec![0f32; d];
            for (((dx, x), g), &r) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)).zip(rstd) {
                backward_row(dx, &mut dw, x, w, g, r);
            }
            dw
        })
        .collect();
    let mut dw = vec![0f32; d];
    for p in partials {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    (dx, dw)
}

fn flex_forward(x: FlexTensor, w: FlexTensor, eps: f64) -> (FlexTensor, Vec<f32>) {
    let (x, w) = (contiguous(x), contiguous(w));
    let (y, rstd) = forward(values(&x), values(&w), eps);
    (tensor(y, dims(&x)), rstd)
}

impl RmsNormBackend for Flex {
    fn fused_rms_norm(x: FlexTensor, w: FlexTensor, eps: f64) -> FlexTensor {
        flex_forward(x, w, eps).0
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// `x`, `w`, reciprocal RMS per row.
    type State = (FlexTensor, FlexTensor, Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, w, rstd) = ops.state;
        let (dx, dw) = backward(values(&x), values(&w), &rstd, values(&g));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, dims(&x)));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, tensor(dw, dims(&w)));
        }
    }
}

impl<C: CheckpointStrategy> RmsNormBackend for Autodiff<Flex, C> {
    fn fused_rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let (xp, wp) = (contiguous(x.primitive().clone()), contiguous(w.primitive().clone()));
        match RmsNormBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, rstd) = flex_forward(xp.clone(), wp.clone(), eps);
                prep.finish((xp, wp, Arc::new(rstd)), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(xp, wp, eps).0),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::rms_norm` for the choice).
pub fn apply<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RmsNormBackend>::fused_rms_norm(
        x.into_dispatch(),
        w.clone().into_dispatch(),
        eps,
    ))
}
