//! The weight matrices of batch-1 host decoding ([`crate::decode`]): f32 rows read in place from
//! the model's own tensors, or Q8_0 blocks ([`crate::q8`]). Decoding one token multiplies one
//! activation row by every matrix, so it is bound by reading the weights: the f32 form shares the
//! model's storage (no second copy of a 135M model's 540 MB) and streams each row once through a
//! SIMD dot product.

use crate::q8::QMatrix;
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use std::sync::Arc;

/// Weights from which an f32 product is split across threads: one core does not saturate memory
/// bandwidth, and on the 2-core machine SmolLM2's f32 layer matrices (0.3-0.9M weights) decoded
/// faster on two threads, unlike the Q8_0 ones (a quarter of the bytes).
const F32_PARALLEL_WEIGHTS: usize = 1 << 18;
/// Multiply-adds from which a product of weights that stay in cache is split: below it, waking a
/// second thread and waiting for it cost more than it saved (the served world model's matrices for
/// 8 requests at a time: the decoding thread spent 40% of its time waiting).
const F32_PARALLEL_PRODUCTS: usize = 1 << 19;

/// Lanes of [`dot`]'s partial sums: two AVX-512 registers or four AVX2 ones, enough independent
/// chains to keep the multiply-adds busy while the weights stream in.
const LANES: usize = 32;

/// `Σ a·b` over two equal-length slices in [`LANES`] partial sums, summed pairwise at the end. The
/// same fused multiply-adds in the same order at every SIMD level (the baseline through
/// `f32::mul_add`), so every level gives the same bits. (Separate multiplies and adds, the first
/// form, served the world model's 8-request batched steps 8% slower: there the products, not the
/// memory, are the bound.) Written with intrinsics: compiled from a plain loop, the
/// vectoriser chose two-lane loads and decoding ran at half of memory speed.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_at(crate::simd::level(), a, b)
}

/// [`dot`] at `level` (or the highest level below it that the CPU has).
pub fn dot_at(level: crate::simd::SimdLevel, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let body = n - n % LANES;
    let mut acc = [0f32; LANES];
    match level.clamp_to_cpu() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: clamp_to_cpu returned this level, so the CPU has its features.
        crate::simd::SimdLevel::Avx512 => unsafe { x86::lanes_avx512(&a[..body], &b[..body], &mut acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        crate::simd::SimdLevel::Avx2 => unsafe { x86::lanes_avx2(&a[..body], &b[..body], &mut acc) },
        _ => {
            for (x, y) in a[..body].chunks_exact(LANES).zip(b[..body].chunks_exact(LANES)) {
                for j in 0..LANES {
                    acc[j] = x[j].mul_add(y[j], acc[j]);
                }
            }
        }
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] += acc[j + w];
        }
    }
    acc[0] + a[body..].iter().zip(&b[body..]).map(|(x, y)| x * y).sum::<f32>()
}

/// `out[r·rows + j] = dot(row j of w, row r of x)` for every row of `w: [rows, cols]` and of
/// `x: [n, cols]` (`out: [n, rows]`): [`dot`]'s sums in [`dot`]'s order (the same bits), with the
/// level chosen once and, on AVX-512, the final pairwise sum done in registers. Short rows made the
/// per-dot overhead (dispatch, the 32-lane store and its scalar sum) cost more than the
/// multiply-adds: for the served world model's 192-wide rows it was half the decoding thread's time.
pub fn dot_rows(w: &[f32], x: &[f32], cols: usize, n: usize, out: &mut [f32]) {
    let rows = w.len() / cols;
    assert!(x.len() >= n * cols && out.len() >= n * rows, "dot_rows: x or out too short");
    // SAFETY: out holds [n, rows].
    unsafe { dot_rows_raw(&w[..rows * cols], x, cols, n, out.as_mut_ptr(), rows) };
}

/// [`dot_rows`] writing `out[r·stride + j]`: a block of columns of a wider `[n, stride]` output,
/// which threads fill side by side.
///
/// # Safety
/// `out[r·stride + j]` must be valid for writes, and written by no one else meanwhile, for every
/// `r < n` and `j < w.len() / cols`; `x` must hold `n · cols` values.
unsafe fn dot_rows_raw(w: &[f32], x: &[f32], cols: usize, n: usize, out: *mut f32, stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if cols.is_multiple_of(LANES) && crate::simd::level().clamp_to_cpu() == crate::simd::SimdLevel::Avx512 {
        // SAFETY: the CPU has AVX-512 (the level says so); the caller vouches for out.
        unsafe { x86::dot_rows_avx512(w, x, cols, n, out, stride) };
        return;
    }
    for (j, row) in w.chunks_exact(cols).enumerate() {
        for (r, x) in x.chunks_exact(cols).take(n).enumerate() {
            // SAFETY: the caller vouches for out.
            unsafe { *out.add(r * stride + j) = dot(row, x) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// Floats (1 KiB) ahead of the current weight block that are fetched into cache while it is
    /// multiplied. The hardware prefetcher alone left f32 decoding of SmolLM2 at 42 tokens/s on a
    /// 2-core Intel Xeon; prefetching 4096, 1024, 512, 256, 128 and 64 floats ahead gave 46, 49, 52,
    /// 55, 54 and 52.
    const PREFETCH: usize = 256;

    /// `acc[j] += Σ_c a[c·32 + j] · b[c·32 + j]`; `a.len() == b.len()`, a multiple of 32.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn lanes_avx512(a: &[f32], b: &[f32], acc: &mut [f32; LANES]) {
        // SAFETY: every load reads 16 floats inside a 32-float block of the slices.
        unsafe {
            let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for c in 0..a.len() / LANES {
                let (pa, pb) = (a.as_ptr().add(c * LANES), b.as_ptr().add(c * LANES));
                _mm_prefetch::<_MM_HINT_T0>(pa.wrapping_add(PREFETCH) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(pa.wrapping_add(PREFETCH + 16) as *const i8);
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa), _mm512_loadu_ps(pb), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(16)), _mm512_loadu_ps(pb.add(16)), s1);
            }
            _mm512_storeu_ps(acc.as_mut_ptr(), s0);
            _mm512_storeu_ps(acc.as_mut_ptr().add(16), s1);
        }
    }

    /// The pairwise sum of `dot_at` over the 32 lanes `s0 | s1`, lane for lane: 32 → 16 → 8 → 4 →
    /// 2 → 1, then its (here empty) tail added as `dot_at` adds it.
    #[target_feature(enable = "avx512f,avx512dq,fma")]
    fn reduce(s0: __m512, s1: __m512) -> f32 {
        let h16 = _mm512_add_ps(s0, s1);
        let h8 = _mm256_add_ps(_mm512_castps512_ps256(h16), _mm512_extractf32x8_ps::<1>(h16));
        let h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps::<1>(h8));
        let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps::<1>(h2, h2))) + std::iter::empty::<f32>().sum::<f32>()
    }

    /// [`super::dot_rows_raw`] with `cols` a multiple of 32: four activation rows at a time share
    /// each load of a weight block.
    ///
    /// # Safety
    /// As `dot_rows_raw`, on a CPU with AVX-512.
    #[target_feature(enable = "avx512f,avx512dq,fma")]
    pub unsafe fn dot_rows_avx512(w: &[f32], x: &[f32], cols: usize, n: usize, out: *mut f32, stride: usize) {
        let rows = w.len() / cols;
        assert!(x.len() >= n * cols && cols.is_multiple_of(LANES));
        let px = x.as_ptr();
        for j in 0..rows {
            // SAFETY: loads stay inside row j of w and rows r..r+4 of x.
            let pw = unsafe { w.as_ptr().add(j * cols) };
            let mut r = 0;
            while r + 4 <= n {
                let mut s = [_mm512_setzero_ps(); 8];
                for c in 0..cols / LANES {
                    // SAFETY: as above.
                    unsafe {
                        let (w0, w1) = (_mm512_loadu_ps(pw.add(c * LANES)), _mm512_loadu_ps(pw.add(c * LANES + 16)));
                        if r == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(c * LANES + PREFETCH) as *const i8);
                            _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(c * LANES + PREFETCH + 16) as *const i8);
                        }
                        for q in 0..4 {
                            let b = px.add((r + q) * cols + c * LANES);
                            s[2 * q] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b), s[2 * q]);
                            s[2 * q + 1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b.add(16)), s[2 * q + 1]);
                        }
                    }
                }
                for q in 0..4 {
                    // SAFETY: the caller vouches for out.
                    unsafe { *out.add((r + q) * stride + j) = reduce(s[2 * q], s[2 * q + 1]) };
                }
                r += 4;
            }
            for r in r..n {
                let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                for c in 0..cols / LANES {
                    // SAFETY: as above.
                    unsafe {
                        let (a, b) = (pw.add(c * LANES), px.add(r * cols + c * LANES));
                        if r == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH) as *const i8);
                            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH + 16) as *const i8);
                        }
                        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b), s0);
                        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(16)), _mm512_loadu_ps(b.add(16)), s1);
                    }
                }
                // SAFETY: the caller vouches for out.
                unsafe { *out.add(r * stride + j) = reduce(s0, s1) };
            }
        }
    }

    /// As [`lanes_avx512`], in four 8-lane registers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn lanes_avx2(a: &[f32], b: &[f32], acc: &mut [f32; LANES]) {
        // SAFETY: every load reads 8 floats inside a 32-float block of the slices.
        unsafe {
            let mut s = [_mm256_setzero_ps(); 4];
            for c in 0..a.len() / LANES {
                let (pa, pb) = (a.as_ptr().add(c * LANES), b.as_ptr().add(c * LANES));
                _mm_prefetch::<_MM_HINT_T0>(pa.wrapping_add(PREFETCH) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(pa.wrapping_add(PREFETCH + 16) as *const i8);
                for (k, s) in s.iter_mut().enumerate() {
                    *s = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8 * k)), _mm256_loadu_ps(pb.add(8 * k)), *s);
                }
            }
            for (k, s) in s.iter().enumerate() {
                _mm256_storeu_ps(acc.as_mut_ptr().add(8 * k), *s);
            }
        }
    }
}

/// The f32 storage of a tensor on the Flex backend (shared, not copied); `None` on other backends
/// or under autodiff.
fn flex_storage(t: &Tensor<2>) -> Option<FlexTensor> {
    use burn::backend::{BackendTensor, DispatchTensorKind};
    match t.clone().into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(f)) => Some(crate::fused::host_contiguous(f)),
        _ => None,
    }
}

/// A `[rows, cols]` matrix made of row blocks of the model's f32 tensors (a layer's query, key and
/// value projections read as one matrix without stacking them into a copy).
pub struct F32Matrix {
    pub rows: usize,
    pub cols: usize,
    parts: Vec<FlexTensor>,
}

impl F32Matrix {
    /// The tensors (all `[_, cols]`) as one matrix; `None` unless they live on Flex without autodiff.
    pub fn of(tensors: &[&Tensor<2>]) -> Option<F32Matrix> {
        let cols = tensors.first()?.dims()[1];
        let parts = tensors.iter().map(|t| flex_storage(t)).collect::<Option<Vec<_>>>()?;
        if tensors.iter().any(|t| t.dims()[1] != cols) {
            return None;
        }
        Some(F32Matrix { rows: tensors.iter().map(|t| t.dims()[0]).sum(), cols, parts })
    }

    /// Row `r` of the matrix.
    pub fn row(&self, mut r: usize) -> &[f32] {
        for p in &self.parts {
            let v = crate::fused::host_values(p);
            let n = v.len() / self.cols;
            if r < n {
                return &v[r * self.cols..(r + 1) * self.cols];
            }
            r -= n;
        }
        panic!("row {r} past the matrix's end")
    }

    /// `x · Wᵀ` for `n` activation rows `x: [n, cols]` → `[n, rows]`. Each weight row is read once
    /// and multiplied by every activation row while it is in cache (the step is bound by reading
    /// weights); each product is [`dot`], so a row's result does not depend on which other rows
    /// share the step. (A GEMM call cost more than it saved at these sizes: on the served world
    /// model, packing and its threads took most of a batched step.)
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        assert_eq!(x.len(), n * self.cols, "f32 matmul: x is not [n, cols]");
        let cols = self.cols;
        // [n, rows]; threads own disjoint blocks of its columns (weight rows).
        let mut out = vec![0f32; n * self.rows];
        let weights: Vec<&[f32]> = self.parts.iter().map(crate::fused::host_values).collect();
        let dst = SharedOut(out.as_mut_ptr());
        // Columns `r0..r1` of the output (rows of the stacked matrix), part by part.
        let rows = |r0: usize, r1: usize| {
            let mut at = 0;
            for w in &weights {
                let k = w.len() / cols;
                let (a, b) = (r0.max(at), r1.min(at + k));
                if a < b {
                    // SAFETY: columns a..b of the [n, self.rows] output, which no other block writes.
                    unsafe { dot_rows_raw(&w[(a - at) * cols..(b - at) * cols], x, cols, n, dst.at(a), self.rows) };
                }
                at += k;
            }
        };
        let total = self.rows * cols;
        if total < F32_PARALLEL_WEIGHTS && n * total < F32_PARALLEL_PRODUCTS {
            rows(0, self.rows);
        } else {
            // Blocks of rows across the parts, claimed by the threads as they come free. One row of
            // activations is bound by memory: one block per thread (SmolLM2 decodes fastest so).
            // Several rows are bound by the products: four blocks per thread even out the threads'
            // finishing times (the served world model, 8 requests: the decoding thread had spent
            // 14% of its time waiting for its helper with two blocks; 10% more tokens/s with 4 or 8
            // per thread).
            let per_thread = if n > 1 { 4 } else { 1 };
            let chunk = self.rows.div_ceil(crate::spin::threads() * per_thread).max(1);
            crate::spin::run(self.rows.div_ceil(chunk), &|c| rows(c * chunk, ((c + 1) * chunk).min(self.rows)));
        }
        out
    }
}

/// The output of [`F32Matrix::matmul`], written by several threads in disjoint column blocks.
struct SharedOut(*mut f32);
// SAFETY: every writer owns a disjoint set of elements (see `matmul`), and the buffer outlives the
// threads' work (`spin::run` returns once all parts are done).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The address of column `j` of the first row.
    fn at(&self, j: usize) -> *mut f32 {
        self.0.wrapping_add(j)
    }
}

/// A matrix as the host decoder multiplies it.
pub enum HostMatrix {
    F32(F32Matrix),
    /// Shared with the model's Q8_0 copies, or a stack of them.
    Q8(Arc<QMatrix>),
}

impl HostMatrix {
    /// Weights (rows × cols).
    pub fn len(&self) -> usize {
        match self {
            HostMatrix::F32(m) => m.rows * m.cols,
            HostMatrix::Q8(m) => m.rows * m.cols,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rows(&self) -> usize {
        match self {
            HostMatrix::F32(m) => m.rows,
            HostMatrix::Q8(m) => m.rows,
        }
    }

    /// `x · Wᵀ` for `n` activation rows `x: [n, cols]` → `[n, rows]`.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        match self {
            HostMatrix::F32(m) => m.matmul(x, n),
            HostMatrix::Q8(m) => m.matmul(x, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_every_product_at_every_level() {
        for n in [0, 1, 31, 32, 33, 64, 100, 577] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.5).collect();
            // Quarter and half steps of small integers: every partial sum is exact.
            let exact: f32 = a.iter().zip(&b).map(|(a, b)| a * b).sum();
            let base = dot_at(crate::simd::SimdLevel::Baseline, &a, &b);
            assert_eq!(base, exact, "n = {n}");
            for level in [crate::simd::SimdLevel::Avx2, crate::simd::SimdLevel::Avx512] {
                assert_eq!(dot_at(level, &a, &b).to_bits(), base.to_bits(), "n = {n}, {level:?}");
            }
        }
    }

    #[test]
    fn dot_rows_is_dot_bit_for_bit() {
        for cols in [32, 64, 192, 200] {
            let w: Vec<f32> = (0..5 * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.0137).collect();
            let x: Vec<f32> = (0..6 * cols).map(|i| ((i * 11 % 53) as f32 - 26.0) * 0.071).collect();
            let mut out = vec![0f32; 30];
            dot_rows(&w, &x, cols, 6, &mut out);
            for j in 0..5 {
                for r in 0..6 {
                    let want = dot(&w[j * cols..(j + 1) * cols], &x[r * cols..(r + 1) * cols]);
                    assert_eq!(out[r * 5 + j].to_bits(), want.to_bits(), "cols {cols}, ({j}, {r})");
                }
            }
        }
    }

    /// A matrix read in place from parts of `rows` rows each (small integers times `scale`), and
    /// the same rows stacked; `None` off the Flex backend.
    fn stacked_parts(cols: usize, rows: &[usize], scale: f32) -> Option<(F32Matrix, Vec<f32>)> {
        let dev = burn::tensor::Device::flex();
        let mats: Vec<Vec<f32>> = rows
            .iter()
            .enumerate()
            .map(|(p, &r)| (0..r * cols).map(|i| (((i * 31 + p) % 17) as f32 - 8.0) * scale).collect())
            .collect();
        let tensors: Vec<Tensor<2>> = mats
            .iter()
            .zip(rows)
            .map(|(m, &r)| Tensor::from_data(burn::tensor::TensorData::new(m.clone(), [r, cols]), &dev))
            .collect();
        let refs: Vec<&Tensor<2>> = tensors.iter().collect();
        Some((F32Matrix::of(&refs)?, mats.concat()))
    }

    #[test]
    fn threaded_products_over_parts_are_dot_bit_for_bit() {
        // Past the threading line; the blocks' boundary falls inside the first part and the second
        // block spans all three.
        let (cols, rows) = (64, [3000usize, 5, 2003]);
        assert!(rows.iter().sum::<usize>() * cols >= F32_PARALLEL_WEIGHTS);
        let Some((m, stacked)) = stacked_parts(cols, &rows, 0.173) else {
            return; // not on Flex: nothing to read in place
        };
        for n in [1, 2, 5] {
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.31).collect();
            let got = m.matmul(&x, n);
            for r in 0..n {
                for j in 0..m.rows {
                    let want = dot(&stacked[j * cols..(j + 1) * cols], &x[r * cols..(r + 1) * cols]);
                    assert_eq!(got[r * m.rows + j].to_bits(), want.to_bits(), "n {n}, ({r}, {j})");
                }
            }
        }
    }

    #[test]
    fn matvec_over_parts_is_the_stacked_product() {
        let (cols, rows) = (40, [3usize, 5, 600]);
        let Some((m, stacked)) = stacked_parts(cols, &rows, 1.0) else {
            return; // not on Flex: nothing to read in place
        };
        let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let got = m.matmul(&x, 1);
        let batched = m.matmul(&[x.clone(), x.clone()].concat(), 2);
        assert_eq!(m.rows, 608);
        for r in 0..m.rows {
            let want: f32 = (0..cols).map(|k| stacked[r * cols + k] * x[k]).sum();
            assert_eq!(got[r], want, "row {r}");
            assert_eq!((batched[r], batched[m.rows + r]), (want, want), "batched row {r}");
            assert_eq!(m.row(r), &stacked[r * cols..(r + 1) * cols]);
        }
    }
}
