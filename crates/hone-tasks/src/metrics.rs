//! Metrics from item records, with 95% intervals: Wilson score intervals for proportions (items
//! scored 0 or 1), percentile bootstrap over items for everything else (means of fractional scores,
//! ratios such as loss and bits per byte, calibration error). Each metric is a function of a set of
//! items, so the bootstrap and the regression comparison resample items and call the same function.

use crate::result::{ItemRecord, Metric};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a metric is computed from items.
#[derive(Clone, Copy)]
pub enum Stat {
    /// Mean of a per-item value (items without one are left out).
    Mean(fn(&ItemRecord) -> Option<f64>),
    /// `f(Σ num / Σ den)` over items (e.g. nats / tokens, then `exp` for perplexity).
    Ratio(fn(&ItemRecord) -> Option<(f64, f64)>, fn(f64) -> f64),
    /// Expected calibration error of the top choice over 10 equal-width confidence bins.
    Ece,
}

/// A named metric with its direction.
#[derive(Clone)]
pub struct MetricDef {
    pub name: String,
    pub higher_is_better: bool,
    pub stat: Stat,
}

/// Metric names for which lower is better.
pub const LOWER_IS_BETTER: &[&str] =
    &["over_refusal_rate", "hallucination_rate", "loss", "perplexity", "bits_per_byte", "ece", "brier"];

/// Whether higher values of the metric `name` are better.
pub fn higher_is_better(name: &str) -> bool {
    !LOWER_IS_BETTER.contains(&name)
}

impl MetricDef {
    pub fn new(name: &str, stat: Stat) -> MetricDef {
        MetricDef { name: name.to_string(), higher_is_better: higher_is_better(name), stat }
    }
}

fn flag(b: Option<bool>) -> Option<f64> {
    b.map(|b| if b { 1.0 } else { 0.0 })
}

/// The metrics of a kind. `headline` names the mean item score of generation tasks; `scorer` adds
/// derived metrics (`idk` → hallucination rate).
pub fn defs(kind: &str, headline: &str, scorer: Option<&str>) -> Vec<MetricDef> {
    match kind {
        "multiple_choice" => vec![
            MetricDef::new("acc", Stat::Mean(|r| flag(r.correct))),
            MetricDef::new("acc_norm", Stat::Mean(|r| flag(r.correct_norm))),
            // Only items scored with `mutual_info` have it; otherwise the metric is left out.
            MetricDef::new("acc_mutual_info", Stat::Mean(|r| flag(r.correct_mi))),
            MetricDef::new("brier", Stat::Mean(brier)),
            MetricDef::new("ece", Stat::Ece),
        ],
        "loglikelihood" => vec![
            MetricDef::new("acc", Stat::Mean(|r| flag(r.correct))),
            // exp of the mean negative log-likelihood per item, as lm-evaluation-harness's perplexity.
            MetricDef::new("perplexity", Stat::Ratio(|r| Some((r.nll?, 1.0)), f64::exp)),
        ],
        "loglikelihood_rolling" => vec![
            MetricDef::new("loss", Stat::Ratio(|r| Some((r.nll?, r.tokens? as f64)), |x| x)),
            MetricDef::new("perplexity", Stat::Ratio(|r| Some((r.nll?, r.tokens? as f64)), f64::exp)),
            MetricDef::new(
                "bits_per_byte",
                Stat::Ratio(|r| Some((r.nll? / std::f64::consts::LN_2, r.bytes? as f64)), |x| x),
            ),
        ],
        _ => {
            let mut v = vec![MetricDef::new(headline, Stat::Mean(|r| r.score))];
            if scorer == Some("idk") {
                v.push(MetricDef::new("hallucination_rate", Stat::Mean(|r| r.score.map(|s| 1.0 - s))));
            }
            v
        }
    }
}

/// Multi-class Brier score of one item: Σ_i (p_i − [i = gold])², in 0..=2.
fn brier(r: &ItemRecord) -> Option<f64> {
    let gold = r.gold?;
    if r.probs.is_empty() {
        return None;
    }
    Some(r.probs.iter().enumerate().map(|(i, p)| (p - if i == gold { 1.0 } else { 0.0 }).powi(2)).sum())
}

/// The value of a metric over `items` and the number of items it covers; `None` when no item has
/// what the metric needs.
pub fn value(stat: &Stat, items: &[&ItemRecord]) -> Option<(f64, usize)> {
    match stat {
        Stat::Mean(f) => {
            let (mut s, mut n) = (0.0, 0usize);
            for v in items.iter().filter_map(|r| f(r)) {
                s += v;
                n += 1;
            }
            (n > 0).then(|| (s / n as f64, n))
        }
        Stat::Ratio(f, t) => {
            let (mut a, mut b, mut n) = (0.0, 0.0, 0usize);
            for (x, y) in items.iter().filter_map(|r| f(r)) {
                a += x;
                b += y;
                n += 1;
            }
            (n > 0 && b > 0.0).then(|| (t(a / b), n))
        }
        Stat::Ece => {
            let pairs: Vec<(f64, f64)> = items
                .iter()
                .filter_map(|r| {
                    let conf = r.probs.iter().copied().fold(f64::NAN, f64::max);
                    Some((conf, flag(r.correct)?)).filter(|_| conf.is_finite())
                })
                .collect();
            (!pairs.is_empty()).then(|| (ece(&pairs, 10), pairs.len()))
        }
    }
}

/// Expected calibration error: Σ_b (n_b / N) · |accuracy_b − mean confidence_b| over `bins`
/// equal-width bins of confidence. `pairs` are (confidence, correct as 0/1).
pub fn ece(pairs: &[(f64, f64)], bins: usize) -> f64 {
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for &(c, y) in pairs {
        let b = ((c * bins as f64).floor() as usize).min(bins - 1);
        acc[b].0 += c;
        acc[b].1 += y;
        acc[b].2 += 1;
    }
    let n = pairs.len() as f64;
    acc.iter().filter(|b| b.2 > 0).map(|&(c, y, k)| (k as f64 / n) * (y / k as f64 - c / k as f64).abs()).sum()
}

/// Wilson score interval (95%) for `k` successes in `n` trials.
pub fn wilson(k: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = k / n;
    let d = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / d;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Whether a metric's per-item values are all 0 or 1 (then it is a proportion).
fn is_proportion(stat: &Stat, items: &[&ItemRecord]) -> bool {
    match stat {
        Stat::Mean(f) => items.iter().filter_map(|r| f(r)).all(|v| v == 0.0 || v == 1.0),
        _ => false,
    }
}

/// Indices of a bootstrap resample of `n` items.
pub fn resample(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

/// The 2.5% and 97.5% percentiles of `v` (sorted in place).
pub fn percentile_interval(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (at(0.025), at(0.975))
}

/// Computes one metric with its interval.
pub fn summarise(
    def: &MetricDef,
    items: &[&ItemRecord],
    group: Option<String>,
    boot: usize,
    seed: u64,
) -> Option<Metric> {
    let (v, n) = value(&def.stat, items)?;
    let (lo, hi, interval) = if is_proportion(&def.stat, items) {
        let (lo, hi) = wilson(v * n as f64, n);
        (lo, hi, "wilson")
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut vals: Vec<f64> = (0..boot)
            .filter_map(|_| {
                let idx = resample(&mut rng, items.len());
                let sample: Vec<&ItemRecord> = idx.iter().map(|&i| items[i]).collect();
                value(&def.stat, &sample).map(|(v, _)| v)
            })
            .collect();
        let (lo, hi) = percentile_interval(&mut vals);
        (lo, hi, "bootstrap")
    };
    Some(Metric {
        name: def.name.clone(),
        group,
        value: v,
        n,
        lo,
        hi,
        interval: interval.to_string(),
        higher_is_better: def.higher_is_better,
    })
}

/// Every metric of `defs` over all items, then per group (`field=value`, groups in sorted order).
pub fn compute(
    defs: &[MetricDef],
    items: &[ItemRecord],
    group_field: Option<&str>,
    boot: usize,
    seed: u64,
) -> Vec<Metric> {
    let all: Vec<&ItemRecord> = items.iter().collect();
    let mut out: Vec<Metric> = defs.iter().filter_map(|d| summarise(d, &all, None, boot, seed)).collect();
    if let Some(field) = group_field {
        let mut groups: Vec<&str> = items.iter().filter_map(|r| r.group.as_deref()).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            let sub: Vec<&ItemRecord> = items.iter().filter(|r| r.group.as_deref() == Some(g)).collect();
            out.extend(defs.iter().filter_map(|d| summarise(d, &sub, Some(format!("{field}={g}")), boot, seed)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_reference_values() {
        // Reference: statsmodels proportion_confint(50, 100, method="wilson") = (0.4038, 0.5962).
        let (lo, hi) = wilson(50.0, 100);
        assert!((lo - 0.40383).abs() < 1e-4 && (hi - 0.59617).abs() < 1e-4, "{lo} {hi}");
        // 0 of 10: (0, 0.2775).
        let (lo, hi) = wilson(0.0, 10);
        assert!(lo == 0.0 && (hi - 0.27753).abs() < 1e-4, "{hi}");
    }

    #[test]
    fn ece_by_hand() {
        // Bin 9 holds (0.95, 1), (0.95, 0): |0.5 - 0.95| weighted 2/4; bin 5 holds (0.55, 1), (0.55, 1):
        // |1 - 0.55| weighted 2/4. ECE = 0.5 * 0.45 + 0.5 * 0.45 = 0.45.
        let e = ece(&[(0.95, 1.0), (0.95, 0.0), (0.55, 1.0), (0.55, 1.0)], 10);
        assert!((e - 0.45).abs() < 1e-12, "{e}");
        assert_eq!(ece(&[(1.0, 1.0)], 10), 0.0);
    }

    #[test]
    fn brier_and_ratio() {
        let r = ItemRecord { probs: vec![0.7, 0.2, 0.1], gold: Some(0), ..Default::default() };
        assert!((brier(&r).unwrap() - (0.09 + 0.04 + 0.01)).abs() < 1e-12);
        let a = ItemRecord { nll: Some(10.0), tokens: Some(4), bytes: Some(20), ..Default::default() };
        let b = ItemRecord { nll: Some(2.0), tokens: Some(1), bytes: Some(5), ..Default::default() };
        let d = defs("loglikelihood_rolling", "bits_per_byte", None);
        let (loss, n) = value(&d[0].stat, &[&a, &b]).unwrap();
        assert_eq!((loss, n), (12.0 / 5.0, 2));
        let (ppl, _) = value(&d[1].stat, &[&a, &b]).unwrap();
        assert!((ppl - (12.0f64 / 5.0).exp()).abs() < 1e-12);
        let (bpb, _) = value(&d[2].stat, &[&a, &b]).unwrap();
        assert!((bpb - 12.0 / (std::f64::consts::LN_2 * 25.0)).abs() < 1e-12);
        assert!(!d[2].higher_is_better);
    }
}
