//! `hone run`: the whole pipeline (see `crate::pipeline`), from a built-in preset, a user's pipeline
//! TOML, and `--set` overrides.

use crate::args::ConfigArgs;
use crate::config::HoneConfig;
use crate::pipeline::{self, RunOptions, presets};
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Built-in preset under the config: `default` (6-16 min on a 2-core CPU), `quick` (a 1-2 minute smoke
    /// run), `cpu-large` (a bigger model, about an hour), `gpu` (gpt2-small-like, for a CUDA/wgpu build),
    /// `smollm2` (SmolLM2-135M-Instruct post-trained with LoRA; see the README for the model file).
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Rerun from this step on (e.g. `sft`, `eval-dpo`), even if the outputs are up to date.
    #[arg(long)]
    pub from: Option<String>,
    /// Print the preset's TOML (a starting point for `--config`) and exit.
    #[arg(long)]
    pub show_preset: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: RunArgs) -> Result<()> {
    let layer = presets::preset(&a.preset)?;
    if a.show_preset {
        print!("{layer}");
        return Ok(());
    }
    let origin = format!("preset `{}`", a.preset);
    let mut cfg: HoneConfig =
        hone_data::config::load_layered(&[(origin.as_str(), layer)], a.config.config.as_deref(), &a.config.set)?;
    let _lock = hone_data::lock::RunLock::acquire(&cfg.run_dir(), &hone_data::lock::command_line())?;
    let opts = RunOptions { from: a.from.clone(), progress: cfg.run.progress };
    match pipeline::run(&mut cfg, &opts)? {
        Some(_) => Ok(()),
        None => std::process::exit(130),
    }
}
