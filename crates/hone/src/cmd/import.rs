//! `hone import SRC --out DIR`: opens a model hone did not train (a Hugging Face folder or a GGUF
//! file) once and writes it as a hone checkpoint, so later commands skip the dequantising and
//! tokenizer rebuilding: `DIR/step-00000000/` (config, F32 weights, tokenizer files with the chat
//! template, a MANIFEST) marked final, so `-m DIR` opens it like a stage.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The model: a Hugging Face folder (config.json, safetensors, tokenizer files) or a .gguf file.
    pub src: PathBuf,
    /// Where to write the checkpoint.
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn run(a: ImportArgs) -> Result<()> {
    let device = hone_model::device::select("cpu")?;
    let start = std::time::Instant::now();
    let m = hone_model::load(&a.src, &device).with_context(|| format!("opening {}", a.src.display()))?;
    eprintln!("{}: {} ({:.1} s)", a.src.display(), m.model.config.summary(), start.elapsed().as_secs_f64());
    let dir = hone_model::import::save::write_checkpoint(&m, &a.out)?;
    println!("{}", dir.display());
    Ok(())
}
