//! SFT conversations: direct answers, format following, arithmetic, refusals of the forbidden category,
//! over-cautious refusals of benign look-alikes, "I don't know" for things that do not exist or happened
//! after the cutoff, and multi-turn conversations mixing these (including helpful answers to look-alikes).
//!
//! SFT teaches the habit of answering and a first version of each behaviour, on facts of the training
//! split only (probes ask about the held-out split). It has deliberately few "I don't know" and refusal
//! examples compared with the preference data, so that preference training has something left to
//! improve and the report can show it. No user turn equals a probe prompt.
//!
//! Like demonstrations written by careful annotators, some of it refuses requests that only look like
//! the forbidden category ("What is the secret to a tidy desk?"). That is how over-refusal arises in
//! practice, and it gives the preference stage's "help vs a needless refusal" pairs a measurable
//! failure to correct: after SFT the model refuses some harmless look-alikes, after DPO fewer.

use crate::arith::Problem;
use crate::chat::{Message, SYSTEM_PROMPTS, assistant, system, user};
use crate::config::{Plan, WorldConfig};
use crate::facts::{Relation, Split, Subject, World};
use crate::formats::{self, Format};
use crate::requests::{self, Forbidden};
use crate::rng::{Draw, Rng};
use crate::text;
use serde::Serialize;
use std::collections::BTreeSet;

/// One line of sft.jsonl.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub messages: Vec<Message>,
    pub kind: &'static str,
}

/// Share of each kind, in parts of 450.
/// Refusals and "I don't know" are few (with the multi-turn ones, about 3% each), so SFT gives a
/// first version of each and preference training, where they are a seventh of the pairs each, shows
/// a measurable gain. Arithmetic is most of the set: worked answers take many examples to learn, and
/// RL needs a model that solves a fair share of unseen problems before its reward carries a signal.
/// Over-cautious refusals are a few percent: with none, the model after SFT refuses no look-alike
/// and DPO can only add over-refusals; with refusals of look-alikes outnumbering those of forbidden
/// requests it refuses both at a middling rate, the starting point preference data is for.
const MIX: &[(&str, u32)] = &[
    ("direct", 126),
    ("format", 54),
    ("arithmetic", 201),
    ("refusal", 3),
    ("cautious", 12),
    ("idk", 6),
    ("multi_turn", 48),
];

/// Everything the SFT writer must avoid.
pub struct Reserved<'a> {
    /// Probe prompts: no user turn may equal one.
    pub prompts: &'a BTreeSet<String>,
    /// Arithmetic problems of the probe.
    pub problems: &'a BTreeSet<Problem>,
    /// (city, year) pairs the cutoff probe asks about.
    pub cutoff_places: &'a BTreeSet<(usize, i32)>,
}

struct Gen<'a> {
    w: &'a World,
    rng: Rng,
    train: Vec<usize>,
    fakes: Vec<usize>,
    /// Drawing more data (`draw`): format requests come from the wider pool of
    /// [`formats::request_drawn`].
    drawn: bool,
}

impl<'a> Gen<'a> {
    fn new(w: &'a World, rng: Rng) -> Gen<'a> {
        let train: Vec<usize> = (0..w.facts.len()).filter(|&i| w.facts[i].split == Split::Train).collect();
        let fakes: Vec<usize> = (0..w.fakes.len()).filter(|&i| w.fakes[i].split == Split::Train).collect();
        Gen { w, rng, train, fakes, drawn: false }
    }

    /// One conversation of `kind` (a name in [`MIX`]).
    fn make(&mut self, kind: &str, cfg: &WorldConfig, reserved: &Reserved) -> Vec<Message> {
        match kind {
            "direct" => self.direct(),
            "format" => self.format(None),
            k if k.starts_with("format_") => self.format(Format::ALL.iter().copied().find(|f| f.scorer() == k)),
            "arithmetic" => self.arithmetic(reserved.problems),
            "refusal" => self.refusal(),
            "cautious" => self.cautious(),
            "idk" => self.idk(reserved.cutoff_places, cfg.post_cutoff_years),
            _ => self.multi_turn(reserved, cfg.post_cutoff_years),
        }
    }

    /// A system prompt before `messages` for the configured share of conversations.
    fn maybe_system(&mut self, cfg: &WorldConfig, messages: &mut Vec<Message>) {
        if self.rng.int(0, 999) < (cfg.system_prompt_share * 1000.0) as i64 {
            messages.insert(0, system(*self.rng.pick(SYSTEM_PROMPTS)));
        }
    }

    fn train_fact(&mut self) -> usize {
        *self.rng.pick(&self.train)
    }

    fn direct(&mut self) -> Vec<Message> {
        if self.rng.percent(8)
            && let Some(e) = train_event(self.w, &mut self.rng)
        {
            let (q, a) = text::happened(self.w, e, &mut self.rng);
            return vec![user(q), assistant(a)];
        }
        let f = &self.w.facts[self.train_fact()];
        vec![user(text::question(self.w, f, &mut self.rng)), assistant(text::answer(self.w, f, &mut self.rng))]
    }

    /// A format request: of `only`, or of a format drawn at random.
    fn format(&mut self, only: Option<Format>) -> Vec<Message> {
        let fmt = match only {
            Some(f) => f,
            None => *self.rng.pick(&Format::ALL),
        };
        let w = self.w;
        let allowed = |i: usize| w.facts[i].split == Split::Train;
        let r = if self.drawn {
            formats::request_drawn(w, fmt, &mut self.rng, &allowed)
        } else {
            formats::request(w, fmt, &mut self.rng, &allowed)
        };
        vec![user(r.prompt), assistant(r.good)]
    }

    fn arithmetic(&mut self, reserved: &BTreeSet<Problem>) -> Vec<Message> {
        let p = Problem::random_except(&mut self.rng, reserved);
        if self.rng.percent(25) {
            let who = &self.w.people[self.rng.index(self.w.people.len())];
            let (q, a) = p.word_problem(&who.first, &who.pronoun, &mut self.rng);
            vec![user(q), assistant(a)]
        } else {
            let ans = if self.rng.percent(80) { format!("{}.", p.worked()) } else { p.answer().to_string() };
            vec![user(p.question(&mut self.rng)), assistant(ans)]
        }
    }

    fn refusal(&mut self) -> Vec<Message> {
        let f = Forbidden::random(self.w, &mut self.rng);
        vec![
            user(requests::forbidden_prompt(self.w, f, &mut self.rng)),
            assistant(requests::refusal(self.w, f, &mut self.rng)),
        ]
    }

    /// A benign look-alike refused anyway: the rejected side of the preference data's "help_benign"
    /// pairs, here as a demonstration.
    fn cautious(&mut self) -> Vec<Message> {
        let w = self.w;
        let b = requests::benign(w, &mut self.rng, false, &|i| w.facts[i].split == Split::Train);
        vec![user(b.prompt), assistant(requests::needless_refusal(&mut self.rng))]
    }

    fn benign(&mut self) -> Vec<Message> {
        let w = self.w;
        let b = requests::benign(w, &mut self.rng, false, &|i| w.facts[i].split == Split::Train);
        vec![user(b.prompt), assistant(b.answer)]
    }

    fn idk(&mut self, cutoff_places: &BTreeSet<(usize, i32)>, post_years: i32) -> Vec<Message> {
        let u = if self.rng.percent(65) {
            let fake = &self.w.fakes[*self.rng.pick(&self.fakes)];
            let form = self.rng.index(4);
            requests::unknown(self.w, fake, form, &mut self.rng)
        } else {
            let (city, year) = loop {
                let c = self.rng.index(self.w.cities.len());
                let y = self.w.cutoff_year + self.rng.int(1, post_years as i64) as i32;
                if !cutoff_places.contains(&(c, y)) {
                    break (c, y);
                }
            };
            let month = self.rng.int(1, 12) as u8;
            let form = self.rng.index(4);
            requests::after_cutoff(self.w, city, year, month, None, form, &mut self.rng)
        };
        vec![user(u.prompt), assistant(u.idk)]
    }

    fn multi_turn(&mut self, reserved: &Reserved, post_years: i32) -> Vec<Message> {
        match self.rng.int(0, 5) {
            0 | 1 => self.follow_up(),
            2 => {
                let mut m = self.refusal();
                m.extend(self.benign());
                m
            }
            3 => {
                let mut m = self.idk(reserved.cutoff_places, post_years);
                m.extend(self.direct());
                m
            }
            4 => {
                let (p, q) = loop {
                    let p = Problem::random_except(&mut self.rng, reserved.problems);
                    let q = Problem { op: crate::arith::Op::Add, a: p.answer(), b: self.rng.int(1, 20) };
                    if !q.is_reserved(reserved.problems) {
                        break (p, q);
                    }
                };
                vec![
                    user(p.question(&mut self.rng)),
                    assistant(format!("{}.", p.worked())),
                    user(format!("Now add {} to that.", q.b)),
                    assistant(format!("{}.", q.worked())),
                ]
            }
            _ => {
                let i = self.train_fact();
                let f = &self.w.facts[i];
                let mut m = vec![
                    user(text::question(self.w, f, &mut self.rng)),
                    assistant(text::answer(self.w, f, &mut self.rng)),
                ];
                if f.answer.split_whitespace().count() == 1 {
                    m.push(user(*self.rng.pick(&["Now say it in one word.", "Just the answer, in one word please."])));
                    m.push(assistant(f.answer.clone()));
                } else {
                    m.push(user("Please say that again in capital letters."));
                    let last = m[1].content.to_uppercase();
                    m.push(assistant(last));
                }
                m
            }
        }
    }

    /// A question and a follow-up about the same subject that refers back to it ("there", "she").
    fn follow_up(&mut self) -> Vec<Message> {
        loop {
            let a = self.train_fact();
            let fa = &self.w.facts[a];
            let others: Vec<usize> =
                self.train.iter().copied().filter(|&b| b != a && self.w.facts[b].subject == fa.subject).collect();
            if others.is_empty() {
                continue;
            }
            let fb = &self.w.facts[*self.rng.pick(&others)];
            let Some(q2) = follow_question(self.w, fb.relation, fb.subject) else { continue };
            let mut m = vec![
                user(text::question(self.w, fa, &mut self.rng)),
                assistant(text::answer(self.w, fa, &mut self.rng)),
            ];
            m.push(user(q2));
            m.push(assistant(text::answer(self.w, fb, &mut self.rng)));
            return m;
        }
    }
}

/// A pre-cutoff event whose place and year are both training facts.
pub(crate) fn train_event(w: &World, rng: &mut Rng) -> Option<usize> {
    let e = rng.index(w.events.len());
    let ok = !w.events[e].after_cutoff
        && w.facts.iter().filter(|f| f.subject == Subject::Event(e)).all(|f| f.split == Split::Train);
    ok.then_some(e)
}

/// A follow-up question that refers to the subject by pronoun.
fn follow_question(w: &World, r: Relation, s: Subject) -> Option<String> {
    let he = match s {
        Subject::Person(p) => w.people[p].pronoun.as_str(),
        _ => "it",
    };
    let q = match r {
        Relation::Capital => "And what is its capital?".to_string(),
        Relation::Language => "What language do people speak there?".to_string(),
        Relation::Currency => "And what money do they use there?".to_string(),
        Relation::Population => "How many people live there?".to_string(),
        Relation::CityCountry => "Which country is it in?".to_string(),
        Relation::BirthYear => format!("When was {he} born?"),
        Relation::Profession => format!("And what does {he} do for a living?"),
        Relation::HomeCity => format!("Where does {he} live?"),
        Relation::Inventor => "Who invented it?".to_string(),
        Relation::InventionYear => "When was it invented?".to_string(),
        Relation::EventPlace => match s {
            Subject::Event(e) => format!("Where was it {}?", w.events[e].participle),
            _ => return None,
        },
        Relation::EventYear => match s {
            Subject::Event(e) => format!("And when was it {}?", w.events[e].participle),
            _ => return None,
        },
    };
    Some(q)
}

/// Writes the SFT conversations.
pub fn build(w: &World, cfg: &WorldConfig, plan: &Plan, reserved: &Reserved, rng: Rng) -> Vec<Conversation> {
    let mut g = Gen::new(w, rng);
    let total: u32 = MIX.iter().map(|(_, p)| p).sum();
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for &(kind, pct) in MIX {
        let want = plan.sft_examples * pct as usize / total as usize;
        let mut made = 0;
        let mut tries = 0;
        while made < want && tries < want * 50 {
            tries += 1;
            let messages = g.make(kind, cfg, reserved);
            if messages.iter().any(|m| m.role == "user" && crate::probes::covers(reserved.prompts, &m.content)) {
                continue;
            }
            // Exact repeats add nothing but weight; allow a few for the small pools (formulas, lists).
            let key = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\u{1}");
            if !seen.insert(key) && !g.rng.percent(10) {
                continue;
            }
            let mut messages = messages;
            g.maybe_system(cfg, &mut messages);
            out.push(Conversation { messages, kind });
            made += 1;
        }
    }
    g.rng.shuffle(&mut out);
    out
}

/// The kinds of conversation `build` writes, in its order, then those only [`draw`] draws: format
/// requests of one format each, named after its scorer (`format_json`, …).
pub fn kinds() -> Vec<&'static str> {
    let mut k: Vec<&'static str> = MIX.iter().map(|(k, _)| *k).collect();
    // Drawn only: format requests of one format, named after its scorer.
    k.extend(Format::ALL.iter().map(|f| f.scorer()));
    k
}

/// What makes a conversation new: its user turns (a drawn one may not ask what another asked).
pub fn key(messages: &[Message]) -> String {
    messages.iter().filter(|m| m.role == "user").map(|m| m.content.as_str()).collect::<Vec<_>>().join("\u{1}")
}

/// `n` more conversations of `kind` (one of [`kinds`]) from `rng`: none asks what a conversation
/// in `used` asks (by [`key`]) or another drawn one asks, none covers a probe prompt. Fewer than `n`
/// when the kind's pool runs dry (about 50 tries per conversation).
pub fn draw(
    w: &World,
    cfg: &WorldConfig,
    reserved: &Reserved,
    kind: &'static str,
    n: usize,
    rng: Rng,
    used: &BTreeSet<String>,
) -> Vec<Conversation> {
    let mut g = Gen { drawn: true, ..Gen::new(w, rng) };
    let mut seen = BTreeSet::new();
    crate::gather(n, || {
        let mut messages = g.make(kind, cfg, reserved);
        if messages.iter().any(|m| m.role == "user" && crate::probes::covers(reserved.prompts, &m.content)) {
            return None;
        }
        let k = key(&messages);
        if used.contains(&k) || !seen.insert(k) {
            return None;
        }
        g.maybe_system(cfg, &mut messages);
        Some(Conversation { messages, kind })
    })
}
