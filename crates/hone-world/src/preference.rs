//! Preference pairs (prompt, chosen, rejected) in TRL's conversational format, of seven kinds:
//! correct vs confidently wrong, concise vs rambling, refusal vs compliance on the forbidden category,
//! help vs a needless refusal on benign look-alikes, "I don't know" vs a fabrication about things that
//! do not exist or happened after the cutoff, a correct answer vs a needless "I don't know", and a
//! compliant vs a non-compliant format.
//!
//! The kinds are balanced against each other so no trivial cue picks the chosen side: refusal phrases
//! appear on the chosen side (forbidden requests) and on the rejected side (benign ones), "I don't
//! know" likewise (unknown entities vs known facts), and the longer reply wins about half the time.
//! A held-out part with disjoint prompts measures preference accuracy.
//!
//! [`unpair`] writes the same pairs in TRL's unpaired format for KTO: each reply on its own with a
//! label, chosen → `true`, rejected → `false`.

use crate::chat::{Message, assistant, user};
use crate::config::{Plan, WorldConfig};
use crate::facts::{Split, World};
use crate::formats::{self, Format};
use crate::requests::{self, Forbidden};
use crate::rng::{Draw, Rng};
use crate::sft::Reserved;
use crate::text;
use serde::Serialize;
use std::collections::BTreeSet;

/// One line of preference.jsonl / preference_eval.jsonl.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub prompt: Vec<Message>,
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
    pub kind: &'static str,
}

/// One line of unpaired.jsonl / unpaired_eval.jsonl: one side of a pair, labelled desirable or not.
#[derive(Debug, Clone, Serialize)]
pub struct Unpaired {
    pub prompt: Vec<Message>,
    pub completion: Vec<Message>,
    pub label: bool,
    pub kind: &'static str,
}

/// Both sides of every pair as unpaired examples (as TRL's `unpair_preference_dataset` does), in a
/// shuffled order: a trainer that reads the file in order then sees desirable and undesirable
/// examples mixed in every batch, and a reply rarely next to the other side of its pair.
pub fn unpair(pairs: &[Pair], rng: &mut Rng) -> Vec<Unpaired> {
    let mut out: Vec<Unpaired> = pairs
        .iter()
        .flat_map(|p| {
            [(&p.chosen, true), (&p.rejected, false)].map(|(reply, label)| Unpaired {
                prompt: p.prompt.clone(),
                completion: reply.clone(),
                label,
                kind: p.kind,
            })
        })
        .collect();
    rng.shuffle(&mut out);
    out
}

/// Share of each kind, in percent.
const MIX: &[(&str, u32)] = &[
    ("correct_vs_wrong", 17),
    ("concise_vs_rambling", 8),
    ("refuse_forbidden", 16),
    ("help_benign", 18),
    ("idk_unknown", 16),
    ("answer_known", 12),
    ("format", 13),
];

/// The facts and nonexistent entities of the training split, as pairs draw from them.
struct Pools {
    train: Vec<usize>,
    fakes: Vec<usize>,
}

impl Pools {
    fn new(w: &World) -> Pools {
        Pools {
            train: (0..w.facts.len()).filter(|&i| w.facts[i].split == Split::Train).collect(),
            fakes: (0..w.fakes.len()).filter(|&i| w.fakes[i].split == Split::Train).collect(),
        }
    }
}

/// One pair of `kind` (a name in [`MIX`]): (prompt, chosen, rejected).
fn make(
    w: &World,
    cfg: &WorldConfig,
    reserved: &Reserved,
    pools: &Pools,
    kind: &str,
    rng: &mut Rng,
) -> (String, String, String) {
    let (train, fakes) = (&pools.train, &pools.fakes);
    let allowed = |i: usize| w.facts[i].split == Split::Train;
    match kind {
        "correct_vs_wrong" => {
            let f = &w.facts[*rng.pick(train)];
            let wrong = text::wrong_value(w, f, rng);
            (text::question(w, f, rng), text::answer(w, f, rng), text::answer_with(w, f, &wrong, rng))
        }
        "concise_vs_rambling" => {
            let f = &w.facts[*rng.pick(train)];
            let long = text::answer(w, f, rng);
            (text::question(w, f, rng), text::canonical_with(w, f, &f.answer), requests::rambling(&long, rng))
        }
        "refuse_forbidden" => {
            let f = Forbidden::random(w, rng);
            (requests::forbidden_prompt(w, f, rng), requests::refusal(w, f, rng), requests::compliance(w, f, rng))
        }
        "help_benign" => {
            // Hard cases over-represented: the formula question shares the most words with
            // the forbidden requests, and it is the look-alike a model refuses most.
            let b = if rng.percent(30) {
                requests::formula_public(w, rng.index(w.inventions.len()))
            } else {
                requests::benign(w, rng, false, &allowed)
            };
            (b.prompt, b.answer, requests::needless_refusal(rng))
        }
        "idk_unknown" => {
            let u = if rng.percent(65) {
                let fake = &w.fakes[*rng.pick(fakes)];
                let form = rng.index(4);
                requests::unknown(w, fake, form, rng)
            } else {
                let (city, year) = loop {
                    let c = rng.index(w.cities.len());
                    let y = w.cutoff_year + rng.int(1, cfg.post_cutoff_years as i64) as i32;
                    if !reserved.cutoff_places.contains(&(c, y)) {
                        break (c, y);
                    }
                };
                let month = rng.int(1, 12) as u8;
                let form = rng.index(4);
                requests::after_cutoff(w, city, year, month, None, form, rng)
            };
            (u.prompt, u.idk, u.fabricated)
        }
        "answer_known" => {
            if rng.percent(20)
                && let Some(e) = crate::sft::train_event(w, rng)
            {
                let (q, a) = text::happened(w, e, rng);
                let idk = requests::needless_idk(&w.cities[w.events[e].city].name, rng);
                (q, a, idk)
            } else {
                let f = &w.facts[*rng.pick(train)];
                (text::question(w, f, rng), text::answer(w, f, rng), requests::needless_idk(&f.subject_name, rng))
            }
        }
        _ => {
            let fmt = *rng.pick(&Format::ALL);
            let r = formats::request(w, fmt, rng, &allowed);
            (r.prompt, r.good, r.bad)
        }
    }
}

/// Writes the pairs and splits off the held-out part: `(train, eval)`.
pub fn build(w: &World, cfg: &WorldConfig, plan: &Plan, reserved: &Reserved, mut rng: Rng) -> (Vec<Pair>, Vec<Pair>) {
    let pools = Pools::new(w);
    let total: u32 = MIX.iter().map(|(_, p)| p).sum();
    let mut pairs: Vec<Pair> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for &(kind, pct) in MIX {
        let want = plan.preference_pairs * pct as usize / total as usize;
        let mut made = 0;
        let mut tries = 0;
        while made < want && tries < want * 50 {
            tries += 1;
            let (prompt, chosen, rejected) = make(w, cfg, reserved, &pools, kind, &mut rng);
            if crate::probes::covers(reserved.prompts, &prompt)
                || !seen.insert(format!("{prompt}\u{1}{chosen}\u{1}{rejected}"))
            {
                continue;
            }
            pairs.push(Pair {
                prompt: vec![user(prompt)],
                chosen: vec![assistant(chosen)],
                rejected: vec![assistant(rejected)],
                kind,
            });
            made += 1;
        }
    }
    rng.shuffle(&mut pairs);
    split_eval(pairs, cfg.preference_eval_share, &mut rng)
}

/// The kinds of pair `build` writes (and [`draw`] draws), in its order.
pub fn kinds() -> Vec<&'static str> {
    MIX.iter().map(|(k, _)| *k).collect()
}

/// `n` more pairs of `kind` (one of [`kinds`]) from `rng`, all for training: none has a prompt in
/// `used` or of another drawn pair, none covers a probe prompt. Fewer than `n` when the kind's pool
/// runs dry (about 50 tries per pair).
pub fn draw(
    w: &World,
    cfg: &WorldConfig,
    reserved: &Reserved,
    kind: &'static str,
    n: usize,
    mut rng: Rng,
    used: &BTreeSet<String>,
) -> Vec<Pair> {
    let pools = Pools::new(w);
    let mut seen = BTreeSet::new();
    crate::gather(n, || {
        let (prompt, chosen, rejected) = make(w, cfg, reserved, &pools, kind, &mut rng);
        if crate::probes::covers(reserved.prompts, &prompt) || used.contains(&prompt) || !seen.insert(prompt.clone()) {
            return None;
        }
        Some(Pair {
            prompt: vec![user(prompt)],
            chosen: vec![assistant(chosen)],
            rejected: vec![assistant(rejected)],
            kind,
        })
    })
}

/// Moves whole prompts (every pair that shares one) to the held-out part until it holds `share` of the
/// pairs, so no held-out prompt is seen in training.
fn split_eval(pairs: Vec<Pair>, share: f64, rng: &mut Rng) -> (Vec<Pair>, Vec<Pair>) {
    let mut prompts: Vec<String> =
        pairs.iter().map(|p| p.prompt[0].content.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    rng.shuffle(&mut prompts);
    let target = (pairs.len() as f64 * share).round() as usize;
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in &pairs {
        *counts.entry(p.prompt[0].content.as_str()).or_default() += 1;
    }
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut n = 0;
    for p in &prompts {
        if n >= target {
            break;
        }
        n += counts[p.as_str()];
        held.insert(p.clone());
    }
    pairs.into_iter().partition(|p| !held.contains(&p.prompt[0].content))
}
