//! Multiple choice by log-likelihood (lm-evaluation-harness's `multiple_choice`): every choice is
//! scored as a continuation of the context; `acc` takes the most likely choice, `acc_norm` the most
//! likely per character of the choice (lm-evaluation-harness's `len(choice)`: Unicode code points,
//! the delimiter not counted). The softmax of the choices' log-likelihoods gives a
//! confidence, from which the Brier score and the expected calibration error follow.

use crate::items::McItem;
use crate::loglik::{LogLik, Request};
use crate::result::{ChoiceScore, ItemRecord};
use anyhow::Result;
use hone_data::tokenizer::Tokenizer;

/// Context and continuation ids the way lm-evaluation-harness splits them: trailing spaces of the
/// context move to the continuation, the pair is encoded together and the continuation is what
/// follows the context's own encoding, so merges across the boundary are scored as the model sees
/// them. An empty context becomes the prefix token (BOS, else EOS) alone.
pub fn encode_pair(tok: &Tokenizer, context: &str, continuation: &str) -> Result<Request> {
    let trimmed = context.trim_end();
    let (context, continuation) = (trimmed, format!("{}{continuation}", &context[trimmed.len()..]));
    if context.is_empty() {
        return Ok(Request { context: vec![tok.bos_id], continuation: tok.encode(&continuation)? });
    }
    let whole = tok.encode(&format!("{context}{continuation}"))?;
    let ctx = tok.encode(context)?;
    let cont = if whole.len() > ctx.len() { whole[ctx.len()..].to_vec() } else { tok.encode(&continuation)? };
    // BOS leads the context when the model's texts start with one (hone's always do; a real model's
    // when its tokenizer adds it, as lm-evaluation-harness encodes).
    let mut c = Vec::with_capacity(ctx.len() + 1);
    if tok.add_bos {
        c.push(tok.bos_id);
    }
    c.extend(ctx);
    Ok(Request { context: c, continuation: cont })
}

/// One request per choice of every item, in item order.
pub fn requests(tok: &Tokenizer, items: &[McItem]) -> Result<Vec<Request>> {
    let mut out = Vec::new();
    for it in items {
        for c in &it.choices {
            out.push(encode_pair(tok, &it.context, &format!("{}{c}", it.prefix))?);
        }
    }
    Ok(out)
}

/// Index of the largest value (the first on ties, as `numpy.argmax`).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Softmax of log-likelihoods, computed stably.
pub fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Item records from the choices' log-likelihoods (`lls` in the order of [`requests`]).
pub fn records(items: &[McItem], lls: &[LogLik]) -> Vec<ItemRecord> {
    let mut at = 0;
    items
        .iter()
        .map(|it| {
            let k = it.choices.len();
            let ll = &lls[at..at + k];
            at += k;
            let sums: Vec<f64> = ll.iter().map(|l| l.sum).collect();
            let per_char: Vec<f64> =
                it.choices.iter().zip(&sums).map(|(c, s)| s / c.chars().count().max(1) as f64).collect();
            let (pred, pred_norm) = (argmax(&sums), argmax(&per_char));
            ItemRecord {
                id: it.id.clone(),
                group: it.group.clone(),
                prompt: it.context.clone(),
                targets: vec![it.choices[it.gold].clone()],
                choices: it
                    .choices
                    .iter()
                    .zip(ll)
                    .map(|(c, l)| ChoiceScore {
                        text: c.clone(),
                        loglik: l.sum,
                        tokens: l.tokens,
                        bytes: c.len(),
                        greedy: l.greedy,
                    })
                    .collect(),
                probs: softmax(&sums),
                gold: Some(it.gold),
                pred: Some(pred),
                pred_norm: Some(pred_norm),
                correct: Some(pred == it.gold),
                correct_norm: Some(pred_norm == it.gold),
                ..Default::default()
            }
        })
        .collect()
}
