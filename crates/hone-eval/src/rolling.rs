//! Held-out loss, perplexity and bits per byte of whole texts (lm-evaluation-harness's
//! `loglikelihood_rolling`): each text is tokenized once and scored in rolling windows after BOS, so
//! texts longer than the context are covered, every token predicted exactly once.

use crate::items::TextItem;
use crate::loglik::{LogLik, Request, rolling_windows};
use crate::result::ItemRecord;
use anyhow::Result;
use hone_data::tokenizer::Tokenizer;

/// The windows of every text, and how many windows each text has.
pub fn requests(tok: &Tokenizer, items: &[TextItem], max_len: usize, context_len: usize) -> Result<(Vec<Request>, Vec<(usize, usize)>)> {
    let mut reqs = Vec::new();
    let mut spans = Vec::new();
    for it in items {
        let ids = tok.encode(&it.text)?;
        let w = rolling_windows(&ids, tok.bos_id, max_len, context_len);
        spans.push((w.len(), ids.len()));
        reqs.extend(w);
    }
    Ok((reqs, spans))
}

/// Item records: NLL (nats), tokens and UTF-8 bytes of each text.
pub fn records(items: &[TextItem], spans: &[(usize, usize)], lls: &[LogLik]) -> Vec<ItemRecord> {
    let mut at = 0;
    items
        .iter()
        .zip(spans)
        .map(|(it, &(windows, tokens))| {
            let nll = -lls[at..at + windows].iter().map(|l| l.sum).sum::<f64>();
            at += windows;
            let prompt: String = it.text.chars().take(120).collect();
            ItemRecord {
                id: it.id.clone(),
                group: it.group.clone(),
                prompt,
                nll: Some(nll),
                tokens: Some(tokens),
                bytes: Some(it.text.len()),
                ..Default::default()
            }
        })
        .collect()
}
