//! Prompts for the RL stage, each with a verifier: arithmetic (scored by `number`) and questions on
//! training-split facts (scored by `contains_any`). None is a probe prompt or a probe problem; sums and
//! differences come from the practice problems, which no training text works out.

use crate::arith::{Op, Problem};
use crate::chat::{Message, user};
use crate::facts::{Split, World};
use crate::rng::{Draw, Rng};
use crate::text;
use serde::Serialize;
use std::collections::BTreeSet;

/// One line of rl.jsonl.
#[derive(Debug, Clone, Serialize)]
pub struct RlPrompt {
    pub id: String,
    pub prompt: Vec<Message>,
    pub targets: Vec<String>,
    /// Scorer name (see `score::Scorer`) that verifies a completion.
    pub scorer: &'static str,
    pub kind: &'static str,
}

pub fn build(
    w: &World,
    n: usize,
    problems: &BTreeSet<Problem>,
    practice: &BTreeSet<Problem>,
    probe_prompts: &BTreeSet<String>,
    mut rng: Rng,
) -> Vec<RlPrompt> {
    let train: Vec<usize> = (0..w.facts.len()).filter(|&i| w.facts[i].split == Split::Train).collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let of_op = |op: Op| -> Vec<&Problem> { practice.iter().filter(|q| q.op == op).collect() };
    let (sums, differences) = (of_op(Op::Add), of_op(Op::Sub));
    let mut tries = 0;
    while out.len() < n && tries < n * 50 {
        tries += 1;
        let (q, targets, scorer, kind) = if rng.percent(70) {
            let mut p = Problem::random_except(&mut rng, problems);
            if p.op != Op::Mul {
                let same = if p.op == Op::Add { &sums } else { &differences };
                if !same.is_empty() {
                    p = *same[rng.index(same.len())];
                }
            }
            (p.question(&mut rng), vec![p.answer().to_string()], "number", "arithmetic")
        } else {
            let f = &w.facts[*rng.pick(&train)];
            (text::question(w, f, &mut rng), f.targets.clone(), "contains_any", "fact")
        };
        if crate::probes::covers(probe_prompts, &q) || !seen.insert(q.clone()) {
            continue;
        }
        out.push(RlPrompt { id: format!("rl-{:05}", out.len()), prompt: vec![user(q)], targets, scorer, kind });
    }
    out
}
