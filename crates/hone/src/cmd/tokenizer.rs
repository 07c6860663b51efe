//! `hone tokenizer train` and `hone tokenizer encode`.

use crate::args::{ConfigArgs, announce, toml_list};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hone_data::tokenizer::Tokenizer;
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TokenizerCmd {
    /// Train a byte-level BPE tokenizer on txt/JSONL/Parquet files and save tokenizer.json.
    Train(TrainArgs),
    /// Show the ids and pieces of a text (or of each line of a file), for inspection.
    Encode(EncodeArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input files or directories (replace `data.inputs`).
    pub inputs: Vec<String>,
    /// Where to write tokenizer.json (default: `<run dir>/tokenizer.json`).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Vocabulary size (sets `tokenizer.vocab_size`).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Count and skip malformed records (sets `data.skip_invalid`).
    #[arg(long)]
    pub skip_invalid: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// The text to encode (or use --file).
    pub text: Option<String>,
    /// tokenizer.json to use (default: `runs/default/tokenizer.json`).
    #[arg(long, short)]
    pub tokenizer: Option<PathBuf>,
    /// Encode each line of this file instead.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print one JSON array of ids per line (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: TokenizerCmd) -> Result<()> {
    match cmd {
        TokenizerCmd::Train(a) => train(a),
        TokenizerCmd::Encode(a) => encode(a),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let mut extra = Vec::new();
    if !a.inputs.is_empty() {
        extra.push(format!("data.inputs={}", toml_list(&a.inputs)));
    }
    if let Some(v) = a.vocab_size {
        extra.push(format!("tokenizer.vocab_size={v}"));
    }
    if a.skip_invalid {
        extra.push("data.skip_invalid=true".into());
    }
    let cfg = a.config.load(&extra)?;
    announce(&cfg, &["run", "data", "tokenizer"])?;
    let out = a.out.unwrap_or_else(|| cfg.run_dir().join("tokenizer.json"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let t0 = std::time::Instant::now();
    let (tok, stats) = hone_data::corpus::train_tokenizer(&cfg.data, &cfg.tokenizer, cfg.run.progress)?;
    tok.save(&out)?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "tokenizer: {} tokens, trained on {} documents ({:.1} MB of text) in {secs:.1}s -> {}",
        tok.vocab_size(),
        stats.documents,
        stats.text_bytes as f64 / 1e6,
        out.display()
    );
    if stats.skipped_empty + stats.skipped_invalid > 0 {
        println!("skipped: {} empty documents, {} invalid records", stats.skipped_empty, stats.skipped_invalid);
    }
    Ok(())
}

fn encode(a: EncodeArgs) -> Result<()> {
    let path = a.tokenizer.unwrap_or_else(|| PathBuf::from("runs/default/tokenizer.json"));
    let tok = Tokenizer::load(&path)?;
    let lines: Vec<String> = match (&a.text, &a.file) {
        (Some(t), None) => vec![t.clone()],
        (None, Some(f)) => {
            let file = std::fs::File::open(f).with_context(|| format!("{}: cannot open", f.display()))?;
            std::io::BufReader::new(file)
                .lines()
                .enumerate()
                .map(|(i, l)| l.with_context(|| format!("{}:{}: not valid UTF-8", f.display(), i + 1)))
                .collect::<Result<_>>()?
        }
        _ => anyhow::bail!("give a text or --file (not both)"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    use std::io::Write;
    for line in lines {
        let ids = tok.encode(&line)?;
        if a.json {
            writeln!(out, "{}", serde_json::to_string(&ids)?)?;
            continue;
        }
        writeln!(out, "{} tokens, {} bytes", ids.len(), line.len())?;
        writeln!(out, "{:>6}  {:<16} bytes", "id", "piece")?;
        for id in ids {
            let piece = tok.piece(id).unwrap_or_default();
            let bytes = tok.token_bytes(id);
            let shown = match std::str::from_utf8(&bytes) {
                Ok(s) => format!("{s:?}"),
                // Part of a multi-byte character: show the bytes themselves.
                Err(_) => bytes.iter().map(|b| format!("\\x{b:02x}")).collect(),
            };
            writeln!(out, "{id:>6}  {piece:<16} {shown}")?;
        }
    }
    Ok(())
}
