//! Log-likelihood of continuations given contexts, the primitive under multiple choice, single-target
//! scoring and rolling perplexity, as lm-evaluation-harness computes it: the model reads
//! `context ++ continuation[..-1]` (cut from the left to the context length) and the
//! log-probabilities of the continuation's tokens are summed.
//!
//! Requests that share their context (the choices of one multiple-choice question, or the
//! unconditional requests of mutual-information normalisation, which all have the bare BOS context)
//! are scored with one pass over that context: its keys and values go into a [`KvCache`], which is
//! copied per request, and each continuation runs through it as a short batch. A 4-choice ARC
//! question thus reads its question once instead of four times. Requests whose context is their own,
//! or that must be cut to fit, take the plain path: sorted by length and batched with padding on the
//! right. Padding is never attended to by a real token, so a request's score does not depend on its
//! batch. The two paths give the same predictions and, on ARC-Easy, 9,499 of 9,501 choice scores to
//! the bit (the other two within 3e-6): the masked attention kernel feeds the `gemm` crate the shapes
//! that keep its summation order (see `hone_model::fused::masked_attention`).

use anyhow::{Result, bail};
use hone_model::burn::tensor::{Int, Tensor};
use hone_model::llama::{ids_tensor, token_log_probs};
use hone_model::{KvCache, Layout, Llama};
use std::collections::HashMap;

/// Score `continuation` after `context`. `context` is never empty (it starts with BOS at least).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// The log-likelihood of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLik {
    /// Σ log p(continuation token | everything before it), nats.
    pub sum: f64,
    pub tokens: usize,
    /// Every continuation token is the argmax of its distribution.
    pub greedy: bool,
}

/// Whether requests with one context share a pass over it ([`Sharing::Context`], the default) or
/// each reads its whole input ([`Sharing::None`], the reference the shared path is checked against).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Context,
    None,
}

/// Scores every request; `max_len` is the longest input row, `batch_tokens` bounds rows × length of
/// one forward pass. `on_batch(done, total)` reports progress in requests.
pub fn loglikelihoods(
    model: &Llama,
    reqs: &[Request],
    max_len: usize,
    batch_tokens: usize,
    pad: u32,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<LogLik>> {
    loglikelihoods_with(model, reqs, max_len, batch_tokens, pad, Sharing::Context, on_batch)
}

/// [`loglikelihoods`] with the choice of path made explicit.
pub fn loglikelihoods_with(
    model: &Llama,
    reqs: &[Request],
    max_len: usize,
    batch_tokens: usize,
    pad: u32,
    sharing: Sharing,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<LogLik>> {
    for (i, r) in reqs.iter().enumerate() {
        if r.context.is_empty() || r.continuation.is_empty() {
            bail!("request {i}: context and continuation must both have tokens");
        }
        if r.continuation.len() > max_len {
            bail!(
                "request {i}: a continuation of {} tokens does not fit a context of {max_len} tokens \
                 (raise eval.max_length up to the model's max_position_embeddings)",
                r.continuation.len()
            );
        }
    }
    let (groups, alone) = match sharing {
        Sharing::Context => share_contexts(reqs, max_len),
        Sharing::None => (Vec::new(), (0..reqs.len()).collect()),
    };
    let mut out = vec![LogLik { sum: 0.0, tokens: 0, greedy: false }; reqs.len()];
    let total = reqs.len();
    let mut done = 0;
    let mut progress = |n: usize| {
        done += n;
        on_batch(done, total);
    };
    shared_pass(model, reqs, &groups, batch_tokens, pad, &mut out, &mut progress)?;
    plain_pass(model, reqs, &alone, max_len, batch_tokens, pad, &mut out, &mut progress)?;
    Ok(out)
}

/// Requests with one context, scored through one pass over it.
struct Group {
    /// Index of a request holding the context.
    first: usize,
    members: Vec<usize>,
}

/// Groups of two or more requests with an identical context whose rows all fit `max_len` uncut,
/// and the requests left to the plain path.
fn share_contexts(reqs: &[Request], max_len: usize) -> (Vec<Group>, Vec<usize>) {
    let mut by_context: HashMap<&[u32], usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let g = *by_context.entry(&r.context).or_insert_with(|| {
            groups.push(Group { first: i, members: Vec::new() });
            groups.len() - 1
        });
        groups[g].members.push(i);
    }
    let fits = |i: usize| reqs[i].context.len() + reqs[i].continuation.len() - 1 <= max_len;
    let mut alone = Vec::new();
    groups.retain(|g| {
        let keep = g.members.len() > 1 && g.members.iter().all(|&i| fits(i));
        if !keep {
            alone.extend(&g.members);
        }
        keep
    });
    alone.sort_unstable();
    (groups, alone)
}

/// Log-probabilities `[rows, len]` of `targets` and whether each is the argmax, for hidden states
/// `[rows, len, hidden]`.
fn score(model: &Llama, hidden: Tensor<3>, targets: &[u32]) -> Result<(Vec<f32>, Vec<bool>)> {
    let [b, w, _] = hidden.dims();
    let logits = model.logits(hidden); // [b, w, vocab]
    let best: Tensor<3, Int> = logits.clone().argmax(2); // [b, w, 1]
    let lp = token_log_probs(logits, ids_tensor(targets, b, w, model.device())); // [b, w]
    let lp: Vec<f32> = lp.into_data().convert::<f32>().try_into_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let best: Vec<i64> = best.into_data().convert::<i64>().try_into_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let hit = best.iter().zip(targets).map(|(&b, &t)| b == t as i64).collect();
    Ok((lp, hit))
}

/// The sum and greedy flag over `span` of scored positions.
fn loglik(lp: &[f32], hit: &[bool], span: std::ops::Range<usize>, tokens: usize) -> LogLik {
    LogLik { sum: lp[span.clone()].iter().map(|&x| x as f64).sum(), tokens, greedy: hit[span].iter().all(|&h| h) }
}

/// The shared path: per batch of groups, the contexts but their last token go through the model
/// left-padded into a cache; then the batch's requests, sorted by continuation length and cut into
/// chunks, each get a copy of their group's cache row and continue with
/// `context[-1] ++ continuation[..-1]`, right-padded, whose outputs predict the continuation.
/// Sorting the continuations keeps padding (which runs through every layer) small: ARC's answers
/// run from one token to thirty.
fn shared_pass(
    model: &Llama,
    reqs: &[Request],
    groups: &[Group],
    batch_tokens: usize,
    pad: u32,
    out: &mut [LogLik],
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let device = model.device().clone();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(reqs[groups[g].first].context.len()));
    let mut at = 0;
    while at < order.len() {
        // Groups whose contexts fill at most `batch_tokens` (at least one).
        let ctx_len = reqs[groups[order[at]].first].context.len() - 1;
        let n = (batch_tokens / ctx_len.max(1)).clamp(1, order.len() - at);
        let batch: Vec<&Group> = order[at..at + n].iter().map(|&g| &groups[g]).collect();
        // Left padding of each group's cached prefix.
        let pads: Vec<usize> = batch.iter().map(|g| ctx_len - (reqs[g.first].context.len() - 1)).collect();
        let mut cache = KvCache::new();
        if ctx_len > 0 {
            let mut ids = vec![pad; n * ctx_len];
            for (row, g) in batch.iter().enumerate() {
                let c = &reqs[g.first].context;
                ids[row * ctx_len + pads[row]..(row + 1) * ctx_len].copy_from_slice(&c[..c.len() - 1]);
            }
            let layout = Layout::left_padded(&pads, ctx_len, &device);
            model.hidden_cached(ids_tensor(&ids, n, ctx_len, &device), &layout, &mut cache); // [n, ctx_len, hidden]
        }
        // (group row, request), longest continuation first.
        let mut members: Vec<(usize, usize)> =
            batch.iter().enumerate().flat_map(|(row, g)| g.members.iter().map(move |&i| (row, i))).collect();
        members.sort_by_key(|&(_, i)| std::cmp::Reverse(reqs[i].continuation.len()));
        let mut from = 0;
        while from < members.len() {
            // Rows × width within `batch_tokens`, and at most as many cache rows as the context pass had
            // tokens' worth (the copies are rows × ctx_len keys and values per layer).
            // At least two positions: the `gemm` crate multiplies a single row by a different routine
            // (a matrix-vector product summing in other lanes), which would make a one-token
            // continuation's score differ in the last bits from the plain path's.
            let width = reqs[members[from].1].continuation.len().max(2);
            let rows = (batch_tokens / width).min(batch_tokens / ctx_len.max(1)).clamp(1, members.len() - from);
            let chunk = &members[from..from + rows];
            let owners: Vec<usize> = chunk.iter().map(|&(row, _)| row).collect();
            let mut rows_cache = cache.select_rows(&owners);
            let mut ids = vec![pad; rows * width];
            let mut tgt = vec![pad; rows * width];
            for (row, &(_, i)) in chunk.iter().enumerate() {
                let (c, t) = (&reqs[i].context, &reqs[i].continuation);
                ids[row * width] = c[c.len() - 1];
                ids[row * width + 1..row * width + t.len()].copy_from_slice(&t[..t.len() - 1]);
                tgt[row * width..row * width + t.len()].copy_from_slice(t);
            }
            let row_pads: Vec<usize> = owners.iter().map(|&g| pads[g]).collect();
            let layout = Layout::left_padded_step(&row_pads, ctx_len, width, &device);
            let ids = ids_tensor(&ids, rows, width, &device);
            let hidden = model.hidden_cached(ids, &layout, &mut rows_cache); // [rows, width, hidden]
            let (lp, hit) = score(model, hidden, &tgt)?;
            for (row, &(_, i)) in chunk.iter().enumerate() {
                let t = reqs[i].continuation.len();
                out[i] = loglik(&lp, &hit, row * width..row * width + t, t);
            }
            from += rows;
            progress(rows);
        }
        at += n;
    }
    Ok(())
}

/// The plain path: each request's input, cut from the left to `max_len`, sorted by length and
/// batched with right padding.
#[allow(clippy::too_many_arguments)]
fn plain_pass(
    model: &Llama,
    reqs: &[Request],
    which: &[usize],
    max_len: usize,
    batch_tokens: usize,
    pad: u32,
    out: &mut [LogLik],
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    // Inputs and targets per request, cut from the left to `max_len`.
    let rows: Vec<(Vec<u32>, Vec<u32>, usize)> = which
        .iter()
        .map(|&i| {
            let r = &reqs[i];
            let whole: Vec<u32> = r.context.iter().chain(&r.continuation).copied().collect();
            let n = whole.len() - 1;
            let start = n.saturating_sub(max_len);
            (whole[start..n].to_vec(), whole[start + 1..].to_vec(), r.continuation.len())
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].0.len()));
    let device = model.device().clone();
    let mut at = 0;
    while at < order.len() {
        let len = rows[order[at]].0.len();
        let b = (batch_tokens / len).clamp(1, order.len() - at);
        let batch = &order[at..at + b];
        let mut ids = vec![pad; b * len];
        let mut tgt = vec![pad; b * len];
        for (row, &i) in batch.iter().enumerate() {
            let (inp, t, _) = &rows[i];
            ids[row * len..row * len + inp.len()].copy_from_slice(inp);
            tgt[row * len..row * len + t.len()].copy_from_slice(t);
        }
        // Only positions from the earliest continuation start need the output projection and the
        // softmax over the vocabulary: for multiple choice that is a small tail of each row.
        let from = batch.iter().map(|&i| rows[i].0.len() - rows[i].2).min().unwrap_or(0);
        let w = len - from;
        let hidden = model.hidden(ids_tensor(&ids, b, len, &device), &Layout::causal(b, len, &device)); // [b, len, hidden]
        let tgt_w: Vec<u32> = (0..b).flat_map(|r| tgt[r * len + from..(r + 1) * len].iter().copied()).collect();
        let (lp, hit) = score(model, hidden.narrow(1, from, w), &tgt_w)?;
        for (row, &i) in batch.iter().enumerate() {
            let (inp, t, c) = &rows[i];
            debug_assert_eq!(t.len(), inp.len());
            // Positions inp.len() - c .. inp.len() of the row, offset by `from` in the narrowed tail.
            let span = row * w + inp.len() - c - from..row * w + inp.len() - from;
            out[which[i]] = loglik(&lp, &hit, span, *c);
        }
        at += b;
        progress(b);
    }
    Ok(())
}

/// lm-evaluation-harness's rolling windows over a token list: requests that together predict every
/// token exactly once, the first after `prefix` (BOS), each later one reading up to `max_len`
/// tokens, of which the last `max_len - context_len + 1` are predicted (`context_len` = 1: disjoint
/// windows).
pub fn rolling_windows(tokens: &[u32], prefix: u32, max_len: usize, context_len: usize) -> Vec<Request> {
    let context_len = context_len.clamp(1, max_len);
    let n = tokens.len();
    if n == 0 {
        return Vec::new();
    }
    let pred_len = max_len - context_len + 1;
    let first = max_len.min(n);
    let mut out = vec![Request { context: vec![prefix], continuation: tokens[..first].to_vec() }];
    let mut predicted = first;
    while predicted < n {
        let w = (n - predicted).min(pred_len);
        let end = predicted + w;
        // Reads tokens[end - max_len - 1 .. end - 1]; the last `w` of the targets are new.
        out.push(Request {
            context: tokens[end - max_len - 1..end - w].to_vec(),
            continuation: tokens[end - w..end].to_vec(),
        });
        predicted = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_predict_every_token_once_within_the_limit() {
        let toks: Vec<u32> = (10..33).collect(); // 23 tokens
        for (max_len, ctx) in [(8, 1), (8, 4), (30, 1), (1, 1), (5, 5)] {
            let w = rolling_windows(&toks, 0, max_len, ctx);
            let predicted: Vec<u32> = w.iter().flat_map(|r| r.continuation.clone()).collect();
            assert_eq!(predicted, toks, "max_len {max_len} ctx {ctx}");
            for r in &w {
                assert!(r.context.len() + r.continuation.len() - 1 <= max_len);
                // The context is exactly the tokens before the continuation.
                let start = toks.iter().position(|&t| t == r.continuation[0]).unwrap();
                if start == 0 {
                    assert_eq!(r.context, vec![0]);
                } else {
                    assert_eq!(r.context, toks[start - r.context.len()..start].to_vec());
                }
            }
        }
        // Disjoint windows as lm-evaluation-harness: 23 tokens at max_len 8 → 8 + 8 + 7.
        let w = rolling_windows(&toks, 0, 8, 1);
        assert_eq!(w.iter().map(|r| r.continuation.len()).collect::<Vec<_>>(), vec![8, 8, 7]);
        assert_eq!(w[1].context.len() + w[1].continuation.len() - 1, 8);
    }
}
