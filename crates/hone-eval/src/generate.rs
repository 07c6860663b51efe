//! Generation tasks: each prompt is completed by the project's sampler (`hone_model::sample`) and the
//! output scored by a `hone_tasks::score::Scorer` (exact match, contains, number with GSM8K's
//! `#### N`, regex, refusal, "I don't know", format checks, consistency across samples). Prompts are
//! rendered by the checkpoint's chat template, or given as plain text after BOS for base models.

use crate::items::GenItem;
use crate::result::ItemRecord;
use anyhow::Result;
use hone_data::chat::{ChatTemplate, Message};
use hone_data::tokenizer::Tokenizer;
use hone_model::{Llama, SampleConfig, generate};
use hone_tasks::score::Scorer;
use hone_tasks::tasks::Generate;

/// Sampling settings of a task: the task file's `max_new_tokens`, `temperature` and `stop`, unless the
/// user set that `[sample]` field (to a value other than its default), which then wins; the other
/// `[sample]` fields (top-k/p, min-p, repetition penalty, seed, cache) come from the user.
pub fn sample_config(g: &Generate, user: &SampleConfig) -> SampleConfig {
    let d = SampleConfig::default();
    let mut s = user.clone();
    if user.max_new_tokens == d.max_new_tokens {
        s.max_new_tokens = g.max_new_tokens as usize;
    }
    if user.temperature == d.temperature {
        s.temperature = g.temperature;
    }
    if user.stop == d.stop {
        s.stop = g.stop.clone();
    }
    s
}

/// Prompt ids: a user turn through the chat template, or the plain text (after BOS when the model's
/// texts start with one). Cut from the left when
/// the prompt leaves fewer than `room` positions of the model's context.
pub fn prompt_ids(
    tok: &Tokenizer,
    template: &ChatTemplate,
    prompt: &str,
    chat: bool,
    max_pos: usize,
    room: usize,
) -> Result<Vec<u32>> {
    let mut ids = if chat {
        template.encode_prompt(tok, &[Message::new("user", prompt)])?
    } else {
        let mut v = if tok.add_bos { vec![tok.bos_id] } else { Vec::new() };
        v.extend(tok.encode(prompt)?);
        if v.is_empty() {
            v.push(tok.bos_id);
        }
        v
    };
    let keep = max_pos.saturating_sub(room.min(max_pos / 2)).max(1);
    if ids.len() > keep {
        ids.drain(..ids.len() - keep);
    }
    Ok(ids)
}

/// A seed for item `i` derived from the user's seed (SplitMix64), so sampled items do not share
/// streams and do not depend on batching.
fn item_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates and scores every item. Greedy tasks with one sample are batched `batch` prompts at a
/// time; sampled tasks run item by item, `samples` rows each, seeded per item.
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Llama,
    tok: &Tokenizer,
    template: &ChatTemplate,
    items: &[GenItem],
    g: &Generate,
    chat: bool,
    sample: &SampleConfig,
    batch: usize,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ItemRecord>> {
    let scorer: Scorer = g.scorer.parse()?;
    let cfg = sample_config(g, sample);
    let max_pos = model.config.max_position_embeddings;
    let prompts: Vec<Vec<u32>> = items
        .iter()
        .map(|it| prompt_ids(tok, template, &it.prompt, chat, max_pos, cfg.max_new_tokens))
        .collect::<Result<_>>()?;
    let samples = g.samples.max(1) as usize;
    let mut outputs: Vec<Vec<String>> = Vec::with_capacity(items.len());
    if cfg.temperature == 0.0 && samples == 1 {
        for (c, chunk) in prompts.chunks(batch.max(1)).enumerate() {
            let gens = generate(model, tok, chunk, &cfg, &mut |_, _| {})?;
            outputs.extend(gens.into_iter().map(|g| vec![g.text]));
            on_progress((c * batch.max(1) + chunk.len()).min(items.len()), items.len());
        }
    } else {
        for (i, p) in prompts.iter().enumerate() {
            let c = SampleConfig { seed: item_seed(cfg.seed, i), ..cfg.clone() };
            let rows = vec![p.clone(); samples];
            let gens = generate(model, tok, &rows, &c, &mut |_, _| {})?;
            outputs.push(gens.into_iter().map(|g| g.text).collect());
            on_progress(i + 1, items.len());
        }
    }
    Ok(items
        .iter()
        .zip(outputs)
        .map(|(it, outs)| {
            let s = if outs.len() == 1 {
                scorer.score(&outs[0], &it.record)
            } else {
                scorer.score_samples(&outs, &it.record)
            };
            ItemRecord {
                id: it.id.clone(),
                group: it.group.clone(),
                prompt: it.prompt.clone(),
                targets: it.targets.clone(),
                outputs: outs,
                correct: (samples == 1).then_some(s.score == 1.0),
                score: Some(s.score),
                label: Some(s.label),
                ..Default::default()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_settings_unless_the_user_set_them() {
        let g = Generate {
            chat: true,
            max_new_tokens: 24,
            stop: vec!["\n".into()],
            scorer: "number".into(),
            samples: 1,
            temperature: 0.0,
            prompt_field: None,
            prompt_format: None,
            targets_field: None,
        };
        let s = sample_config(&g, &SampleConfig { top_k: 5, ..Default::default() });
        assert_eq!((s.max_new_tokens, s.temperature, s.stop.clone(), s.top_k), (24, 0.0, vec!["\n".to_string()], 5));
        let s = sample_config(&g, &SampleConfig { temperature: 0.7, max_new_tokens: 10, ..Default::default() });
        assert_eq!((s.max_new_tokens, s.temperature), (10, 0.7));
        assert_ne!(item_seed(0, 0), item_seed(0, 1));
    }
}
