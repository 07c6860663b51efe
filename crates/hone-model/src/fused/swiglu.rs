//! Fused SwiGLU gate, `silu(gate) · up`, with its hand-written backward: with `σ = sigmoid(gate)`,
//! `d_up = g · gate·σ` and `d_gate = g · up · σ·(1 + gate·(1 − σ))`. One pass over the elements in
//! parallel blocks instead of burn's four elementwise ops and their backward.

use super::exp::sigmoid;
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

/// Elements per parallel task.
const BLOCK: usize = 16 * 1024;

#[backend_extension(Flex, Autodiff)]
pub trait SwigluBackend: Backend {
    /// `gate`, `up` of one shape → `silu(gate) · up`.
    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
}

simd_fn! {
    /// `y ← silu(gate) · up` on one block.
    pub fn forward_block(y: &mut [f32], gate: &[f32], up: &[f32]) {
        for ((y, &a), &b) in y.iter_mut().zip(gate).zip(up) {
            *y = a * sigmoid(a) * b;
        }
    }
}

simd_fn! {
    /// With `σ = sigmoid(gate)`: `d_up ← g · gate·σ`, `d_gate ← g · up · σ·(1 + gate·(1 − σ))` on one block.
    pub fn backward_block(d_gate: &mut [f32], d_up: &mut [f32], gate: &[f32], up: &[f32], g: &[f32]) {
        let n = gate.len();
        assert!(
            up.len() == n && g.len() == n && d_gate.len() == n && d_up.len() == n,
            "swiglu: backward block slices differ in length"
        );
        // Re-sliced to one length so the indexing below carries no bounds checks.
        let (d_gate, d_up, gate, up, g) = (&mut d_gate[..n], &mut d_up[..n], &gate[..n], &up[..n], &g[..n]);
        for i in 0..n {
            let s = sigmoid(gate[i]);
            d_up[i] = g[i] * gate[i] * s;
            d_gate[i] = g[i] * up[i] * s * (1.0 + gate[i] * (1.0 - s));
        }
    }
}

/// Forward on slices.
pub fn forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up differ in size");
    let mut y = vec![0f32; gate.len()];
    y.par_chunks_mut(BLOCK).zip(gate.par_chunks(BLOCK)).zip(up.par_chunks(BLOCK)).for_each(|((y, a), b)| {
        forward_block(y, a, b);
    });
    y
}

/// Backward on slices: `(d_gate, d_up)`.
pub fn backward(gate: &[f32], up: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dg = vec![0f32; gate.len()];
    let mut du = vec![0f32; gate.len()];
    dg.par_chunks_mut(BLOCK)
        .zip(du.par_chunks_mut(BLOCK))
        .zip(gate.par_chunks(BLOCK))
        .zip(up.par_chunks(BLOCK).zip(g.par_chunks(BLOCK)))
        .for_each(|(((dg, du), a), (b, g))| {
            backward_block(dg, du, a, b, g);
        });
    (dg, du)
}

fn flex_forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    assert_eq!(dims(gate), dims(up), "swiglu: gate and up differ in shape");
    tensor(forward(values(gate), values(up)), dims(gate))
}

impl SwigluBackend for Flex {
    fn fused_swiglu(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        flex_forward(&contiguous(gate), &contiguous(up))
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// `gate`, `up`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gate, node_up] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (gate, up) = ops.state;
        let (dg, du) = backward(values(&gate), values(&up), values(&g));
        if let Some(node) = node_gate {
            grads.register::<Flex>(node.id, tensor(dg, dims(&gate)));
        }
        if let Some(node) = node_up {
            grads.register::<Flex>(node.id, tensor(du, dims(&up)));
        }
    }
}

impl<C: CheckpointStrategy> SwigluBackend for Autodiff<Flex, C> {
    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (gp, upp) = (contiguous(gate.primitive().clone()), contiguous(up.primitive().clone()));
        match SwigluBackward.prepare::<C>([gate.node(), up.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = flex_forward(&gp, &upp);
                prep.finish((gp, upp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(&gp, &upp)),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::swiglu` for the choice).
pub fn apply<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SwigluBackend>::fused_swiglu(gate.into_dispatch(), up.into_dispatch()))
}
