//! The linear layer `y = x · wᵀ` (PyTorch weight layout `[out, in]`) with its hand-written backward
//! `dx = g · w`, `dw = gᵀ · x`: each product is one multithreaded `gemm` call reading its operands in
//! place through strides (no transposed copies) and writing into an output allocated once as a
//! `Vec<f32>`, which becomes the Flex tensor without a copy. (burn Flex allocates matmul outputs as
//! bytes, then zeroes, re-aligns and copies them on one thread.) `gemm` splits rows and columns
//! across threads, never the reduction, so results do not depend on the thread count.

use super::host::{View, contiguous, dims, gemm_new, tensor, values};
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x [..., in]`, `w [out, in]` → `[..., out]`.
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `dst (m×n) = a (m×k, strides ars/acs) · b (k×n, strides brs/bcs)`, on all rayon threads.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ars: usize,
    acs: usize,
    b: &[f32],
    brs: usize,
    bcs: usize,
) -> Vec<f32> {
    gemm_new(m, n, k, View { data: a, rs: ars, cs: acs }, View { data: b, rs: brs, cs: bcs })
}

/// Forward on slices: `x [rows, in]`, `w [out, in]` → `[rows, out]`.
pub fn forward(x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize) -> Vec<f32> {
    assert_eq!(x.len(), rows * inp, "linear: x is not [rows, in]");
    assert_eq!(w.len(), out * inp, "linear: w is not [out, in]");
    // x (rows×in) · wᵀ (in×out): wᵀ(i, o) = w[o * in + i].
    matmul(rows, out, inp, x, inp, 1, w, 1, inp)
}

/// Backward on slices: `(dx [rows, in], dw [out, in])` for upstream `g [rows, out]`.
pub fn backward(x: &[f32], w: &[f32], g: &[f32], rows: usize, inp: usize, out: usize) -> (Vec<f32>, Vec<f32>) {
    let dx = matmul(rows, inp, out, g, out, 1, w, inp, 1);
    // gᵀ (out×rows) · x (rows×in): gᵀ(o, r) = g[r * out + o].
    let dw = matmul(out, inp, rows, g, 1, out, x, inp, 1);
    (dx, dw)
}

/// `(rows, in, out)` and the output shape.
fn sizes(x: &FlexTensor, w: &FlexTensor) -> (usize, usize, usize, Vec<usize>) {
    let (xs, ws) = (dims(x), dims(w));
    assert!(ws.len() == 2 && xs.last() == Some(&ws[1]), "linear: x {xs:?} does not match w {ws:?}");
    let inp = ws[1];
    let rows = xs.iter().product::<usize>() / inp.max(1);
    let mut ys = xs.clone();
    *ys.last_mut().unwrap() = ws[0];
    (rows, inp, ws[0], ys)
}

fn flex_forward(x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let (rows, inp, out, ys) = sizes(x, w);
    tensor(forward(values(x), values(w), rows, inp, out), ys)
}

impl LinearBackend for Flex {
    fn fused_linear(x: FlexTensor, w: FlexTensor) -> FlexTensor {
        flex_forward(&contiguous(x), &contiguous(w))
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 2> for LinearBackward {
    /// `x`, `w`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, w) = ops.state;
        let (rows, inp, out, _) = sizes(&x, &w);
        let (xv, wv, gv) = (values(&x), values(&w), values(&g));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(matmul(rows, inp, out, gv, out, 1, wv, inp, 1), dims(&x)));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, tensor(matmul(out, inp, rows, gv, 1, out, xv, inp, 1), dims(&w)));
        }
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let (xp, wp) = (contiguous(x.primitive().clone()), contiguous(w.primitive().clone()));
        match LinearBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = flex_forward(&xp, &wp);
                prep.finish((xp, wp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(&xp, &wp)),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::linear` for the choice).
pub fn apply(x: Tensor<3>, w: &Tensor<2>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as LinearBackend>::fused_linear(x.into_dispatch(), w.clone().into_dispatch()))
}
