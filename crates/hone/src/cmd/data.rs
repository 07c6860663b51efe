//! `hone data prepare` and `hone data inspect`.

use crate::args::{ConfigArgs, announce, toml_list};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hone_data::shards::{Split, TokenData};
use hone_data::tokenizer::Tokenizer;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Tokenize txt/JSONL/Parquet files into token shards with a held-out validation split.
    Prepare(PrepareArgs),
    /// Show a prepared data directory: documents, tokens, sources and a decoded sample.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Input files or directories (replace `data.inputs`).
    pub inputs: Vec<String>,
    /// tokenizer.json to use (default: `<run dir>/tokenizer.json`).
    #[arg(long, short)]
    pub tokenizer: Option<PathBuf>,
    /// Output directory (default: `<run dir>/data`).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Count and skip malformed records (sets `data.skip_invalid`).
    #[arg(long)]
    pub skip_invalid: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Data directory (default: `runs/default/data`).
    pub dir: Option<PathBuf>,
    /// tokenizer.json for decoding the sample (default: `<dir>/../tokenizer.json`).
    #[arg(long, short)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens of the sample to decode.
    #[arg(long, default_value_t = 200)]
    pub sample_tokens: usize,
    /// Check every shard's sha256 against the index.
    #[arg(long)]
    pub verify: bool,
}

pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Prepare(a) => prepare(a),
        DataCmd::Inspect(a) => inspect(a),
    }
}

fn prepare(a: PrepareArgs) -> Result<()> {
    let mut extra = Vec::new();
    if !a.inputs.is_empty() {
        extra.push(format!("data.inputs={}", toml_list(&a.inputs)));
    }
    if a.skip_invalid {
        extra.push("data.skip_invalid=true".into());
    }
    let cfg = a.config.load(&extra)?;
    announce(&cfg, &["run", "data"])?;
    let tok_path = a.tokenizer.unwrap_or_else(|| cfg.run_dir().join("tokenizer.json"));
    let tok = Tokenizer::load(&tok_path).with_context(|| "train one first with `hone tokenizer train`".to_string())?;
    let tok_sha = hone_data::hash::sha256_file(&tok_path)?;
    let out = a.out.unwrap_or_else(|| cfg.run_dir().join("data"));
    let r = hone_data::prepare::prepare(&cfg.data, &tok, &tok_sha, &out, cfg.run.progress)?;
    let i = &r.index;
    println!(
        "prepared {} documents ({} train / {} val), {} tokens ({} train / {} val) as {:?} in {:.1}s, {:.1} MB/s -> {}",
        i.train.documents + i.val.documents,
        i.train.documents,
        i.val.documents,
        i.train.tokens + i.val.tokens,
        i.train.tokens,
        i.val.tokens,
        i.dtype,
        r.seconds,
        r.input_bytes as f64 / 1e6 / r.seconds.max(1e-9),
        out.display()
    );
    println!("units: {} written, {} already done", r.units_written, r.units_reused);
    if i.skipped_empty + i.skipped_invalid > 0 {
        println!("skipped: {} empty documents, {} invalid records", i.skipped_empty, i.skipped_invalid);
        for e in &r.skipped_examples {
            println!("  {e}");
        }
    }
    if i.val.documents == 0 && cfg.data.val_fraction > 0.0 {
        println!(
            "warning: the validation split is empty ({} documents in all); with a few large documents, \
             split them (`--set data.split_on_blank_lines=true` for .txt) or raise data.val_fraction",
            i.train.documents
        );
    }
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("runs/default/data"));
    let td = TokenData::open(&dir)?;
    if a.verify {
        td.verify()?;
        println!("all shards match their sha256");
    }
    let i = &td.index;
    println!("{}: {:?} tokens, vocabulary {}, BOS id {}", dir.display(), i.dtype, i.vocab_size, i.bos_id);
    println!(
        "{:<6} {:>10} {:>14} {:>14} {:>8} {:>12}",
        "split", "documents", "tokens", "text bytes", "shards", "bytes/token"
    );
    for s in [Split::Train, Split::Val] {
        let x = i.split(s);
        let bpt = if x.tokens > 0 { x.text_bytes as f64 / x.tokens as f64 } else { 0.0 };
        println!(
            "{:<6} {:>10} {:>14} {:>14} {:>8} {:>12.2}",
            s.name(),
            x.documents,
            x.tokens,
            x.text_bytes,
            x.shards.len(),
            bpt
        );
    }
    println!("skipped: {} empty, {} invalid", i.skipped_empty, i.skipped_invalid);
    println!("sources:");
    for s in &i.sources {
        println!(
            "  {} ({}, {} bytes, {} documents, sha256 {})",
            s.path,
            s.format,
            s.bytes,
            s.documents,
            &s.sha256[..16]
        );
    }
    let tok_path = a.tokenizer.unwrap_or_else(|| dir.join("..").join("tokenizer.json"));
    match Tokenizer::load(&tok_path) {
        Ok(tok) => {
            let split = td.split(Split::Train);
            if let Some(doc) = split.document(0) {
                let n = doc.len().min(a.sample_tokens);
                println!("sample (train document 0, first {n} of {} tokens):", doc.len());
                println!("{}", tok.decode(&doc[..n])?);
            }
        }
        Err(e) => println!("(no sample: {e:#})"),
    }
    Ok(())
}
