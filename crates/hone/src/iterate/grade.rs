//! The model's own answers, graded: k samples per prompt from the current model, scored by the rule
//! grader (the world's verifiers and scorers) or by the run's reward model, turned into (better,
//! worse) pairs, and the reward model's agreement with the rule grader.

use hone_data::chat::Message;
use hone_model::LoadedModel;
use hone_model::sample::{SampleConfig, generate};
use hone_train::reward_model::RewardModel;
use hone_world::score::Scorer;
use serde_json::Value;

/// A prompt to answer, with what grades an answer by rule.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub kind: String,
    /// The record the scorer reads (targets, list length, JSON keys).
    pub record: Value,
    /// The rule: a scorer, and whether its verdict is inverted; `None`: no rule grades it.
    pub rule: Option<(Scorer, bool)>,
    /// The world's own (chosen, rejected) replies, when the prompt came with a pair.
    pub world_pair: Option<(String, String)>,
}

impl Prompt {
    /// The rule grader's score of `answer` (0..=1), if a rule grades this prompt.
    pub fn rule_score(&self, answer: &str) -> Option<f64> {
        self.rule.map(|(s, invert)| {
            let x = s.score(answer, &self.record).score;
            if invert { 1.0 - x } else { x }
        })
    }
}

/// A prompt's answers and their grades.
#[derive(Debug, Clone)]
pub struct Answered {
    pub answers: Vec<String>,
    pub rule: Vec<Option<f64>>,
    /// The reward model's scores (when one grades).
    pub model: Vec<f64>,
}

/// `k` answers per prompt from `m` at `temperature` (seeded: the same model and seed give the same
/// answers), graded by rule and, when `rm` is given, by the reward model.
pub fn answer(
    m: &LoadedModel,
    prompts: &[Prompt],
    k: usize,
    temperature: f64,
    max_new_tokens: usize,
    seed: u64,
    rm: Option<&RewardModel>,
) -> anyhow::Result<Vec<Answered>> {
    let model = m.model.to_inference();
    let ids: Vec<Vec<u32>> =
        prompts.iter().map(|p| m.template.encode_prompt(&m.tokenizer, &p.messages)).collect::<Result<_, _>>()?;
    let cfg = SampleConfig { temperature, max_new_tokens, seed, ..SampleConfig::default() };
    let mut out = Vec::with_capacity(prompts.len());
    // Rows of 64: prompt i's k samples are rows i*k..(i+1)*k, each on its own random stream.
    let rows: Vec<(usize, Vec<u32>)> =
        ids.iter().enumerate().flat_map(|(i, p)| (0..k).map(move |_| (i, p.clone()))).collect();
    let mut gens = Vec::with_capacity(rows.len());
    for (c, chunk) in rows.chunks(64).enumerate() {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|r| r.1.clone()).collect();
        let cfg = SampleConfig { seed: cfg.seed.wrapping_add(c as u64 * 0x9E37_79B9), ..cfg.clone() };
        gens.extend(generate(&model, &m.tokenizer, &batch, &cfg, &mut |_, _| {})?);
    }
    for (i, p) in prompts.iter().enumerate() {
        let g = &gens[i * k..(i + 1) * k];
        let answers: Vec<String> = g.iter().map(|x| x.text.trim().to_string()).collect();
        let rule = answers.iter().map(|a| p.rule_score(a)).collect();
        let model = match rm {
            Some(rm) => {
                let seqs: Vec<Vec<u32>> = g.iter().map(|x| ids[i].iter().chain(&x.tokens).copied().collect()).collect();
                rm.scores(&seqs).into_iter().map(|x| x as f64).collect()
            }
            None => Vec::new(),
        };
        out.push(Answered { answers, rule, model });
    }
    Ok(out)
}

/// The (better, worse) answer of one prompt by `scores`: its best and worst, when they differ.
pub fn pair_of(answers: &[String], scores: &[f64]) -> Option<(String, String)> {
    let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]))?;
    let worst = (0..scores.len()).min_by(|&a, &b| scores[a].total_cmp(&scores[b]))?;
    (scores[best] > scores[worst] && answers[best] != answers[worst])
        .then(|| (answers[best].clone(), answers[worst].clone()))
}

/// How often the reward model orders two answers of a prompt as the rule grader does, over every
/// pair of answers the rule tells apart: (agreeing, pairs).
pub fn agreement(answered: &[Answered]) -> (usize, usize) {
    let (mut agree, mut n) = (0, 0);
    for a in answered {
        for i in 0..a.answers.len() {
            for j in i + 1..a.answers.len() {
                let (Some(ri), Some(rj)) = (a.rule[i], a.rule[j]) else { continue };
                if ri == rj || a.model.len() <= j {
                    continue;
                }
                n += 1;
                agree += ((ri > rj) == (a.model[i] > a.model[j])) as usize;
            }
        }
    }
    (agree, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_need_a_difference_and_agreement_counts_ordered_pairs() {
        let a: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        assert_eq!(pair_of(&a, &[0.0, 1.0, 0.5]), Some(("y".into(), "x".into())));
        assert_eq!(pair_of(&a, &[1.0, 1.0, 1.0]), None);
        let answered = vec![Answered {
            answers: a.clone(),
            rule: vec![Some(1.0), Some(0.0), Some(0.0)],
            // Agrees on (0,1), disagrees on (0,2); (1,2) is a rule tie and does not count.
            model: vec![0.5, -1.0, 2.0],
        }];
        assert_eq!(agreement(&answered), (1, 2));
    }
}
