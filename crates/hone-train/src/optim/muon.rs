//! Muon (Jordan et al., as in modded-nanogpt and nanochat): SGD with Nesterov momentum whose update
//! for a 2-D weight matrix is replaced by its nearest semi-orthogonal matrix, computed with five
//! quintic Newton–Schulz iterations, and scaled by √max(1, rows/cols).

use burn::tensor::Tensor;

/// Quintic Newton–Schulz coefficients from modded-nanogpt (maximise the slope at zero).
pub(crate) const NS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Approximately orthogonalises `g` (`[rows, cols]`): `U Vᵀ` of its SVD, with singular values pushed
/// into roughly [0.7, 1.2].
pub fn orthogonalize(g: Tensor<2>, steps: usize) -> Tensor<2> {
    let [rows, cols] = g.dims();
    let tall = rows > cols;
    // Work on the wide orientation so X Xᵀ is the smaller Gram matrix.
    let mut x = if tall { g.transpose() } else { g };
    let norm: f32 = x.clone().square().sum().sqrt().into_scalar();
    x = x.div_scalar(norm as f64 + 1e-7);
    for _ in 0..steps {
        let a = x.clone().matmul(x.clone().transpose()); // [small, small]
        let b = a.clone().mul_scalar(NS.1) + a.clone().matmul(a).mul_scalar(NS.2);
        x = x.clone().mul_scalar(NS.0) + b.matmul(x);
    }
    if tall { x.transpose() } else { x }
}

/// One Muon step for a matrix `p` with gradient `g` and momentum buffer `buf`. Returns `(p, buf)`.
pub fn step(
    p: Tensor<2>,
    g: Tensor<2>,
    buf: Tensor<2>,
    lr: f64,
    momentum: f64,
    ns_steps: usize,
) -> (Tensor<2>, Tensor<2>) {
    let [rows, cols] = p.dims();
    // buf ← lerp(buf, g, 1 − μ); Nesterov: update ← lerp(g, buf, μ).
    let buf = buf.clone() + (g.clone() - buf).mul_scalar(1.0 - momentum);
    let update = g.clone() + (buf.clone() - g).mul_scalar(momentum);
    let o = orthogonalize(update, ns_steps);
    let scale = (rows as f64 / cols as f64).max(1.0).sqrt();
    (p - o.mul_scalar(lr * scale), buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Eigenvalues of a symmetric `n × n` matrix (cyclic Jacobi rotations, f64).
    fn eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
        for _ in 0..100 {
            let off: f64 = (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| a[i * n + j].powi(2))
                .sum();
            if off < 1e-22 {
                break;
            }
            for p in 0..n {
                for q in p + 1..n {
                    let apq = a[p * n + q];
                    if apq.abs() < 1e-300 {
                        continue;
                    }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                    for k in 0..n {
                        let (akp, akq) = (a[k * n + p], a[k * n + q]);
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                }
            }
        }
        (0..n).map(|i| a[i * n + i]).collect()
    }

    /// Singular values² of `m` (`[r, c]`, row-major): eigenvalues of the smaller Gram matrix.
    fn singular_values_sq(m: &[f32], r: usize, c: usize) -> Vec<f64> {
        let (small, big) = (r.min(c), r.max(c));
        let at = |i: usize, k: usize| if r <= c { m[i * c + k] as f64 } else { m[k * c + i] as f64 };
        let gram: Vec<f64> =
            (0..small * small).map(|x| (0..big).map(|k| at(x / small, k) * at(x % small, k)).sum()).collect();
        eigenvalues(gram, small)
    }

    /// Every singular value (not only the Gram diagonal) lands in Newton–Schulz's band around 1, on
    /// seeded inputs including a badly conditioned one; the result
    /// keeps the input's orientation (positive inner product with it).
    #[test]
    fn newton_schulz_pushes_every_singular_value_near_one() {
        use rand::{Rng, SeedableRng};
        let d = Device::flex();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (r, c, spread) in [(8, 32, false), (32, 8, false), (12, 12, true)] {
            let mut v: Vec<f32> = (0..r * c).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            if spread {
                // Scale column k by 10^(-1.5k/c): an input whose singular values span ~1.5 decades.
                for (i, x) in v.iter_mut().enumerate() {
                    *x *= 10f32.powf(-1.5 * (i % c) as f32 / c as f32);
                }
            }
            let before = singular_values_sq(&v, r, c);
            let cond = before.iter().cloned().fold(0.0, f64::max) / before.iter().cloned().fold(f64::MAX, f64::min);
            let g = Tensor::<2>::from_data(burn::tensor::TensorData::new(v.clone(), [r, c]), &d);
            let o: Vec<f32> = orthogonalize(g, 5).to_data().try_into_vec().unwrap();
            let after = singular_values_sq(&o, r, c);
            // The quintic iteration does not converge to 1 exactly: it maps singular values into
            // about [0.68, 1.13] (squares 0.46..1.28) after 5 steps, unless one starts far below the
            // reach of 5 steps (≈ 1e-3 of the largest after normalisation).
            for s in &after {
                assert!(
                    (0.3..1.45).contains(s),
                    "{r}x{c}: singular value² {s} out of the band (input's cond² {cond:.1e}): {after:?}"
                );
            }
            let spread_after =
                after.iter().cloned().fold(0.0, f64::max) / after.iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread_after < 5.0 && spread_after < cond, "{r}x{c}: cond² {cond:.1e} → {spread_after:.2}");
            let dot: f64 = o.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!(dot > 0.0, "{r}x{c}: the update points against the gradient");
        }
    }
}
