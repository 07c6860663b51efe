//! `report.md`: the report as Markdown, readable in a terminal or on a code host.

use crate::answers::AnswerSet;
use crate::gather::RunFacts;
use crate::table::{Change, Row, StageTable};
use std::fmt::Write as _;

/// A number with precision that suits its size.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// `+0.120 [+0.050, +0.190] ▲`: ▲ better beyond the noise, ▼ worse beyond it, nothing otherwise.
pub fn change_text(c: &Change) -> String {
    let mark = match (c.significant, c.better) {
        (true, true) => " ▲",
        (true, false) => " ▼",
        _ => "",
    };
    format!("{:+.3} [{:+.3}, {:+.3}]{mark}", c.delta, c.lo, c.hi)
}

pub fn metric_label(r: &Row) -> String {
    let dir = if r.higher_is_better { "↑" } else { "↓" };
    match &r.group {
        Some(g) => format!("{} {dir} ({g})", r.metric),
        None => format!("{} {dir}", r.metric),
    }
}

/// Sizes of the run: model, data, world.
pub fn sizes(f: &RunFacts) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(m) = &f.model {
        let g = |k: &str| m.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        v.push((
            "model".into(),
            format!(
                "{} parameters: {} layers, width {}, {} heads ({} key/value), MLP {}, vocabulary {}, context {}",
                f.model_params.map(|p| format!("{:.2}M", p as f64 / 1e6)).unwrap_or_else(|| "?".into()),
                g("num_hidden_layers"),
                g("hidden_size"),
                g("num_attention_heads"),
                g("num_key_value_heads"),
                g("intermediate_size"),
                g("vocab_size"),
                g("max_position_embeddings"),
            ),
        ));
    }
    if let Some(d) = &f.data {
        let t = |s: &str, k: &str| d.get(s).and_then(|x| x.get(k)).and_then(|x| x.as_u64()).unwrap_or(0);
        v.push((
            "pretraining data".into(),
            format!(
                "{} training tokens in {} documents ({:.2} MB of text); {} held-out tokens",
                t("train", "tokens"),
                t("train", "documents"),
                t("train", "text_bytes") as f64 / 1e6,
                t("val", "tokens")
            ),
        ));
    }
    if let Some(w) = &f.world {
        let n = |k: &str| w.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let sum = |k: &str| {
            w.get(k).and_then(|x| x.as_object()).map_or(0, |o| {
                o.values()
                    .map(|v| v.as_u64().or_else(|| v.get("documents").and_then(|d| d.as_u64())).unwrap_or(0))
                    .sum()
            })
        };
        v.push((
            "world".into(),
            format!(
                "seed {}, size {}, knowledge cutoff {}: {} entities, {} corpus documents ({:.2} MB), {} SFT conversations, {} preference pairs (+{} held out), {} RL prompts, {} probe tasks",
                n("seed"),
                w.get("size").and_then(|x| x.as_str()).unwrap_or("?"),
                n("cutoff_year"),
                sum("entities"),
                n("corpus_documents"),
                n("corpus_bytes") as f64 / 1e6,
                n("sft_total"),
                n("preference_total"),
                n("preference_eval"),
                n("rl_prompts"),
                w.get("probes").map_or(0, |x| x.as_array().map(|a| a.len()).or(x.as_object().map(|o| o.len())).unwrap_or(0)),
            ),
        ));
    }
    v
}

/// One line per stage: checkpoint, tokens, speed, last numbers, wall time and peak resident memory.
pub fn stage_lines(f: &RunFacts) -> Vec<[String; 7]> {
    f.stages
        .iter()
        .map(|s| {
            let mut evals = s.last_eval.iter().map(|(k, v)| format!("{k} {}", num(*v))).collect::<Vec<_>>().join(", ");
            // Beside the numbers, so nobody reads them as measured on the files as given.
            if let Some(w) = s.data_notes.warning() {
                evals = if evals.is_empty() { w } else { format!("{evals}; {w}") };
            }
            let wall =
                f.timings.iter().find(|(k, _)| k == &s.name).map(|(_, t)| format!("{t:.0} s")).unwrap_or_default();
            let wall = match f.peaks.iter().find(|(k, _)| k == &s.name) {
                Some((_, m)) => format!("{wall}, {m:.0} MiB"),
                None => wall,
            };
            [
                s.name.clone(),
                match (s.final_step, s.latest_step) {
                    (Some(x), _) => format!("final at step {x}"),
                    (None, Some(x)) => format!("unfinished, step {x}"),
                    _ => "no checkpoint".into(),
                },
                s.tokens.map(|t| format!("{t:.0}")).unwrap_or_default(),
                s.tokens_per_s.map(|t| format!("{t:.0}")).unwrap_or_default(),
                s.train_loss.last().map(|p| num(p.1)).unwrap_or_default(),
                evals,
                wall,
            ]
        })
        .collect()
}

pub const STAGE_HEADER: [&str; 7] = [
    "stage",
    "checkpoint",
    "tokens",
    "tokens/s (median)",
    "last train loss",
    "last held-out numbers",
    "wall time, peak memory",
];

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "⏎ ")
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n { format!("{}…", s.chars().take(n).collect::<String>()) } else { s.to_string() }
}

fn table_md(out: &mut String, t: &StageTable, rows: &[&Row]) {
    let _ = write!(out, "| task | metric |");
    for (i, (_, label)) in t.columns.iter().enumerate() {
        let _ = write!(out, " {label} |");
        if i > 0 {
            let _ = write!(out, " Δ {label} |");
        }
    }
    out.push_str("\n|---|---|");
    for i in 0..t.columns.len() {
        out.push_str(if i > 0 { "---:|---|" } else { "---:|" });
    }
    out.push('\n');
    for r in rows {
        let _ = write!(out, "| {} | {} |", r.task, metric_label(r));
        for (i, c) in r.cells.iter().enumerate() {
            let v = c.as_ref().map(|c| format!("{} (n={})", num(c.value), c.n)).unwrap_or_else(|| "–".into());
            let _ = write!(out, " {v} |");
            if i > 0 {
                let _ = write!(out, " {} |", r.changes[i].as_ref().map(change_text).unwrap_or_default());
            }
        }
        out.push('\n');
    }
}

pub fn render(f: &RunFacts, t: &StageTable, answers: &[AnswerSet]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# hone report: {}\n", f.name);
    let _ = writeln!(o, "Run directory `{}`.\n", f.run_dir.display());
    o.push_str("## The run\n\n");
    for (k, v) in sizes(f) {
        let _ = writeln!(o, "- **{k}**: {v}");
    }
    o.push_str("\n## Stages\n\n");
    let _ = writeln!(o, "| {} |", STAGE_HEADER.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(STAGE_HEADER.len()));
    for l in stage_lines(f) {
        let _ = writeln!(o, "| {} |", l.join(" | "));
    }
    let notes: Vec<&String> = f.stages.iter().flat_map(|s| s.data_notes.left_out_lines()).collect();
    if !notes.is_empty() {
        o.push_str("\nData the stages left out (their numbers below are on what remained):\n\n");
        for n in notes {
            let _ = writeln!(o, "- {n}");
        }
    }
    let total: f64 = f.timings.iter().map(|x| x.1).sum();
    if total > 0.0 {
        let _ = writeln!(o, "\nPipeline wall time: {total:.0} s.");
    }
    o.push_str("\n## What each stage changed\n\n");
    if t.columns.is_empty() {
        o.push_str("No evaluations yet (`hone eval --model runs/<name>/<stage> --task …` writes them).\n");
    } else {
        o.push_str(
            "Headline metric of every task per stage (↑ higher is better, ↓ lower is better). Δ is the change from the \
             previous stage with its 95% interval; ▲/▼ mark changes for the better/worse beyond the noise.\n\n",
        );
        let heads: Vec<&Row> = t.rows.iter().filter(|r| r.headline).collect();
        table_md(&mut o, t, &heads);
        let regs = t.regressions();
        o.push_str("\n### Regressions\n\n");
        if regs.is_empty() {
            o.push_str("None: no metric got worse beyond the noise from one stage to the next.\n");
        }
        for (r, c) in regs {
            let _ = writeln!(
                o,
                "- **{}** {} from {} to {}: {}",
                r.task,
                metric_label(r),
                t.columns[c - 1].1,
                t.columns[c].1,
                r.changes[c].as_ref().map(change_text).unwrap_or_default()
            );
        }
    }
    o.push_str(&crate::iteration::markdown(&f.rounds));
    if !answers.is_empty() {
        o.push_str("\n## The same prompts, side by side\n\n");
        o.push_str("Outputs as evaluated (✓ accepted by the task's scorer, ✗ not).\n");
        for a in answers {
            let _ = writeln!(o, "\n**{}**: {}", a.task, md_escape(&clip(&a.prompt, 300)));
            if !a.targets.is_empty() {
                let _ = writeln!(o, "  (expected: {})", md_escape(&clip(&a.targets.join(" / "), 120)));
            }
            o.push_str("\n| stage | answer | |\n|---|---|---|\n");
            for (label, ans) in &a.answers {
                match ans {
                    Some(x) => {
                        let mark = match x.correct {
                            Some(true) => "✓",
                            Some(false) => "✗",
                            None => "",
                        };
                        let _ = writeln!(o, "| {label} | {} | {mark} |", md_escape(&clip(&x.output, 300)));
                    }
                    None => {
                        let _ = writeln!(o, "| {label} | – | |");
                    }
                }
            }
        }
    }
    o.push_str("\n## Loss curves\n\n");
    for s in &f.stages {
        if s.curve_svg.is_some() {
            let _ = writeln!(o, "![{0}](../{0}/loss.svg)", s.name);
        }
    }
    if t.rows.iter().any(|r| !r.headline) {
        o.push_str("\n## Every metric\n\n");
        let all: Vec<&Row> = t.rows.iter().collect();
        table_md(&mut o, t, &all);
    }
    if let Some(c) = &f.config_toml {
        let _ = write!(o, "\n## Configuration\n\n```toml\n{c}\n```\n");
    }
    o
}
