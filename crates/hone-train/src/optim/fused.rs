//! The AdamW update as one parallel pass over a parameter's elements on the host, for Flex devices:
//! the same arithmetic as [`super::adamw::step`] (PyTorch's single-tensor AdamW) without the dozen
//! single-threaded tensor ops and their temporaries. Element `i` depends only on element `i` of the
//! inputs, so the result does not depend on how elements are split across threads.

use super::adamw::AdamWHyper;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Elements per parallel task.
const BLOCK: usize = 8 * 1024;

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("optimizer tensors are f32")
}

/// One AdamW step on slices, in place: `p`, `m`, `v` updated with gradient `g` at 1-based step `t`.
pub fn adamw_slices(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamWHyper, t: u64) {
    let decay = (1.0 - h.lr * h.weight_decay) as f32;
    let (b1, b2) = ((1.0 - h.beta1) as f32, h.beta2 as f32);
    let nb2 = (1.0 - h.beta2) as f32;
    let bc1 = 1.0 - h.beta1.powi(t as i32);
    let bc2_sqrt = ((1.0 - h.beta2.powi(t as i32)).sqrt()) as f32;
    let (eps, step) = (h.eps as f32, (h.lr / bc1) as f32);
    let apply_decay = h.weight_decay != 0.0;
    p.par_chunks_mut(BLOCK)
        .zip(g.par_chunks(BLOCK))
        .zip(m.par_chunks_mut(BLOCK).zip(v.par_chunks_mut(BLOCK)))
        .for_each(|((p, g), (m, v))| {
            for i in 0..p.len() {
                let pi = if apply_decay { p[i] * decay } else { p[i] };
                m[i] += (g[i] - m[i]) * b1;
                v[i] = v[i] * b2 + g[i] * g[i] * nb2;
                let denom = v[i].sqrt() / bc2_sqrt + eps;
                p[i] = pi - m[i] / denom * step;
            }
        });
}

/// [`super::adamw::step`] computed by [`adamw_slices`]: tensors in, new tensors out (same device).
pub fn adamw(
    p: Tensor<1>,
    g: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    h: &AdamWHyper,
    t: u64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let device = p.device();
    let n = p.dims()[0];
    let (mut pv, gv, mut mv, mut vv) = (host(p), host(g), host(m), host(v));
    adamw_slices(&mut pv, &gv, &mut mv, &mut vv, h, t);
    let t = |x: Vec<f32>| Tensor::<1>::from_data(TensorData::new(x, [n]), &device);
    (t(pv), t(mv), t(vv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn vec(t: &Tensor<1>) -> Vec<f32> {
        t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    /// Five steps of the fused update against the tensor-op update, odd sizes, with and without decay.
    #[test]
    fn fused_adamw_matches_tensor_ops() {
        let d = Device::flex();
        for (n, wd) in [(1usize, 0.0), (17, 0.1), (33, 0.0), (20_003, 0.1)] {
            let h = AdamWHyper { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: wd };
            let p0 = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d);
            let zeros = Tensor::<1>::zeros([n], &d);
            let (mut a, mut b) = ((p0.clone(), zeros.clone(), zeros.clone()), (p0, zeros.clone(), zeros));
            for t in 1..=5 {
                let g = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d);
                a = super::super::adamw::step(a.0, g.clone(), a.1, a.2, &h, t);
                b = adamw(b.0, g, b.1, b.2, &h, t);
            }
            for (x, y, what) in [(&a.0, &b.0, "p"), (&a.1, &b.1, "m"), (&a.2, &b.2, "v")] {
                let (x, y) = (vec(x), vec(y));
                let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
                let err = x.iter().zip(&y).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
                assert!(err < 1e-6, "n={n} wd={wd}: {what} differs by {err:.2e} relative");
            }
        }
    }
}
