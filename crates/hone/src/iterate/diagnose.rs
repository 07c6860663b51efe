//! Diagnosis: which metrics of the development split are weak (short of a goal, or worse than the
//! best earlier stage beyond the noise), the items each failed, and which training stage the round's
//! rules give each weakness.

use super::config::Method;
use super::goals::Goal;
use hone_eval::TaskResult;
use hone_eval::compare;
use hone_report::iteration::Weakness;
use hone_world::remedy::{Remedy, remedy};
use std::collections::BTreeMap;

/// A weakness with what the round needs to act on it.
#[derive(Debug, Clone)]
pub struct Found {
    pub weakness: Weakness,
    /// The stages the rules allow, in order of preference (empty: nothing post-training can draw
    /// for it), with the world's data kinds for the task.
    pub candidates: Vec<Method>,
    pub remedy: Option<Remedy>,
    /// How far the metric is toward its target (1 = there; see `progress`).
    pub progress: f64,
}

/// Items of a result that failed (score below 1, or the wrong choice), by group.
fn failures(r: &TaskResult) -> (usize, usize, Vec<(String, usize)>) {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    for it in &r.items {
        let ok = it.score.map(|s| s >= 1.0).or(it.correct).unwrap_or(true);
        if !ok {
            failed += 1;
            if let Some(g) = &it.group {
                *groups.entry(g.clone()).or_default() += 1;
            }
        }
    }
    let mut g: Vec<(String, usize)> = groups.into_iter().collect();
    g.sort_by_key(|x| std::cmp::Reverse(x.1));
    (failed, r.items.len(), g)
}

/// The stages that could fix a task, in the order `method` prefers them. Under `auto`, a task far
/// from its target (its value under `demonstrate_below` × the target, on the good side of 0..1) needs
/// demonstrations first (SFT: reinforcing answers it rarely gives teaches little, and on the default
/// run an RL round on JSON left it at 0.23 where an SFT round took it to 0.72); one nearer is
/// reinforced, by RL where its kind has a verifier, else by DPO on pairs of its own answers.
pub fn candidates(method: Method, r: &Remedy, progress: f64, demonstrate_below: f64) -> Vec<Method> {
    let has = |m: &Method| match m {
        Method::Sft => !r.sft.is_empty(),
        Method::Dpo => !r.pairs.is_empty() || !r.rl.is_empty(),
        Method::Rl => !r.rl.is_empty(),
        Method::Auto => false,
    };
    let order: Vec<Method> = match method {
        Method::Auto if progress < demonstrate_below => vec![Method::Sft, Method::Rl, Method::Dpo],
        Method::Auto => vec![Method::Rl, Method::Dpo, Method::Sft],
        m => vec![m],
    };
    order.into_iter().filter(has).collect()
}

/// How far `value` is toward `target` (1 = there), on the good side: `value / target` for a
/// higher-is-better rate, `(1 − value) / (1 − target)` for a lower-is-better one.
fn progress(value: f64, target: f64, higher_is_better: bool) -> f64 {
    let (v, t) = if higher_is_better { (value, target) } else { (1.0 - value, 1.0 - target) };
    if t <= 0.0 { 1.0 } else { (v / t).max(0.0) }
}

/// The weaknesses of `now` (the development results of the current model): goals not met, and
/// headline metrics worse than the best of `earlier` (stage label, results) with p < 0.05.
pub fn diagnose(
    now: &[TaskResult],
    earlier: &[(String, Vec<TaskResult>)],
    goals: &[Goal],
    method: Method,
    demonstrate_below: f64,
) -> anyhow::Result<Vec<Found>> {
    let mut found: Vec<Found> = Vec::new();
    let mut add = |r: &TaskResult, m: &hone_eval::Metric, why: String, target: f64| {
        if let Some(f) = found.iter_mut().find(|f| f.weakness.task == r.task && f.weakness.metric == m.name) {
            f.weakness.why = format!("{}; {why}", f.weakness.why);
            return;
        }
        let (failed, _, groups) = failures(r);
        let rem = remedy(&r.task);
        let p = progress(m.value, target, m.higher_is_better);
        let cands = rem.as_ref().map(|x| candidates(method, x, p, demonstrate_below)).unwrap_or_default();
        let remedy_text = match (&rem, cands.is_empty()) {
            (None, _) => "none: post-training data does not teach it (the corpus and pretraining do)".to_string(),
            (Some(_), true) => format!("none under iterate.method = {}", method.name()),
            (Some(_), false) => cands.iter().map(|m| m.name()).collect::<Vec<_>>().join(", then "),
        };
        found.push(Found {
            weakness: Weakness {
                task: r.task.clone(),
                metric: m.name.clone(),
                value: m.value,
                lo: m.lo,
                hi: m.hi,
                n: m.n,
                why,
                failed,
                failed_groups: groups,
                remedy: remedy_text,
            },
            candidates: cands,
            remedy: rem,
            progress: p,
        });
    };
    for g in goals {
        let m = g.find(now)?;
        if !g.met(m.value) {
            let r = now.iter().find(|r| r.task == g.task).expect("found above");
            add(r, m, format!("short of its goal ({})", g.text()), g.value);
        }
    }
    for r in now {
        let Some(m) = r.headline_metric() else { continue };
        // The best earlier stage on this metric, and whether the current model is worse than it
        // beyond the noise (the report's paired test).
        let best = earlier
            .iter()
            .filter_map(|(label, rs)| rs.iter().find(|x| x.task == r.task).map(|x| (label, x)))
            .filter_map(|(label, x)| x.headline_metric().map(|hm| (label, x, hm.value)))
            .max_by(|a, b| {
                let (va, vb) = if m.higher_is_better { (a.2, b.2) } else { (b.2, a.2) };
                va.total_cmp(&vb)
            });
        let Some((label, x, v)) = best else { continue };
        let worse = compare::compare(x, r)
            .into_iter()
            .find(|d| d.metric == m.name && d.group.is_none())
            .filter(|d| d.regression);
        if let Some(d) = worse {
            add(r, m, format!("worse than after {label} ({v:.3}) beyond the noise (p = {:.3})", d.p_worse), v);
        }
    }
    Ok(found)
}

/// The stage a round trains and the weaknesses it targets. Each weakness calls for its first stage
/// not in `tried` (the stages of rounds rolled back since the last kept one: a round that failed is
/// not repeated as it was); the round trains the stage most weaknesses call for (ties: SFT, RL,
/// DPO, the order that builds on demonstrations first) on those weaknesses, and the others wait. On
/// the default run an SFT round that also took in one-word answers (close to their goal, RL's to
/// reinforce) lowered them from 0.74 to 0.63.
pub fn plan<'a>(found: &'a [Found], tried: &[Method]) -> Option<(Method, Vec<&'a Found>)> {
    let pick = |f: &Found| f.candidates.iter().copied().find(|m| !tried.contains(m));
    let order = [Method::Sft, Method::Rl, Method::Dpo];
    let count = |m: Method| found.iter().filter(|f| pick(f) == Some(m)).count();
    let best = order.iter().copied().filter(|&m| count(m) > 0).max_by_key(|&m| {
        // max_by_key keeps the last maximum: rank earlier methods higher on ties.
        (count(m), std::cmp::Reverse(order.iter().position(|&x| x == m)))
    })?;
    Some((best, found.iter().filter(|f| pick(f) == Some(best)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_pick_demonstrations_for_what_is_far_from_its_goal() {
        let arith = remedy("arithmetic").unwrap();
        assert_eq!(candidates(Method::Auto, &arith, 0.6, 0.5), vec![Method::Rl, Method::Dpo, Method::Sft]);
        assert_eq!(candidates(Method::Auto, &arith, 0.2, 0.5), vec![Method::Sft, Method::Rl, Method::Dpo]);
        let idk = remedy("unknown_entities").unwrap();
        assert_eq!(candidates(Method::Rl, &idk, 0.5, 0.5), vec![Method::Rl]);
        assert_eq!(candidates(Method::Sft, &idk, 0.5, 0.5), vec![Method::Sft]);
        // Nothing post-training draws teaches it: no stage.
        let none = Remedy { sft: &[], pairs: &[], rl: &[] };
        assert!(candidates(Method::Auto, &none, 0.5, 0.5).is_empty());
        assert!((progress(0.25, 0.5, true) - 0.5).abs() < 1e-12);
        assert!((progress(0.4, 0.2, false) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_round_trains_what_most_weaknesses_call_for_and_never_repeats_a_failed_one() {
        let f = |task: &str, progress: f64| Found {
            weakness: Weakness {
                task: task.into(),
                metric: "m".into(),
                value: 0.0,
                lo: 0.0,
                hi: 0.0,
                n: 1,
                why: String::new(),
                failed: 0,
                failed_groups: vec![],
                remedy: String::new(),
            },
            candidates: candidates(Method::Auto, &remedy(task).unwrap(), progress, 0.5),
            remedy: remedy(task),
            progress,
        };
        let found = vec![f("arithmetic", 0.6), f("format_json", 0.7), f("unknown_entities", 0.9)];
        let (m, t) = plan(&found, &[]).unwrap();
        assert_eq!((m, t.len()), (Method::Rl, 3));
        // RL was rolled back: DPO is what they call for next.
        let (m, t) = plan(&found, &[Method::Rl]).unwrap();
        assert_eq!((m, t.len()), (Method::Dpo, 3));
        assert!(plan(&found, &[Method::Rl, Method::Dpo, Method::Sft]).is_none());
        // Far from their goals, formats need demonstrations; arithmetic, nearer, waits for RL.
        let found = vec![f("arithmetic", 0.6), f("format_json", 0.4), f("format_list_n", 0.3)];
        let (m, t) = plan(&found, &[]).unwrap();
        assert_eq!((m, t.len()), (Method::Sft, 2));
    }
}
