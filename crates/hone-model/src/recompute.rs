//! Activation checkpointing: a block of the network that keeps only its inputs for the backward
//! pass and runs again inside it.
//!
//! [`apply`] computes `body(x, params)` off the autodiff graph, so none of the block's
//! intermediate activations stay alive, and records one autodiff node whose parents are `x` and
//! `params`. Its backward runs `body` again on fresh leaves carrying the same values (a graph of
//! its own, on this thread, while the outer backward holds its graph's lock: burn's graph locator
//! keeps the two apart because the fresh leaves share no node with the outer graph), takes the
//! inner backward of `sum(y · g)` for the upstream gradient `g` (whose gradient with respect to `y`
//! is exactly `g`), and hands each tracked parent its gradient. The recomputation runs the same
//! kernels on the same inputs, so the gradients equal those of the plain graph bit for bit
//! (`tests/recompute.rs`).
//!
//! Memory: checkpointed, a decoder layer keeps its input `[batch, seq, hidden]`, and the layer being
//! differentiated holds its own activations only while its backward runs; the cost is one more
//! forward pass of every layer per step. LoRA SFT of SmolLM2-135M at batch 2 × 512 tokens
//! (`scripts/bench_lora.sh`, 2 threads): peak RSS 2,809 → 1,287 MiB, 250 → 201 tokens/s.
//!
//! Flex only (the fused CPU backend, where the nested graph is known to work); elsewhere
//! [`apply`] runs `body` in the ordinary graph.

use crate::fused;
use crate::llama::Param;
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind, Flex, GradientCheckpointingStrategy,
};
use burn::tensor::Tensor;
use std::sync::Arc;

/// burn's autodiff tensor on Flex (its type is not exported under its own name).
type AutodiffTensor<B> = FloatTensor<Autodiff<B>>;

/// The most inputs a checkpointed block takes: the activations, a decoder layer's eleven tensors
/// (with QK-norm) and a LoRA pair on each of its seven projections.
pub const MAX_INPUTS: usize = 1 + 11 + 14;

/// A block's computation `(x [batch, seq, hidden], params) → [batch, seq, hidden]`; it must be a
/// pure function of its arguments (dropout masks drawn from seeds it captures), since it runs twice.
pub type BlockFn = dyn Fn(Tensor<3>, &[Param]) -> Tensor<3> + Send + Sync;

/// The block's computation, carried by the autodiff node.
#[derive(Clone)]
struct Block {
    f: Arc<BlockFn>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block")
    }
}

impl Block {
    /// Rank-less primitives as parameters: a vector where the primitive has one axis.
    fn params(&self, prims: Vec<FlexTensor>) -> Vec<Param> {
        prims
            .into_iter()
            .map(|p| if fused::host_dims(&p).len() == 1 { Param::Vector(plain(p)) } else { Param::Matrix(plain(p)) })
            .collect()
    }

    /// `f` on plain tensors, as a Flex primitive.
    fn run(&self, x: FlexTensor, params: Vec<FlexTensor>) -> FlexTensor {
        primitive((self.f)(plain(x), &self.params(params)))
    }
}

/// A Flex primitive as a plain (non-autodiff) tensor.
fn plain<const D: usize>(p: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(p)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// The Flex primitive of a tensor (off the graph).
fn primitive<const D: usize>(t: Tensor<D>) -> FlexTensor {
    match t.without_autodiff().into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(p)) => p,
        _ => panic!("recompute: a Flex float tensor was expected"),
    }
}

/// The autodiff Flex tensor inside a dispatch tensor; a plain Flex tensor becomes an untracked
/// leaf.
fn autodiff_of(kind: DispatchTensorKind) -> AutodiffTensor<Flex> {
    match kind {
        DispatchTensorKind::Autodiff(inner) => match *inner {
            DispatchTensorKind::Flex(BackendTensor::Autodiff(t)) => t,
            _ => panic!("recompute: an autodiff Flex tensor was expected"),
        },
        DispatchTensorKind::Flex(BackendTensor::Float(p)) => AutodiffTensor::new(p),
        _ => panic!("recompute: a Flex float tensor was expected"),
    }
}

#[derive(Debug)]
struct RecomputeBackward;

/// What the backward pass needs: the block and its input values.
#[derive(Debug, Clone)]
struct Saved {
    block: Block,
    x: FlexTensor,
    params: Vec<FlexTensor>,
}

impl Backward<Flex, MAX_INPUTS> for RecomputeBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, MAX_INPUTS>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g: Tensor<3> = plain(grads.consume::<Flex>(&ops.node));
        let Saved { block, x, params } = ops.state;
        let n = params.len();
        // Fresh leaves (a graph of their own): tracked where the outer input is, constants elsewhere.
        let leaf = |p: Param, tracked: bool| match p {
            Param::Vector(t) => Param::Vector(if tracked { t.autodiff().require_grad() } else { t.autodiff() }),
            Param::Matrix(t) => Param::Matrix(if tracked { t.autodiff().require_grad() } else { t.autodiff() }),
        };
        let tracked: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let x_leaf = if tracked[0] { plain::<3>(x).autodiff().require_grad() } else { plain::<3>(x).autodiff() };
        let leaves: Vec<Param> =
            block.params(params).into_iter().zip(&tracked[1..=n]).map(|(p, &t)| leaf(p, t)).collect();
        let y = (block.f)(x_leaf.clone(), &leaves);
        let inner = (y * g.autodiff()).sum().backward();
        let [node_x, rest @ ..] = ops.parents;
        if let Some(node) = node_x {
            let dx = x_leaf.grad(&inner).expect("the block's output depends on its input");
            grads.register::<Flex>(node.id, primitive(dx));
        }
        for (node, p) in rest.into_iter().zip(&leaves) {
            let Some(node) = node else { continue };
            // A parameter the block does not use gets no gradient, as in the plain graph.
            match p.grad(&inner) {
                Some(Param::Vector(d)) => grads.register::<Flex>(node.id, primitive(d)),
                Some(Param::Matrix(d)) => grads.register::<Flex>(node.id, primitive(d)),
                None => {}
            }
        }
    }
}

/// The checkpointed node: `block` computed off the graph, with `x` and `params` as parents.
fn recomputed<C: CheckpointStrategy>(
    x: AutodiffTensor<Flex>,
    params: Vec<AutodiffTensor<Flex>>,
    block: Block,
) -> AutodiffTensor<Flex> {
    assert!(params.len() < MAX_INPUTS, "recompute: {} parameters, at most {}", params.len(), MAX_INPUTS - 1);
    let xp = x.primitive().clone();
    let pp: Vec<FlexTensor> = params.iter().map(|p| p.primitive().clone()).collect();
    let y = block.run(xp.clone(), pp.clone());
    // Untracked leaves fill the parent slots the block does not use.
    let pad: Vec<AutodiffTensor<Flex>> =
        (params.len() + 1..MAX_INPUTS).map(|_| AutodiffTensor::new(xp.clone())).collect();
    let nodes: Vec<NodeGuard> =
        std::iter::once(x.node()).chain(params.iter().map(|p| p.node())).chain(pad.iter().map(|t| t.node())).collect();
    let nodes: [NodeGuard; MAX_INPUTS] = nodes.try_into().unwrap_or_else(|_| unreachable!("padded to MAX_INPUTS"));
    match RecomputeBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Saved { block, x: xp, params: pp }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// `f(x, params)`, recomputed in the backward pass instead of keeping its activations, when `x` is
/// on an autodiff Flex device with the fused ops on; `f(x, params)` in the ordinary graph
/// otherwise. `x: [batch, seq, hidden]` → `[batch, seq, hidden]`.
pub fn apply(x: Tensor<3>, params: Vec<Param>, f: Arc<BlockFn>) -> Tensor<3> {
    if !(x.device().is_autodiff() && fused::active(&x.device())) {
        return f(x, &params);
    }
    let params: Vec<AutodiffTensor<Flex>> = params
        .into_iter()
        .map(|p| match p {
            Param::Vector(t) => autodiff_of(t.into_dispatch().kind),
            Param::Matrix(t) => autodiff_of(t.into_dispatch().kind),
        })
        .collect();
    let DispatchTensor { kind, autodiff } = x.into_dispatch();
    let block = Block { f };
    let y = match autodiff {
        DispatchAutodiffContext::Enabled(GradientCheckpointingStrategy::Balanced) => {
            recomputed::<BalancedCheckpointing>(autodiff_of(kind), params, block)
        }
        _ => recomputed::<NoCheckpointing>(autodiff_of(kind), params, block),
    };
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(BackendTensor::Autodiff(y)))),
        autodiff,
    })
}
