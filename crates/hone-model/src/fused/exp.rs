//! A vectorisable `exp` for the fused kernels' softmax, cross-entropy and SwiGLU, and the softmax
//! loops that use it.
//!
//! `f32::exp` calls libm one element at a time; in a training step it was 6–10% of the samples of a
//! `perf` profile. This is the Cephes `expf` scheme: `exp(x) = 2^n · exp(r)` with `n = round(x·log2 e)`,
//! `r = x − n·ln 2` in two parts (Cody–Waite), and a degree-7 polynomial for `exp(r)` on
//! `|r| ≤ ln 2 / 2`. Rounding uses the 1.5·2²³ trick and `2^n` is built from the exponent bits, so the
//! body is branch-free and LLVM turns the loops below into SIMD code. Within 2 ulp of `f32::exp` over
//! the normal range (the tests check every exponent); below `LO` it returns 0 where libm returns a
//! subnormal under 1.2e-38, above `HI` infinity, and NaN stays NaN.
//!
//! Each public loop is compiled once per SIMD level ([`crate::simd`]: baseline, AVX2, AVX-512) and
//! picks one at run time. None fuses multiply-adds and all sum in the same lane order, so they give
//! the same bits.

/// Largest input with a finite result: `n` stays at most 127.
const HI: f32 = 88.376_26;
/// Smallest input with a normal result.
const LO: f32 = -87.336_55;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5·2²³: adding it rounds to an integer and leaves that integer in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// ln 2 = C1 + C2, with C1 exact in few bits so `n·C1` is exact.
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;

/// `exp(x)`, branch-free so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Comparisons with NaN are false, so a NaN input flows through and comes out NaN.
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * C1) - n * C2;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = (p * r2 + r) + 1.0;
    // The low bits of `t` hold `n` offset by the mantissa of 1.5·2²³; `n + 127` is a biased exponent.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let y = e * scale;
    let y = if x < LO { 0.0 } else { y };
    if x > HI { f32::INFINITY } else { y }
}

use crate::simd::simd_fn;

/// Lanes of the partial sums: enough independent chains for 8-wide SIMD, and a fixed summation
/// order whatever the instruction set.
const LANES: usize = 8;

fn lane_total(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

simd_fn! {
    /// The largest element (NaN elements are skipped, as by `f32::max`); −∞ for an empty slice.
    pub fn max(xs: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = xs.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = a.max(x);
            }
        }
        for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
            *a = a.max(x);
        }
        acc.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

simd_fn! {
    /// In place `x ← exp(x − shift)`; returns the sum of the new values.
    pub fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
        let mut acc = [0f32; LANES];
        let mut chunks = xs.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
                *x = exp(*x - shift);
                *a += *x;
            }
        }
        for (a, x) in acc.iter_mut().zip(chunks.into_remainder()) {
            *x = exp(*x - shift);
            *a += *x;
        }
        lane_total(acc)
    }
}

simd_fn! {
    /// `Σ exp(x − shift)`, leaving `xs` as it is.
    pub fn sum_exp_shifted(xs: &[f32], shift: f32) -> f32 {
        let mut acc = [0f32; LANES];
        let mut chunks = xs.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += exp(x - shift);
            }
        }
        for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
            *a += exp(x - shift);
        }
        lane_total(acc)
    }
}

simd_fn! {
    /// `out ← factor · exp(x − shift)`.
    pub fn scaled_exp_shifted(out: &mut [f32], xs: &[f32], shift: f32, factor: f32) {
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = factor * exp(x - shift);
        }
    }
}

/// `sigmoid(x) = 1 / (1 + exp(−x))`: 0 for very negative `x` (where `exp(−x)` is infinite), 1 for very
/// positive.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite floats of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn within_two_ulp_of_libm_over_the_normal_range() {
        // A dense sweep of [LO, HI] with an odd step, so every exponent and many fractions are hit.
        let mut worst = (0u32, 0f32);
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = LO + (HI - LO) * i as f32 / steps as f32;
            let (ours, libm) = (exp(x), x.exp());
            if libm.is_normal() {
                let u = ulps(ours, libm);
                if u > worst.0 {
                    worst = (u, x);
                }
            }
        }
        assert!(worst.0 <= 2, "exp({}) is {} ulp from libm", worst.1, worst.0);
        for x in [0.0f32, -0.0, 1.0, -1.0, 1e-8, -1e-8, 0.5, 10.0, -10.0, 88.0, -87.0] {
            assert!(ulps(exp(x), x.exp()) <= 2, "exp({x}) = {} vs libm {}", exp(x), x.exp());
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(C1, 355.0 / 512.0, "C1 must be exact in 9 bits so n·C1 is exact");
    }

    #[test]
    fn limits_and_nan() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!((-100f32).exp() < 1.2e-38, "libm gives a subnormal or zero there");
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(HI).is_finite() && exp(HI) > 1e38);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }

    /// Lengths around the lane count, so the remainder paths run.
    fn inputs(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect()
    }

    #[test]
    fn every_simd_level_gives_the_same_bits() {
        use crate::simd::SimdLevel;
        // Levels the CPU lacks run the highest one it has, so on any machine this compares all it can.
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 1000, 4099] {
            let xs = inputs(n);
            let at = |l: SimdLevel| {
                let mut inplace = xs.clone();
                let s = exp_shifted_sum::at(l, &mut inplace, 1.25);
                let mut out = vec![0f32; n];
                scaled_exp_shifted::at(l, &mut out, &xs, 1.25, 0.5);
                (max::at(l, &xs).to_bits(), s.to_bits(), sum_exp_shifted::at(l, &xs, 1.25).to_bits(), inplace, out)
            };
            let base = at(SimdLevel::Baseline);
            for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
                let got = at(l);
                assert_eq!((got.0, got.1, got.2), (base.0, base.1, base.2), "{l} vs baseline, n = {n}");
                assert!(got.3.iter().zip(&base.3).all(|(a, b)| a.to_bits() == b.to_bits()), "{l}, n = {n}");
                assert!(got.4.iter().zip(&base.4).all(|(a, b)| a.to_bits() == b.to_bits()), "{l}, n = {n}");
            }
        }
    }

    #[test]
    fn loops_match_the_scalar_function() {
        for n in [0, 1, 7, 8, 9, 31, 1000] {
            let xs = inputs(n);
            let shift = 3.5;
            assert_eq!(max(&xs), xs.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max, n = {n}");
            let mut inplace = xs.clone();
            let s = exp_shifted_sum(&mut inplace, shift);
            let want: Vec<f32> = xs.iter().map(|&x| exp(x - shift)).collect();
            assert_eq!(inplace, want, "exp_shifted_sum values, n = {n}");
            let total: f64 = want.iter().map(|&v| v as f64).sum();
            assert!((s as f64 - total).abs() <= 1e-6 * total.max(1.0), "n = {n}: {s} vs {total}");
            assert_eq!(sum_exp_shifted(&xs, shift), s, "sum_exp_shifted, n = {n}");
            let mut out = vec![0f32; n];
            scaled_exp_shifted(&mut out, &xs, shift, -2.0);
            assert!(out.iter().zip(&want).all(|(o, w)| *o == -2.0 * w), "scaled_exp_shifted, n = {n}");
        }
    }
}
