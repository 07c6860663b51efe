//! Gradients as the optimizer sees them: one flat tensor per parameter (canonical order, off the
//! autodiff graph), summed over micro-batches, measured by the global L2 norm over all parameters
//! together, and clipped by one common factor.

use crate::trainable::Trainable;
use burn::tensor::{Gradients, Tensor};

/// One flat gradient `[numel]` per parameter, in [`hone_model::llama::param_specs`] order.
#[derive(Debug, Clone)]
pub struct Grads {
    pub tensors: Vec<Tensor<1>>,
}

impl Grads {
    /// The gradients of `model`'s parameters in `grads`; a parameter outside the graph gets zeros.
    pub fn collect(model: &impl Trainable, grads: &Gradients) -> Grads {
        let tensors = model
            .params()
            .into_iter()
            .map(|(_, p)| match p.grad(grads) {
                Some(g) => g.flat().without_autodiff(),
                None => Tensor::<1>::zeros([p.numel()], &model.device().clone().without_autodiff()),
            })
            .collect();
        Grads { tensors }
    }

    /// Adds `other` elementwise (gradient accumulation).
    pub fn add(&mut self, other: Grads) {
        for (a, b) in self.tensors.iter_mut().zip(other.tensors) {
            *a = a.clone() + b;
        }
    }

    /// Multiplies every gradient by `s`.
    pub fn scale(&mut self, s: f64) {
        for a in self.tensors.iter_mut() {
            *a = a.clone().mul_scalar(s);
        }
    }

    /// √(Σ over all parameters of Σ g²): one norm for the whole model, as PyTorch's
    /// `clip_grad_norm_`. Not finite when any gradient is not.
    pub fn global_norm(&self) -> f64 {
        let squares: Vec<Tensor<1>> = self.tensors.iter().map(|g| g.clone().square().sum()).collect();
        let total: f32 = Tensor::cat(squares, 0).sum().into_scalar();
        (total as f64).sqrt()
    }

    /// Scales all gradients by `max_norm / (norm + 1e-6)` when `norm > max_norm` (PyTorch's rule).
    /// Returns the factor applied.
    pub fn clip(&mut self, norm: f64, max_norm: f64) -> f64 {
        if max_norm > 0.0 && norm > max_norm {
            let f = max_norm / (norm + 1e-6);
            self.scale(f);
            f
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn norm_is_global_and_clip_scales_all_tensors_alike() {
        let d = Device::flex();
        let mut g =
            Grads { tensors: vec![Tensor::<1>::from_floats([3.0, 0.0], &d), Tensor::<1>::from_floats([4.0], &d)] };
        let n = g.global_norm();
        assert!((n - 5.0).abs() < 1e-6, "{n}");
        let f = g.clip(n, 1.0);
        assert!((f - 0.2).abs() < 1e-6);
        let v: Vec<f32> = g.tensors[1].to_data().try_into_vec().unwrap();
        assert!((v[0] - 0.8).abs() < 1e-5, "per-tensor clipping would give 1.0, not {}", v[0]);
        let mut bad = Grads { tensors: vec![Tensor::<1>::from_floats([f32::NAN], &d)] };
        assert!(!bad.global_norm().is_finite());
        assert_eq!(bad.clip(1.0, 0.0), 1.0);
    }
}
