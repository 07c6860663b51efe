//! Seeded randomness: one ChaCha8 stream per part of the generator, and the few sampling helpers the
//! generator needs.
//!
//! Each part (world, corpus, SFT, …) draws from its own stream of the same seed, so changing how one part
//! is written does not reshuffle the others. ChaCha8 and integer ranges are portable in `rand` 0.9, so a
//! seed gives the same bytes on every platform.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator's random source.
pub type Rng = ChaCha8Rng;

/// The independent parts of the generator, each with its own random stream.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    World = 1,
    Corpus = 2,
    Sft = 3,
    Preference = 4,
    Probes = 5,
    Heldout = 6,
    Rl = 7,
    ProbeArithmetic = 8,
    RlArithmetic = 9,
    /// The order of the unpaired examples: a stream of its own, so writing them leaves every other
    /// file's bytes as they were.
    Unpaired = 10,
    /// Format probe items beyond the first half-set: appended from a stream of their own, so the
    /// probes drawn before them (and every training file) keep their bytes.
    ProbeFormats = 11,
    /// The development split `hone iterate` measures on (`crate::dev`): its probes, arithmetic
    /// problems and held-out documents.
    DevProbes = 12,
    DevArithmetic = 13,
    DevHeldout = 14,
    DevFormats = 15,
    DevEntities = 16,
}

/// The families of data [`draw_stream`] draws.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    Sft = 1,
    Preference = 2,
    Rl = 3,
}

/// The stream of a draw of more data (`crate::draw`): round `round` (below 2²⁴), `family`, the
/// family's kind number `kind`. Its stream numbers start at 2⁴⁰, far from the generator's own parts
/// (1-10), so no draw shares a stream with the default files or with another draw.
pub fn draw_stream(seed: u64, round: u32, family: Family, kind: usize) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((1u64 << 40) | (round as u64) << 16 | (family as u64) << 8 | kind as u64);
    rng
}

/// A random source for one part of the generator.
pub fn stream(seed: u64, part: Stream) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(part as u64);
    rng
}

/// Sampling helpers over integer ranges, so no float or platform-width arithmetic decides an output.
pub trait Draw {
    /// Uniform in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64;
    /// Uniform index in `0..n` (`n > 0`).
    fn index(&mut self, n: usize) -> usize;
    /// True with probability `percent`/100.
    fn percent(&mut self, percent: u32) -> bool;
    /// One element of a non-empty slice.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;
    /// Fisher-Yates shuffle.
    fn shuffle<T>(&mut self, items: &mut [T]);
    /// An index drawn with probability proportional to `weights` (not all zero).
    fn weighted(&mut self, weights: &[u64]) -> usize;
}

impl Draw for Rng {
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        self.random_range(lo..=hi)
    }

    fn index(&mut self, n: usize) -> usize {
        assert!(n > 0, "index into an empty range");
        self.random_range(0..n as u64) as usize
    }

    fn percent(&mut self, percent: u32) -> bool {
        self.random_range(0..100u32) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }

    fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        assert!(total > 0, "all weights are zero");
        let mut x = self.random_range(0..total);
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<i64> = (0..8).map(|_| stream(1, Stream::World).int(0, 1_000_000)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut w = stream(1, Stream::World);
        let mut c = stream(1, Stream::Corpus);
        let x: Vec<i64> = (0..8).map(|_| w.int(0, 1_000_000)).collect();
        let y: Vec<i64> = (0..8).map(|_| c.int(0, 1_000_000)).collect();
        assert_ne!(x, y);
    }

    #[test]
    fn weighted_never_picks_zero_weight() {
        let mut r = stream(3, Stream::Sft);
        for _ in 0..200 {
            assert_ne!(r.weighted(&[3, 0, 5]), 1);
        }
    }
}
