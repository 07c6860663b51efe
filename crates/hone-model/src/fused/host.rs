//! Host-side plumbing shared by the fused CPU ops: reading a Flex tensor as an `f32` slice, wrapping
//! a freshly computed `Vec<f32>` as a Flex tensor without copying, a single-threaded `gemm` call on
//! strided matrices, a safe multithreaded one on slices (the linear layer's and Muon's products), and a raw pointer that rayon tasks may share when they write disjoint elements.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};

/// `t` in row-major order with no offset (a copy only when it is a strided view).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "fused ops run on f32 tensors");
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// The values of a contiguous f32 tensor (see [`contiguous`]).
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A Flex tensor owning `v` (no copy) with `shape`.
pub(crate) fn tensor(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// The dimensions of a Flex tensor.
pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().to_vec()
}

/// A pointer rayon tasks share to write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub *mut f32);
// SAFETY: every user writes a set of elements no other task touches.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not its raw field).
    pub fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A strided row-major matrix view: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    pub fn rows(ptr: *const f32, row_stride: usize) -> Mat {
        Mat { ptr, rs: row_stride as isize, cs: 1 }
    }

    /// The transpose of this view (no data moves).
    pub fn t(self) -> Mat {
        Mat { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

/// `dst (m×n) = [dst +] scale · lhs (m×k) · rhs (k×n)`, single-threaded (callers parallelise over
/// independent products, so results do not depend on the thread count).
///
/// # Safety
/// The views must address valid memory for their shapes, `dst` must not alias `lhs`/`rhs`, and no
/// other thread may touch `dst`'s elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of dst is inside the caller's buffer.
                unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0) };
            }
        }
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A strided matrix view of a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> View<'a> {
        View { data, rs: cols, cs: 1 }
    }

    /// The transpose (no data moves).
    pub fn t(self) -> View<'a> {
        View { data: self.data, rs: self.cs, cs: self.rs }
    }

    /// Whether a `rows × cols` matrix read through this view stays inside the slice.
    pub fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m×n, row-major) = alpha·dst + beta·lhs (m×k)·rhs (k×n)`; `alpha = 0` ignores what `dst`
/// held. Multithreaded over rows and columns when the product is large enough to pay for it (never
/// over the reduction, so the result does not depend on the thread count).
#[allow(clippy::too_many_arguments)]
pub fn gemm_slices(dst: &mut [f32], m: usize, n: usize, k: usize, alpha: f32, lhs: View, rhs: View, beta: f32) {
    assert_eq!(dst.len(), m * n, "gemm_slices: dst is not {m}×{n}");
    // SAFETY: `dst` is an m×n buffer, uniquely borrowed, so it aliases neither operand.
    unsafe { gemm_raw(dst.as_mut_ptr(), m, n, k, alpha, lhs, rhs, beta) }
}

/// `lhs (m×k) · rhs (k×n)` into a new row-major buffer. The product writes every element without
/// reading it, so the buffer is not zeroed first (a memset of every linear layer's output).
pub fn gemm_new(m: usize, n: usize, k: usize, lhs: View, rhs: View) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let mut dst: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: with alpha = 0 `gemm` does not read `dst` and writes all m·n elements (its blocks
    // cover the output; later blocks of the reduction read only what earlier ones wrote), so the
    // length is set once every element holds a value.
    unsafe {
        gemm_raw(dst.as_mut_ptr(), m, n, k, 0.0, lhs, rhs, 1.0);
        dst.set_len(m * n);
    }
    dst
}

/// [`gemm_slices`] on a raw m×n row-major `dst`.
///
/// # Safety
/// `dst` must be valid for m·n writes (and reads when `alpha != 0`) and alias neither operand.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(dst: *mut f32, m: usize, n: usize, k: usize, alpha: f32, lhs: View, rhs: View, beta: f32) {
    assert!(lhs.fits(m, k) && rhs.fits(k, n), "gemm_slices: operand views exceed their slices");
    if m == 0 || n == 0 || k == 0 {
        // Unreachable for non-empty matrices (k is one of their sides); keeps gemm's contract simple.
        for i in 0..m * n {
            // SAFETY: i < m·n, inside `dst` (the caller's contract); alpha != 0 means it was initialised.
            unsafe { *dst.add(i) = if alpha == 0.0 { 0.0 } else { *dst.add(i) * alpha } };
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above keeps every read inside `lhs`/`rhs`; `dst` is the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            alpha != 0.0,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            alpha,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}
