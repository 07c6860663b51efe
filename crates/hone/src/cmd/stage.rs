//! What the post-training subcommands share: `--model` and `--data` flags that become config
//! overrides, the options of a stage run, and the closing line.

use crate::args::{ConfigArgs, toml_list};
use clap::Args;
use hone_train::stage::{StageOptions, StageReport};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Starting checkpoint or stage folder (sets `<stage>.init`; default: the previous stage's final in
    /// the run folder).
    #[arg(long, value_name = "CKPT")]
    pub model: Option<PathBuf>,
    /// Data files or folders (sets `<stage>.data`; default: the built-in world's file in the run folder).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub data: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl StageArgs {
    /// The overrides the flags stand for.
    pub fn overrides(&self, stage: &str) -> Vec<String> {
        let mut extra = Vec::new();
        if let Some(m) = &self.model {
            extra.push(format!("{stage}.init={}", toml::Value::String(m.display().to_string())));
        }
        if !self.data.is_empty() {
            extra.push(format!("{stage}.data={}", toml_list(&self.data)));
        }
        extra
    }
}

pub fn options(progress: bool) -> StageOptions {
    StageOptions { progress: progress && std::io::stderr().is_terminal(), stop: None }
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
