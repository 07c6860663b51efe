//! Log-likelihood of continuations given contexts, the primitive under multiple choice and rolling
//! perplexity, as lm-evaluation-harness computes it: the model reads `context ++ continuation[..-1]`
//! (cut from the left to the context length) and the log-probabilities of the continuation's tokens
//! are summed. Requests are sorted by length and batched with padding on the right, which a causal
//! model never attends to, so a request's score does not depend on its batch.

use anyhow::{Result, bail};
use hone_model::Llama;
use hone_model::burn::tensor::{Int, Tensor};
use hone_model::llama::{ids_tensor, token_log_probs};

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
    // Inputs and targets per request, cut from the left to `max_len`.
    let mut rows: Vec<(Vec<u32>, Vec<u32>, usize)> = Vec::with_capacity(reqs.len());
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
        let whole: Vec<u32> = r.context.iter().chain(&r.continuation).copied().collect();
        let n = whole.len() - 1;
        let start = n.saturating_sub(max_len);
        rows.push((whole[start..n].to_vec(), whole[start + 1..].to_vec(), r.continuation.len()));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].0.len()));
    let mut out = vec![LogLik { sum: 0.0, tokens: 0, greedy: false }; rows.len()];
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
        let logits = model.forward(ids_tensor(&ids, b, len, &device)); // [b, len, vocab]
        let best: Tensor<3, Int> = logits.clone().argmax(2); // [b, len, 1]
        let lp = token_log_probs(logits, ids_tensor(&tgt, b, len, &device)); // [b, len]
        let lp: Vec<f32> = lp.into_data().convert::<f32>().try_into_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let best: Vec<i64> = best.into_data().convert::<i64>().try_into_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for (row, &i) in batch.iter().enumerate() {
            let (inp, t, c) = &rows[i];
            let span = row * len + inp.len() - c..row * len + inp.len();
            let sum = lp[span.clone()].iter().map(|&x| x as f64).sum();
            let greedy = span.clone().all(|p| best[p] == tgt[p] as i64);
            debug_assert_eq!(t.len(), inp.len());
            out[i] = LogLik { sum, tokens: *c, greedy };
        }
        at += b;
        on_batch(at, order.len());
    }
    Ok(out)
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
