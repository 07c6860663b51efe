//! The Muon update on the host for Flex devices: the same arithmetic as [`super::muon::step`]
//! (Nesterov momentum, Frobenius normalisation, quintic Newton–Schulz, scale √max(1, rows/cols)) as
//! two parallel element passes around five pairs of `gemm` calls, instead of a dozen single-threaded
//! tensor ops, transposed copies and burn matmuls per matrix.
//!
//! Deterministic for a fixed input whatever the thread count: the element passes work on fixed
//! blocks, the norm adds per-block sums in block order, and `gemm` splits rows and columns across
//! threads but never the reduction, so every output element is summed in the same order (resume
//! compares weights with `==`).

use super::muon::NS;
use burn::tensor::{Tensor, TensorData};
use hone_model::fused::{View, gemm_slices as gemm};
use rayon::prelude::*;

/// Elements per parallel task (and per partial sum of the norm).
const BLOCK: usize = 8 * 1024;

/// Quintic Newton–Schulz on `x` (`[rows, cols]`, row-major, already divided by its norm), in place,
/// as [`super::muon::orthogonalize`] computes it. The Gram matrix is taken on the short side, so a
/// tall matrix iterates `X ← a·X + X·Bᵀ` with `A = Xᵀ X` (the reference transposes it, iterates the
/// wide form and transposes back: the same products).
pub fn newton_schulz(x: &mut Vec<f32>, rows: usize, cols: usize, steps: usize) {
    assert_eq!(x.len(), rows * cols, "newton_schulz: x is not {rows}×{cols}");
    let tall = rows > cols;
    let s = rows.min(cols);
    let (na, nb, nc) = (NS.0 as f32, NS.1 as f32, NS.2 as f32);
    let mut a = vec![0f32; s * s]; // [s, s]
    let mut b = vec![0f32; s * s]; // [s, s]
    // The next X: ping-pongs with `x`, so no iteration allocates.
    let mut y = vec![0f32; rows * cols]; // [rows, cols]
    for _ in 0..steps {
        let xv = View::rows(x, cols);
        if tall {
            gemm(&mut a, s, s, rows, 0.0, xv.t(), xv, 1.0); // Xᵀ X
        } else {
            gemm(&mut a, s, s, cols, 0.0, xv, xv.t(), 1.0); // X Xᵀ
        }
        // B = b·A + c·(A A): A is the addend, so it goes into dst first.
        b.copy_from_slice(&a);
        let av = View::rows(&a, s);
        gemm(&mut b, s, s, s, nb, av, av, nc);
        // X' = a·X + B X (wide) or a·X + X Bᵀ (tall).
        y.copy_from_slice(x);
        let bv = View::rows(&b, s);
        if tall {
            gemm(&mut y, rows, cols, cols, na, xv, bv.t(), 1.0);
        } else {
            gemm(&mut y, rows, cols, rows, na, bv, xv, 1.0);
        }
        std::mem::swap(x, &mut y);
    }
}

/// One Muon step on slices, in place: `p`, `buf` (`[rows, cols]`, row-major) updated with gradient
/// `g` at learning rate `lr`, momentum `momentum` and `ns_steps` Newton–Schulz iterations.
#[allow(clippy::too_many_arguments)]
pub fn muon_slices(
    p: &mut [f32],
    g: &[f32],
    buf: &mut [f32],
    rows: usize,
    cols: usize,
    lr: f64,
    momentum: f64,
    ns_steps: usize,
) {
    let n = rows * cols;
    assert!(p.len() == n && g.len() == n && buf.len() == n, "muon: p, g and buf must all be {rows}×{cols}");
    let (mu, keep) = (momentum as f32, (1.0 - momentum) as f32);
    // buf ← lerp(buf, g, 1 − μ); Nesterov: update ← lerp(g, buf, μ); and Σ update² per block.
    let mut x = vec![0f32; n]; // [rows, cols]
    let sums: Vec<f64> = buf
        .par_chunks_mut(BLOCK)
        .zip(g.par_chunks(BLOCK))
        .zip(x.par_chunks_mut(BLOCK))
        .map(|((b, g), u)| {
            let mut s = 0f64;
            for i in 0..b.len() {
                b[i] += (g[i] - b[i]) * keep;
                u[i] = g[i] + (b[i] - g[i]) * mu;
                s += u[i] as f64 * u[i] as f64;
            }
            s
        })
        .collect();
    // Block sums in block order: the norm does not depend on the thread count.
    let norm = sums.iter().sum::<f64>().sqrt() as f32;
    let denom = (norm as f64 + 1e-7) as f32;
    x.par_chunks_mut(BLOCK).for_each(|u| u.iter_mut().for_each(|v| *v /= denom));
    newton_schulz(&mut x, rows, cols, ns_steps);
    let step = (lr * (rows as f64 / cols as f64).max(1.0).sqrt()) as f32;
    p.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK)).for_each(|(p, o)| {
        for i in 0..p.len() {
            p[i] -= o[i] * step;
        }
    });
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("optimizer tensors are f32")
}

/// [`super::muon::step`] computed by [`muon_slices`]: tensors in, new `(p, buf)` out (same device).
pub fn muon(
    p: Tensor<2>,
    g: Tensor<2>,
    buf: Tensor<2>,
    lr: f64,
    momentum: f64,
    ns_steps: usize,
) -> (Tensor<2>, Tensor<2>) {
    let device = p.device();
    let [rows, cols] = p.dims();
    let (mut pv, gv, mut bv) = (host(p), host(g), host(buf));
    muon_slices(&mut pv, &gv, &mut bv, rows, cols, lr, momentum, ns_steps);
    let t = |x: Vec<f32>| Tensor::<2>::from_data(TensorData::new(x, [rows, cols]), &device);
    (t(pv), t(bv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use rand::{Rng, SeedableRng};

    fn vec(t: &Tensor<2>) -> Vec<f32> {
        t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    /// `n` draws from N(0, std²) by ChaCha8(seed) (Box–Muller), so every run checks the same numbers.
    fn normal(n: usize, std: f64, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
            })
            .collect()
    }

    fn tensor(v: Vec<f32>, r: usize, c: usize) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(v, [r, c]), &Device::flex())
    }

    /// max |a − b| / max |a|.
    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    const SHAPES: [(usize, usize); 5] = [(7, 33), (33, 7), (17, 17), (64, 200), (200, 64)];

    /// Newton–Schulz alone against the tensor-op version. Both sides round differently (gemm's
    /// fused multiply-adds and blocking against burn's matmul), and the iteration's linear
    /// coefficient a = 3.44 amplifies a direction with a small singular value up to 3.44⁵ ≈ 480
    /// times over five iterations, so a 6e-8 rounding difference can grow to ~3e-5 there; relative to
    /// the largest entry the measured differences are at most 3.4e-6 on these seeded inputs. 1e-5
    /// sits 3× above that, while a wrong product (a missing transpose, swapped coefficients) is off
    /// by O(1) and scaling one coefficient by 1.001 already fails it (4e-5).
    #[test]
    fn fused_newton_schulz_matches_tensor_ops() {
        for (i, (r, c)) in SHAPES.into_iter().enumerate() {
            for steps in [0, 1, 5] {
                let g = normal(r * c, 1.0, i as u64);
                let want = vec(&super::super::muon::orthogonalize(tensor(g.clone(), r, c), steps));
                let norm = g.iter().map(|v| *v as f64 * *v as f64).sum::<f64>().sqrt();
                let mut x: Vec<f32> = g.iter().map(|v| *v / (norm + 1e-7) as f32).collect();
                newton_schulz(&mut x, r, c, steps);
                let err = rel_err(&want, &x);
                assert!(err < 1e-5, "{r}×{c}, {steps} steps: differs by {err:.2e} relative");
            }
        }
    }

    /// Five Muon steps of the fused update against [`super::super::muon::step`]: the momentum buffer
    /// is the same element arithmetic, so it must agree bit for bit; the weights carry Newton–Schulz'
    /// rounding (tolerance as above; measured up to 1.6e-6), checked on the change of the weights so
    /// the initial values do not dilute it.
    #[test]
    fn fused_muon_matches_tensor_ops() {
        for (i, (r, c)) in SHAPES.into_iter().enumerate() {
            let p0 = normal(r * c, 0.02, 100 + i as u64);
            let zeros = tensor(vec![0.0; r * c], r, c);
            let (mut a, mut b) = ((tensor(p0.clone(), r, c), zeros.clone()), (tensor(p0.clone(), r, c), zeros));
            for t in 0..5 {
                let g = tensor(normal(r * c, 1.0, 1000 * i as u64 + t), r, c);
                a = super::super::muon::step(a.0, g.clone(), a.1, 0.02, 0.95, 5);
                b = muon(b.0, g, b.1, 0.02, 0.95, 5);
            }
            assert_eq!(vec(&a.1), vec(&b.1), "{r}×{c}: momentum buffers differ");
            let delta = |p: &Tensor<2>| vec(p).iter().zip(&p0).map(|(x, y)| x - y).collect::<Vec<f32>>();
            let err = rel_err(&delta(&a.0), &delta(&b.0));
            assert!(err < 1e-5, "{r}×{c}: weight change differs by {err:.2e} relative");
        }
    }

    /// The same steps on one and on two rayon threads give the same bits (resume compares with
    /// `==`), including sizes where `gemm` and the element passes really split across threads.
    #[test]
    fn fused_muon_is_thread_count_independent() {
        for (i, (r, c)) in [(17, 17), (64, 200), (150, 260), (260, 150), (90, 20_000)].into_iter().enumerate() {
            let p0 = normal(r * c, 0.02, i as u64);
            let grads: Vec<Vec<f32>> = (0..3).map(|t| normal(r * c, 1.0, 10 * i as u64 + t + 1)).collect();
            let run = |threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (mut p, mut buf) = (p0.clone(), vec![0f32; r * c]);
                    for g in &grads {
                        muon_slices(&mut p, g, &mut buf, r, c, 0.02, 0.95, 5);
                    }
                    (p, buf)
                })
            };
            let (one, two) = (run(1), run(2));
            assert!(one.0 != p0, "{r}×{c}: the weights did not move");
            assert!(one.0 == two.0 && one.1 == two.1, "{r}×{c}: 1 and 2 threads differ");
        }
    }

    /// A zero gradient leaves the weights and the buffer at exactly their values (the norm's ε keeps
    /// 0 / 0 out), as the tensor-op update does.
    #[test]
    fn zero_gradient_is_a_no_op() {
        let (r, c) = (5, 9);
        let p0 = normal(r * c, 0.02, 7);
        let mut p = p0.clone();
        let mut buf = vec![0f32; r * c];
        muon_slices(&mut p, &vec![0f32; r * c], &mut buf, r, c, 0.02, 0.95, 5);
        assert_eq!(p, p0);
        assert!(buf.iter().all(|v| *v == 0.0));
    }
}
