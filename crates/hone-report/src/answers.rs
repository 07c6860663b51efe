//! The same prompts answered by each stage's model, taken from the evaluation records (so what is
//! shown is exactly what was scored): a few items of each generation task, in a fixed order of
//! behaviours, with every stage's output and whether the scorer accepted it.

use crate::gather::RunFacts;

/// Generation tasks worth reading side by side, most telling first. Others follow in name order.
const PREFERRED: &[&str] = &[
    "world_known_facts_frequent",
    "world_unknown_entities",
    "world_post_cutoff",
    "world_forbidden",
    "world_benign",
    "world_format_list_n",
    "world_format_json",
    "world_format_one_word",
    "world_arithmetic",
    "world_known_facts_rare",
];

/// One stage's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub output: String,
    pub correct: Option<bool>,
}

/// One prompt and every stage's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSet {
    pub task: String,
    pub prompt: String,
    pub targets: Vec<String>,
    /// `(stage label, answer)` for each evaluated policy stage that has the item.
    pub answers: Vec<(String, Option<Answer>)>,
}

/// Up to `per_task` items of each generation task, chosen by item id so every stage shows the same
/// prompts.
pub fn side_by_side(facts: &RunFacts, per_task: usize) -> Vec<AnswerSet> {
    let stages: Vec<(&str, &str)> = facts.columns.iter().map(|(s, l)| (s.as_str(), l.as_str())).collect();
    let mut tasks: Vec<String> = Vec::new();
    for (s, _) in &stages {
        for r in &facts.evals[*s] {
            if r.kind == "generate" && !tasks.contains(&r.task) {
                tasks.push(r.task.clone());
            }
        }
    }
    let rank = |t: &str| PREFERRED.iter().position(|p| *p == t).unwrap_or(PREFERRED.len());
    tasks.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut out = Vec::new();
    for task in tasks {
        let results: Vec<_> =
            stages.iter().map(|(s, l)| (*l, facts.evals[*s].iter().find(|r| r.task == task))).collect();
        let Some(first) = results.iter().find_map(|(_, r)| *r) else { continue };
        for item in first.items.iter().take(per_task) {
            let answers = results
                .iter()
                .map(|(label, r)| {
                    let a = r.and_then(|r| r.items.iter().find(|i| i.id == item.id)).map(|i| Answer {
                        output: i.outputs.first().cloned().unwrap_or_default(),
                        correct: i.correct.or(i.score.map(|s| s >= 0.5)),
                    });
                    (label.to_string(), a)
                })
                .collect();
            out.push(AnswerSet {
                task: task.clone(),
                prompt: item.prompt.clone(),
                targets: item.targets.clone(),
                answers,
            });
        }
    }
    out
}
