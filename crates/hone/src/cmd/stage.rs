//! `hone <stage>`: one subcommand per registered training stage (`hone_train::stages`), all alike:
//! `--model` and `--data` become config overrides, the stage runs in the run folder, and its outcome
//! is printed. Rerunning resumes; Ctrl-C stops after the current step.

use crate::args::{ConfigArgs, announce};
use anyhow::Result;
use clap::Args;
use hone_train::{Stage, StageReport};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Starting checkpoint or stage folder (sets `<stage>.init`; default: the previous stage's final in
    /// the run folder).
    #[arg(long, value_name = "CKPT")]
    pub model: Option<PathBuf>,
    /// Data files or folders (sets `<stage>.data`; default: the built-in world's file in the run
    /// folder, when it has a world).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub data: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `stage` as its subcommand asks.
pub fn run(stage: &dyn Stage, a: StageArgs) -> Result<()> {
    let name = stage.info().name;
    let mut cfg = a.config.load(&stage.flag_overrides(a.model.as_deref(), &a.data)?)?;
    let _lock = hone_data::lock::RunLock::acquire(&cfg.run_dir(), &hone_data::lock::command_line())?;
    let world = cfg.run_dir().join("world");
    if world.join("summary.json").is_file() {
        cfg.fill_stage_data(&world);
    }
    announce(&cfg, &["run", "model", "optim", name])?;
    let progress = cfg.run.progress;
    let r = stage.run(&cfg.stages, &cfg.stage_context(progress))?;
    hone_data::checkpoint::save_data_notes(&r.stage_dir, &r.notes)?;
    report(name, &r);
    if let Some(peak) = hone_data::mem::peak_rss_mib() {
        eprintln!("{name}: peak resident memory {peak:.0} MiB");
    }
    Ok(())
}

/// Prints the stage's outcome: held-out metrics, the checkpoint, the curve.
pub fn report(stage: &str, r: &StageReport) {
    println!(
        "{stage} {} at step {}: {}; checkpoint {}; curve {}",
        if r.summary.interrupted { "stopped (run the same command to resume)" } else { "finished" },
        r.summary.steps_done,
        hone_train::trainer::fmt_metrics(&r.summary.last_eval),
        r.summary.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        r.stage_dir.join("loss.svg").display(),
    );
}
