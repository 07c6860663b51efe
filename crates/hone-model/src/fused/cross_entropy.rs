//! Fused log-softmax and gather over the vocabulary: the log-probability of each row's target,
//! `logits[t] − logsumexp(logits)`, with its hand-written backward
//! `d logits = g · (onehot(t) − softmax(logits))`. Forward keeps only one log-sum-exp per row (never
//! the `[rows, vocab]` softmax); backward recomputes the softmax row by row straight into the
//! gradient. Rows run in parallel blocks.

use super::exp;
use super::host::{contiguous, dims, tensor, values};
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Int, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per parallel task.
const BLOCK: usize = 16;

#[backend_extension(Flex, Autodiff)]
pub trait CrossEntropyBackend: Backend {
    /// `logits [..., vocab]`, `targets [...]` (same leading shape) → log-probabilities `[...]`.
    fn fused_token_log_probs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
}

/// Forward on slices: `(log_probs [rows], lse [rows])` for `logits [rows, vocab]`.
pub fn forward(logits: &[f32], targets: &[usize], vocab: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    assert_eq!(logits.len(), rows * vocab, "cross-entropy: logits are not [rows, vocab]");
    let mut out = vec![0f32; rows];
    let mut lse = vec![0f32; rows];
    out.par_chunks_mut(BLOCK)
        .zip(lse.par_chunks_mut(BLOCK))
        .zip(logits.par_chunks(vocab * BLOCK).zip(targets.par_chunks(BLOCK)))
        .for_each(|((out, lse), (x, t))| {
            for (((o, l), x), &t) in out.iter_mut().zip(lse.iter_mut()).zip(x.chunks(vocab)).zip(t) {
                let m = exp::max(x);
                let s = exp::sum_exp_shifted(x, m);
                *l = m + s.ln();
                *o = x[t] - *l;
            }
        });
    (out, lse)
}

/// Backward on slices: `d logits [rows, vocab]` for upstream `g [rows]`.
pub fn backward(logits: &[f32], targets: &[usize], lse: &[f32], g: &[f32], vocab: usize) -> Vec<f32> {
    let mut dx = vec![0f32; logits.len()];
    dx.par_chunks_mut(vocab * BLOCK)
        .zip(logits.par_chunks(vocab * BLOCK))
        .zip(targets.par_chunks(BLOCK).zip(lse.par_chunks(BLOCK)).zip(g.par_chunks(BLOCK)))
        .for_each(|((dx, x), ((t, lse), g))| {
            for ((((dx, x), &t), &l), &g) in dx.chunks_mut(vocab).zip(x.chunks(vocab)).zip(t).zip(lse).zip(g) {
                exp::scaled_exp_shifted(dx, x, l, -g);
                dx[t] += g;
            }
        });
    dx
}

/// Target ids as indices, checked against the vocabulary.
fn target_indices(targets: FlexTensor, vocab: usize) -> Vec<usize> {
    let data = targets.into_data();
    data.iter::<i64>()
        .map(|t| {
            assert!(
                (0..vocab as i64).contains(&t),
                "cross-entropy: target id {t} is outside the vocabulary of {vocab}"
            );
            t as usize
        })
        .collect()
}

fn flex_forward(logits: &FlexTensor, targets: &[usize]) -> (FlexTensor, Vec<f32>) {
    let shape = dims(logits);
    let vocab = *shape.last().expect("logits have a vocabulary axis");
    let (out, lse) = forward(values(logits), targets, vocab);
    (tensor(out, shape[..shape.len() - 1].to_vec()), lse)
}

fn vocab_of(logits: &FlexTensor) -> usize {
    *dims(logits).last().expect("logits have a vocabulary axis")
}

impl CrossEntropyBackend for Flex {
    fn fused_token_log_probs(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        let logits = contiguous(logits);
        let t = target_indices(targets, vocab_of(&logits));
        flex_forward(&logits, &t).0
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    /// `logits`, target indices, log-sum-exp per row.
    type State = (FlexTensor, Arc<Vec<usize>>, Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (logits, t, lse) = ops.state;
        if let Some(node) = node {
            let dx = backward(values(&logits), &t, &lse, values(&g), vocab_of(&logits));
            grads.register::<Flex>(node.id, tensor(dx, dims(&logits)));
        }
    }
}

impl<C: CheckpointStrategy> CrossEntropyBackend for Autodiff<Flex, C> {
    fn fused_token_log_probs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let lp = contiguous(logits.primitive().clone());
        let t = target_indices(targets, vocab_of(&lp));
        match CrossEntropyBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, lse) = flex_forward(&lp, &t);
                prep.finish((lp, Arc::new(t), Arc::new(lse)), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(&lp, &t).0),
        }
    }
}

/// The fused op on `Tensor`s (Flex devices only; see `fused::token_log_probs` for the choice).
/// `logits [batch, seq, vocab]`, `targets [batch, seq]` → `[batch, seq]`.
pub fn apply(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as CrossEntropyBackend>::fused_token_log_probs(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}
