//! `hone pretrain`: train the base model on prepared token shards. Running the same command again
//! resumes from the newest checkpoint in `<run dir>/pretrain/`; Ctrl-C stops after the current step
//! and writes a checkpoint.

use crate::args::{ConfigArgs, announce};
use anyhow::Result;
use clap::Args;
use hone_train::{PretrainOptions, run_pretrain};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Token shards to train on (sets `pretrain.data_dir`; default: `<run dir>/data`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: PretrainArgs) -> Result<()> {
    let mut extra = Vec::new();
    if let Some(d) = &a.data {
        extra.push(format!("pretrain.data_dir={}", toml::Value::String(d.display().to_string())));
    }
    let cfg = a.config.load(&extra)?;
    announce(&cfg, &["run", "model", "optim", "pretrain"])?;
    let opts = PretrainOptions { progress: cfg.run.progress && std::io::stderr().is_terminal(), stop: None };
    let r = run_pretrain(&cfg.model, &cfg.optim, &cfg.pretrain, &cfg.run_dir(), &opts)?;
    let metric = |k: &str| r.summary.last_eval.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(f64::NAN);
    println!(
        "pretrain {} at step {}: held-out loss {:.4} nats/token, {:.4} bits/byte; {:.0} tokens/s; checkpoint {}; curve {}",
        if r.summary.interrupted { "stopped (run the same command to resume)" } else { "finished" },
        r.summary.steps_done,
        metric("val_loss"),
        metric("val_bpb"),
        r.summary.tokens_per_s,
        r.summary.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        r.stage_dir.join("loss.svg").display(),
    );
    Ok(())
}
