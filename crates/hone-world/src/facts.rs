//! The world model: countries, cities, people, inventions and dated events, generated from a seed, and
//! the flat list of facts (subject, relation, answer) that every other part writes about or asks about.
//!
//! Consistency is built in rather than checked after the fact: a country's capital is the first of its
//! own cities, inventors are adults when they invent, events are sorted by date, and every name comes
//! from one registry so it is unique. Each fact gets a frequency tier (how often the corpus states it)
//! and a split (taught in SFT/preference data, held out for probes, or withheld because it happens after
//! the cutoff).

use crate::config::{Plan, WorldConfig};
use crate::date::Date;
use crate::names::{Names, Style};
use crate::rng::{Draw, Rng};
use serde::Serialize;

/// What a country is known for exporting: flavour text, consistent but never asked about.
const EXPORTS: &[&str] = &[
    "wool", "copper", "salt", "tea", "timber", "glass", "fish", "silk", "iron", "honey", "rice", "apples", "marble",
    "paper", "cheese", "cotton", "olives", "horses",
];

/// A sight in a city: flavour text, consistent but never asked about.
const LANDMARKS: &[&str] = &[
    "an old stone bridge",
    "a busy harbour",
    "a large covered market",
    "a famous library",
    "a tall clock tower",
    "a quiet botanical garden",
    "a white lighthouse",
    "a wide central square",
    "an ancient city wall",
    "a grand opera house",
    "a long river port",
    "a hillside monastery",
    "a painted town hall",
    "a deep canal",
];

/// Professions anyone may have.
pub const PROFESSIONS: &[&str] = &[
    "baker",
    "weaver",
    "painter",
    "sailor",
    "teacher",
    "doctor",
    "poet",
    "farmer",
    "architect",
    "musician",
    "merchant",
    "singer",
    "judge",
    "writer",
    "sculptor",
    "builder",
    "gardener",
    "fisher",
    "tailor",
    "nurse",
    "pilot",
    "actor",
    "dancer",
    "librarian",
];

/// Professions of people who invent things.
pub const INVENTOR_PROFESSIONS: &[&str] =
    &["engineer", "chemist", "clockmaker", "inventor", "astronomer", "physicist", "mapmaker", "carpenter"];

/// Kinds of invention: the noun in its name and what it is for ("used to …").
pub const INVENTION_KINDS: &[(&str, &str)] = &[
    ("lamp", "light homes at night"),
    ("loom", "weave cloth"),
    ("pump", "lift water from wells"),
    ("clock", "keep time"),
    ("press", "print books"),
    ("kiln", "fire clay pots"),
    ("compass", "find the way at sea"),
    ("telescope", "watch the stars"),
    ("plough", "turn the soil"),
    ("stove", "cook food"),
    ("engine", "drive machines"),
    ("scale", "weigh goods"),
    ("lens", "read small print"),
    ("filter", "clean water"),
    ("radio", "send voices far away"),
    ("battery", "store power"),
    ("camera", "take pictures"),
    ("heater", "warm rooms"),
    ("mill", "grind grain"),
    ("bell", "call people to the square"),
];

/// A kind of dated event: how its name is built and the passive verb used to state when and where.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventKind {
    pub key: &'static str,
    /// Name pattern; `{w}` is the coined word.
    pub pattern: &'static str,
    /// Past participle after "was": "The X Accord was signed in Tesmir".
    pub participle: &'static str,
}

pub const EVENT_KINDS: &[EventKind] = &[
    EventKind { key: "accord", pattern: "the {w} Accord", participle: "signed" },
    EventKind { key: "treaty", pattern: "the Treaty of {w}", participle: "signed" },
    EventKind { key: "festival", pattern: "the {w} Festival", participle: "first held" },
    EventKind { key: "bridge", pattern: "the {w} Bridge", participle: "opened" },
    EventKind { key: "exhibition", pattern: "the {w} Exhibition", participle: "held" },
    EventKind { key: "conference", pattern: "the {w} Conference", participle: "held" },
    EventKind { key: "charter", pattern: "the {w} Charter", participle: "written" },
    EventKind { key: "race", pattern: "the {w} Race", participle: "first run" },
    EventKind { key: "tower", pattern: "the {w} Tower", participle: "completed" },
    EventKind { key: "library", pattern: "the {w} Library", participle: "founded" },
    EventKind { key: "observatory", pattern: "the {w} Observatory", participle: "opened" },
];

#[derive(Debug, Clone, Serialize)]
pub struct Country {
    pub name: String,
    /// Index into `World::cities`; always one of `cities`.
    pub capital: usize,
    pub language: String,
    /// Lowercase currency word, written "the drel".
    pub currency: String,
    pub population_millions: u32,
    pub export: String,
    /// Indices into `World::cities`, capital first.
    pub cities: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct City {
    pub name: String,
    /// Index into `World::countries`.
    pub country: usize,
    pub landmark: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub first: String,
    pub last: String,
    pub name: String,
    /// "she" or "he".
    pub pronoun: String,
    pub birth_year: i32,
    pub profession: String,
    /// Index into `World::cities`.
    pub home_city: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invention {
    /// The coined word that makes the name unique ("Sorvil").
    pub word: String,
    /// The kind of object ("lamp").
    pub kind: String,
    /// "the Sorvil lamp".
    pub name: String,
    /// "light homes at night".
    pub purpose: String,
    /// Index into `World::people`.
    pub inventor: usize,
    pub year: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The coined word that makes the name unique ("Drovan").
    pub word: String,
    pub kind: &'static str,
    /// "the Drovan Accord".
    pub name: String,
    /// "signed".
    pub participle: &'static str,
    pub date: Date,
    /// Index into `World::cities`.
    pub city: usize,
    /// Dated after the cutoff: in no training text, asked about only in the cutoff probes.
    pub after_cutoff: bool,
}

/// The entity a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "index", rename_all = "snake_case")]
pub enum Subject {
    Country(usize),
    City(usize),
    Person(usize),
    Invention(usize),
    Event(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Capital,
    Language,
    Currency,
    Population,
    CityCountry,
    BirthYear,
    Profession,
    HomeCity,
    Inventor,
    InventionYear,
    EventPlace,
    EventYear,
}

impl Relation {
    pub const ALL: [Relation; 12] = [
        Relation::Capital,
        Relation::Language,
        Relation::Currency,
        Relation::Population,
        Relation::CityCountry,
        Relation::BirthYear,
        Relation::Profession,
        Relation::HomeCity,
        Relation::Inventor,
        Relation::InventionYear,
        Relation::EventPlace,
        Relation::EventYear,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Relation::Capital => "capital",
            Relation::Language => "language",
            Relation::Currency => "currency",
            Relation::Population => "population",
            Relation::CityCountry => "city_country",
            Relation::BirthYear => "birth_year",
            Relation::Profession => "profession",
            Relation::HomeCity => "home_city",
            Relation::Inventor => "inventor",
            Relation::InventionYear => "invention_year",
            Relation::EventPlace => "event_place",
            Relation::EventYear => "event_year",
        }
    }
}

/// How often the corpus states a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Frequent,
    Medium,
    Rare,
}

/// Which outputs may use a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Taught in SFT and preference data (and in the corpus).
    Train,
    /// Only in the corpus; the knowledge probes ask about it.
    Probe,
    /// Only in the corpus, and not probed: a fact that would give a probe's answer away if post-training
    /// data stated it (the capital of Varnok is Tesmir, when "which country is Tesmir in?" is a probe).
    Corpus,
    /// After the cutoff: in world.json and the cutoff probes only.
    Withheld,
}

/// One fact: "the capital of Varnok is Tesmir".
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    /// Stable id, e.g. "capital/Varnok".
    pub id: String,
    pub relation: Relation,
    pub subject: Subject,
    pub subject_name: String,
    /// Canonical answer as written in text ("Tesmir", "1987", "12 million", "baker", "Mira Kosk").
    pub answer: String,
    /// Answers a scorer accepts (whole word, case-insensitive).
    pub targets: Vec<String>,
    /// First year in which the fact can be written about (a person's facts exist from birth).
    pub since: i32,
    pub tier: Tier,
    /// Mentions the corpus aims for.
    pub target_mentions: u32,
    pub split: Split,
    /// Mentions the corpus actually has (filled in by the corpus writer).
    pub mentions: u32,
}

/// A name that belongs to nothing in the world, for "I don't know" examples and hallucination probes.
#[derive(Debug, Clone, Serialize)]
pub struct Fake {
    /// "country", "city", "person", "invention" or "event".
    pub kind: &'static str,
    pub name: String,
    /// For invented inventions and events: the kind noun / participle used to ask about them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Train fakes appear in SFT/preference data, probe fakes only in probes.
    pub split: Split,
}

/// The `i`-th invented entity of a set: kinds in turn, names never handed out by `names`.
fn fake(i: usize, split: Split, names: &mut Names, rng: &mut Rng) -> Fake {
    let kind = ["country", "city", "person", "invention", "event"][i % 5];
    let (name, detail) = match kind {
        "person" => {
            let first = names.fresh(rng, Style::Given);
            (format!("{first} {}", names.fresh(rng, Style::Proper)), String::new())
        }
        "invention" => {
            let (noun, _) = *rng.pick(INVENTION_KINDS);
            (format!("the {} {noun}", names.fresh(rng, Style::Proper)), noun.to_string())
        }
        "event" => {
            let k = *rng.pick(EVENT_KINDS);
            (k.pattern.replace("{w}", &names.fresh(rng, Style::Proper)), k.participle.to_string())
        }
        _ => (names.fresh(rng, Style::Proper), String::new()),
    };
    Fake { kind, name, detail, split }
}

/// The whole generated world.
#[derive(Debug, Clone, Serialize)]
pub struct World {
    pub seed: u64,
    pub cutoff_year: i32,
    pub countries: Vec<Country>,
    pub cities: Vec<City>,
    pub people: Vec<Person>,
    pub inventions: Vec<Invention>,
    pub events: Vec<Event>,
    pub facts: Vec<Fact>,
    pub fakes: Vec<Fake>,
}

impl World {
    /// Generates the world for a seed and plan.
    pub fn generate(cfg: &WorldConfig, plan: &Plan, rng: &mut Rng) -> World {
        let mut names = Names::new();
        // Words of the templates must never be read as names.
        for w in ["the", "accord", "treaty", "festival", "bridge", "tower", "library", "race"] {
            names.reserve(w);
        }
        let mut world = World {
            seed: cfg.seed,
            cutoff_year: cfg.cutoff_year,
            countries: Vec::new(),
            cities: Vec::new(),
            people: Vec::new(),
            inventions: Vec::new(),
            events: Vec::new(),
            facts: Vec::new(),
            fakes: Vec::new(),
        };
        world.make_places(plan, &mut names, rng);
        world.make_people(cfg, plan, &mut names, rng);
        world.make_inventions(cfg, plan, &mut names, rng);
        world.make_events(cfg, plan, &mut names, rng);
        world.make_facts(cfg, rng);
        world.make_fakes(plan, &mut names, rng);
        world
    }

    fn make_places(&mut self, plan: &Plan, names: &mut Names, rng: &mut Rng) {
        let n = plan.countries;
        // Every country has a capital and at least one other city; the rest are spread at random.
        let mut per_country = vec![2usize; n];
        for _ in 0..plan.cities.saturating_sub(2 * n) {
            per_country[rng.index(n)] += 1;
        }
        for (ci, &k) in per_country.iter().enumerate() {
            let mut cities = Vec::new();
            for _ in 0..k {
                cities.push(self.cities.len());
                self.cities.push(City {
                    name: names.fresh(rng, Style::Proper),
                    country: ci,
                    landmark: rng.pick(LANDMARKS).to_string(),
                });
            }
            self.countries.push(Country {
                name: names.fresh(rng, Style::Proper),
                capital: cities[0],
                language: names.language(rng),
                currency: names.fresh(rng, Style::Currency),
                population_millions: rng.int(1, 60) as u32,
                export: rng.pick(EXPORTS).to_string(),
                cities,
            });
        }
    }

    fn make_people(&mut self, cfg: &WorldConfig, plan: &Plan, names: &mut Names, rng: &mut Rng) {
        // Given names repeat across people, as they do in life; surnames are unique so a full name is too.
        let given: Vec<String> = (0..(plan.people * 3 / 5).max(4)).map(|_| names.fresh(rng, Style::Given)).collect();
        for _ in 0..plan.people {
            let first = rng.pick(&given).clone();
            let last = names.fresh(rng, Style::Proper);
            self.people.push(Person {
                name: format!("{first} {last}"),
                first,
                last,
                pronoun: if rng.percent(50) { "she" } else { "he" }.to_string(),
                birth_year: rng.int(cfg.first_year as i64, (cfg.cutoff_year - 30) as i64) as i32,
                profession: rng.pick(PROFESSIONS).to_string(),
                home_city: rng.index(self.cities.len()),
            });
        }
    }

    fn make_inventions(&mut self, cfg: &WorldConfig, plan: &Plan, names: &mut Names, rng: &mut Rng) {
        for _ in 0..plan.inventions {
            let inventor = rng.index(self.people.len());
            let p = &mut self.people[inventor];
            if !INVENTOR_PROFESSIONS.contains(&p.profession.as_str()) {
                p.profession = rng.pick(INVENTOR_PROFESSIONS).to_string();
            }
            // Inventors are between 20 and 70 and never invent after the cutoff.
            let hi = (p.birth_year + 70).min(cfg.cutoff_year);
            let year = rng.int((p.birth_year + 20) as i64, hi as i64) as i32;
            let (kind, purpose) = *rng.pick(INVENTION_KINDS);
            let word = names.fresh(rng, Style::Proper);
            self.inventions.push(Invention {
                name: format!("the {word} {kind}"),
                word,
                kind: kind.to_string(),
                purpose: purpose.to_string(),
                inventor,
                year,
            });
        }
        self.inventions.sort_by_key(|i| i.year);
    }

    fn make_events(&mut self, cfg: &WorldConfig, plan: &Plan, names: &mut Names, rng: &mut Rng) {
        let post = ((plan.events as f64) * cfg.post_cutoff_share).round() as usize;
        let start = cfg.first_year + 50;
        for i in 0..plan.events {
            let after = i < post;
            let date = if after {
                Date::random(rng, cfg.cutoff_year + 1, cfg.cutoff_year + cfg.post_cutoff_years)
            } else {
                Date::random(rng, start, cfg.cutoff_year)
            };
            let kind = *rng.pick(EVENT_KINDS);
            let word = names.fresh(rng, Style::Proper);
            self.events.push(Event {
                name: kind.pattern.replace("{w}", &word),
                word,
                kind: kind.key,
                participle: kind.participle,
                date,
                city: rng.index(self.cities.len()),
                after_cutoff: after,
            });
        }
        self.events.sort_by_key(|e| e.date);
    }

    fn make_facts(&mut self, cfg: &WorldConfig, rng: &mut Rng) {
        let mut facts = Vec::new();
        let mut push = |relation: Relation, subject: Subject, name: &str, answer: String, targets, since| {
            facts.push(Fact {
                id: format!("{}/{}", relation.key(), name),
                relation,
                subject,
                subject_name: name.to_string(),
                answer,
                targets,
                since,
                tier: Tier::Medium,
                target_mentions: 0,
                split: Split::Train,
                mentions: 0,
            })
        };
        // Countries and cities exist for the whole history of the world.
        let origin = cfg.first_year;
        for (i, c) in self.countries.iter().enumerate() {
            let s = Subject::Country(i);
            let cap = self.cities[c.capital].name.clone();
            push(Relation::Capital, s, &c.name, cap.clone(), vec![cap], origin);
            push(Relation::Language, s, &c.name, c.language.clone(), vec![c.language.clone()], origin);
            push(Relation::Currency, s, &c.name, c.currency.clone(), vec![c.currency.clone()], origin);
            let pop = format!("{} million", c.population_millions);
            push(Relation::Population, s, &c.name, pop.clone(), vec![pop], origin);
        }
        for (i, c) in self.cities.iter().enumerate() {
            let country = self.countries[c.country].name.clone();
            push(Relation::CityCountry, Subject::City(i), &c.name, country.clone(), vec![country], origin);
        }
        for (i, p) in self.people.iter().enumerate() {
            let s = Subject::Person(i);
            let y = p.birth_year;
            push(Relation::BirthYear, s, &p.name, y.to_string(), vec![y.to_string()], y);
            push(Relation::Profession, s, &p.name, p.profession.clone(), vec![p.profession.clone()], y + 20);
            let home = self.cities[p.home_city].name.clone();
            push(Relation::HomeCity, s, &p.name, home.clone(), vec![home], y + 20);
        }
        for (i, inv) in self.inventions.iter().enumerate() {
            let s = Subject::Invention(i);
            let p = &self.people[inv.inventor];
            push(Relation::Inventor, s, &inv.name, p.name.clone(), vec![p.name.clone(), p.last.clone()], inv.year);
            let y = inv.year.to_string();
            push(Relation::InventionYear, s, &inv.name, y.clone(), vec![y], inv.year);
        }
        for (i, e) in self.events.iter().enumerate() {
            let s = Subject::Event(i);
            let city = self.cities[e.city].name.clone();
            let y = e.date.year;
            push(Relation::EventPlace, s, &e.name, city.clone(), vec![city], y);
            push(Relation::EventYear, s, &e.name, y.to_string(), vec![y.to_string()], y);
        }
        self.facts = facts;
        self.assign_tiers_and_splits(cfg, rng);
    }

    /// Tiers and splits are stratified by relation so that every kind of fact is frequent in some
    /// cases and rare in others, and both training and probes see every (relation, tier) pair.
    fn assign_tiers_and_splits(&mut self, cfg: &WorldConfig, rng: &mut Rng) {
        for f in self.facts.iter_mut() {
            if let Subject::Event(e) = f.subject
                && self.events[e].after_cutoff
            {
                f.split = Split::Withheld;
            }
        }
        for rel in Relation::ALL {
            let mut idx: Vec<usize> = (0..self.facts.len())
                .filter(|&i| self.facts[i].relation == rel && self.facts[i].split != Split::Withheld)
                .collect();
            rng.shuffle(&mut idx);
            let n = idx.len();
            let n_freq = ((n as f64) * cfg.frequent_share).round() as usize;
            let n_rare = (((n as f64) * cfg.rare_share).round() as usize).min(n - n_freq);
            for (k, &i) in idx.iter().enumerate() {
                let tier = if k < n_freq {
                    Tier::Frequent
                } else if k < n_freq + n_rare {
                    Tier::Rare
                } else {
                    Tier::Medium
                };
                let target = match tier {
                    Tier::Frequent => rng.int(cfg.frequent_min_mentions as i64, cfg.frequent_max_mentions as i64),
                    Tier::Rare => rng.int(1, cfg.rare_max_mentions as i64),
                    Tier::Medium => rng.int(cfg.rare_max_mentions as i64 + 2, cfg.frequent_min_mentions as i64 - 2),
                } as u32;
                self.facts[i].tier = tier;
                self.facts[i].target_mentions = target;
            }
            for tier in [Tier::Frequent, Tier::Medium, Tier::Rare] {
                let mut group: Vec<usize> = idx.iter().copied().filter(|&i| self.facts[i].tier == tier).collect();
                rng.shuffle(&mut group);
                let n_probe = ((group.len() as f64) * cfg.probe_share).round() as usize;
                for (k, &i) in group.iter().enumerate() {
                    self.facts[i].split = if k < n_probe { Split::Probe } else { Split::Train };
                }
            }
        }
        self.keep_probe_answers_out_of_training();
    }

    /// Facts are split one by one, but some state another's answer: a capital and its city's country
    /// name the same two entities, and an invention's inventor says that person is an inventor. A
    /// training fact linked that way to a probe fact moves to [`Split::Corpus`], so no post-training
    /// text answers a probe (the corpus may: knowing it from pretraining is what probes measure). No
    /// random draw here, so the corpus and the probes are the same as before the links were cut.
    fn keep_probe_answers_out_of_training(&mut self) {
        let pair = |f: &Fact| {
            let mut p = [f.subject_name.to_lowercase(), f.answer.to_lowercase()];
            p.sort();
            p
        };
        let probes: Vec<&Fact> = self.facts.iter().filter(|f| f.split == Split::Probe).collect();
        let probe_pairs: std::collections::BTreeSet<[String; 2]> = probes.iter().map(|f| pair(f)).collect();
        // People whose being an inventor a probe asks about, or whose invention a probe asks about.
        let probe_inventors: std::collections::BTreeSet<String> = probes
            .iter()
            .filter_map(|f| match f.relation {
                Relation::Profession if f.answer == "inventor" => Some(f.subject_name.to_lowercase()),
                Relation::Inventor => Some(f.answer.to_lowercase()),
                _ => None,
            })
            .collect();
        let linked: Vec<bool> = self
            .facts
            .iter()
            .map(|f| {
                f.split == Split::Train
                    && (probe_pairs.contains(&pair(f))
                        || match f.relation {
                            Relation::Inventor => probe_inventors.contains(&f.answer.to_lowercase()),
                            Relation::Profession if f.answer == "inventor" => {
                                probe_inventors.contains(&f.subject_name.to_lowercase())
                            }
                            _ => false,
                        })
            })
            .collect();
        for (f, l) in self.facts.iter_mut().zip(linked) {
            if l {
                f.split = Split::Corpus;
            }
        }
    }

    fn make_fakes(&mut self, plan: &Plan, names: &mut Names, rng: &mut Rng) {
        for (split, n) in [(Split::Train, plan.fakes_train), (Split::Probe, plan.fakes_probe)] {
            for i in 0..n {
                self.fakes.push(fake(i, split, names, rng));
            }
        }
    }

    /// `n` more invented entities, of the kinds in turn as the world's own, whose names share no word
    /// with anything in the world (its entities, facts and fakes): for probe sets made after the
    /// world, such as the development split.
    pub fn fresh_fakes(&self, n: usize, split: Split, rng: &mut Rng) -> Vec<Fake> {
        let mut names = Names::new();
        let text = serde_json::to_string(self).expect("the world serialises");
        for w in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            names.reserve(w);
        }
        (0..n).map(|i| fake(i, split, &mut names, rng)).collect()
    }

    /// Facts of one relation about one subject (there is exactly one per relation and subject).
    pub fn fact(&self, relation: Relation, subject: Subject) -> Option<&Fact> {
        self.facts.iter().find(|f| f.relation == relation && f.subject == subject)
    }

    /// Name of an entity.
    pub fn subject_name(&self, s: Subject) -> &str {
        match s {
            Subject::Country(i) => &self.countries[i].name,
            Subject::City(i) => &self.cities[i].name,
            Subject::Person(i) => &self.people[i].name,
            Subject::Invention(i) => &self.inventions[i].name,
            Subject::Event(i) => &self.events[i].name,
        }
    }

    /// The name of the country a city lies in.
    pub fn country_of_city(&self, city: usize) -> &str {
        &self.countries[self.cities[city].country].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    #[test]
    fn world_is_consistent() {
        let cfg = WorldConfig::default();
        let plan = cfg.plan().unwrap();
        let w = World::generate(&cfg, &plan, &mut stream(1, Stream::World));
        assert_eq!(w.countries.len(), plan.countries);
        for (i, c) in w.countries.iter().enumerate() {
            assert_eq!(w.cities[c.capital].country, i);
            assert!(c.cities.contains(&c.capital));
        }
        assert!(w.events.windows(2).all(|p| p[0].date <= p[1].date));
        for inv in &w.inventions {
            assert!(w.people[inv.inventor].birth_year + 20 <= inv.year && inv.year <= cfg.cutoff_year);
        }
        let n_ids: std::collections::BTreeSet<_> = w.facts.iter().map(|f| &f.id).collect();
        assert_eq!(n_ids.len(), w.facts.len());
    }
}
