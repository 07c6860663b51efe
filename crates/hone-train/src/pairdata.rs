//! Preference pairs as tokens, shared by DPO and the reward model: each side is prompt + reply
//! rendered by the chat template with a mask on the reply's tokens, cut to `max_len`, and split into
//! training and held-out pairs. Rows are padded to one fixed length for the whole data set, so a
//! pair's numbers do not depend on which other pairs share its batch.

use crate::batch::Example;
use crate::stage::Opened;
use burn::tensor::Tensor;
use hone_data::chat::ChatTemplate;
use hone_data::pairs::{Pair, encode_reply, read_pairs};
use hone_data::tokenizer::Tokenizer;
use hone_model::Llama;
use hone_model::llama::{constant, ids_tensor, token_log_probs};
use std::path::PathBuf;

/// The two sides of a pair; `mask` marks the reply's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    pub chosen: Example,
    pub rejected: Example,
}

/// Encoded pairs and what encoding did to them.
#[derive(Debug, Clone, Default)]
pub struct PairData {
    pub train: Vec<EncodedPair>,
    pub val: Vec<EncodedPair>,
    pub truncated: usize,
    pub dropped: usize,
}

impl PairData {
    /// Longest side in tokens over both splits: the fixed row length.
    pub fn longest(&self) -> usize {
        self.train.iter().chain(&self.val).flat_map(|p| [p.chosen.ids.len(), p.rejected.ids.len()]).max().unwrap_or(2)
    }
}

/// Encodes `pairs` (cut to `max_len` tokens; a side left without reply tokens drops the pair).
/// `val_fraction` of the pairs, chosen by a seeded hash of the prompt, are held out; `val` pairs
/// given separately are all held out.
pub fn encode_pairs(
    train: &[Pair],
    val: &[Pair],
    tok: &Tokenizer,
    template: &ChatTemplate,
    max_len: usize,
    val_fraction: f64,
    seed: u64,
) -> anyhow::Result<PairData> {
    let mut d = PairData::default();
    for (pairs, held) in [(train, false), (val, true)] {
        for p in pairs {
            let side = |reply| -> anyhow::Result<(Example, bool)> {
                let enc = encode_reply(template, tok, &p.prompt, reply)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", p.origin()))?;
                let (mut ids, mut mask) = (enc.ids, enc.assistant_mask);
                let cut = ids.len() > max_len;
                ids.truncate(max_len);
                mask.truncate(max_len);
                Ok((Example { ids, mask }, cut))
            };
            let ((chosen, c1), (rejected, c2)) = (side(&p.chosen)?, side(&p.rejected)?);
            if c1 || c2 {
                d.truncated += 1;
            }
            if !chosen.mask.iter().skip(1).any(|m| *m) || !rejected.mask.iter().skip(1).any(|m| *m) {
                d.dropped += 1;
                continue;
            }
            let key = serde_json::to_string(&p.prompt).expect("messages serialise");
            let pair = EncodedPair { chosen, rejected };
            if held || (val.is_empty() && hone_data::hash::split_point(seed, &key) < val_fraction) {
                d.val.push(pair)
            } else {
                d.train.push(pair)
            }
        }
    }
    Ok(d)
}

/// `2b` rows `[chosen_0, …, chosen_{b-1}, rejected_0, …]` of `seq` input tokens each: inputs,
/// next-token targets, and weights (1 on reply targets).
#[derive(Debug, Clone, PartialEq)]
pub struct PairRows {
    pub rows: usize,
    pub seq: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    /// Index of each row's last real token in `full` (for a scalar head).
    pub last: Vec<usize>,
    /// The whole sequences right-padded to `seq + 1` (for a scalar head that reads the last token).
    pub full: Vec<u32>,
}

impl PairRows {
    /// The rows of `pairs`, padded with `pad` to `len` tokens (`seq = len - 1` inputs).
    pub fn new(pairs: &[&EncodedPair], pad: u32, len: usize) -> PairRows {
        let seq = len - 1;
        let rows = 2 * pairs.len();
        let mut r = PairRows {
            rows,
            seq,
            inputs: vec![pad; rows * seq],
            targets: vec![pad; rows * seq],
            weights: vec![0.0; rows * seq],
            last: Vec::with_capacity(rows),
            full: vec![pad; rows * len],
        };
        let sides = pairs.iter().map(|p| &p.chosen).chain(pairs.iter().map(|p| &p.rejected));
        for (i, e) in sides.enumerate() {
            let n = e.ids.len() - 1;
            r.inputs[i * seq..i * seq + n].copy_from_slice(&e.ids[..n]);
            r.targets[i * seq..i * seq + n].copy_from_slice(&e.ids[1..]);
            for t in 0..n {
                r.weights[i * seq + t] = if e.mask[t + 1] { 1.0 } else { 0.0 };
            }
            r.full[i * len..i * len + e.ids.len()].copy_from_slice(&e.ids);
            r.last.push(e.ids.len() - 1);
        }
        r
    }

    /// Reply tokens of each row.
    pub fn counts(&self) -> Vec<f32> {
        self.weights.chunks(self.seq).map(|w| w.iter().sum()).collect()
    }
}

/// Sequence log-probabilities `[rows]` of the reply tokens: sums, or means when `averaged`.
pub fn sequence_logps(model: &Llama, rows: &PairRows, averaged: bool) -> Tensor<1> {
    let d = model.device();
    let logits = model.forward(ids_tensor(&rows.inputs, rows.rows, rows.seq, d)); // [rows, seq, vocab]
    let logp = token_log_probs(logits, ids_tensor(&rows.targets, rows.rows, rows.seq, d)); // [rows, seq]
    let w = constant(rows.weights.clone(), [rows.rows, rows.seq], d); // [rows, seq]
    let sums = (logp * w).sum_dim(1).reshape([rows.rows]); // [rows]
    if averaged { sums / constant(rows.counts(), [rows.rows], d) } else { sums }
}

/// Reads and encodes the pairs of a preference stage from `paths` (and the held-out file `eval`,
/// else a `val_fraction` split); returns the data and lines to print.
#[allow(clippy::too_many_arguments)]
pub fn load_pairs(
    stage: &str,
    paths: &[PathBuf],
    eval: Option<PathBuf>,
    format: &str,
    skip_invalid: bool,
    opened: &Opened,
    max_len: usize,
    val_fraction: f64,
    seed: u64,
) -> anyhow::Result<(PairData, hone_data::checkpoint::DataNotes)> {
    let train = read_pairs(paths, format, skip_invalid)?;
    let val = match &eval {
        Some(p) => read_pairs(std::slice::from_ref(p), format, skip_invalid)?,
        None => Default::default(),
    };
    let max_len = crate::stage::max_len(stage, max_len, opened)?;
    let d = encode_pairs(&train.items, &val.items, &opened.tokenizer, &opened.template, max_len, val_fraction, seed)?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    anyhow::ensure!(!d.train.is_empty(), "{stage}: no training pairs in {}", names.join(", "));
    let head = vec![format!(
        "{stage}: {} training pairs, {} held out{}, up to {max_len} tokens each",
        d.train.len(),
        d.val.len(),
        eval.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default()
    )];
    let notes = crate::stage::DataCuts {
        unit: "pairs",
        target: "reply",
        max_len,
        records: train.items.len() + val.items.len() + train.skipped + val.skipped + train.set_aside + val.set_aside,
        set_aside: train.set_aside + val.set_aside,
        skipped: train.skipped + val.skipped,
        skip_examples: train.skip_examples.iter().chain(&val.skip_examples).cloned().collect(),
        truncated: d.truncated,
        dropped: d.dropped,
    }
    .notes(stage, head);
    Ok((d, notes))
}
