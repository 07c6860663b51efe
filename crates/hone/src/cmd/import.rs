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
    let c = &m.model.config;
    eprintln!(
        "{}: {} layers, width {}, {} heads / {} KV heads, vocab {}, context {}, {:.1}M parameters ({:.1} s)",
        a.src.display(),
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        c.max_position_embeddings,
        c.num_params() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    let dir = hone_model::import::save::write_checkpoint(&m, &a.out)?;
    println!("{}", dir.display());
    Ok(())
}
