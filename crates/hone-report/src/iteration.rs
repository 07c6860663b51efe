//! The rounds of `hone iterate` as the report shows them: what each round found weak on the
//! development split, the data it built (kinds, counts, grader), whether it was kept or rolled back
//! and why, and its effect with intervals. `hone iterate` writes one [`RoundRecord`] per round to
//! `<run>/iterate/round-N/round.json` (and `round-N-<grader>/round.json` for a round run again with
//! another grader, for comparison); the report reads them back.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// A metric found weak on the development split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weakness {
    pub task: String,
    pub metric: String,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Why it is weak: below its goal, or worse than an earlier stage beyond the noise.
    pub why: String,
    /// Items failed, and how many of them per group (kind, format, category).
    pub failed: usize,
    #[serde(default)]
    pub failed_groups: Vec<(String, usize)>,
    /// The training stage the round's rules give it (`sft`, `dpo`, `rl`), or why none.
    pub remedy: String,
}

/// One part of a round's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataPart {
    /// `sft`, `pairs` or `rl`.
    pub family: String,
    pub kind: String,
    pub count: usize,
    /// `drawn` (new world data), `on-policy` (the model's own answers, graded), `replay` (earlier
    /// data) or `feedback` (people's judgements).
    pub source: String,
}

/// How often a grader orders two answers as the rule grader does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub grader: String,
    /// Pairs of answers the rule grader tells apart.
    pub pairs: usize,
    /// Share of them the grader orders the same way.
    pub rate: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The change of one headline metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub task: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub before: f64,
    pub after: f64,
    /// after − before with its 95% interval.
    pub delta: f64,
    pub lo: f64,
    pub hi: f64,
    /// One-sided p-values of the paired comparison.
    pub p_better: f64,
    pub p_worse: f64,
    pub targeted: bool,
    /// Level of the paired test for a fall: for a share of items each scored 0 or 1 (accuracy,
    /// compliance, a refusal or "I don't know" rate), 0.05 divided among the shares watched together
    /// (Bonferroni); 0 for a log-likelihood, which is held to its interval only. See
    /// [`Effect::regressed`].
    #[serde(default)]
    pub worse_alpha: f64,
}

impl Effect {
    /// Better beyond the noise: the paired test (items compared one by one) says so with p < 0.05.
    pub fn improved(&self) -> bool {
        self.p_better < 0.05 && self.delta != 0.0
    }

    /// Worse beyond the noise: the change's 95% interval lies wholly on the worse side (the report
    /// table's ▼), or, for a share of 0/1 items, the paired test says worse at `worse_alpha`. The
    /// paired test would flag every shift of a held-out log-likelihood (on the default run, an SFT
    /// round moved held-out bits per byte by +0.05 with p < 0.001, inside the report's interval of
    /// ±0.10), which any training step makes. For a share it is the right test, items being
    /// compared with themselves, and the interval alone is too lenient for a gate: on the default
    /// run a kept round took "I don't know" on the development split's invented entities from 0.69
    /// to 0.57 (p = 0.001) inside the interval, and the report's probes then showed 0.72 → 0.57 ▼.
    /// At 0.05 for each of the 15 shares a round watches, about half of the rounds that change
    /// nothing would be rolled back by chance; shared among them (0.0033 each) at most one in twenty
    /// is, and the fall above is still caught, while a round whose 0.74 → 0.67 (p = 0.019) showed
    /// 0.74 → 0.72 on the report's probes is kept.
    pub fn regressed(&self) -> bool {
        let interval = if self.higher_is_better { self.hi < 0.0 } else { self.lo > 0.0 };
        let worse = if self.higher_is_better { self.delta < 0.0 } else { self.delta > 0.0 };
        interval || (worse && self.p_worse < self.worse_alpha)
    }
}

/// One round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: u32,
    /// The model the round started from.
    pub start: String,
    pub method: String,
    pub grader: String,
    /// `None` on the main line; the grader's name for a comparison run of the same round.
    #[serde(default)]
    pub branch: Option<String>,
    pub weaknesses: Vec<Weakness>,
    /// Tasks the round's data aims at.
    pub targeted: Vec<String>,
    pub data: Vec<DataPart>,
    #[serde(default)]
    pub agreement: Option<Agreement>,
    pub kept: bool,
    pub reason: String,
    /// On the development split, from the starting model.
    pub dev: Vec<Effect>,
    /// On the report's probes, from the starting model (empty for a round rolled back).
    #[serde(default)]
    pub report: Vec<Effect>,
    pub seconds: f64,
}

/// The rounds recorded in `run_dir`, main line first in round order, then comparison runs.
pub fn read_rounds(run_dir: &Path) -> anyhow::Result<Vec<RoundRecord>> {
    let dir = run_dir.join("iterate");
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path().join("round.json");
        if !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let r: RoundRecord = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a round record ({e}); delete it to rerun the round", p.display()))?;
        out.push(r);
    }
    out.sort_by(|a, b| (a.branch.is_some(), a.round, &a.branch).cmp(&(b.branch.is_some(), b.round, &b.branch)));
    Ok(out)
}

/// A grader's name in a sentence.
fn grader_words(g: &str) -> &str {
    match g {
        "rule" => "the world's rules",
        "reward_model" => "the reward model",
        "feedback" => "people's judgements",
        other => other,
    }
}

/// The same round under different graders (its comparison runs, and the main round when it ran the
/// same stage): (grader, record).
fn compared(rounds: &[RoundRecord], round: u32) -> Vec<(&str, &RoundRecord)> {
    let branches: Vec<&RoundRecord> = rounds.iter().filter(|r| r.round == round && r.branch.is_some()).collect();
    let Some(first) = branches.first() else { return Vec::new() };
    let mut out: Vec<(&str, &RoundRecord)> = Vec::new();
    if let Some(main) = rounds.iter().find(|r| r.round == round && r.branch.is_none() && r.method == first.method) {
        out.push((main.grader.as_str(), main));
    }
    out.extend(branches.iter().map(|r| (r.grader.as_str(), *r)));
    out
}

/// The comparison of graders on the report's probes, as a Markdown table.
fn comparison_md(o: &mut String, runs: &[(&str, &RoundRecord)]) {
    let _ = writeln!(
        o,
        "\n### Graders compared: round {} as {}, from `{}`\n",
        runs[0].1.round, runs[0].1.method, runs[0].1.start
    );
    o.push_str(
        "Effect of each on the report's probes (Δ from the starting model, 95% interval; ▲/▼ beyond the noise):\n\n",
    );
    let heads: Vec<String> = runs.iter().map(|(g, _)| format!("graded by {}", grader_words(g))).collect();
    let _ = writeln!(o, "| task | metric | before | {} |", heads.join(" | "));
    let _ = writeln!(o, "|---|---|---:|{}", "---|".repeat(runs.len()));
    for e in &runs[0].1.report {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, r)| {
                r.report
                    .iter()
                    .find(|x| x.task == e.task && x.metric == e.metric)
                    .map(|x| format!("{:.3} ({})", x.after, effect_text(x)))
                    .unwrap_or_else(|| "–".into())
            })
            .collect();
        let _ = writeln!(o, "| {} | {} | {:.3} | {} |", e.task, e.metric, e.before, cells.join(" | "));
    }
    for (g, r) in runs {
        if let Some(a) = &r.agreement {
            let _ = writeln!(
                o,
                "\nRound data graded by {}: {}. The reward model ordered {:.0}% [{:.0}%, {:.0}%] of {} answer pairs as the rules did.",
                grader_words(g),
                r.data.iter().map(|d| format!("{} {} ({})", d.count, d.kind, d.source)).collect::<Vec<_>>().join(", "),
                100.0 * a.rate,
                100.0 * a.lo,
                100.0 * a.hi,
                a.pairs
            );
        }
    }
}

/// A round's title and fate (kept, rolled back, or a comparison).
fn heading(r: &RoundRecord) -> (String, &'static str) {
    match &r.branch {
        None => (format!("Round {}", r.round), if r.kept { "kept" } else { "rolled back" }),
        Some(g) => (
            format!("Round {} as {}, graded by {} alone (a comparison, not kept)", r.round, r.method, grader_words(g)),
            "compared",
        ),
    }
}

fn arrow(e: &Effect) -> &'static str {
    if e.improved() {
        " ▲"
    } else if e.regressed() {
        " ▼"
    } else {
        ""
    }
}

fn effect_text(e: &Effect) -> String {
    format!("{:+.3} [{:+.3}, {:+.3}]{}", e.delta, e.lo, e.hi, arrow(e))
}

/// The rounds as markdown lines (a `##` section), empty when there are none.
pub fn markdown(rounds: &[RoundRecord]) -> String {
    let mut o = String::new();
    if rounds.is_empty() {
        return o;
    }
    o.push_str("\n## Iteration rounds\n\n");
    o.push_str(
        "`hone iterate`: each round measures the current model on a development split (probe items made for \
         iteration, none of the report's), trains on data aimed at what it found weak, and keeps the result only \
         if a targeted metric improves (paired test, p < 0.05) and no metric falls beyond the noise (its 95% \
         interval wholly on the worse side, as ▼ marks it in the table above). The report's probes never choose \
         anything.\n",
    );
    for r in rounds {
        let (title, fate) = heading(r);
        let _ = writeln!(o, "\n### {title}: {} from `{}`, grader {}, {fate}\n", r.method, r.start, r.grader);
        if r.branch.is_none() && !r.weaknesses.is_empty() {
            o.push_str("Weaknesses on the development split:\n\n");
            o.push_str(
                "| task | metric | value [95%] | why | failed items (by group) | remedy |\n|---|---|---|---|---|---|\n",
            );
            for w in &r.weaknesses {
                let groups: Vec<String> = w.failed_groups.iter().take(4).map(|(g, n)| format!("{g} {n}")).collect();
                let _ = writeln!(
                    o,
                    "| {} | {} | {:.3} [{:.3}, {:.3}] (n={}) | {} | {}{} | {} |",
                    w.task,
                    w.metric,
                    w.value,
                    w.lo,
                    w.hi,
                    w.n,
                    w.why,
                    w.failed,
                    if groups.is_empty() { String::new() } else { format!(" ({})", groups.join(", ")) },
                    w.remedy
                );
            }
            o.push('\n');
        }
        let parts: Vec<String> =
            r.data.iter().map(|d| format!("{} {} {} ({})", d.count, d.family, d.kind, d.source)).collect();
        let _ = writeln!(o, "Data: {}.\n", parts.join(", "));
        if let Some(a) = &r.agreement {
            let _ = writeln!(
                o,
                "The {} orders {:.0}% [{:.0}%, {:.0}%] of {} answer pairs as the rule grader does.\n",
                a.grader.replace('_', " "),
                100.0 * a.rate,
                100.0 * a.lo,
                100.0 * a.hi,
                a.pairs
            );
        }
        let _ = writeln!(o, "Decision: {}\n", r.reason);
        for (what, effects) in [("development split", &r.dev), ("report's probes", &r.report)] {
            if effects.is_empty() {
                continue;
            }
            let _ =
                writeln!(o, "Effect on the {what} (Δ from the starting model, 95% interval; ▲/▼ beyond the noise):\n");
            o.push_str("| task | metric | before | after | Δ | targeted |\n|---|---|---:|---:|---|---|\n");
            for e in effects {
                let dir = if e.higher_is_better { "↑" } else { "↓" };
                let _ = writeln!(
                    o,
                    "| {} | {} {dir} | {:.3} | {:.3} | {} | {} |",
                    e.task,
                    e.metric,
                    e.before,
                    e.after,
                    effect_text(e),
                    if e.targeted { "yes" } else { "" }
                );
            }
            o.push('\n');
        }
        let _ = writeln!(o, "Round wall time {:.0} s.", r.seconds);
    }
    let mut seen = Vec::new();
    for r in rounds.iter().filter(|r| r.branch.is_some()) {
        if !seen.contains(&r.round) {
            seen.push(r.round);
            let runs = compared(rounds, r.round);
            comparison_md(&mut o, &runs);
        }
    }
    o
}

/// The rounds as an HTML section, empty when there are none.
pub fn html(rounds: &[RoundRecord]) -> String {
    use crate::html::esc;
    let mut o = String::new();
    if rounds.is_empty() {
        return o;
    }
    o.push_str("<h2>Iteration rounds</h2>\n");
    o.push_str(
        "<p class=legend>Each round measures the current model on a development split (probe items made for \
         iteration, none of the report's), trains on data aimed at what it found weak, and keeps the result only \
         if a targeted metric improves (paired test, p &lt; 0.05) and no metric falls beyond the noise (its 95% \
         interval wholly on the worse side). The report's probes never choose anything.</p>\n",
    );
    for r in rounds {
        let (title, fate) = heading(r);
        let _ = writeln!(
            o,
            "<h3>{}: {} from <code>{}</code>, grader {}, {fate}</h3>",
            esc(&title),
            esc(&r.method),
            esc(&r.start),
            esc(&r.grader)
        );
        if r.branch.is_none() && !r.weaknesses.is_empty() {
            o.push_str("<table><tr><th>task</th><th>metric</th><th>value [95%]</th><th>why</th><th>failed</th><th>remedy</th></tr>");
            for w in &r.weaknesses {
                let groups: Vec<String> = w.failed_groups.iter().take(4).map(|(g, n)| format!("{g} {n}")).collect();
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td class=num>{:.3} <span class=ci>[{:.3}, {:.3}] n={}</span></td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                    esc(&w.task),
                    esc(&w.metric),
                    w.value,
                    w.lo,
                    w.hi,
                    w.n,
                    esc(&w.why),
                    w.failed,
                    esc(&groups.join(", ")),
                    esc(&w.remedy)
                );
            }
            o.push_str("</table>\n");
        }
        let parts: Vec<String> =
            r.data.iter().map(|d| format!("{} {} {} ({})", d.count, d.family, d.kind, d.source)).collect();
        let _ = writeln!(o, "<p>Data: {}.</p>", esc(&parts.join(", ")));
        if let Some(a) = &r.agreement {
            let _ = writeln!(
                o,
                "<p>The {} orders {:.0}% [{:.0}%, {:.0}%] of {} answer pairs as the rule grader does.</p>",
                esc(&a.grader.replace('_', " ")),
                100.0 * a.rate,
                100.0 * a.lo,
                100.0 * a.hi,
                a.pairs
            );
        }
        let _ = writeln!(o, "<p>Decision: {}</p>", esc(&r.reason));
        for (what, effects) in [("development split", &r.dev), ("report's probes", &r.report)] {
            if effects.is_empty() {
                continue;
            }
            let _ = writeln!(o, "<p class=legend>Effect on the {what} (Δ from the starting model, 95% interval):</p>");
            o.push_str(
                "<table><tr><th>task</th><th>metric</th><th>before</th><th>after</th><th>Δ</th><th>targeted</th></tr>",
            );
            for e in effects {
                let class = if e.improved() {
                    "better"
                } else if e.regressed() {
                    "worse"
                } else {
                    "same"
                };
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td class=num>{:.3}</td><td class=num>{:.3}</td><td class=\"num {class}\">{}</td><td>{}</td></tr>",
                    esc(&e.task),
                    esc(&e.metric),
                    e.before,
                    e.after,
                    esc(&effect_text(e)),
                    if e.targeted { "yes" } else { "" }
                );
            }
            o.push_str("</table>\n");
        }
        let _ = writeln!(o, "<p class=legend>Round wall time {:.0} s.</p>", r.seconds);
    }
    let mut seen = Vec::new();
    for r in rounds.iter().filter(|r| r.branch.is_some()) {
        if seen.contains(&r.round) {
            continue;
        }
        seen.push(r.round);
        let runs = compared(rounds, r.round);
        let _ = writeln!(
            o,
            "<h3>Graders compared: round {} as {}, from <code>{}</code></h3>",
            r.round,
            esc(&r.method),
            esc(&r.start)
        );
        o.push_str("<table><tr><th>task</th><th>metric</th><th>before</th>");
        for (g, _) in &runs {
            let _ = write!(o, "<th>graded by {}</th>", esc(grader_words(g)));
        }
        o.push_str("</tr>\n");
        for e in &runs[0].1.report {
            let _ =
                write!(o, "<tr><td>{}</td><td>{}</td><td class=num>{:.3}</td>", esc(&e.task), esc(&e.metric), e.before);
            for (_, x) in &runs {
                match x.report.iter().find(|y| y.task == e.task && y.metric == e.metric) {
                    Some(y) => {
                        let _ = write!(
                            o,
                            "<td class=num>{:.3} <span class=ci>{}</span></td>",
                            y.after,
                            esc(&effect_text(y))
                        );
                    }
                    None => o.push_str("<td>–</td>"),
                }
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</table>\n");
        for (g, x) in &runs {
            if let Some(a) = &x.agreement {
                let _ = writeln!(
                    o,
                    "<p>Graded by {}: the reward model ordered {:.0}% [{:.0}%, {:.0}%] of {} answer pairs as the rules did.</p>",
                    esc(grader_words(g)),
                    100.0 * a.rate,
                    100.0 * a.lo,
                    100.0 * a.hi,
                    a.pairs
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(delta: f64, p_better: f64, p_worse: f64) -> Effect {
        Effect {
            task: "world_format_json".into(),
            metric: "compliance".into(),
            higher_is_better: true,
            // Binary fractions, which JSON carries exactly.
            before: 0.5,
            after: 0.5 + delta,
            delta,
            lo: delta - 0.125,
            hi: delta + 0.125,
            p_better,
            p_worse,
            targeted: true,
            worse_alpha: 0.05,
        }
    }

    #[test]
    fn rounds_round_trip_and_render_their_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let r = RoundRecord {
            round: 1,
            start: "rl".into(),
            method: "rl".into(),
            grader: "rule".into(),
            branch: None,
            weaknesses: vec![],
            targeted: vec!["world_format_json".into()],
            data: vec![DataPart {
                family: "rl".into(),
                kind: "format_json".into(),
                count: 200,
                source: "drawn".into(),
            }],
            agreement: None,
            kept: false,
            reason: "world_benign over_refusal_rate worse beyond the noise".into(),
            dev: vec![
                effect(0.25, 0.001, 0.999),
                effect(-0.25, 0.99, 0.01),
                Effect { worse_alpha: 0.0, ..effect(-0.0625, 0.9, 0.02) },
                effect(-0.09375, 0.9, 0.02),
            ],
            report: vec![],
            seconds: 12.0,
        };
        let b = RoundRecord { branch: Some("reward_model".into()), grader: "reward_model".into(), ..r.clone() };
        for (name, rec) in [("round-1", &r), ("round-1-reward_model", &b)] {
            std::fs::create_dir_all(dir.path().join("iterate").join(name)).unwrap();
            std::fs::write(
                dir.path().join("iterate").join(name).join("round.json"),
                serde_json::to_string(rec).unwrap(),
            )
            .unwrap();
        }
        let back = read_rounds(dir.path()).unwrap();
        assert_eq!(back, vec![r.clone(), b]);
        let md = markdown(&back);
        assert!(md.contains("Round 1: rl from `rl`, grader rule, rolled back"), "{md}");
        assert!(md.contains("+0.250 [+0.125, +0.375] ▲") && md.contains("-0.250 [-0.375, -0.125] ▼"), "{md}");
        // Worse by the paired test, but inside the interval: a log-likelihood is not marked, a share
        // of 0/1 items is.
        assert!(md.contains("-0.062 [-0.188, +0.062] |"), "{md}");
        assert!(md.contains("-0.094 [-0.219, +0.031] ▼"), "{md}");
        assert!(md.contains("graded by the reward model alone"), "{md}");
        assert!(
            md.contains("### Graders compared: round 1 as rl")
                && md.contains("| graded by the world's rules | graded by the reward model |"),
            "{md}"
        );
        assert!(html(&back).contains("class=\"num worse\""));
        std::fs::write(dir.path().join("iterate/round-1/round.json"), "{").unwrap();
        assert!(read_rounds(dir.path()).unwrap_err().to_string().contains("round-1/round.json"));
    }
}
