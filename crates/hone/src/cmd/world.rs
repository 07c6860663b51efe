//! `hone world generate`: the built-in world written out as files (see the hone-world crate).

use crate::args::{ConfigArgs, announce};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum WorldCmd {
    /// Write the world's corpus, SFT conversations, preference pairs, probes and facts to a folder.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed of the world (sets `world.seed`): the same seed gives byte-identical files.
    #[arg(long)]
    pub seed: Option<u64>,
    /// tiny, small or medium (sets `world.size`).
    #[arg(long)]
    pub size: Option<String>,
    /// Output folder (default: `<run dir>/world`).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(cmd: WorldCmd) -> Result<()> {
    let WorldCmd::Generate(a) = cmd;
    let mut extra = Vec::new();
    if let Some(s) = a.seed {
        extra.push(format!("world.seed={s}"));
    }
    if let Some(s) = &a.size {
        extra.push(format!("world.size={s}"));
    }
    let cfg = a.config.load(&extra)?;
    announce(&cfg, &["run", "world"])?;
    let out = a.out.unwrap_or_else(|| cfg.run_dir().join("world"));
    let t = std::time::Instant::now();
    let summary = hone_world::generate(&cfg.world, &out)?;
    print!("{summary}");
    println!("written to {} in {:.2}s", out.display(), t.elapsed().as_secs_f64());
    Ok(())
}
