//! Multiple choice by log-likelihood (lm-evaluation-harness's `multiple_choice`): every choice is
//! scored as a continuation of the context; `acc` takes the most likely choice, `acc_norm` the most
//! likely per character of the choice (lm-evaluation-harness's `len(choice)`: Unicode code points,
//! the delimiter not counted). The softmax of the choices' log-likelihoods gives a
//! confidence, from which the Brier score and the expected calibration error follow.

use crate::items::{McItem, SingleItem};
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

/// One request per choice of every item, in item order; with `mutual_info`, then one per choice
/// without its context (the prefix token alone), in the same order.
pub fn requests(tok: &Tokenizer, items: &[McItem], mutual_info: bool) -> Result<Vec<Request>> {
    request_texts(items, mutual_info).iter().map(|(c, x)| encode_pair(tok, c, x)).collect()
}

/// The (context, continuation) texts of [`requests`], before tokenization: what
/// lm-evaluation-harness's requests hold.
pub fn request_texts(items: &[McItem], mutual_info: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for it in items {
        for c in &it.choices {
            out.push(match &it.shared_continuation {
                // Winogrande: the choice completes the context; the continuation is what is scored.
                Some(cont) => (format!("{}{c}", it.fewshot), format!("{}{cont}", it.prefix)),
                None => (format!("{}{}", it.fewshot, it.context), format!("{}{c}", it.prefix)),
            });
        }
    }
    if mutual_info {
        for it in items {
            for c in &it.choices {
                out.push((String::new(), format!("{}{c}", it.prefix)));
            }
        }
    }
    out
}

/// One request per single-target item.
pub fn single_requests(tok: &Tokenizer, items: &[SingleItem]) -> Result<Vec<Request>> {
    items.iter().map(|it| encode_pair(tok, &it.context, &it.target)).collect()
}

/// Item records of single-target items: the target's log-likelihood (as `nll`) and whether every
/// target token is the model's most likely next token (`correct`).
pub fn single_records(items: &[SingleItem], lls: &[LogLik]) -> Vec<ItemRecord> {
    items
        .iter()
        .zip(lls)
        .map(|(it, l)| ItemRecord {
            id: it.id.clone(),
            group: it.group.clone(),
            prompt: it.context.clone(),
            targets: vec![it.target.clone()],
            choices: vec![ChoiceScore {
                text: it.target.clone(),
                loglik: l.sum,
                tokens: l.tokens,
                bytes: it.target.len(),
                greedy: l.greedy,
            }],
            nll: Some(-l.sum),
            tokens: Some(l.tokens),
            correct: Some(l.greedy),
            ..Default::default()
        })
        .collect()
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

/// Item records from the choices' log-likelihoods (`lls` in the order of [`requests`]; with the
/// unconditional ones after the others when there are twice as many, for `acc_mutual_info`).
pub fn records(items: &[McItem], lls: &[LogLik]) -> Vec<ItemRecord> {
    let n: usize = items.iter().map(|it| it.choices.len()).sum();
    let unconditional = (lls.len() == 2 * n).then(|| &lls[n..]);
    let mut at = 0;
    items
        .iter()
        .map(|it| {
            let k = it.choices.len();
            let ll = &lls[at..at + k];
            let mi = unconditional.map(|u| {
                let gains: Vec<f64> = ll.iter().zip(&u[at..at + k]).map(|(c, u)| c.sum - u.sum).collect();
                argmax(&gains) == it.gold
            });
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
                correct_mi: mi,
                ..Default::default()
            }
        })
        .collect()
}
