//! The gate: a round's model is kept only if a targeted metric improves on the development split
//! beyond the noise (the paired test, p < 0.05) and no metric, targeted or not, falls beyond the
//! noise (its 95% interval wholly on the worse side, as the report marks it, or for a share of 0/1
//! items the paired test at 0.05 shared among the watched shares; see [`Effect::regressed`]);
//! otherwise the round is rolled back, and the reason recorded.

use hone_eval::{TaskResult, compare};
use hone_report::iteration::Effect;

/// The change of every whole-task metric in `watched` ((task, metric) pairs: each task's headline and
/// the goals') from `before` to `after`, with its 95% interval (the report's combined interval).
pub fn effects(
    before: &[TaskResult],
    after: &[TaskResult],
    watched: &[(String, String)],
    targeted: &[(String, String)],
) -> Vec<Effect> {
    let mut out = Vec::new();
    for (task, metric) in watched {
        let (Some(a), Some(b)) = (before.iter().find(|r| &r.task == task), after.iter().find(|r| &r.task == task))
        else {
            continue;
        };
        let (Some(ma), Some(mb)) = (a.metric(metric), b.metric(metric)) else { continue };
        let Some(d) = compare::compare(a, b).into_iter().find(|d| &d.metric == metric && d.group.is_none()) else {
            continue;
        };
        let cell = |m: &hone_eval::Metric| hone_report::Cell { value: m.value, lo: m.lo, hi: m.hi, n: m.n };
        let ch = hone_report::change(&cell(ma), &cell(mb), ma.higher_is_better);
        out.push(Effect {
            task: task.clone(),
            metric: metric.clone(),
            higher_is_better: ma.higher_is_better,
            before: ma.value,
            after: mb.value,
            delta: ch.delta,
            lo: ch.lo,
            hi: ch.hi,
            p_better: d.p_better,
            p_worse: d.p_worse,
            targeted: targeted.iter().any(|(t, m)| t == task && m == metric),
            // Set below, once the shares are counted.
            worse_alpha: if ma.interval == "wilson" { 1.0 } else { 0.0 },
        });
    }
    // Bonferroni: the paired tests for a fall share 0.05 among the watched shares of 0/1 items.
    let shares = out.iter().filter(|e| e.worse_alpha > 0.0).count();
    for e in out.iter_mut().filter(|e| e.worse_alpha > 0.0) {
        e.worse_alpha = 0.05 / shares as f64;
    }
    out
}

/// Keep or roll back, and why.
pub fn decide(effects: &[Effect]) -> (bool, String) {
    let worse: Vec<String> = effects
        .iter()
        .filter(|e| e.regressed())
        .map(|e| {
            format!(
                "{} {} ({:.3} → {:.3}, Δ {:+.3} [{:+.3}, {:+.3}])",
                e.task, e.metric, e.before, e.after, e.delta, e.lo, e.hi
            )
        })
        .collect();
    let gained: Vec<String> = effects
        .iter()
        .filter(|e| e.targeted && e.improved())
        .map(|e| format!("{} {} ({:.3} → {:.3}, p = {:.3})", e.task, e.metric, e.before, e.after, e.p_better))
        .collect();
    if !worse.is_empty() {
        return (false, format!("rolled back: worse beyond the noise: {}", worse.join("; ")));
    }
    if gained.is_empty() {
        return (false, "rolled back: no targeted metric improved beyond the noise".into());
    }
    (true, format!("kept: improved beyond the noise: {}; nothing worse beyond the noise", gained.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(targeted: bool, p_better: f64, p_worse: f64) -> Effect {
        // The interval follows the paired verdict here: above zero when better, below when worse.
        let d = if p_worse < 0.05 { -0.2 } else { 0.2 };
        Effect {
            task: "t".into(),
            metric: "m".into(),
            higher_is_better: true,
            before: 0.2,
            after: 0.2 + d,
            delta: d,
            lo: d - 0.1,
            hi: d + 0.1,
            p_better,
            p_worse,
            targeted,
            worse_alpha: 0.0,
        }
    }

    #[test]
    fn a_round_is_kept_only_with_a_targeted_gain_and_no_loss() {
        assert!(decide(&[e(true, 0.01, 0.99), e(false, 0.5, 0.5)]).0);
        assert!(!decide(&[e(true, 0.2, 0.8)]).0);
        let (keep, why) = decide(&[e(true, 0.01, 0.99), e(false, 0.99, 0.01)]);
        assert!(!keep && why.contains("worse"), "{why}");
        // A gain on an untargeted metric alone does not keep a round.
        assert!(!decide(&[e(false, 0.01, 0.99)]).0);
    }

    #[test]
    fn a_share_that_falls_by_the_paired_test_rolls_back_inside_its_interval() {
        // A share falling 0.69 → 0.57 inside its interval, the paired test saying worse (p = 0.001,
        // below 0.05 / 15 shares).
        let fall = Effect {
            task: "world_unknown_entities".into(),
            metric: "idk_rate".into(),
            higher_is_better: true,
            before: 0.69,
            after: 0.57,
            delta: -0.12,
            lo: -0.25,
            hi: 0.01,
            p_better: 0.99,
            p_worse: 0.001,
            targeted: false,
            worse_alpha: 0.05 / 15.0,
        };
        let (keep, why) = decide(&[e(true, 0.01, 0.99), fall.clone()]);
        assert!(!keep && why.contains("world_unknown_entities"), "{why}");
        // p = 0.019 is chance among 15 shares: kept.
        assert!(decide(&[e(true, 0.01, 0.99), Effect { p_worse: 0.019, ..fall.clone() }]).0);
        // A log-likelihood moving as much is held to its interval only.
        let bpb = Effect { worse_alpha: 0.0, ..fall };
        assert!(decide(&[e(true, 0.01, 0.99), bpb]).0);
    }
}
