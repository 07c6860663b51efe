//! Regression check between two evaluations of the same tasks (A = before, B = after): for each
//! metric, the change and whether B is worse than A beyond noise. Items are paired by id and the
//! metric recomputed on paired bootstrap resamples (one-sided p = share of resamples in which B is not
//! worse); without per-item records a two-proportion z-test (proportions) or a z-test from the two
//! intervals (other metrics) is used. Each metric's direction (higher or lower is better) is stated.

use crate::metrics::{self, resample};
use crate::result::{ItemRecord, Metric, TaskResult};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Significance level of a regression.
pub const ALPHA: f64 = 0.05;

/// The change of one metric from A to B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub task: String,
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub a: f64,
    pub b: f64,
    /// b − a.
    pub change: f64,
    pub higher_is_better: bool,
    /// One-sided p-value of "B is worse than A".
    pub p_worse: f64,
    /// One-sided p-value of "B is better than A".
    pub p_better: f64,
    /// `paired bootstrap (N items)`, `two-proportion z-test` or `z-test from intervals`.
    pub method: String,
    /// B is worse than A with p < 0.05.
    pub regression: bool,
    /// B is better than A with p < 0.05.
    pub improvement: bool,
}

/// Compares two results of one task (2,000 paired bootstrap resamples, seed 0).
pub fn compare(a: &TaskResult, b: &TaskResult) -> Vec<Delta> {
    compare_with(a, b, 2000, 0)
}

/// Compares the results of the tasks present in both sets, in A's order.
pub fn compare_sets(a: &[TaskResult], b: &[TaskResult]) -> Vec<Delta> {
    a.iter().filter_map(|x| b.iter().find(|y| y.task == x.task).map(|y| compare(x, y))).flatten().collect()
}

/// [`compare`] with a chosen number of resamples and seed.
pub fn compare_with(a: &TaskResult, b: &TaskResult, boot: usize, seed: u64) -> Vec<Delta> {
    let scorer = a.settings.get("scorer").and_then(|s| s.as_str());
    let defs = metrics::defs(&a.kind, &a.headline, scorer);
    let mut out = Vec::new();
    for ma in &a.metrics {
        let Some(mb) = b.metrics.iter().find(|m| m.name == ma.name && m.group == ma.group) else { continue };
        let hib = ma.higher_is_better;
        let def = defs.iter().find(|d| d.name == ma.name);
        let pairs = def.map(|_| paired(a, b, ma.group.as_deref())).unwrap_or_default();
        let (p_worse, p_better, method) = match def {
            Some(d) if pairs.len() >= 2 => {
                let (pw, pb) = paired_bootstrap(&d.stat, &pairs, hib, boot, seed);
                (pw, pb, format!("paired bootstrap ({} items)", pairs.len()))
            }
            _ => {
                let (pw, pb, m) = unpaired(ma, mb);
                (pw, pb, m.to_string())
            }
        };
        let worse = if hib { ma.value - mb.value } else { mb.value - ma.value };
        out.push(Delta {
            task: a.task.clone(),
            metric: ma.name.clone(),
            group: ma.group.clone(),
            a: ma.value,
            b: mb.value,
            change: mb.value - ma.value,
            higher_is_better: hib,
            p_worse,
            p_better,
            method,
            regression: worse > 0.0 && p_worse < ALPHA,
            improvement: worse < 0.0 && p_better < ALPHA,
        });
    }
    out
}

/// Items present in both results (by id), restricted to a group (`field=value`).
fn paired<'a>(a: &'a TaskResult, b: &'a TaskResult, group: Option<&str>) -> Vec<(&'a ItemRecord, &'a ItemRecord)> {
    let want = group.and_then(|g| g.split_once('=')).map(|(_, v)| v);
    let in_group = |r: &ItemRecord| want.is_none() || r.group.as_deref() == want;
    let by_id: HashMap<&str, &ItemRecord> =
        b.items.iter().filter(|r| in_group(r)).map(|r| (r.id.as_str(), r)).collect();
    a.items.iter().filter(|r| in_group(r)).filter_map(|r| by_id.get(r.id.as_str()).map(|s| (r, *s))).collect()
}

/// One-sided p-values (worse, better) from paired resamples of items.
fn paired_bootstrap(
    stat: &metrics::Stat,
    pairs: &[(&ItemRecord, &ItemRecord)],
    hib: bool,
    boot: usize,
    seed: u64,
) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut not_worse, mut not_better, mut n) = (0usize, 0usize, 0usize);
    for _ in 0..boot.max(1) {
        let idx = resample(&mut rng, pairs.len());
        let sa: Vec<&ItemRecord> = idx.iter().map(|&i| pairs[i].0).collect();
        let sb: Vec<&ItemRecord> = idx.iter().map(|&i| pairs[i].1).collect();
        let (Some((va, _)), Some((vb, _))) = (metrics::value(stat, &sa), metrics::value(stat, &sb)) else { continue };
        let worse = if hib { va - vb } else { vb - va };
        n += 1;
        not_worse += (worse <= 0.0) as usize;
        not_better += (worse >= 0.0) as usize;
    }
    ((not_worse + 1) as f64 / (n + 1) as f64, (not_better + 1) as f64 / (n + 1) as f64)
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf; |error| < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// Whether values over `a` and `b` items can show a change beyond the noise: one item has no spread
/// to test against (its bootstrap interval is a point, so any difference, however small, would
/// count; a BLiMP paradigm with one pair in a 50-item run was flagged at a Brier change of 6e-11).
pub fn testable(a: usize, b: usize) -> bool {
    a >= 2 && b >= 2
}

/// (p worse, p better, method) without item pairs.
fn unpaired(a: &Metric, b: &Metric) -> (f64, f64, &'static str) {
    if !testable(a.n, b.n) {
        return (1.0, 1.0, "too few items to test");
    }
    let worse = if a.higher_is_better { a.value - b.value } else { b.value - a.value };
    let (se, method) = if a.interval == "wilson" && b.interval == "wilson" {
        let p = (a.value * a.n as f64 + b.value * b.n as f64) / (a.n + b.n).max(1) as f64;
        ((p * (1.0 - p) * (1.0 / a.n.max(1) as f64 + 1.0 / b.n.max(1) as f64)).sqrt(), "two-proportion z-test")
    } else {
        let s = |m: &Metric| (m.hi - m.lo) / (2.0 * 1.959_964);
        ((s(a).powi(2) + s(b).powi(2)).sqrt(), "z-test from intervals")
    };
    if se <= 0.0 || !se.is_finite() {
        let p = |c: bool| if c { 0.0 } else { 1.0 };
        return (p(worse > 0.0), p(worse < 0.0), method);
    }
    let z = worse / se;
    (1.0 - normal_cdf(z), normal_cdf(z), method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_reference_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.644_854) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn two_proportion_test_by_hand() {
        // 60/100 vs 45/100: pooled p = 0.525, se = sqrt(0.525 * 0.475 * 0.02) = 0.070623, z = 2.1240,
        // one-sided p = 0.01683.
        let m = |v: f64| Metric {
            name: "acc".into(),
            group: None,
            value: v,
            n: 100,
            lo: 0.0,
            hi: 1.0,
            interval: "wilson".into(),
            higher_is_better: true,
        };
        let (pw, pb, method) = unpaired(&m(0.60), &m(0.45));
        assert!((pw - 0.01683).abs() < 2e-4 && pb > 0.98, "{pw} {pb}");
        assert_eq!(method, "two-proportion z-test");
    }

    #[test]
    fn one_item_is_never_beyond_the_noise() {
        let m = |v: f64, n: usize| Metric {
            name: "brier".into(),
            group: Some("linguistics_term=s-selection".into()),
            value: v,
            n,
            lo: v,
            hi: v,
            interval: "bootstrap".into(),
            higher_is_better: false,
        };
        let (pw, pb, method) = unpaired(&m(0.2500, 1), &m(0.2501, 1));
        assert_eq!((pw, pb, method), (1.0, 1.0, "too few items to test"));
        // With items to spread over, a point interval still decides (the metric did not vary).
        let (pw, _, _) = unpaired(&m(0.2500, 5), &m(0.2501, 5));
        assert_eq!(pw, 0.0);
    }
}
