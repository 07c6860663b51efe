//! `hone report RUN_DIR`: write the stage report (`report/report.md`, `report/report.html`) from what
//! the run's stages and evaluations left in its directory.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (default: runs/default).
    #[arg(default_value = "runs/default")]
    pub run_dir: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let files = hone_report::write_report(&a.run_dir, &crate::pipeline::report_stages())?;
    println!("report: {}\n        {}", files.html.display(), files.markdown.display());
    Ok(())
}
