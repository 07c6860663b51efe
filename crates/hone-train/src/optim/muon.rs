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
    use burn::tensor::{Device, Distribution};

    #[test]
    fn newton_schulz_gives_near_orthogonal_rows() {
        let d = Device::flex();
        for (r, c) in [(8, 32), (32, 8)] {
            let g = Tensor::<2>::random([r, c], Distribution::Normal(0.0, 1.0), &d);
            let o = orthogonalize(g, 5);
            assert_eq!(o.dims(), [r, c]);
            let small = r.min(c);
            let gram = if r <= c { o.clone().matmul(o.transpose()) } else { o.clone().transpose().matmul(o) };
            let diag: Vec<f32> = gram.to_data().try_into_vec().unwrap();
            for i in 0..small {
                let s = diag[i * small + i];
                assert!((0.4..1.5).contains(&s), "singular value² {s} out of Newton–Schulz's band");
            }
        }
    }
}
