//! `report.html`: one self-contained page (styles and loss curves inline, no scripts, nothing
//! fetched), so it opens anywhere and can be mailed as one file.

use crate::answers::AnswerSet;
use crate::gather::RunFacts;
use crate::markdown::{STAGE_HEADER, change_text, metric_label, num, sizes, stage_lines};
use crate::table::{Row, StageTable};
use std::fmt::Write as _;

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .55rem; vertical-align: top; }
th { background: #f4f5f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better { background: #e3f6e6; } td.worse { background: #fde4e1; } td.same { color: #777; }
.ci { color: #777; font-size: .8rem; }
.task { font-weight: 600; } .desc { color: #666; font-size: .8rem; }
.answers td.out { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .82rem; max-width: 760px; }
.ok { color: #137333; font-weight: 700; } .bad { color: #b3261e; font-weight: 700; }
.prompt { background: #f7f7f9; padding: .4rem .6rem; border-left: 3px solid #8ab4f8; white-space: pre-wrap;
          font-family: ui-monospace, monospace; font-size: .85rem; }
.curves { display: flex; flex-wrap: wrap; gap: 1rem; } .curves figure { margin: 0; width: 560px; }
.curves svg { width: 100%; height: auto; border: 1px solid #eee; }
details pre { background: #f7f7f9; padding: .6rem; overflow-x: auto; font-size: .8rem; }
.legend { color: #555; font-size: .85rem; }
"#;

fn table_html(o: &mut String, t: &StageTable, rows: &[&Row]) {
    o.push_str("<div class=scroll><table><tr><th>task</th><th>metric</th>");
    for (i, (_, label)) in t.columns.iter().enumerate() {
        let _ = write!(o, "<th>{}</th>", esc(label));
        if i > 0 {
            let _ = write!(o, "<th>Δ {}</th>", esc(label));
        }
    }
    o.push_str("</tr>\n");
    for r in rows {
        let _ = write!(
            o,
            "<tr><td><span class=task>{}</span><br><span class=desc>{}</span></td><td>{}</td>",
            esc(&r.task),
            esc(&r.description),
            esc(&metric_label(r))
        );
        for (i, c) in r.cells.iter().enumerate() {
            match c {
                Some(c) => {
                    let _ = write!(
                        o,
                        "<td class=num>{}<br><span class=ci>[{}, {}] n={}</span></td>",
                        num(c.value),
                        num(c.lo),
                        num(c.hi),
                        c.n
                    );
                }
                None => o.push_str("<td class=num>–</td>"),
            }
            if i > 0 {
                match &r.changes[i] {
                    Some(ch) => {
                        let class = match (ch.significant, ch.better) {
                            (true, true) => "better",
                            (true, false) => "worse",
                            _ => "same",
                        };
                        let _ = write!(o, "<td class=\"num {class}\">{}</td>", esc(&change_text(ch)));
                    }
                    None => o.push_str("<td></td>"),
                }
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table></div>\n");
}

/// An SVG file's markup without its XML prolog, to place inline.
fn inline_svg(path: &std::path::Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let start = s.find("<svg")?;
    Some(s[start..].to_string())
}

pub fn render(f: &RunFacts, t: &StageTable, answers: &[AnswerSet]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>hone report: {0}</title>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head><body>\n\
         <h1>hone report: {0}</h1><p class=sub>Run directory <code>{1}</code></p>\n",
        esc(&f.name),
        esc(&f.run_dir.display().to_string())
    );
    o.push_str("<h2>The run</h2><table>");
    for (k, v) in sizes(f) {
        let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    o.push_str("</table>\n<h2>Stages</h2><table><tr>");
    for h in STAGE_HEADER {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    for l in stage_lines(f) {
        o.push_str("<tr>");
        for (i, c) in l.iter().enumerate() {
            let class = if (2..=4).contains(&i) || i == 6 { " class=num" } else { "" };
            let _ = write!(o, "<td{class}>{}</td>", esc(c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>\n");
    let notes: Vec<&String> = f.stages.iter().flat_map(|s| s.data_notes.left_out_lines()).collect();
    if !notes.is_empty() {
        o.push_str("<p class=warn>Data the stages left out (their numbers below are on what remained):</p><ul>");
        for n in notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
    let total: f64 = f.timings.iter().map(|x| x.1).sum();
    if total > 0.0 {
        let _ = writeln!(o, "<p>Pipeline wall time: {total:.0} s.</p>");
    }
    o.push_str("<h2>What each stage changed</h2>\n");
    if t.columns.is_empty() {
        o.push_str("<p>No evaluations yet.</p>\n");
    } else {
        o.push_str(
            "<p class=legend>Headline metric of every task per stage (↑ higher is better, ↓ lower is better), with its \
             95% interval and item count. Δ is the change from the previous stage with its 95% interval: \
             <span style=\"background:#e3f6e6\">green ▲</span> better beyond the noise, \
             <span style=\"background:#fde4e1\">red ▼</span> worse beyond it, grey within it.</p>\n",
        );
        let heads: Vec<&Row> = t.rows.iter().filter(|r| r.headline).collect();
        table_html(&mut o, t, &heads);
        let regs = t.regressions();
        o.push_str("<h3>Regressions</h3>");
        if regs.is_empty() {
            o.push_str("<p>None: no metric got worse beyond the noise from one stage to the next.</p>");
        } else {
            o.push_str("<ul>");
            for (r, c) in regs {
                let _ = write!(
                    o,
                    "<li><b>{}</b> {} from {} to {}: {}</li>",
                    esc(&r.task),
                    esc(&metric_label(r)),
                    esc(&t.columns[c - 1].1),
                    esc(&t.columns[c].1),
                    esc(&r.changes[c].as_ref().map(change_text).unwrap_or_default())
                );
            }
            o.push_str("</ul>");
        }
    }
    o.push_str(&crate::iteration::html(&f.rounds));
    if !answers.is_empty() {
        o.push_str(
            "<h2>The same prompts, side by side</h2><p class=legend>Outputs exactly as evaluated; \
             <span class=ok>✓</span> accepted by the task's scorer, <span class=bad>✗</span> not.</p>\n",
        );
        for a in answers {
            let _ = write!(o, "<h4>{}</h4><div class=prompt>{}</div>", esc(&a.task), esc(&a.prompt));
            if !a.targets.is_empty() {
                let _ = write!(o, "<p class=legend>expected: {}</p>", esc(&a.targets.join(" / ")));
            }
            o.push_str("<table class=answers><tr><th>stage</th><th>answer</th><th></th></tr>");
            for (label, ans) in &a.answers {
                let (out, mark) = match ans {
                    Some(x) => (
                        esc(&x.output),
                        match x.correct {
                            Some(true) => "<span class=ok>✓</span>",
                            Some(false) => "<span class=bad>✗</span>",
                            None => "",
                        },
                    ),
                    None => ("–".into(), ""),
                };
                let _ = write!(o, "<tr><td>{}</td><td class=out>{out}</td><td>{mark}</td></tr>", esc(label));
            }
            o.push_str("</table>\n");
        }
    }
    let curves: Vec<_> =
        f.stages.iter().filter_map(|s| s.curve_svg.as_ref().and_then(|p| inline_svg(p)).map(|svg| (s, svg))).collect();
    if !curves.is_empty() {
        o.push_str("<h2>Loss curves</h2><div class=curves>");
        for (s, svg) in curves {
            let _ = write!(o, "<figure>{svg}<figcaption>{}</figcaption></figure>", esc(&s.name));
        }
        o.push_str("</div>\n");
    }
    if t.rows.iter().any(|r| !r.headline) {
        o.push_str("<h2>Every metric</h2><details><summary>All metrics, including per-group breakdowns</summary>");
        let all: Vec<&Row> = t.rows.iter().collect();
        table_html(&mut o, t, &all);
        o.push_str("</details>\n");
    }
    if let Some(c) = &f.config_toml {
        let _ =
            writeln!(o, "<h2>Configuration</h2><details><summary>config.toml</summary><pre>{}</pre></details>", esc(c));
    }
    o.push_str("</body></html>\n");
    o
}
