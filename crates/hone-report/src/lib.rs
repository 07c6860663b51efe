//! hone-report: puts the stages of a run side by side. It reads what the stages and evaluations left in
//! the run directory (`config.toml`, `world/summary.json`, `data/index.json`, each stage's checkpoints and
//! loss curve, `metrics.jsonl`, `eval/<stage>/*.json`, `timings.json`, the rounds of `hone iterate`) and writes `report/report.md` and a
//! self-contained `report/report.html`. A stage's column appears as soon as its evaluation exists, so
//! the report can be rewritten after every stage.

mod answers;
mod gather;
mod html;
pub mod iteration;
mod markdown;
mod table;

pub use answers::{Answer, AnswerSet, side_by_side};
pub use gather::{RunFacts, StageFacts, gather};

pub use table::{Cell, Change, Row, StageTable, build_table, change};

use std::path::{Path, PathBuf};

/// A training stage as the report shows it: its folder name, its column label, and whether it is a
/// policy (evaluated, a column) or a model other stages use. The caller passes the stage registry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportStage {
    pub name: String,
    pub label: String,
    pub policy: bool,
}

/// The files written.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `<run_dir>/report/report.md` and `report.html` about `stages` (in order).
pub fn write_report(run_dir: &Path, stages: &[ReportStage]) -> anyhow::Result<ReportFiles> {
    let facts = gather(run_dir, stages)?;
    let table = build_table(&facts);
    let out = run_dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let md = out.join("report.md");
    let html = out.join("report.html");
    let answers = answers::side_by_side(&facts, 2);
    write(&md, markdown::render(&facts, &table, &answers).as_bytes())?;
    write(&html, html::render(&facts, &table, &answers).as_bytes())?;
    Ok(ReportFiles { markdown: md, html })
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    hone_data::fault::point("report");
    hone_data::atomic::write_atomic(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
