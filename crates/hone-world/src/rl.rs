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

const ARITHMETIC: &str = "arithmetic";
const FACT: &str = "fact";

/// What prompts draw from: training-split facts, and the practice sums and differences.
struct Pools<'a> {
    train: Vec<usize>,
    sums: Vec<&'a Problem>,
    differences: Vec<&'a Problem>,
}

impl<'a> Pools<'a> {
    fn new(w: &World, practice: &'a BTreeSet<Problem>) -> Pools<'a> {
        let of_op = |op: Op| -> Vec<&Problem> { practice.iter().filter(|q| q.op == op).collect() };
        Pools {
            train: (0..w.facts.len()).filter(|&i| w.facts[i].split == Split::Train).collect(),
            sums: of_op(Op::Add),
            differences: of_op(Op::Sub),
        }
    }

    /// One prompt of `kind` ([`ARITHMETIC`] or [`FACT`]): (question, targets, scorer).
    fn make(
        &self,
        w: &World,
        problems: &BTreeSet<Problem>,
        kind: &str,
        rng: &mut Rng,
    ) -> (String, Vec<String>, &'static str) {
        if kind == ARITHMETIC {
            let mut p = Problem::random_except(rng, problems);
            if p.op != Op::Mul {
                let same = if p.op == Op::Add { &self.sums } else { &self.differences };
                if !same.is_empty() {
                    p = *same[rng.index(same.len())];
                }
            }
            (p.question(rng), vec![p.answer().to_string()], "number")
        } else {
            let f = &w.facts[*rng.pick(&self.train)];
            (text::question(w, f, rng), f.targets.clone(), "contains_any")
        }
    }
}

/// The kinds of prompt `build` writes (and [`draw`] draws).
pub fn kinds() -> Vec<&'static str> {
    vec![ARITHMETIC, FACT]
}

/// `n` more prompts of `kind` (one of [`kinds`]) from `rng`, with ids `rl-<prefix>-NNNNN`: none is a
/// prompt in `used` or another drawn one, none covers a probe prompt or works a probe problem.
/// Fewer than `n` when the kind's pool runs dry (about 50 tries per prompt).
#[allow(clippy::too_many_arguments)]
pub fn draw(
    w: &World,
    problems: &BTreeSet<Problem>,
    practice: &BTreeSet<Problem>,
    probe_prompts: &BTreeSet<String>,
    kind: &'static str,
    n: usize,
    mut rng: Rng,
    used: &BTreeSet<String>,
    prefix: &str,
) -> Vec<RlPrompt> {
    let pools = Pools::new(w, practice);
    let mut seen = BTreeSet::new();
    let mut out = crate::gather(n, || {
        let (q, targets, scorer) = pools.make(w, problems, kind, &mut rng);
        if crate::probes::covers(probe_prompts, &q) || used.contains(&q) || !seen.insert(q.clone()) {
            return None;
        }
        Some(RlPrompt { id: String::new(), prompt: vec![user(q)], targets, scorer, kind })
    });
    for (i, p) in out.iter_mut().enumerate() {
        p.id = format!("rl-{prefix}-{i:05}");
    }
    out
}

pub fn build(
    w: &World,
    n: usize,
    problems: &BTreeSet<Problem>,
    practice: &BTreeSet<Problem>,
    probe_prompts: &BTreeSet<String>,
    mut rng: Rng,
) -> Vec<RlPrompt> {
    let pools = Pools::new(w, practice);
    let mut seen = BTreeSet::new();
    let mut out = crate::gather(n, || {
        let kind = if rng.percent(70) { ARITHMETIC } else { FACT };
        let (q, targets, scorer) = pools.make(w, problems, kind, &mut rng);
        if crate::probes::covers(probe_prompts, &q) || !seen.insert(q.clone()) {
            return None;
        }
        Some(RlPrompt { id: String::new(), prompt: vec![user(q)], targets, scorer, kind })
    });
    for (i, p) in out.iter_mut().enumerate() {
        p.id = format!("rl-{i:05}");
    }
    out
}
