//! Which SIMD instruction set the hand-written CPU loops run with, chosen once at run time, and the
//! macro that compiles one loop body for each level.
//!
//! One binary serves every x86-64 CPU: the loops are compiled for the baseline (SSE2, 4 lanes),
//! AVX2 (8 lanes) and AVX-512 (`x86-64-v4`: F, BW, DQ, VL; 16 lanes), and each call takes the highest
//! level the CPU has. Matrix products go through the `gemm` crate, which makes the same choice itself
//! (its AVX-512 kernels are compiled in through burn's `x86-v4` feature); it has no run-time override,
//! so `HONE_SIMD` caps only hone's own loops.
//!
//! Results across levels: hone's loops neither fuse multiply-adds nor change their summation order
//! with the lane count (partial sums keep a fixed number of lanes), so they give the same bits at
//! every level (`tests` below check it). The `gemm` crate's kernels differ per level in register
//! blocking, and it sizes its cache blocking (how it splits the inner dimension) from the machine's
//! cache sizes, so a product can differ in the last bits between levels and between machines: a run
//! is bit-exact (and resumes bit-exactly) on one machine, not across machines. Measured: the default
//! `hone run` on an AVX-512 machine with and without the `x86-v4` build gave different trajectories
//! (27 of 140 report metrics moved beyond their item-sampling interval); the AVX-512 one reproduced
//! an AVX2-only machine's table exactly. Forward-only products (evaluation) matched to the bit.
//!
//! Other targets (aarch64 and the rest) take the baseline body, which is portable Rust without x86
//! assumptions; LLVM vectorises it for the target's own SIMD (NEON on aarch64).

use std::sync::OnceLock;

/// An instruction-set level, ordered from the least to the most capable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Whatever the target guarantees (SSE2 on x86-64, NEON on aarch64).
    Baseline,
    /// AVX2 (x86-64-v3's vector part).
    Avx2,
    /// AVX-512 F, BW, DQ and VL (x86-64-v4).
    Avx512,
}

impl SimdLevel {
    /// Every level, lowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The name used in `HONE_SIMD` and in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Baseline => "baseline",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The level a name stands for (`HONE_SIMD`'s values).
    pub fn parse(s: &str) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|l| l.name() == s.trim().to_ascii_lowercase())
    }

    /// Whether this CPU can run code compiled for the level.
    pub fn supported(self) -> bool {
        match self {
            SimdLevel::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The highest level this CPU supports (probed once per process).
    pub fn detect() -> SimdLevel {
        static CPU: OnceLock<SimdLevel> = OnceLock::new();
        *CPU.get_or_init(|| SimdLevel::ALL.into_iter().rev().find(|l| l.supported()).unwrap_or(SimdLevel::Baseline))
    }

    /// This level, lowered to what the CPU supports (so asking for more is never unsafe).
    pub fn clamp_to_cpu(self) -> SimdLevel {
        self.min(SimdLevel::detect())
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The level hone's loops run at: the CPU's highest, or lower when `HONE_SIMD` (`baseline`, `avx2`,
/// `avx512`) asks for less. Read once per process; an unknown value is reported on stderr and ignored.
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cpu = SimdLevel::detect();
        match std::env::var("HONE_SIMD") {
            Ok(v) if !v.is_empty() => match SimdLevel::parse(&v) {
                Some(l) => l.min(cpu),
                None => {
                    eprintln!("HONE_SIMD={v}: not one of baseline, avx2, avx512; using {cpu}");
                    cpu
                }
            },
            _ => cpu,
        }
    })
}

/// The level the `gemm` crate's kernels run at: the CPU's highest, except AVX-512 when this build
/// leaves out the `x86-v4` feature (`gemm` picks its level itself; `HONE_SIMD` does not reach it).
pub fn gemm_level() -> SimdLevel {
    let cpu = SimdLevel::detect();
    if cfg!(feature = "x86-v4") { cpu } else { cpu.min(SimdLevel::Avx2) }
}

/// The CPU's model name as the OS reports it (`/proc/cpuinfo` on Linux), for benchmark output.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("CPU part"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Defines `pub fn $name` over one body compiled once per [`SimdLevel`], dispatching on [`level`],
/// and a module `$name` whose `at(level, ..)` runs one chosen level (clamped to the CPU), for tests
/// and benchmarks. The body sees the enclosing module's items (it is compiled inside `$name` with
/// `use super::*`), and helpers it calls must be `#[inline(always)]` to be compiled for each level.
/// Other crates use it as `hone_model::simd_fn!`.
#[macro_export]
macro_rules! simd_fn {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            $name::at($crate::simd::level(), $($arg),*)
        }

        #[doc = concat!("`", stringify!($name), "` compiled per SIMD level.")]
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            /// Runs the body compiled for `level`, or for the highest level below it that the CPU has.
            #[allow(unreachable_code)]
            pub fn at(level: $crate::simd::SimdLevel, $($arg: $ty),*) $(-> $ret)? {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
                    unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                        body($($arg),*)
                    }
                    #[target_feature(enable = "avx2")]
                    unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                        body($($arg),*)
                    }
                    match level.clamp_to_cpu() {
                        // SAFETY: clamp_to_cpu returned this level, so the CPU has its features.
                        $crate::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                        // SAFETY: as above.
                        $crate::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                        $crate::simd::SimdLevel::Baseline => {}
                    }
                }
                let _ = level;
                body($($arg),*)
            }
        }
    };
}

pub use crate::simd_fn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_named_and_clamped() {
        assert!(SimdLevel::Baseline < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
        for l in SimdLevel::ALL {
            assert_eq!(SimdLevel::parse(l.name()), Some(l));
            assert!(l.clamp_to_cpu() <= l);
            assert!(l.clamp_to_cpu().supported());
        }
        assert_eq!(SimdLevel::parse(" AVX2 "), Some(SimdLevel::Avx2));
        assert_eq!(SimdLevel::parse("sse9"), None);
        assert!(SimdLevel::Baseline.supported());
        assert_eq!(SimdLevel::detect().clamp_to_cpu(), SimdLevel::detect());
        assert!(level() <= SimdLevel::detect());
    }

    /// Deterministic values with every sign and a spread of magnitudes.
    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 37 + salt * 11) % 101) as f32 - 50.0) * 0.031).collect()
    }

    fn bits(xs: &[f32]) -> Vec<u32> {
        xs.iter().map(|x| x.to_bits()).collect()
    }

    /// The fused kernels' row loops (besides `exp`'s, tested there) give the same bits at every
    /// level the CPU has: the promise that lets a run switch machines of different levels only
    /// through GEMM rounding.
    #[test]
    fn fused_row_kernels_agree_across_levels() {
        use crate::fused::{attention, rms_norm, rope};
        for d in [1usize, 7, 16, 33, 256] {
            let (x, w, g) = (values(d, 1), values(d, 2), values(d, 3));
            let run = |l: SimdLevel| {
                let mut y = vec![0f32; d];
                let r = rms_norm::forward_row::at(l, &mut y, &x, &w, 1e-5);
                let (mut dx, mut dw) = (vec![0f32; d], values(d, 4));
                rms_norm::backward_row::at(l, &mut dx, &mut dw, &x, &w, &g, r);
                let mut s = x.clone();
                attention::scale::at(l, &mut s, 0.37);
                let mut ds = values(d, 5);
                attention::softmax_grad_row::at(l, &mut ds, &w, &x, &g);
                let hd = 2 * d;
                let (xx, c, sn) = (values(3 * hd, 6), values(hd, 7), values(hd, 8));
                let (mut fwd, mut bwd) = (vec![0f32; 3 * hd], vec![0f32; 3 * hd]);
                rope::rotate_position::at(l, &mut fwd, &xx, &c, &sn, hd, 1.0);
                rope::rotate_position::at(l, &mut bwd, &xx, &c, &sn, hd, -1.0);
                [bits(&y), vec![r.to_bits()], bits(&dx), bits(&dw), bits(&s), bits(&ds), bits(&fwd), bits(&bwd)]
            };
            let base = run(SimdLevel::Baseline);
            for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
                assert_eq!(run(l), base, "{l} vs baseline, d = {d}");
            }
        }
    }
}
