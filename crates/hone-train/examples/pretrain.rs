//! Runs the pretraining stage from a TOML file with `[model]`, `[optim]` and `[pretrain]` sections,
//! without the `hone` CLI (for development and benchmarks):
//!
//! `cargo run --release -p hone-train --example pretrain -- RUN_DIR [CONFIG.toml] [--set section.key=value]...`

use hone_data::config_root;
use hone_model::ModelConfig;
use hone_train::stage::StageContext;
use hone_train::{OptimConfig, PretrainConfig, run_pretrain};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

config_root! {
    /// The sections the pretraining stage reads.
    pub struct PretrainRoot {
        model: ModelConfig,
        optim: OptimConfig,
        pretrain: PretrainConfig,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sets = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--set" {
            sets.push(it.next().ok_or_else(|| anyhow::anyhow!("--set needs KEY=VALUE"))?);
        } else {
            positional.push(a);
        }
    }
    let run_dir =
        PathBuf::from(positional.first().ok_or_else(|| anyhow::anyhow!("usage: pretrain RUN_DIR [CONFIG.toml]"))?);
    let cfg: PretrainRoot = hone_data::config::load(positional.get(1).map(Path::new), &sets)?;
    eprintln!("{}", hone_data::config::table(&cfg));
    let ctx = StageContext {
        run_dir,
        optim: &cfg.optim,
        model: &cfg.model,
        progress: std::io::stderr().is_terminal(),
        activation_checkpointing: false,
        stop: None,
    };
    let r = run_pretrain(&cfg.pretrain, &ctx)?;
    println!("{}", hone_train::trainer::fmt_metrics(&r.summary.last_eval));
    Ok(())
}
