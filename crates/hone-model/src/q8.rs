//! Q8_0 weights for decoding: a matrix kept as llama.cpp's Q8_0 blocks (32 signed bytes and one
//! scale per block of a row) and multiplied by activations quantised the same way, with integer dot
//! products inside each block (`vec_dot_q8_0_q8_0`). Batch-1 decoding reads every weight once per
//! token, so it is bound by memory traffic: a quarter of f32's bytes is what makes it faster. Used
//! only on the inference path, for a few rows at a time ([`MAX_ROWS`]); prompts (many rows) keep
//! the f32 GEMM, which is faster there.

use crate::simd_fn;
use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;
/// Most activation rows multiplied through Q8_0: beyond a few rows the f32 GEMM, which reuses each
/// loaded weight across rows, is faster.
pub const MAX_ROWS: usize = 4;

/// Products (rows × cols × activation rows) from which a product is split across threads.
const PARALLEL_MIN: usize = 1 << 18;

/// A `[rows, cols]` matrix in Q8_0 blocks along each row (`cols` a multiple of 32).
#[derive(Debug, Clone, PartialEq)]
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    /// One scale per block, row-major: `[rows, cols / 32]`.
    d: Vec<f32>,
    /// `[rows, cols]` quantised values.
    q: Vec<i8>,
}

/// Q8_0 of one block as llama.cpp's `quantize_row_q8_0_ref`: scale `max|x| / 127`, values rounded
/// to the nearest integer (ties away from zero), the scale then rounded to f16 as files store it.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in q.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    // Weights dequantised from a Q8_0 file quantise back to the file's own blocks: their largest
    // value is 127 times the f16 scale, which this rounding returns unchanged.
    half::f16::from_f32(d).to_f32()
}

/// Quantises `x` (a multiple of 32 values) into `q` and returns the scales.
fn quantize_row(x: &[f32], q: &mut [i8]) -> Vec<f32> {
    x.chunks(BLOCK).zip(q.chunks_mut(BLOCK)).map(|(x, q)| quantize_block(x, q)).collect()
}

simd_fn! {
    /// `Σ_b wd[b] · xd[b] · Σ_i wq[32b + i] · xq[32b + i]`: one row of weights against one row of
    /// activations, integer products summed exactly within each block.
    pub fn dot_row(wq: &[i8], wd: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
        let n = wd.len();
        let (wq, xq, xd) = (&wq[..n * BLOCK], &xq[..n * BLOCK], &xd[..n]);
        let mut acc = 0f32;
        for b in 0..n {
            let (w, x) = (&wq[b * BLOCK..(b + 1) * BLOCK], &xq[b * BLOCK..(b + 1) * BLOCK]);
            // Products fit in i16 (127² < 2¹⁵); pairs summed into i32 lanes are what `vpmaddwd`
            // computes, which the compiler emits for this shape (i32 products would need the
            // slower `vpmulld`).
            let mut s = 0i32;
            for i in (0..BLOCK).step_by(2) {
                s += (w[i] as i16 * x[i] as i16) as i32 + (w[i + 1] as i16 * x[i + 1] as i16) as i32;
            }
            acc += wd[b] * xd[b] * s as f32;
        }
        acc
    }
}

impl QMatrix {
    /// Quantises a row-major `[rows, cols]` f32 matrix; `None` when `cols` is not a multiple of 32.
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Option<QMatrix> {
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols {
            return None;
        }
        let mut q = vec![0i8; rows * cols];
        let d: Vec<f32> =
            data.par_chunks(cols).zip(q.par_chunks_mut(cols)).flat_map_iter(|(x, q)| quantize_row(x, q)).collect();
        Some(QMatrix { rows, cols, d, q })
    }

    /// `x · Wᵀ` for `n` rows of activations `x: [n, cols]` → `[n, rows]`, the activations quantised
    /// to Q8_0 first (as llama.cpp does for its Q8_0 dot products).
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        assert_eq!(x.len(), n * self.cols, "q8 matmul: activations are not [n, cols]");
        let bpr = self.cols / BLOCK;
        let mut xq = vec![0i8; x.len()];
        let xd: Vec<f32> =
            x.chunks(self.cols).zip(xq.chunks_mut(self.cols)).flat_map(|(x, q)| quantize_row(x, q)).collect();
        let mut out = vec![0f32; n * self.rows];
        // Rows of W in one chunk per thread (a token's matrices are small: more, smaller tasks spent
        // more time in the scheduler than in the products); each output row of every activation row.
        // Small products stay on one thread: waking a second costs more than it saves. Where the
        // line falls depends on the machine: on a 2-core AMD EPYC (Zen 5) SmolLM2's layer matrices
        // (0.1-0.9M weights) decoded faster on one thread, on a 2-core Intel Xeon (AVX-512) 1.3x
        // faster on two (49 against 38 tokens/s); the line is set for the second, the slower one.
        let threads = if n * self.rows * self.cols < PARALLEL_MIN { 1 } else { rayon::current_num_threads() };
        let chunk = self.rows.div_ceil(threads).max(1);
        let run = |c: usize| {
            let (r0, r1) = (c * chunk, ((c + 1) * chunk).min(self.rows));
            let mut v = Vec::with_capacity((r1 - r0) * n);
            for a in 0..n {
                let (aq, ad) = (&xq[a * self.cols..(a + 1) * self.cols], &xd[a * bpr..(a + 1) * bpr]);
                for r in r0..r1 {
                    let (wq, wd) = (&self.q[r * self.cols..(r + 1) * self.cols], &self.d[r * bpr..(r + 1) * bpr]);
                    v.push(dot_row(wq, wd, aq, ad));
                }
            }
            (r0, v)
        };
        let parts: Vec<(usize, Vec<f32>)> =
            if threads == 1 { vec![run(0)] } else { (0..self.rows.div_ceil(chunk)).into_par_iter().map(run).collect() };
        for (r0, v) in parts {
            let len = v.len() / n;
            for a in 0..n {
                out[a * self.rows + r0..a * self.rows + r0 + len].copy_from_slice(&v[a * len..(a + 1) * len]);
            }
        }
        out
    }

    /// The matrices stacked by rows (all of one width): one product instead of several over the
    /// same input (a layer's query, key and value projections).
    pub fn stack(parts: &[&QMatrix]) -> QMatrix {
        let cols = parts[0].cols;
        assert!(parts.iter().all(|p| p.cols == cols), "stacked Q8_0 matrices differ in width");
        QMatrix {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            d: parts.iter().flat_map(|p| p.d.iter().copied()).collect(),
            q: parts.iter().flat_map(|p| p.q.iter().copied()).collect(),
        }
    }

    /// The dequantised matrix (for tests and comparisons).
    pub fn dequantize(&self) -> Vec<f32> {
        let bpr = self.cols / BLOCK;
        (0..self.rows * self.cols)
            .map(|i| self.q[i] as f32 * self.d[(i / self.cols) * bpr + (i % self.cols) / BLOCK])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The step (scale) of the block holding weight `(r, k)`.
    fn wd_step(m: &QMatrix, r: usize, k: usize) -> f64 {
        m.d[r * (m.cols / BLOCK) + k / BLOCK] as f64
    }

    #[test]
    fn matmul_is_the_dot_product_of_the_quantised_values() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (rows, cols, n) = (130, 96, 3);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let x: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let m = QMatrix::quantize(&w, rows, cols).unwrap();
        let wd = m.dequantize();
        // The activations' own quantisation, by the same rule.
        let mut xq = vec![0i8; x.len()];
        let xs: Vec<f32> = x.chunks(cols).zip(xq.chunks_mut(cols)).flat_map(|(x, q)| quantize_row(x, q)).collect();
        let xdq: Vec<f32> = (0..x.len()).map(|i| xq[i] as f32 * xs[i / BLOCK]).collect();
        let got = m.matmul(&x, n);
        for a in 0..n {
            for r in 0..rows {
                let exact: f64 = (0..cols).map(|k| wd[r * cols + k] as f64 * xdq[a * cols + k] as f64).sum();
                let f32_ref: f64 = (0..cols).map(|k| w[r * cols + k] as f64 * x[a * cols + k] as f64).sum();
                let g = got[a * rows + r] as f64;
                assert!((g - exact).abs() < 1e-4 * (1.0 + exact.abs()), "row {r}: {g} vs {exact}");
                // Against the f32 product, the rounding of both sides bounds the error: each value
                // is off by at most half its block's step (plus the f16 rounding of the scale).
                let bound: f64 = (0..cols)
                    .map(|k| {
                        let (dw, dx) = (wd_step(&m, r, k), xs[(a * cols + k) / BLOCK] as f64);
                        let (ew, ex) = (
                            0.51 * dw + 1e-3 * w[r * cols + k].abs() as f64,
                            0.51 * dx + 1e-3 * x[a * cols + k].abs() as f64,
                        );
                        (x[a * cols + k].abs() as f64) * ew + (w[r * cols + k].abs() as f64) * ex + ew * ex
                    })
                    .sum();
                assert!((g - f32_ref).abs() <= bound, "row {r}: {g} vs f32 {f32_ref} (bound {bound})");
            }
        }
        // Every SIMD level gives the same bits.
        let (wq, wdv, aq) = (&m.q[..cols], &m.d[..cols / BLOCK], &xq[..cols]);
        let base = dot_row::at(crate::simd::SimdLevel::Baseline, wq, wdv, aq, &xs[..cols / BLOCK]);
        for level in [crate::simd::SimdLevel::Avx2, crate::simd::SimdLevel::Avx512] {
            assert_eq!(dot_row::at(level, wq, wdv, aq, &xs[..cols / BLOCK]).to_bits(), base.to_bits());
        }
        assert!(QMatrix::quantize(&w[..rows * 33], rows, 33).is_none());
    }
}
