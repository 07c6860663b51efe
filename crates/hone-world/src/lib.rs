//! hone-world: a seeded fictional world, and everything hone trains and measures on it.
//!
//! [`generate`] builds the world (countries, cities, people, inventions, dated events; [`facts`]) and
//! writes, deterministically for a seed:
//!
//! ```text
//! OUT/world.json            every entity and fact, incl. post-cutoff events, with corpus mention counts
//! OUT/corpus/<genre>.jsonl  {"text","date","genre","id"}: encyclopedia, news, forum, story, arithmetic, list
//! OUT/sft.jsonl             {"messages":[{"role","content"}],"kind"}
//! OUT/preference.jsonl      {"prompt":[..],"chosen":[..],"rejected":[..],"kind"}
//! OUT/preference_eval.jsonl the same, held out (disjoint prompts)
//! OUT/unpaired.jsonl        {"prompt":[..],"completion":[..],"label":true|false,"kind"}: the pairs of
//!                           preference.jsonl unpaired for KTO (chosen true, rejected false), shuffled
//! OUT/unpaired_eval.jsonl   the same from preference_eval.jsonl
//! OUT/rl.jsonl              {"id","prompt":[..],"targets","scorer","kind"}: prompts with a verifier
//! OUT/eval/<task>.jsonl     probe records, and OUT/eval/<task>.toml the task file (see [`tasks`])
//! OUT/summary.json          the [`WorldSummary`]
//! ```
//!
//! The parts are written in the order that keeps training and evaluation apart: the arithmetic probe's
//! problems are drawn before the corpus (which leaves them out), the corpus is written before the probes
//! (which split known facts by the mention counts actually written), and the probes before SFT,
//! preference and RL data (which avoid every probe prompt).

pub mod arith;
pub mod chat;
pub mod config;
pub mod corpus;
pub mod date;
pub mod dev;
pub mod draw;
pub mod facts;
pub mod files;
pub mod formats;
pub mod names;
pub mod preference;
pub mod probes;
pub mod remedy;
pub mod requests;
pub mod rl;
pub mod rng;
pub mod sft;
pub mod text;

pub use config::WorldConfig;
/// The task-file format and the scorers belong to evaluation (`hone-tasks`); the world writes task
/// files and checks its data with the scorers.
pub use hone_tasks::{score, tasks};
pub use score::{ScoreResult, Scorer};

use anyhow::{Context, Result};
use arith::Problem;
use corpus::Genre;
use facts::{Split, Tier, World};
use hone_data::atomic::write_atomic;
use rng::{Stream, stream};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Size of one corpus genre.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenreStats {
    pub documents: usize,
    pub bytes: usize,
    pub words: usize,
}

/// What was written: counts per file and kind.
#[derive(Debug, Clone, Serialize)]
pub struct WorldSummary {
    pub seed: u64,
    pub size: String,
    pub cutoff_year: i32,
    /// Entities by kind (events include post-cutoff ones).
    pub entities: BTreeMap<String, usize>,
    pub post_cutoff_events: usize,
    /// Facts by "tier/split".
    pub facts: BTreeMap<String, usize>,
    pub corpus: BTreeMap<String, GenreStats>,
    pub corpus_documents: usize,
    pub corpus_bytes: usize,
    pub corpus_words: usize,
    /// A rough token count (bytes / 4) for a BPE vocabulary of a few thousand.
    pub corpus_tokens_estimate: usize,
    /// Documents dated after the cutoff, not written.
    pub withheld_documents: usize,
    pub sft: BTreeMap<String, usize>,
    pub sft_total: usize,
    pub preference: BTreeMap<String, usize>,
    pub preference_total: usize,
    pub preference_eval: usize,
    /// Examples in unpaired.jsonl and unpaired_eval.jsonl: twice the pairs of their paired files.
    pub unpaired_total: usize,
    pub unpaired_eval: usize,
    pub rl_prompts: usize,
    /// Items per probe task.
    pub probes: BTreeMap<String, usize>,
}

impl fmt::Display for WorldSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kv = |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        writeln!(f, "world seed {} ({}), cutoff {}", self.seed, self.size, self.cutoff_year)?;
        writeln!(f, "  entities: {} ({} events after the cutoff)", kv(&self.entities), self.post_cutoff_events)?;
        writeln!(f, "  facts: {}", kv(&self.facts))?;
        writeln!(
            f,
            "  corpus: {} documents, {:.2} MB, {} words, ~{} tokens; {} withheld after the cutoff",
            self.corpus_documents,
            self.corpus_bytes as f64 / 1e6,
            self.corpus_words,
            self.corpus_tokens_estimate,
            self.withheld_documents
        )?;
        for (g, s) in &self.corpus {
            writeln!(f, "    {g:<13} {:>6} docs {:>9} bytes {:>8} words", s.documents, s.bytes, s.words)?;
        }
        writeln!(f, "  sft: {} conversations ({})", self.sft_total, kv(&self.sft))?;
        writeln!(
            f,
            "  preference: {} pairs + {} held out ({})",
            self.preference_total,
            self.preference_eval,
            kv(&self.preference)
        )?;
        writeln!(f, "  unpaired (KTO): {} examples + {} held out", self.unpaired_total, self.unpaired_eval)?;
        writeln!(f, "  rl: {} prompts", self.rl_prompts)?;
        writeln!(f, "  probes: {}", kv(&self.probes))
    }
}

/// Everything the generator makes for a config, before it is written.
pub(crate) struct Assembled {
    pub world: World,
    /// The probe's arithmetic problems, and RL's practice ones.
    pub problems: BTreeSet<Problem>,
    pub practice: BTreeSet<Problem>,
    pub corpus: corpus::Corpus,
    pub probes: probes::Probes,
    pub sft: Vec<sft::Conversation>,
    pub pref: Vec<preference::Pair>,
    pub pref_eval: Vec<preference::Pair>,
    pub unpaired: Vec<preference::Unpaired>,
    pub unpaired_eval: Vec<preference::Unpaired>,
    pub rl: Vec<rl::RlPrompt>,
}

impl Assembled {
    /// Problems no training text may work out: the probe's and RL's.
    pub fn withheld(&self) -> BTreeSet<Problem> {
        self.problems.union(&self.practice).copied().collect()
    }
}

/// Builds every part of the world for `cfg`, each from its own random stream.
pub(crate) fn assemble(cfg: &WorldConfig) -> Result<Assembled> {
    let plan = cfg.plan()?;
    let seed = cfg.seed;
    let mut world = World::generate(cfg, &plan, &mut stream(seed, Stream::World));
    let problems = probes::arithmetic_problems(&plan, &mut stream(seed, Stream::ProbeArithmetic));
    let practice = probes::practice_problems(&plan, &problems, &mut stream(seed, Stream::RlArithmetic));
    // Problems no training text may work out: the probe's and RL's.
    let withheld: BTreeSet<Problem> = problems.union(&practice).copied().collect();
    let corpus = corpus::build(&world, cfg, &plan, &withheld, stream(seed, Stream::Corpus));
    for (f, &m) in world.facts.iter_mut().zip(&corpus.mentions) {
        f.mentions = m;
    }
    let heldout = corpus::heldout(&world, cfg, &plan, &withheld, &corpus.documents, stream(seed, Stream::Heldout));
    let mut probes = probes::build(&world, cfg, &plan, &problems, &heldout, stream(seed, Stream::Probes));
    let reserved =
        sft::Reserved { prompts: &probes.prompts, problems: &withheld, cutoff_places: &probes.cutoff_places };
    let sft = sft::build(&world, cfg, &plan, &reserved, stream(seed, Stream::Sft));
    let (pref, pref_eval) = preference::build(&world, cfg, &plan, &reserved, stream(seed, Stream::Preference));
    let mut unpaired_rng = stream(seed, Stream::Unpaired);
    let unpaired = preference::unpair(&pref, &mut unpaired_rng);
    let unpaired_eval = preference::unpair(&pref_eval, &mut unpaired_rng);
    let rl = rl::build(&world, plan.rl_prompts, &problems, &practice, &probes.prompts, stream(seed, Stream::Rl));
    let taken = training_prompts(&sft, pref.iter().chain(&pref_eval), &rl);
    probes::grow_formats(&world, &mut probes, plan.probe_items, &taken, stream(seed, Stream::ProbeFormats));
    Ok(Assembled { world, problems, practice, corpus, probes, sft, pref, pref_eval, unpaired, unpaired_eval, rl })
}

/// Writes probe tasks into `dir`: `<task>.jsonl` (the records) and `<task>.toml` (the task file);
/// returns the task files.
pub(crate) fn write_tasks(tasks: &[probes::Task], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    for t in tasks {
        let stem = t.file.stem();
        let (jsonl, toml) = (dir.join(format!("{stem}.jsonl")), dir.join(format!("{stem}.toml")));
        write_atomic(&jsonl, t.items.to_jsonl().as_bytes()).with_context(|| format!("writing {}", jsonl.display()))?;
        write_atomic(&toml, t.file.to_toml().as_bytes()).with_context(|| format!("writing {}", toml.display()))?;
        files.push(toml);
    }
    Ok(files)
}

/// Every run of whole sentences of every user turn of the training data: what a probe written after
/// it must not be.
pub(crate) fn training_prompts<'a>(
    sft: &'a [sft::Conversation],
    pairs: impl Iterator<Item = &'a preference::Pair>,
    rl: &'a [rl::RlPrompt],
) -> BTreeSet<&'a str> {
    let turns = sft
        .iter()
        .flat_map(|c| &c.messages)
        .chain(pairs.flat_map(|p| &p.prompt))
        .chain(rl.iter().flat_map(|p| &p.prompt))
        .filter(|m| m.role == "user");
    turns.flat_map(|m| probes::sentence_runs(&m.content)).collect()
}

/// Generates the world for `cfg` and writes every output under `out_dir`.
pub fn generate(cfg: &WorldConfig, out_dir: &Path) -> Result<WorldSummary> {
    let Assembled { world, corpus, probes, sft, pref, pref_eval, unpaired, unpaired_eval, rl, .. } = assemble(cfg)?;
    let seed = cfg.seed;
    let corpus_dir = out_dir.join("corpus");
    let eval_dir = out_dir.join("eval");
    for d in [out_dir, &corpus_dir, &eval_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let write =
        |path: &Path, bytes: &[u8]| write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()));

    let mut genres: BTreeMap<String, GenreStats> = BTreeMap::new();
    for g in Genre::ALL {
        let docs: Vec<&corpus::Document> = corpus.documents.iter().filter(|d| d.genre == g).collect();
        write(&corpus_dir.join(format!("{}.jsonl", g.key())), jsonl(&docs).as_bytes())?;
        genres.insert(
            g.key().to_string(),
            GenreStats {
                documents: docs.len(),
                bytes: docs.iter().map(|d| d.text.len()).sum(),
                words: docs.iter().map(|d| d.text.split_whitespace().count()).sum(),
            },
        );
    }
    write(&out_dir.join("sft.jsonl"), jsonl(&sft).as_bytes())?;
    write(&out_dir.join("preference.jsonl"), jsonl(&pref).as_bytes())?;
    write(&out_dir.join("preference_eval.jsonl"), jsonl(&pref_eval).as_bytes())?;
    write(&out_dir.join("unpaired.jsonl"), jsonl(&unpaired).as_bytes())?;
    write(&out_dir.join("unpaired_eval.jsonl"), jsonl(&unpaired_eval).as_bytes())?;
    write(&out_dir.join("rl.jsonl"), jsonl(&rl).as_bytes())?;
    write_tasks(&probes.tasks, &eval_dir)?;
    let world_file = view::WorldFile::new(&world, cfg);
    write(&out_dir.join("world.json"), (serde_json::to_string_pretty(&world_file)? + "\n").as_bytes())?;

    let count = |it: &mut dyn Iterator<Item = &str>| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for k in it {
            *m.entry(k.to_string()).or_default() += 1;
        }
        m
    };
    let mut facts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &world.facts {
        let tier = match (f.split, f.tier) {
            (Split::Withheld, _) => "post_cutoff",
            (_, Tier::Frequent) => "frequent",
            (_, Tier::Medium) => "medium",
            (_, Tier::Rare) => "rare",
        };
        let split = match f.split {
            Split::Train => "train",
            Split::Probe => "probe",
            Split::Corpus => "corpus",
            Split::Withheld => "withheld",
        };
        *facts.entry(format!("{tier}/{split}")).or_default() += 1;
    }
    let corpus_bytes: usize = genres.values().map(|g| g.bytes).sum();
    let summary = WorldSummary {
        seed,
        size: cfg.size.clone(),
        cutoff_year: cfg.cutoff_year,
        entities: BTreeMap::from([
            ("countries".to_string(), world.countries.len()),
            ("cities".to_string(), world.cities.len()),
            ("people".to_string(), world.people.len()),
            ("inventions".to_string(), world.inventions.len()),
            ("events".to_string(), world.events.len()),
        ]),
        post_cutoff_events: world.events.iter().filter(|e| e.after_cutoff).count(),
        facts,
        corpus_documents: corpus.documents.len(),
        corpus_bytes,
        corpus_words: genres.values().map(|g| g.words).sum(),
        corpus_tokens_estimate: corpus_bytes / 4,
        corpus: genres,
        withheld_documents: corpus.withheld.len(),
        sft: count(&mut sft.iter().map(|c| c.kind)),
        sft_total: sft.len(),
        preference: count(&mut pref.iter().chain(&pref_eval).map(|p| p.kind)),
        preference_total: pref.len(),
        preference_eval: pref_eval.len(),
        unpaired_total: unpaired.len(),
        unpaired_eval: unpaired_eval.len(),
        rl_prompts: rl.len(),
        probes: probes.tasks.iter().map(|t| (t.file.name.clone(), t.items.len())).collect(),
    };
    write(&out_dir.join("summary.json"), (serde_json::to_string_pretty(&summary)? + "\n").as_bytes())?;
    Ok(summary)
}

/// Up to `n` items from `next`, which gives `None` for a candidate it rejects (a repeat, a probe
/// look-alike); stops after 50 tries per item, when a pool of new items has run dry.
pub(crate) fn gather<T>(n: usize, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < n * 50 {
        tries += 1;
        if let Some(x) = next() {
            out.push(x);
        }
    }
    out
}

pub(crate) fn jsonl<T: Serialize>(items: &[T]) -> String {
    items.iter().map(|x| serde_json::to_string(x).expect("records serialise") + "\n").collect()
}

/// world.json: entities with references by name, so the file reads on its own.
mod view {
    use super::*;
    use crate::date::Date;
    use crate::facts::{Fact, Fake};

    #[derive(Serialize)]
    pub struct WorldFile<'a> {
        seed: u64,
        size: &'a str,
        cutoff_year: i32,
        countries: Vec<Country<'a>>,
        cities: Vec<City<'a>>,
        people: Vec<Person<'a>>,
        inventions: Vec<Invention<'a>>,
        events: Vec<Event<'a>>,
        facts: &'a [Fact],
        nonexistent: &'a [Fake],
    }

    #[derive(Serialize)]
    struct Country<'a> {
        name: &'a str,
        capital: &'a str,
        language: &'a str,
        currency: &'a str,
        population_millions: u32,
        export: &'a str,
        cities: Vec<&'a str>,
    }

    #[derive(Serialize)]
    struct City<'a> {
        name: &'a str,
        country: &'a str,
        landmark: &'a str,
    }

    #[derive(Serialize)]
    struct Person<'a> {
        name: &'a str,
        pronoun: &'a str,
        birth_year: i32,
        profession: &'a str,
        home_city: &'a str,
    }

    #[derive(Serialize)]
    struct Invention<'a> {
        name: &'a str,
        word: &'a str,
        kind: &'a str,
        purpose: &'a str,
        inventor: &'a str,
        year: i32,
    }

    #[derive(Serialize)]
    struct Event<'a> {
        name: &'a str,
        word: &'a str,
        kind: &'a str,
        date: Date,
        city: &'a str,
        country: &'a str,
        after_cutoff: bool,
    }

    impl<'a> WorldFile<'a> {
        pub fn new(w: &'a World, cfg: &'a WorldConfig) -> Self {
            let city = |i: usize| w.cities[i].name.as_str();
            WorldFile {
                seed: w.seed,
                size: &cfg.size,
                cutoff_year: w.cutoff_year,
                countries: w
                    .countries
                    .iter()
                    .map(|c| Country {
                        name: &c.name,
                        capital: city(c.capital),
                        language: &c.language,
                        currency: &c.currency,
                        population_millions: c.population_millions,
                        export: &c.export,
                        cities: c.cities.iter().map(|&i| city(i)).collect(),
                    })
                    .collect(),
                cities: w
                    .cities
                    .iter()
                    .map(|c| City { name: &c.name, country: &w.countries[c.country].name, landmark: &c.landmark })
                    .collect(),
                people: w
                    .people
                    .iter()
                    .map(|p| Person {
                        name: &p.name,
                        pronoun: &p.pronoun,
                        birth_year: p.birth_year,
                        profession: &p.profession,
                        home_city: city(p.home_city),
                    })
                    .collect(),
                inventions: w
                    .inventions
                    .iter()
                    .map(|i| Invention {
                        name: &i.name,
                        word: &i.word,
                        kind: &i.kind,
                        purpose: &i.purpose,
                        inventor: &w.people[i.inventor].name,
                        year: i.year,
                    })
                    .collect(),
                events: w
                    .events
                    .iter()
                    .map(|e| Event {
                        name: &e.name,
                        word: &e.word,
                        kind: e.kind,
                        date: e.date,
                        city: city(e.city),
                        country: w.country_of_city(e.city),
                        after_cutoff: e.after_cutoff,
                    })
                    .collect(),
                facts: &w.facts,
                nonexistent: &w.fakes,
            }
        }
    }
}
