//! Q8_0 weights for decoding: a matrix kept as llama.cpp's Q8_0 blocks (32 signed bytes and one
//! scale per block of a row) and multiplied by activations quantised the same way, with integer dot
//! products inside each block (`vec_dot_q8_0_q8_0`). Batch-1 decoding reads every weight once per
//! token, so it is bound by memory traffic: a quarter of f32's bytes is what makes it faster. Used
//! only on the inference path, for a few rows at a time ([`MAX_ROWS`]); prompts (many rows) keep
//! the f32 GEMM, which is faster there.

use rayon::prelude::*;
use std::sync::Mutex;

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

/// Blocks per group of partial sums in [`dot_row`]: block `b` adds into partial sum `b % 8`.
const GROUP: usize = 8;

/// `Σ_b wd[b] · xd[b] · Σ_i wq[32b + i] · xq[32b + i]`: one row of weights against one row of
/// activations. Within a block the integer products are summed exactly; block `b`'s scaled sum is
/// added to partial sum `b % 8` (the row padded with empty blocks to a multiple of 8, each adding
/// `0 · 0`), and the eight are summed pairwise at the end: the same operations in the same order at
/// every SIMD level (the same bits). Quantised values lie in `-127..=127` (both sides come from
/// [`quantize_block`]), so two products fit the 16-bit sums of `vpmaddubsw`.
pub fn dot_row(wq: &[i8], wd: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
    dot_row_at(crate::simd::level(), wq, wd, xq, xd)
}

/// [`dot_row`] at `level` (or the highest level below it that the CPU has).
pub fn dot_row_at(level: crate::simd::SimdLevel, wq: &[i8], wd: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
    let n = wd.len().min(xd.len());
    let (wq, wd, xq, xd) = (&wq[..n * BLOCK], &wd[..n], &xq[..n * BLOCK], &xd[..n]);
    match level.clamp_to_cpu() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: clamp_to_cpu returned a level with AVX2 (AVX-512 CPUs have it too).
        crate::simd::SimdLevel::Avx512 | crate::simd::SimdLevel::Avx2 => unsafe { x86::dot_row_avx2(wq, wd, xq, xd) },
        _ => {
            let mut acc = [0f32; GROUP];
            for b in 0..n.div_ceil(GROUP) * GROUP {
                acc[b % GROUP] += if b < n {
                    let s: i32 = wq[b * BLOCK..(b + 1) * BLOCK]
                        .iter()
                        .zip(&xq[b * BLOCK..(b + 1) * BLOCK])
                        .map(|(&w, &x)| w as i32 * x as i32)
                        .sum();
                    (wd[b] * xd[b]) * s as f32
                } else {
                    0.0 * 0.0
                };
            }
            let mut w = GROUP;
            while w > 1 {
                w /= 2;
                for j in 0..w {
                    acc[j] += acc[j + w];
                }
            }
            acc[0]
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, GROUP};
    use std::arch::x86_64::*;

    /// Bytes ahead of the current weight block that are fetched into cache while it is multiplied
    /// (SmolLM2 on a 2-core Intel Xeon: 106 tokens/s without, 105, 109, 121 and 122 with 256, 512,
    /// 1024 and 2048 bytes).
    const PREFETCH: usize = 1024;

    /// [`super::dot_row`] for equal block counts. Eight blocks at a time: per block `vpmaddubsw`
    /// (|w| against x with w's sign) and `vpmaddwd` give eight exact i32 partial sums; a tree of
    /// horizontal adds turns the eight blocks' vectors into one vector of their eight exact sums,
    /// scaled and added in one go; a last, partial group is padded with zeros. (A compiled plain loop
    /// reduced every block to a scalar: 49 tokens/s on SmolLM2 against 57 for this, on an Intel Xeon
    /// with AVX-512.)
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_row_avx2(wq: &[i8], wd: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
        let n = wd.len();
        assert!(wq.len() == n * BLOCK && xq.len() == n * BLOCK && xd.len() == n);
        let ones = _mm256_set1_epi16(1);
        let mut a = _mm256_setzero_ps();
        for g in 0..n.div_ceil(GROUP) {
            let full = (n - g * GROUP).min(GROUP);
            let mut s = [_mm256_setzero_si256(); GROUP];
            for (k, s) in s.iter_mut().enumerate().take(full) {
                let off = (g * GROUP + k) * BLOCK;
                _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(off + PREFETCH));
                // SAFETY: block g·8 + k < n, so its 32 bytes lie inside both slices.
                let (w, x) = unsafe {
                    (
                        _mm256_loadu_si256(wq.as_ptr().add(off) as *const __m256i),
                        _mm256_loadu_si256(xq.as_ptr().add(off) as *const __m256i),
                    )
                };
                *s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), ones);
            }
            // Each 128-bit half of q0123 holds that half's sums of blocks 0..4, of q4567 of 4..8.
            let q0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            let q4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
            let sums = _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(q0123, q4567),
                _mm256_permute2x128_si256::<0x31>(q0123, q4567),
            );
            let d = if full == GROUP {
                // SAFETY: the group's 8 scales lie inside both slices.
                unsafe {
                    _mm256_mul_ps(
                        _mm256_loadu_ps(wd.as_ptr().add(g * GROUP)),
                        _mm256_loadu_ps(xd.as_ptr().add(g * GROUP)),
                    )
                }
            } else {
                let (mut dw, mut dx) = ([0f32; GROUP], [0f32; GROUP]);
                dw[..full].copy_from_slice(&wd[g * GROUP..]);
                dx[..full].copy_from_slice(&xd[g * GROUP..]);
                // SAFETY: loads of two local 8-float arrays.
                unsafe { _mm256_mul_ps(_mm256_loadu_ps(dw.as_ptr()), _mm256_loadu_ps(dx.as_ptr())) }
            };
            a = _mm256_add_ps(a, _mm256_mul_ps(d, _mm256_cvtepi32_ps(sums)));
        }
        // The pairwise sum 8 → 4 → 2 → 1 of the scalar form.
        let h4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps::<1>(h2, h2)))
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
        let threads = if n * self.rows * self.cols < PARALLEL_MIN { 1 } else { crate::spin::threads() };
        let chunk = self.rows.div_ceil(threads).max(1);
        let run = |c: usize| {
            let (r0, r1) = ((c * chunk).min(self.rows), ((c + 1) * chunk).min(self.rows));
            // `[n, r1 - r0]`; each weight row read once for every activation row (it stays in cache).
            let mut v = vec![0f32; (r1 - r0) * n];
            for r in r0..r1 {
                let (wq, wd) = (&self.q[r * self.cols..(r + 1) * self.cols], &self.d[r * bpr..(r + 1) * bpr]);
                for a in 0..n {
                    let (aq, ad) = (&xq[a * self.cols..(a + 1) * self.cols], &xd[a * bpr..(a + 1) * bpr]);
                    v[a * (r1 - r0) + r - r0] = dot_row(wq, wd, aq, ad);
                }
            }
            (r0, v)
        };
        let parts: Vec<(usize, Vec<f32>)> = if threads == 1 {
            vec![run(0)]
        } else {
            let parts: Vec<Mutex<(usize, Vec<f32>)>> = (0..threads).map(|_| Mutex::new((0, Vec::new()))).collect();
            crate::spin::run(threads, &|c| *parts[c].lock().unwrap_or_else(|e| e.into_inner()) = run(c));
            parts.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
        };
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
    fn dot_row_is_exact_within_blocks_and_the_same_at_every_level() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Block counts below, at and across the group of eight, and SmolLM2's widths (576 and 1536).
        for blocks in [0, 1, 7, 8, 9, 16, 18, 23, 48] {
            for extreme in [false, true] {
                let n = blocks * BLOCK;
                // Extreme rows: every product ±127², the largest `vpmaddubsw` pairs can hold.
                let q = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<i8> {
                    (0..n)
                        .map(|_| {
                            if extreme {
                                if rng.random_bool(0.5) { 127 } else { -127 }
                            } else {
                                rng.random_range(-127..=127)
                            }
                        })
                        .collect()
                };
                let (wq, xq) = (q(&mut rng), q(&mut rng));
                let wd: Vec<f32> = (0..blocks).map(|_| rng.random_range(1e-3f32..1e-1)).collect();
                let xd: Vec<f32> = (0..blocks).map(|_| rng.random_range(1e-3f32..1e-1)).collect();
                let base = dot_row_at(crate::simd::SimdLevel::Baseline, &wq, &wd, &xq, &xd);
                for level in [crate::simd::SimdLevel::Avx2, crate::simd::SimdLevel::Avx512] {
                    let got = dot_row_at(level, &wq, &wd, &xq, &xd);
                    assert_eq!(got.to_bits(), base.to_bits(), "{blocks} blocks at {level}: {got} vs {base}");
                }
                let exact: f64 = (0..blocks)
                    .map(|b| {
                        let s: i64 = (b * BLOCK..(b + 1) * BLOCK).map(|i| wq[i] as i64 * xq[i] as i64).sum();
                        wd[b] as f64 * xd[b] as f64 * s as f64
                    })
                    .sum();
                let scale: f64 = (0..blocks).map(|b| (wd[b] * xd[b]) as f64 * (BLOCK * 127 * 127) as f64).sum();
                assert!((base as f64 - exact).abs() <= 1e-5 * (1.0 + scale), "{blocks} blocks: {base} vs {exact}");
            }
        }
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
        let base = dot_row_at(crate::simd::SimdLevel::Baseline, wq, wdv, aq, &xs[..cols / BLOCK]);
        for level in [crate::simd::SimdLevel::Avx2, crate::simd::SimdLevel::Avx512] {
            assert_eq!(dot_row_at(level, wq, wdv, aq, &xs[..cols / BLOCK]).to_bits(), base.to_bits());
        }
        assert!(QMatrix::quantize(&w[..rows * 33], rows, 33).is_none());
    }
}
