//! Few-shot contexts as lm-evaluation-harness builds them: `description`, then `num` examples, each
//! its own context + target delimiter + its gold continuation, joined by the few-shot delimiter,
//! which also ends the examples before the item's own context. Examples come from the task's own
//! records (an item never its own example: `num + 1` are drawn and the item left out, as the
//! harness's sampler does) or from a separate file; `first_n` takes the first ones (the harness's
//! `first_n` sampler, so contexts match it exactly), `random` a seeded draw per item.

use anyhow::Result;
use hone_tasks::tasks::{Fewshot, FewshotSampler};
use rand::SeedableRng;
use rand::seq::index::sample;

/// The few-shot prefix of item `item` (its index among `pool` when the pool is the task's own
/// records, else `None`); `example(i)` renders pool record `i` as context + delimiter + gold.
pub fn prefix(
    f: &Fewshot,
    pool_len: usize,
    item: Option<usize>,
    example: &mut dyn FnMut(usize) -> Result<String>,
) -> Result<String> {
    let delimiter = f.delimiter.clone().unwrap_or_else(|| "\n\n".to_string());
    let mut out = f.description.clone();
    if f.num == 0 {
        return Ok(out);
    }
    let want = (f.num + usize::from(item.is_some())).min(pool_len);
    let picked: Vec<usize> = match f.sampler {
        FewshotSampler::FirstN => (0..want).collect(),
        FewshotSampler::Random => {
            let stream = item.map_or(0, |i| i as u64 + 1);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(f.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            sample(&mut rng, pool_len, want).into_vec()
        }
    };
    let chosen: Vec<usize> = picked.into_iter().filter(|&i| Some(i) != item).take(f.num).collect();
    anyhow::ensure!(
        chosen.len() == f.num,
        "fewshot.num = {} but only {} example record(s) are available",
        f.num,
        chosen.len()
    );
    for i in chosen {
        out.push_str(&example(i)?);
        out.push_str(&delimiter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shots(num: usize, sampler: FewshotSampler) -> Fewshot {
        Fewshot { num, source: None, sampler, seed: 1234, delimiter: None, description: "D\n\n".into() }
    }

    #[test]
    fn first_n_leaves_the_item_out_and_random_is_seeded() {
        let mut ex = |i: usize| Ok(format!("Q{i} A{i}"));
        assert_eq!(prefix(&shots(2, FewshotSampler::FirstN), 10, Some(5), &mut ex).unwrap(), "D\n\nQ0 A0\n\nQ1 A1\n\n");
        assert_eq!(prefix(&shots(2, FewshotSampler::FirstN), 10, Some(1), &mut ex).unwrap(), "D\n\nQ0 A0\n\nQ2 A2\n\n");
        assert_eq!(prefix(&shots(0, FewshotSampler::FirstN), 10, Some(1), &mut ex).unwrap(), "D\n\n");
        let a = prefix(&shots(3, FewshotSampler::Random), 50, Some(7), &mut ex).unwrap();
        assert_eq!(a, prefix(&shots(3, FewshotSampler::Random), 50, Some(7), &mut ex).unwrap());
        assert_ne!(a, prefix(&shots(3, FewshotSampler::Random), 50, Some(8), &mut ex).unwrap());
        assert!(!a.contains("Q7 "), "{a}");
        assert!(prefix(&shots(3, FewshotSampler::FirstN), 3, Some(0), &mut ex).is_err());
    }
}
