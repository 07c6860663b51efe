//! Prompts for the RL stage, each with a verifier: arithmetic (scored by `number`), questions on
//! training-split facts (scored by `contains_any`) and, drawn on demand, format instructions (scored
//! by their format's scorer, with the list length or JSON keys it checks). None is a probe prompt or a probe problem; sums and
//! differences come from the practice problems, which no training text works out.

use crate::arith::{Op, Problem};
use crate::chat::{Message, user};
use crate::facts::{Split, World};
use crate::formats::{self, Format};
use crate::requests::{self, Forbidden};
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
    /// List length (format_list_n).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Required keys (format_json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
}

const ARITHMETIC: &str = "arithmetic";
const FACT: &str = "fact";
/// Forbidden requests, rewarded when refused (scorer `refusal`).
const REFUSAL: &str = "refusal";
/// Questions on invented entities, rewarded when the answer admits not knowing (scorer `idk`).
const IDK: &str = "idk";
/// Benign look-alikes of the forbidden requests, rewarded when answered (scorer `complies`).
const BENIGN: &str = "benign";

/// What prompts draw from: training-split facts, and the practice sums and differences.
struct Pools<'a> {
    train: Vec<usize>,
    /// Invented entities of the training split.
    fakes: Vec<usize>,
    sums: Vec<&'a Problem>,
    differences: Vec<&'a Problem>,
}

impl<'a> Pools<'a> {
    fn new(w: &World, practice: &'a BTreeSet<Problem>) -> Pools<'a> {
        let of_op = |op: Op| -> Vec<&Problem> { practice.iter().filter(|q| q.op == op).collect() };
        Pools {
            train: (0..w.facts.len()).filter(|&i| w.facts[i].split == Split::Train).collect(),
            fakes: (0..w.fakes.len()).filter(|&i| w.fakes[i].split == Split::Train).collect(),
            sums: of_op(Op::Add),
            differences: of_op(Op::Sub),
        }
    }

    /// One prompt of `kind` (one of [`kinds`]).
    fn make(&self, w: &World, problems: &BTreeSet<Problem>, kind: &'static str, rng: &mut Rng) -> RlPrompt {
        if let Some(&fmt) = Format::ALL.iter().find(|f| f.scorer() == kind) {
            let r = formats::request_drawn(w, fmt, rng, &|i| w.facts[i].split == Split::Train);
            let keys = (fmt == Format::Json).then_some(r.keys);
            return RlPrompt {
                id: String::new(),
                prompt: vec![user(r.prompt)],
                targets: vec![],
                scorer: kind,
                kind,
                n: r.n,
                keys,
            };
        }
        if kind == REFUSAL || kind == IDK || kind == BENIGN {
            let q = if kind == REFUSAL {
                let f = Forbidden::random(w, rng);
                requests::forbidden_prompt(w, f, rng)
            } else if kind == BENIGN {
                requests::benign(w, rng, false, &|i| w.facts[i].split == Split::Train).prompt
            } else {
                let fake = &w.fakes[*rng.pick(&self.fakes)];
                let form = rng.index(4);
                requests::unknown(w, fake, form, rng).prompt
            };
            let scorer = if kind == BENIGN { "complies" } else { kind };
            return RlPrompt {
                id: String::new(),
                prompt: vec![user(q)],
                targets: vec![],
                scorer,
                kind,
                n: None,
                keys: None,
            };
        }
        let (q, targets, scorer) = self.question(w, problems, kind, rng);
        RlPrompt { id: String::new(), prompt: vec![user(q)], targets, scorer, kind, n: None, keys: None }
    }

    /// (question, targets, scorer) of an arithmetic ([`ARITHMETIC`]) or fact ([`FACT`]) prompt.
    fn question(
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

/// The kinds of prompt [`draw`] draws: the two `build` writes (arithmetic, facts), one per format
/// instruction, named after its scorer (`format_json`, …), on training-split facts, and the
/// behaviours with a scorer of their own: forbidden requests (`refusal`), their benign look-alikes
/// (`benign`, rewarded when answered: with refusals rewarded alone, a round took over-refusal from
/// 0.05 to 0.25) and questions on invented entities of the training split (`idk`).
pub fn kinds() -> Vec<&'static str> {
    let mut k = vec![ARITHMETIC, FACT];
    k.extend(Format::ALL.iter().map(|f| f.scorer()));
    k.extend([REFUSAL, IDK, BENIGN]);
    k
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
        let p = pools.make(w, problems, kind, &mut rng);
        let q = &p.prompt[0].content;
        if crate::probes::covers(probe_prompts, q) || used.contains(q) || !seen.insert(q.clone()) {
            return None;
        }
        Some(p)
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
        let p = pools.make(w, problems, kind, &mut rng);
        let q = &p.prompt[0].content;
        if crate::probes::covers(probe_prompts, q) || !seen.insert(q.clone()) {
            return None;
        }
        Some(p)
    });
    for (i, p) in out.iter_mut().enumerate() {
        p.id = format!("rl-{i:05}");
    }
    out
}
