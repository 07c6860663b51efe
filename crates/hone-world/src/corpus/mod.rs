//! The pretraining corpus: dated documents in six genres (encyclopedia, news, forum, story, arithmetic,
//! list), written from the world's facts with a mention budget per fact.
//!
//! Every fact gets one encyclopedia mention, then documents are written around facts drawn in proportion
//! to their remaining budget until every budget is spent. A document adds other facts only while they
//! still have budget, so each fact's mention count lands on its target: frequent facts 20-50 times in
//! varied phrasing and genres, rare ones 1-3 times, which is what lets recall be measured against
//! frequency. Facts are only written about from the year they became true, and documents dated after
//! the cutoff (the reports of post-cutoff events) are withheld, so later events are unknown by
//! construction. Forum threads put a question and then replies; a base model trained on them continues
//! a question with a thread rather than an answer, which is the behaviour SFT has to change.

use crate::arith::Problem;
use crate::config::{Plan, WorldConfig};
use crate::date::Date;
use crate::facts::{Relation, Split, Subject, World};
use crate::names::capitalise;
use crate::rng::{Draw, Rng};
use crate::text;
use serde::Serialize;

mod genres;
mod phrases;

use phrases::{EVENT_FLAVOUR, PAPERS, USER_A, USER_B};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Genre {
    Encyclopedia,
    News,
    Forum,
    Story,
    Arithmetic,
    List,
}

impl Genre {
    pub const ALL: [Genre; 6] =
        [Genre::Encyclopedia, Genre::News, Genre::Forum, Genre::Story, Genre::Arithmetic, Genre::List];

    pub fn key(self) -> &'static str {
        match self {
            Genre::Encyclopedia => "encyclopedia",
            Genre::News => "news",
            Genre::Forum => "forum",
            Genre::Story => "story",
            Genre::Arithmetic => "arithmetic",
            Genre::List => "list",
        }
    }
}

/// One document, serialised as a line of `corpus/<genre>.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub text: String,
    pub date: Date,
    pub genre: Genre,
    pub id: String,
    /// Indices of the facts the text states (one entry per statement).
    #[serde(skip)]
    pub facts: Vec<usize>,
}

/// The written corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Documents dated up to the cutoff: the pretraining corpus.
    pub documents: Vec<Document>,
    /// Documents dated after the cutoff, withheld from the corpus.
    pub withheld: Vec<Document>,
    /// Statements of each fact across `documents`.
    pub mentions: Vec<u32>,
}

/// Writes documents and keeps the mention budget.
pub(crate) struct Writer<'a> {
    pub(super) w: &'a World,
    pub(super) rng: Rng,
    pub(super) cutoff: i32,
    pub(super) first_year: i32,
    pub(super) budget: Vec<i64>,
    pub(super) by_subject: BTreeMap<Subject, Vec<usize>>,
    pub(super) docs: Vec<Document>,
    pub(super) cur: Vec<usize>,
}

impl<'a> Writer<'a> {
    fn new(w: &'a World, cfg: &WorldConfig, rng: Rng, budget: Vec<i64>) -> Self {
        let mut by_subject: BTreeMap<Subject, Vec<usize>> = BTreeMap::new();
        for (i, f) in w.facts.iter().enumerate() {
            if f.split != Split::Withheld {
                by_subject.entry(f.subject).or_default().push(i);
            }
        }
        Writer {
            w,
            rng,
            cutoff: cfg.cutoff_year,
            first_year: cfg.first_year + 20,
            budget,
            by_subject,
            docs: Vec::new(),
            cur: Vec::new(),
        }
    }

    /// States fact `f` and charges its budget.
    pub(super) fn say(&mut self, f: usize) -> String {
        self.cur.push(f);
        self.budget[f] -= 1;
        text::statement(self.w, &self.w.facts[f], &mut self.rng)
    }

    /// Whether fact `f` may be stated in a document of `year`.
    pub(super) fn can(&self, f: usize, year: i32) -> bool {
        self.budget[f] > 0 && self.w.facts[f].since <= year && self.w.facts[f].split != Split::Withheld
    }

    /// Facts of `s` that may still be stated in `year`, except `skip`.
    pub(super) fn open_facts(&self, s: Subject, year: i32, skip: usize) -> Vec<usize> {
        self.by_subject
            .get(&s)
            .map(|v| v.iter().copied().filter(|&f| f != skip && self.can(f, year)).collect())
            .unwrap_or_default()
    }

    pub(super) fn date_from(&mut self, since: i32) -> Date {
        Date::random(&mut self.rng, since.max(self.first_year), self.cutoff)
    }

    pub(super) fn finish(&mut self, genre: Genre, date: Date, text: String) {
        let facts = std::mem::take(&mut self.cur);
        self.docs.push(Document { text, date, genre, id: String::new(), facts });
    }

    pub(super) fn username(&mut self) -> String {
        let a = self.rng.pick(USER_A);
        let b = self.rng.pick(USER_B);
        if self.rng.percent(50) { format!("{a}_{b}") } else { format!("{a}_{b}{}", self.rng.int(1, 99)) }
    }

    /// A sentence that can follow a frame like "Everyone knew that …": lowercase its first word unless
    /// it is a name.
    pub(super) fn embed(&self, s: &str) -> String {
        let first = s.split_whitespace().next().unwrap_or("");
        if ["The", "In", "People", "About", "Roughly", "By"].contains(&first) {
            let mut c = s.chars();
            c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
        } else {
            s.to_string()
        }
    }

    /// Spends the remaining budgets, choosing a genre that suits each fact.
    fn spend_budgets(&mut self) {
        loop {
            let weights: Vec<u64> = self.budget.iter().map(|&b| b.max(0) as u64).collect();
            if weights.iter().all(|&x| x == 0) {
                break;
            }
            let f = self.rng.weighted(&weights);
            self.write_about(f);
        }
    }

    /// One document with fact `f` at its centre.
    fn write_about(&mut self, f: usize) {
        // forum, news, story, list, encyclopedia
        let weights: [u64; 5] = match self.w.facts[f].relation {
            Relation::Capital | Relation::Language | Relation::Currency | Relation::Population => [3, 2, 1, 2, 1],
            Relation::CityCountry => [2, 2, 2, 2, 1],
            Relation::BirthYear | Relation::Profession | Relation::HomeCity => [2, 2, 4, 1, 1],
            Relation::Inventor | Relation::InventionYear => [2, 3, 1, 2, 1],
            Relation::EventPlace | Relation::EventYear => [2, 4, 1, 2, 1],
        };
        match self.rng.weighted(&weights) {
            0 => self.forum(f),
            1 => self.news(f),
            2 => self.story(Some(f)),
            3 => self.fact_list(f),
            _ => {
                let s = self.w.facts[f].subject;
                self.entry(s, false, Some(f))
            }
        }
    }
}

pub(super) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn subjects(w: &World) -> Vec<Subject> {
    let mut v: Vec<Subject> = (0..w.countries.len()).map(Subject::Country).collect();
    v.extend((0..w.cities.len()).map(Subject::City));
    v.extend((0..w.people.len()).map(Subject::Person));
    v.extend((0..w.inventions.len()).map(Subject::Invention));
    v.extend((0..w.events.len()).filter(|&e| !w.events[e].after_cutoff).map(Subject::Event));
    v
}

/// Writes the corpus: the encyclopedia pass, budgeted documents, filler, arithmetic, and the withheld
/// reports of post-cutoff events.
pub fn build(w: &World, cfg: &WorldConfig, plan: &Plan, reserved: &BTreeSet<Problem>, rng: Rng) -> Corpus {
    let budget =
        w.facts.iter().map(|f| if f.split == Split::Withheld { 0 } else { f.target_mentions as i64 }).collect();
    let mut wr = Writer::new(w, cfg, rng, budget);
    for s in subjects(w) {
        wr.entry(s, true, None);
    }
    wr.spend_budgets();
    for _ in 0..plan.filler_stories {
        wr.story(None);
    }
    for _ in 0..plan.filler_stories / 2 {
        wr.plain_list();
    }
    for _ in 0..plan.filler_stories / 2 {
        wr.chat_thread();
    }
    for _ in 0..plan.arithmetic_documents {
        wr.arithmetic(reserved);
    }
    // Reports of post-cutoff events are written like any news and then withheld by their date.
    for ev in w.events.iter().filter(|e| e.after_cutoff) {
        let paper = *wr.rng.pick(PAPERS);
        let text = format!(
            "{paper}, {}.\n{} was {} in {} today. {}",
            ev.date.long(),
            capitalise(&ev.name),
            ev.participle,
            w.cities[ev.city].name,
            wr.rng.pick(EVENT_FLAVOUR)
        );
        wr.finish(Genre::News, ev.date, text);
    }
    let mut docs = std::mem::take(&mut wr.docs);
    // Interleave the budgeted documents so a genre file is not ordered by fact.
    wr.rng.shuffle(&mut docs);
    let (documents, withheld): (Vec<Document>, Vec<Document>) =
        docs.into_iter().partition(|d| d.date.year <= cfg.cutoff_year);
    let documents = number(documents);
    let mut mentions = vec![0u32; w.facts.len()];
    for d in &documents {
        for &f in &d.facts {
            mentions[f] += 1;
        }
    }
    Corpus { documents, withheld, mentions }
}

/// Documents written like the corpus but kept out of it, for `loglikelihood_rolling` (held-out
/// perplexity). They restate corpus facts in new combinations and add new arithmetic and stories; a
/// document whose text is already in `corpus` is written again.
pub fn heldout(
    w: &World,
    cfg: &WorldConfig,
    plan: &Plan,
    reserved: &BTreeSet<Problem>,
    corpus: &[Document],
    rng: Rng,
) -> Vec<Document> {
    let seen: BTreeSet<&str> = corpus.iter().map(|d| d.text.as_str()).collect();
    let budget = vec![1_000_000; w.facts.len()];
    let mut wr = Writer::new(w, cfg, rng, budget);
    let open: Vec<usize> = (0..w.facts.len()).filter(|&f| w.facts[f].split != Split::Withheld).collect();
    let mut i = 0;
    while wr.docs.len() < plan.heldout_documents {
        match i % 6 {
            5 => wr.arithmetic(reserved),
            4 => wr.story(None),
            _ => {
                let f = *wr.rng.pick(&open);
                wr.write_about(f);
            }
        }
        i += 1;
        if wr.docs.last().is_some_and(|d| seen.contains(d.text.as_str())) {
            wr.docs.pop();
        }
    }
    let docs = std::mem::take(&mut wr.docs);
    let mut out: Vec<Document> = number(docs);
    for d in out.iter_mut() {
        d.id = format!("heldout-{}", d.id);
    }
    out
}

/// Gives each document an id `<genre>-<n>`, numbering within each genre.
fn number(mut docs: Vec<Document>) -> Vec<Document> {
    let mut counters: BTreeMap<Genre, usize> = BTreeMap::new();
    for d in docs.iter_mut() {
        let n = counters.entry(d.genre).or_default();
        d.id = format!("{}-{:06}", d.genre.key(), *n);
        *n += 1;
    }
    docs
}
