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

/// The step's scalars in f32.
#[derive(Debug, Clone, Copy)]
pub struct Coeffs {
    decay: f32,
    /// 1 − β1.
    b1: f32,
    b2: f32,
    /// 1 − β2.
    nb2: f32,
    bc2_sqrt: f32,
    eps: f32,
    /// lr / (1 − β1ᵗ).
    step: f32,
    apply_decay: bool,
}

hone_model::simd_fn! {
    /// The update of one block of elements (compiled per SIMD level).
    pub fn adamw_block(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: Coeffs) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let pi = if k.apply_decay { p[i] * k.decay } else { p[i] };
            m[i] += (g[i] - m[i]) * k.b1;
            v[i] = v[i] * k.b2 + g[i] * g[i] * k.nb2;
            let denom = v[i].sqrt() / k.bc2_sqrt + k.eps;
            p[i] = pi - m[i] / denom * k.step;
        }
    }
}

/// One AdamW step on slices, in place: `p`, `m`, `v` updated with gradient `g` at 1-based step `t`.
pub fn adamw_slices(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamWHyper, t: u64) {
    let bc1 = 1.0 - h.beta1.powi(t as i32);
    let k = Coeffs {
        decay: (1.0 - h.lr * h.weight_decay) as f32,
        b1: (1.0 - h.beta1) as f32,
        b2: h.beta2 as f32,
        nb2: (1.0 - h.beta2) as f32,
        bc2_sqrt: ((1.0 - h.beta2.powi(t as i32)).sqrt()) as f32,
        eps: h.eps as f32,
        step: (h.lr / bc1) as f32,
        apply_decay: h.weight_decay != 0.0,
    };
    p.par_chunks_mut(BLOCK)
        .zip(g.par_chunks(BLOCK))
        .zip(m.par_chunks_mut(BLOCK).zip(v.par_chunks_mut(BLOCK)))
        .for_each(|((p, g), (m, v))| adamw_block(p, g, m, v, k));
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

    /// The block update gives the same bits at every SIMD level the CPU has.
    #[test]
    fn every_simd_level_gives_the_same_update() {
        use hone_model::simd::SimdLevel;
        let vals =
            |n: usize, s: usize| (0..n).map(|i| (((i * 31 + s) % 97) as f32 - 48.0) * 0.01).collect::<Vec<f32>>();
        let h = AdamWHyper { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
        for n in [1usize, 15, 16, 17, 1000] {
            let run = |l: SimdLevel| {
                let (mut p, g, mut m, mut v) =
                    (vals(n, 1), vals(n, 2), vals(n, 3), vals(n, 4).iter().map(|x| x * x).collect::<Vec<f32>>());
                let bc1 = 1.0 - h.beta1.powi(3);
                let k = Coeffs {
                    decay: (1.0 - h.lr * h.weight_decay) as f32,
                    b1: (1.0 - h.beta1) as f32,
                    b2: h.beta2 as f32,
                    nb2: (1.0 - h.beta2) as f32,
                    bc2_sqrt: ((1.0 - h.beta2.powi(3)).sqrt()) as f32,
                    eps: h.eps as f32,
                    step: (h.lr / bc1) as f32,
                    apply_decay: true,
                };
                adamw_block::at(l, &mut p, &g, &mut m, &mut v, k);
                [p, m, v].map(|x: Vec<f32>| x.iter().map(|y| y.to_bits()).collect::<Vec<_>>())
            };
            let base = run(SimdLevel::Baseline);
            assert_eq!(run(SimdLevel::Avx2), base, "n = {n}");
            assert_eq!(run(SimdLevel::Avx512), base, "n = {n}");
        }
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
