//! Batches for next-token prediction from a token stream (documents joined with BOS between them).
//! Training rows are windows at random offsets drawn from ChaCha8 seeded by `(seed, step, micro)`,
//! so the data order is a pure function of the step: resuming needs no saved cursor and continues
//! bit for bit. Evaluation rows are fixed consecutive windows from the start of the held-out split.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A stream of token ids: a split of prepared shards, or a vector in tests.
pub trait TokenSource {
    /// Number of tokens.
    fn len(&self) -> u64;
    /// Whether there are no tokens.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `out.len()` tokens from position `start`.
    fn get(&self, start: u64, out: &mut [u32]);
}

impl TokenSource for hone_data::shards::SplitTokens {
    fn len(&self) -> u64 {
        hone_data::shards::SplitTokens::len(self)
    }
    fn get(&self, start: u64, out: &mut [u32]) {
        hone_data::shards::SplitTokens::get(self, start, out)
    }
}

impl TokenSource for Vec<u32> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn get(&self, start: u64, out: &mut [u32]) {
        out.copy_from_slice(&self[start as usize..start as usize + out.len()]);
    }
}

/// Inputs and next-token targets, row-major `[rows, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub rows: usize,
    pub seq: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Batch {
    fn from_windows(source: &dyn TokenSource, starts: &[u64], seq: usize) -> Batch {
        let mut inputs = Vec::with_capacity(starts.len() * seq);
        let mut targets = Vec::with_capacity(starts.len() * seq);
        let mut buf = vec![0u32; seq + 1];
        for &s in starts {
            source.get(s, &mut buf);
            inputs.extend_from_slice(&buf[..seq]);
            targets.extend_from_slice(&buf[1..]);
        }
        Batch { rows: starts.len(), seq, inputs, targets }
    }
}

/// Checks that a split can hold one window of `seq + 1` tokens, naming the split.
pub fn check_len(source: &dyn TokenSource, seq: usize, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        source.len() > seq as u64,
        "{what}: {} tokens, fewer than one row of seq_len + 1 = {}; lower pretrain.seq_len or add data",
        source.len(),
        seq + 1
    );
    Ok(())
}

/// The training micro-batch `micro` (of `accum`) of optimizer step `step` (0-based).
pub fn train_batch(
    source: &dyn TokenSource,
    seed: u64,
    step: u64,
    micro: usize,
    accum: usize,
    rows: usize,
    seq: usize,
) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step * accum as u64 + micro as u64);
    let max_start = source.len() - seq as u64 - 1;
    let starts: Vec<u64> = (0..rows).map(|_| rng.random_range(0..=max_start)).collect();
    Batch::from_windows(source, &starts, seq)
}

/// The held-out rows: up to `max_rows` consecutive windows from the start of `source`, in batches
/// of `batch_rows`.
pub fn eval_batches(source: &dyn TokenSource, max_rows: usize, batch_rows: usize, seq: usize) -> Vec<Batch> {
    let fit = ((source.len() - 1) / seq as u64) as usize;
    let starts: Vec<u64> = (0..max_rows.min(fit)).map(|r| (r * seq) as u64).collect();
    starts.chunks(batch_rows.max(1)).map(|c| Batch::from_windows(source, c, seq)).collect()
}

/// Position `g` (counting across epochs) of an epoch-wise shuffle of `0..n`: epoch `g / n` is a
/// Fisher-Yates permutation drawn from ChaCha8 seeded with `seed`, stream = the epoch. Every example
/// is seen once per epoch, and the order is a pure function of `(n, seed, g)`.
pub fn shuffled_index(n: usize, seed: u64, g: u64) -> usize {
    assert!(n > 0, "shuffling an empty set");
    let epoch = g / n as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        perm.swap(i, j);
    }
    perm[(g % n as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_pure_function_of_seed_and_step() {
        let data: Vec<u32> = (0..1000).collect();
        let a = train_batch(&data, 7, 3, 1, 2, 4, 16);
        assert_eq!(a, train_batch(&data, 7, 3, 1, 2, 4, 16));
        assert_ne!(a, train_batch(&data, 7, 3, 0, 2, 4, 16));
        assert_ne!(a, train_batch(&data, 7, 4, 1, 2, 4, 16));
        assert_ne!(a, train_batch(&data, 8, 3, 1, 2, 4, 16));
        for r in 0..4 {
            assert_eq!(a.targets[r * 16], a.inputs[r * 16] + 1, "targets are inputs shifted by one");
        }
    }

    #[test]
    fn shuffle_covers_each_epoch_once() {
        let n = 17;
        for epoch in 0..3u64 {
            let mut seen: Vec<usize> = (0..n as u64).map(|i| shuffled_index(n, 5, epoch * n as u64 + i)).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
        let e0: Vec<usize> = (0..17).map(|i| shuffled_index(n, 5, i)).collect();
        let e1: Vec<usize> = (17..34).map(|i| shuffled_index(n, 5, i)).collect();
        assert_ne!(e0, e1, "epochs are shuffled differently");
    }

    #[test]
    fn eval_rows_are_fixed_windows() {
        let data: Vec<u32> = (0..100).collect();
        let b = eval_batches(&data, 50, 4, 16);
        let rows: usize = b.iter().map(|x| x.rows).sum();
        assert_eq!(rows, 6, "(100 - 1) / 16 windows fit");
        assert_eq!(b[0].inputs[16], 16);
        assert!(check_len(&data, 100, "val").unwrap_err().to_string().contains("val"));
    }
}
