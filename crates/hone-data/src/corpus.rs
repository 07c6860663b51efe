//! The configured inputs as one stream of document texts, for work that sees the corpus whole
//! (tokenizer training). Malformed records stop the stream with their error, or with `skip_invalid`
//! are counted and skipped; empty documents are dropped and counted.

use crate::error::DataError;
use crate::prepare::DataConfig;
use crate::read::{self, ByteCounter, TextOptions};
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use anyhow::Result;
use std::sync::{Arc, Mutex};

/// Counts from reading a corpus.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReadStats {
    pub documents: u64,
    pub text_bytes: u64,
    pub skipped_empty: u64,
    pub skipped_invalid: u64,
    pub input_bytes: u64,
}

/// Trains a tokenizer on the configured inputs, streaming them (memory is bounded by the BPE
/// statistics, not the corpus).
pub fn train_tokenizer(data: &DataConfig, cfg: &TokenizerConfig, progress: bool) -> Result<(Tokenizer, ReadStats)> {
    let paths = read::expand_inputs(&data.inputs)?;
    if paths.is_empty() {
        anyhow::bail!("no input files: pass files or directories, or set data.inputs");
    }
    let total: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = crate::progress::bytes_bar(total, "tokenizer", progress);
    let counter = ByteCounter::default();
    let opts = TextOptions {
        format: data.format.clone(),
        text_field: data.text_field.clone(),
        split_on_blank_lines: data.split_on_blank_lines,
    };
    // Open every file first so a missing column or unreadable file fails before training starts.
    let mut streams = Vec::new();
    for p in &paths {
        streams.push(read::documents(p, &opts, counter.clone())?);
    }
    let failure: Arc<Mutex<Option<DataError>>> = Arc::default();
    let stats: Arc<Mutex<ReadStats>> = Arc::default();
    let (f2, s2, b2, c2) = (failure.clone(), stats.clone(), bar.clone(), counter.clone());
    let skip = data.skip_invalid;
    let texts = streams.into_iter().flatten().map_while(move |d| {
        b2.set_position(c2.get());
        let mut s = s2.lock().expect("not poisoned");
        match d {
            Ok(doc) if doc.text.trim().is_empty() => {
                s.skipped_empty += 1;
                Some(None)
            }
            Ok(doc) => {
                s.documents += 1;
                s.text_bytes += doc.text.len() as u64;
                Some(Some(doc.text))
            }
            Err(e) if e.recoverable && skip => {
                s.skipped_invalid += 1;
                Some(None)
            }
            Err(e) => {
                *f2.lock().expect("not poisoned") = Some(e);
                None
            }
        }
    });
    let tok = crate::tokenizer::train(texts.flatten(), cfg)?;
    bar.finish_and_clear();
    if let Some(e) = failure.lock().expect("not poisoned").take() {
        return Err(e.into());
    }
    let mut s = stats.lock().expect("not poisoned").clone();
    s.input_bytes = counter.get();
    if s.documents == 0 {
        anyhow::bail!("the inputs hold no non-empty documents");
    }
    Ok((tok, s))
}
