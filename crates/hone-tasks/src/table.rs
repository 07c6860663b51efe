//! Plain-text tables for the terminal: results of a run, and the comparison of two.

use crate::compare::Delta;
use crate::result::TaskResult;
use std::fmt::Write as _;

/// Decimals for a value: four below 10, two below 100, one above.
fn decimals(v: f64) -> usize {
    if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 10.0 {
        2
    } else {
        4
    }
}

fn fmt_value(v: f64) -> String {
    format!("{v:.*}", decimals(v))
}

/// One line per whole-task metric: task, metric (with its direction), value, 95% interval, items.
pub fn results(results: &[TaskResult]) -> String {
    let mut rows = vec![["task".to_string(), "metric".into(), "value".into(), "95% interval".into(), "n".into()]];
    for r in results {
        for m in r.metrics.iter().filter(|m| m.group.is_none()) {
            let star = if m.name == r.headline { "*" } else { "" };
            rows.push([
                r.task.clone(),
                format!("{}{star} ({})", m.name, if m.higher_is_better { "↑" } else { "↓" }),
                fmt_value(m.value),
                format!("[{:.*}, {:.*}]", decimals(m.value), m.lo, decimals(m.value), m.hi),
                m.n.to_string(),
            ]);
        }
    }
    let mut out = render(&rows);
    out.push_str("* headline metric; ↑ higher is better, ↓ lower is better\n");
    out
}

/// One line per compared metric, then a REGRESSION line per metric that got worse beyond noise.
pub fn comparison(deltas: &[Delta]) -> String {
    let mut rows = vec![[
        "task".to_string(),
        "metric".into(),
        "A".into(),
        "B".into(),
        "change".into(),
        "p(worse)".into(),
        "verdict".into(),
    ]];
    for d in deltas {
        let name = match &d.group {
            Some(g) => format!("{} [{g}] ({})", d.metric, if d.higher_is_better { "↑" } else { "↓" }),
            None => format!("{} ({})", d.metric, if d.higher_is_better { "↑" } else { "↓" }),
        };
        let verdict = if d.regression {
            "worse"
        } else if d.improvement {
            "better"
        } else {
            "within noise"
        };
        rows.push([
            d.task.clone(),
            name,
            fmt_value(d.a),
            fmt_value(d.b),
            format!("{:+.4}", d.change),
            format!("{:.3}", d.p_worse),
            verdict.into(),
        ]);
    }
    let mut out = render(&rows);
    let _ = writeln!(out, "↑ higher is better, ↓ lower is better; worse = B worse than A with one-sided p < 0.05");
    for d in deltas.iter().filter(|d| d.regression) {
        let _ = writeln!(
            out,
            "REGRESSION: {} {}{}: {} -> {} ({:+.4}, p = {:.4}, {})",
            d.task,
            d.metric,
            d.group.as_ref().map(|g| format!(" [{g}]")).unwrap_or_default(),
            fmt_value(d.a),
            fmt_value(d.b),
            d.change,
            d.p_worse,
            d.method
        );
    }
    if !deltas.iter().any(|d| d.regression) {
        let _ = writeln!(out, "no regression");
    }
    out
}

fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (k, r) in rows.iter().enumerate() {
        let line: Vec<String> =
            r.iter().enumerate().map(|(i, c)| format!("{c}{}", " ".repeat(w[i] - c.chars().count()))).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if k == 0 {
            let _ = writeln!(out, "{}", w.iter().map(|&n| "-".repeat(n)).collect::<Vec<_>>().join("  "));
        }
    }
    out
}
