//! Data preparation: input files -> token shards (see [`crate::shards`]).
//!
//! Input is streamed and cut into *units* of about `unit_mb` MiB of text (a unit never spans two
//! files). A unit is tokenized in parallel and written as one train and one val shard plus a small
//! `unit-NNNNN.json` receipt, written last. A receipt whose key matches (same tokenizer, settings,
//! source file hash and unit number) means the unit is done, so an interrupted or repeated run reads
//! past finished units without tokenizing them again. Memory is bounded by one unit.

use crate::config_section;
use crate::error::DataError;
use crate::hash::{sha256_file, sha256_hex, split_point};
use crate::read::{self, ByteCounter, Document, Format, TextOptions};
use crate::shards::{Dtype, FORMAT, INDEX_FILE, ShardIndex, ShardInfo, SourceInfo, SplitInfo, write_shard};
use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

config_section! {
    /// Pretraining data: which files, how to read them, how to split them.
    pub struct DataConfig {
        /// Input files or directories (txt, jsonl, jsonl.gz, json, parquet). Empty = the built-in world.
        inputs: Vec<String> = vec![],
        /// Input format: auto (from the file name), txt, jsonl, json or parquet.
        format: String = "auto".to_string(),
        /// JSON field or Parquet column holding the text.
        text_field: String = "text".to_string(),
        /// For .txt files: one document per blank-line-separated block instead of one per file.
        split_on_blank_lines: bool = false,
        /// Share of documents held out for validation, chosen by a seeded hash of each document.
        val_fraction: f64 = 0.01,
        /// Seed of the validation split's hash.
        seed: u64 = 1234,
        /// MiB of text per work unit; a unit becomes one shard per split and is the unit of resumption.
        unit_mb: u64 = 4,
        /// Count and skip malformed records instead of stopping at the first.
        skip_invalid: bool = false,
    }
}

/// What a preparation did.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    pub index: ShardIndex,
    pub units_written: usize,
    pub units_reused: usize,
    pub input_bytes: u64,
    pub seconds: f64,
    /// The first few skipped records' errors (with `skip_invalid`).
    pub skipped_examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UnitReceipt {
    key: String,
    source: usize,
    documents: u64,
    skipped_empty: u64,
    skipped_invalid: u64,
    train: ShardInfo,
    val: ShardInfo,
}

/// Prepares `cfg.inputs` into token shards under `out_dir`.
pub fn prepare(
    cfg: &DataConfig,
    tok: &Tokenizer,
    tokenizer_sha256: &str,
    out_dir: &Path,
    progress: bool,
) -> Result<PrepareReport> {
    if !(0.0..1.0).contains(&cfg.val_fraction) {
        bail!("data.val_fraction = {} must be in [0, 1)", cfg.val_fraction);
    }
    if cfg.unit_mb == 0 {
        bail!("data.unit_mb must be at least 1");
    }
    let paths = read::expand_inputs(&cfg.inputs)?;
    if paths.is_empty() {
        bail!("no input files: pass files or directories, or set data.inputs");
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let start = Instant::now();
    let dtype = Dtype::for_vocab(tok.vocab_size());
    let opts = TextOptions {
        format: cfg.format.clone(),
        text_field: cfg.text_field.clone(),
        split_on_blank_lines: cfg.split_on_blank_lines,
    };
    let settings_key = sha256_hex(
        serde_json::json!({
            "format": FORMAT, "tokenizer": tokenizer_sha256, "dtype": dtype, "opts": [&opts.format, &opts.text_field, opts.split_on_blank_lines],
            "val_fraction": cfg.val_fraction, "seed": cfg.seed, "unit_mb": cfg.unit_mb, "skip_invalid": cfg.skip_invalid,
        })
        .to_string()
        .as_bytes(),
    );

    let mut sources = Vec::new();
    for p in &paths {
        let meta = std::fs::metadata(p).map_err(|e| DataError::io(p, &e))?;
        let format = format!("{:?}", Format::resolve(&cfg.format, p)?).to_lowercase();
        sources.push(SourceInfo {
            path: p.display().to_string(),
            sha256: sha256_file(p)?,
            bytes: meta.len(),
            format,
            documents: 0,
        });
    }
    let total_bytes: u64 = sources.iter().map(|s| s.bytes).sum();
    let bar = crate::progress::bytes_bar(total_bytes, "prepare", progress);

    let counter = ByteCounter::default();
    let mut st = State {
        out_dir: out_dir.to_path_buf(),
        tok,
        dtype,
        cfg,
        settings_key,
        unit: 0,
        train: SplitInfo::default(),
        val: SplitInfo::default(),
        written: 0,
        reused: 0,
        skipped_empty: 0,
        skipped_invalid: 0,
        examples: Vec::new(),
    };
    let unit_bytes = (cfg.unit_mb << 20) as usize;
    for (si, path) in paths.iter().enumerate() {
        let base = counter.get();
        let docs = read::documents(path, &opts, counter.clone())?;
        let mut buf: Vec<Document> = Vec::new();
        let mut buf_bytes = 0usize;
        let mut unit_in_source = 0usize;
        let mut unit_errors: (u64, u64) = (0, 0);
        for d in docs {
            match d {
                Ok(doc) => {
                    if doc.text.trim().is_empty() {
                        unit_errors.0 += 1;
                        continue;
                    }
                    buf_bytes += doc.text.len();
                    buf.push(doc);
                }
                Err(e) if e.recoverable && cfg.skip_invalid => {
                    unit_errors.1 += 1;
                    if st.examples.len() < 5 {
                        st.examples.push(e.to_string());
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if buf_bytes >= unit_bytes {
                sources[si].documents += buf.len() as u64;
                st.finish_unit(si, &sources[si].sha256, unit_in_source, std::mem::take(&mut buf), unit_errors)?;
                unit_errors = (0, 0);
                buf_bytes = 0;
                unit_in_source += 1;
                bar.set_message(st.message());
            }
            bar.set_position(counter.get());
        }
        if !buf.is_empty() || unit_errors != (0, 0) || unit_in_source == 0 {
            sources[si].documents += buf.len() as u64;
            st.finish_unit(si, &sources[si].sha256, unit_in_source, buf, unit_errors)?;
        }
        // Compressed readers may stop short of the file's end; count the file as done.
        counter.add((base + sources[si].bytes).saturating_sub(counter.get()));
        bar.set_position(counter.get());
        bar.set_message(st.message());
    }
    bar.finish_and_clear();
    if st.train.documents + st.val.documents == 0 {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{}: no documents to prepare ({} empty, {} invalid records); check the path, and for JSON or \
             Parquet input the field holding the text (data.text_field = `{}`)",
            names.join(", "),
            st.skipped_empty,
            st.skipped_invalid,
            opts.text_field
        );
    }
    st.remove_stale_units()?;

    let index = ShardIndex {
        format: FORMAT.to_string(),
        dtype,
        vocab_size: tok.vocab_size(),
        bos_id: tok.bos_id,
        tokenizer_sha256: tokenizer_sha256.to_string(),
        val_fraction: cfg.val_fraction,
        seed: cfg.seed,
        sources,
        train: st.train,
        val: st.val,
        skipped_empty: st.skipped_empty,
        skipped_invalid: st.skipped_invalid,
    };
    crate::atomic::write_atomic(&out_dir.join(INDEX_FILE), serde_json::to_string_pretty(&index)?.as_bytes())?;
    Ok(PrepareReport {
        index,
        units_written: st.written,
        units_reused: st.reused,
        input_bytes: total_bytes,
        seconds: start.elapsed().as_secs_f64(),
        skipped_examples: st.examples,
    })
}

struct State<'a> {
    out_dir: PathBuf,
    tok: &'a Tokenizer,
    dtype: Dtype,
    cfg: &'a DataConfig,
    settings_key: String,
    unit: usize,
    train: SplitInfo,
    val: SplitInfo,
    written: usize,
    reused: usize,
    skipped_empty: u64,
    skipped_invalid: u64,
    examples: Vec<String>,
}

impl State<'_> {
    fn message(&self) -> String {
        let docs = self.train.documents + self.val.documents;
        let toks = self.train.tokens + self.val.tokens;
        format!("{docs} docs, {:.1}M tokens", toks as f64 / 1e6)
    }

    fn receipt_path(&self, unit: usize) -> PathBuf {
        self.out_dir.join(format!("unit-{unit:05}.json"))
    }

    fn finish_unit(
        &mut self,
        source: usize,
        source_sha: &str,
        unit_in_source: usize,
        docs: Vec<Document>,
        errors: (u64, u64),
    ) -> Result<()> {
        let key = sha256_hex(format!("{}:{source_sha}:{unit_in_source}", self.settings_key).as_bytes());
        let receipt_path = self.receipt_path(self.unit);
        let reused = std::fs::read(&receipt_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<UnitReceipt>(&b).ok())
            .filter(|r| r.key == key && self.shard_present(&r.train) && self.shard_present(&r.val));
        let receipt = match reused {
            Some(r) => {
                self.reused += 1;
                r
            }
            None => {
                let r = self.tokenize_unit(key, source, docs, errors)?;
                crate::atomic::write_atomic(&receipt_path, serde_json::to_string_pretty(&r)?.as_bytes())?;
                self.written += 1;
                r
            }
        };
        self.skipped_empty += receipt.skipped_empty;
        self.skipped_invalid += receipt.skipped_invalid;
        self.train.push(receipt.train);
        self.val.push(receipt.val);
        self.unit += 1;
        Ok(())
    }

    fn shard_present(&self, s: &ShardInfo) -> bool {
        let ok = |f: &str, len: u64| std::fs::metadata(self.out_dir.join(f)).is_ok_and(|m| m.len() == len);
        ok(&s.file, s.tokens * self.dtype.bytes() as u64) && ok(&s.offsets_file, s.documents * 8)
    }

    fn tokenize_unit(
        &self,
        key: String,
        source: usize,
        docs: Vec<Document>,
        errors: (u64, u64),
    ) -> Result<UnitReceipt> {
        let (seed, frac, bos) = (self.cfg.seed, self.cfg.val_fraction, self.tok.bos_id);
        // Consuming the documents frees each text as soon as it is tokenized.
        let encoded: Vec<(bool, u64, Vec<u32>)> = docs
            .into_par_iter()
            .map(|d| -> Result<_> {
                let mut ids = Vec::with_capacity(d.text.len() / 3 + 1);
                ids.push(bos);
                ids.extend(self.tok.encode(&d.text)?);
                Ok((split_point(seed, &d.text) < frac, d.text.len() as u64, ids))
            })
            .collect::<Result<_>>()?;
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        let (mut tr_bytes, mut va_bytes) = (0, 0);
        for (is_val, bytes, ids) in encoded {
            if is_val {
                va_bytes += bytes;
                va.push(ids);
            } else {
                tr_bytes += bytes;
                tr.push(ids);
            }
        }
        let n = self.unit;
        let train = write_shard(&self.out_dir, &format!("train-{n:05}"), self.dtype, &tr, tr_bytes)?;
        let val = write_shard(&self.out_dir, &format!("val-{n:05}"), self.dtype, &va, va_bytes)?;
        Ok(UnitReceipt {
            key,
            source,
            documents: (tr.len() + va.len()) as u64,
            skipped_empty: errors.0,
            skipped_invalid: errors.1,
            train,
            val,
        })
    }

    /// Removes units left from an earlier preparation of more data.
    fn remove_stale_units(&self) -> Result<()> {
        for e in std::fs::read_dir(&self.out_dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            let unit = name
                .strip_prefix("unit-")
                .or_else(|| name.strip_prefix("train-"))
                .or_else(|| name.strip_prefix("val-"))
                .and_then(|r| r.get(..5))
                .and_then(|n| n.parse::<usize>().ok());
            if unit.is_some_and(|u| u >= self.unit) {
                std::fs::remove_file(self.out_dir.join(&name))?;
            }
        }
        Ok(())
    }
}
