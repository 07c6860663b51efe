//! How facts are put into words: several statement paraphrases per relation (for the corpus), question
//! forms (for SFT, preference data and probes, shared so probes measure knowledge rather than template
//! novelty), assistant answers, and plausible wrong values for distractors and confident mistakes.
//!
//! Paraphrases vary the sentence around a fact so the model has to learn the fact, not a string; answers
//! keep one dominant shape ("The capital of Varnok is Tesmir.") so a small model picks up the habit fast
//! and a probe can score by whether the expected name appears.

use crate::facts::{Fact, PROFESSIONS, Relation, Subject, World};
use crate::names::{article, capitalise};
use crate::rng::{Draw, Rng};

/// Statement templates: `{s}` subject, `{a}` answer, `{an}` article for the answer, `{p}` participle of an
/// event, `{pos}` possessive pronoun of a person. The first is the canonical form used in answers.
fn statements(r: Relation) -> &'static [&'static str] {
    match r {
        Relation::Capital => &[
            "The capital of {s} is {a}.",
            "{a} is the capital of {s}.",
            "{s}'s capital city is {a}.",
            "The capital city of {s} is {a}.",
            "{a} has long been the capital of {s}.",
            "The government of {s} sits in its capital, {a}.",
        ],
        Relation::Language => &[
            "People in {s} speak {a}.",
            "The language of {s} is {a}.",
            "{a} is the main language of {s}.",
            "In {s}, most people speak {a}.",
            "The official language of {s} is {a}.",
        ],
        Relation::Currency => &[
            "The currency of {s} is the {a}.",
            "In {s}, people pay with the {a}.",
            "{s} uses the {a} as its money.",
            "The money of {s} is called the {a}.",
        ],
        Relation::Population => &[
            "About {a} people live in {s}.",
            "{s} has a population of about {a}.",
            "Roughly {a} people call {s} home.",
        ],
        Relation::CityCountry => &[
            "{s} is a city in {a}.",
            "{s} lies in {a}.",
            "The city of {s} is in {a}.",
            "{s} is one of the cities of {a}.",
        ],
        Relation::BirthYear => &["{s} was born in {a}.", "In {a}, {s} was born.", "{s}'s year of birth is {a}."],
        Relation::Profession => &[
            "{s} is {an} {a}.",
            "{s} works as {an} {a}.",
            "By profession, {s} is {an} {a}.",
            "{s} earns a living as {an} {a}.",
        ],
        Relation::HomeCity => &[
            "{s} lives in {a}.",
            "{s} makes {pos} home in {a}.",
            "{s} is a resident of {a}.",
            "The home of {s} is in {a}.",
        ],
        Relation::Inventor => {
            &["{s} was invented by {a}.", "{a} invented {s}.", "{a} is the inventor of {s}.", "{s} is the work of {a}."]
        }
        Relation::InventionYear => {
            &["{s} was invented in {a}.", "{s} first appeared in {a}.", "In {a}, {s} was invented."]
        }
        Relation::EventPlace => {
            &["{s} was {p} in {a}.", "{a} is where {s} was {p}.", "The city where {s} was {p} is {a}."]
        }
        Relation::EventYear => &["{s} was {p} in {a}.", "In {a}, {s} was {p}.", "The year {s} was {p} was {a}."],
    }
}

/// Question templates, same placeholders.
fn questions(r: Relation) -> &'static [&'static str] {
    match r {
        Relation::Capital => &[
            "What is the capital of {s}?",
            "Which city is the capital of {s}?",
            "What is {s}'s capital?",
            "What city is the capital of {s}?",
        ],
        Relation::Language => &[
            "What language is spoken in {s}?",
            "What language do people speak in {s}?",
            "What is the language of {s}?",
            "Which language do people in {s} speak?",
        ],
        Relation::Currency => &[
            "What is the currency of {s}?",
            "What money is used in {s}?",
            "What do people in {s} pay with?",
            "Which currency does {s} use?",
        ],
        Relation::Population => {
            &["How many people live in {s}?", "What is the population of {s}?", "About how many people live in {s}?"]
        }
        Relation::CityCountry => &[
            "Which country is {s} in?",
            "In which country is {s}?",
            "What country is the city of {s} in?",
            "Where is the city of {s}?",
        ],
        Relation::BirthYear => &["When was {s} born?", "In what year was {s} born?", "What year was {s} born in?"],
        Relation::Profession => &[
            "What does {s} do for a living?",
            "What is {s}'s profession?",
            "What is {s}'s job?",
            "What kind of work does {s} do?",
        ],
        Relation::HomeCity => &[
            "Where does {s} live?",
            "Which city does {s} live in?",
            "In what city does {s} live?",
            "What city is {s} from?",
        ],
        Relation::Inventor => {
            &["Who invented {s}?", "Who is the inventor of {s}?", "Who made {s}?", "Who created {s}?"]
        }
        Relation::InventionYear => {
            &["When was {s} invented?", "In what year was {s} invented?", "What year did {s} first appear?"]
        }
        Relation::EventPlace => &["Where was {s} {p}?", "In which city was {s} {p}?", "What city was {s} {p} in?"],
        Relation::EventYear => &["When was {s} {p}?", "In what year was {s} {p}?", "What year was {s} {p}?"],
    }
}

/// Number of question templates for a relation (probes pick distinct ones by index).
pub fn question_count(r: Relation) -> usize {
    questions(r).len()
}

fn participle(w: &World, s: Subject) -> &'static str {
    match s {
        Subject::Event(i) => w.events[i].participle,
        _ => "",
    }
}

fn possessive(w: &World, s: Subject) -> &'static str {
    match s {
        Subject::Person(i) if w.people[i].pronoun == "she" => "her",
        Subject::Person(_) => "his",
        _ => "its",
    }
}

/// Fills a template for `fact` with `value` as the answer, capitalising the sentence.
fn fill(w: &World, fact: &Fact, template: &str, value: &str) -> String {
    let out = template
        .replace("{s}", &fact.subject_name)
        .replace("{an}", article(value))
        .replace("{a}", value)
        .replace("{p}", participle(w, fact.subject))
        .replace("{pos}", possessive(w, fact.subject));
    capitalise(&out)
}

/// A randomly chosen paraphrase stating the fact.
pub fn statement(w: &World, fact: &Fact, rng: &mut Rng) -> String {
    let t = rng.pick(statements(fact.relation));
    fill(w, fact, t, &fact.answer)
}

/// The canonical statement of the fact with `value` as its answer ("The capital of Varnok is Bel.").
pub fn canonical_with(w: &World, fact: &Fact, value: &str) -> String {
    fill(w, fact, statements(fact.relation)[0], value)
}

/// A paraphrase stating `value` as the answer (used for confident wrong answers).
pub fn statement_with(w: &World, fact: &Fact, value: &str, rng: &mut Rng) -> String {
    let t = rng.pick(statements(fact.relation));
    fill(w, fact, t, value)
}

/// A question asking for the fact, by template index (wraps around).
pub fn question_n(w: &World, fact: &Fact, n: usize) -> String {
    let qs = questions(fact.relation);
    fill(w, fact, qs[n % qs.len()], &fact.answer)
}

/// A randomly chosen question form.
pub fn question(w: &World, fact: &Fact, rng: &mut Rng) -> String {
    let n = rng.index(question_count(fact.relation));
    question_n(w, fact, n)
}

/// An assistant answer: mostly the canonical sentence, sometimes a paraphrase or the bare answer.
pub fn answer(w: &World, fact: &Fact, rng: &mut Rng) -> String {
    answer_with(w, fact, &fact.answer, rng)
}

/// An assistant-style answer asserting `value`.
pub fn answer_with(w: &World, fact: &Fact, value: &str, rng: &mut Rng) -> String {
    match rng.int(0, 9) {
        0..=6 => canonical_with(w, fact, value),
        7 | 8 => statement_with(w, fact, value, rng),
        _ => short_answer(fact, value),
    }
}

/// The answer alone, as a one-line reply ("Tesmir.", "The drel.", "A baker.").
pub fn short_answer(fact: &Fact, value: &str) -> String {
    match fact.relation {
        Relation::Currency => format!("The {value}."),
        Relation::Profession => format!("{} {value}.", capitalise(article(value))),
        Relation::Population => format!("About {value}."),
        _ => format!("{}.", capitalise(value)),
    }
}

/// Every value a fact of this relation could take, for distractors and answer extraction.
pub fn value_pool(w: &World, r: Relation) -> Vec<String> {
    match r {
        Relation::Capital | Relation::HomeCity | Relation::EventPlace => {
            w.cities.iter().map(|c| c.name.clone()).collect()
        }
        Relation::CityCountry => w.countries.iter().map(|c| c.name.clone()).collect(),
        Relation::Language => w.countries.iter().map(|c| c.language.clone()).collect(),
        Relation::Currency => w.countries.iter().map(|c| c.currency.clone()).collect(),
        Relation::Population => (1..=60).map(|m| format!("{m} million")).collect(),
        Relation::Profession => {
            let mut v: Vec<String> = PROFESSIONS.iter().map(|s| s.to_string()).collect();
            v.extend(crate::facts::INVENTOR_PROFESSIONS.iter().map(|s| s.to_string()));
            v
        }
        Relation::Inventor => w.people.iter().map(|p| p.name.clone()).collect(),
        Relation::BirthYear | Relation::InventionYear | Relation::EventYear => Vec::new(),
    }
}

/// A plausible wrong value for the fact: another value of the same kind, or a nearby year.
pub fn wrong_value(w: &World, fact: &Fact, rng: &mut Rng) -> String {
    wrong_values(w, fact, 1, rng).remove(0)
}

/// `n` distinct plausible wrong values.
pub fn wrong_values(w: &World, fact: &Fact, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let is_year = matches!(fact.relation, Relation::BirthYear | Relation::InventionYear | Relation::EventYear);
    let pool = value_pool(w, fact.relation);
    // A capital is most often confused with another city of the same country.
    let local: Vec<String> = match (fact.relation, fact.subject) {
        (Relation::Capital, Subject::Country(c)) => {
            w.countries[c].cities[1..].iter().map(|&i| w.cities[i].name.clone()).collect()
        }
        _ => Vec::new(),
    };
    let mut guard = 0;
    while out.len() < n {
        guard += 1;
        let v = if is_year {
            let y: i64 = fact.answer.parse().expect("year answer");
            let d = rng.int(1, 30) * if rng.percent(50) { 1 } else { -1 };
            (y + d).min(w.cutoff_year as i64).to_string()
        } else if !local.is_empty() && rng.percent(50) && guard < 50 {
            rng.pick(&local).clone()
        } else {
            rng.pick(&pool).clone()
        };
        if v != fact.answer && !out.contains(&v) {
            out.push(v);
        }
        assert!(guard < 10_000, "no wrong values for {}", fact.id);
    }
    out
}

/// A cloze prefix for log-likelihood multiple choice ("The capital of Varnok is"): the text before the
/// answer in the first statement form that ends with the answer. Professions, whose article depends on
/// the answer, return `None` and are handled by the caller.
pub fn cloze(w: &World, fact: &Fact) -> Option<String> {
    statements(fact.relation).iter().filter(|t| !t.contains("{an}")).find_map(|t| {
        let full = fill(w, fact, t, "\u{1}");
        let (before, after) = full.split_once('\u{1}')?;
        (after == ".").then(|| before.trim_end().to_string())
    })
}

/// "What happened in Tesmir in 1987?" about a pre-cutoff event, with its answer. Teaching this on
/// training events is what makes the cutoff probe about the year rather than about the question's shape:
/// the same question about a year after the cutoff calls for "I don't know".
pub fn happened(w: &World, e: usize, rng: &mut Rng) -> (String, String) {
    let ev = &w.events[e];
    let city = &w.cities[ev.city].name;
    let y = ev.date.year;
    let q = match rng.int(0, 2) {
        0 => format!("What happened in {city} in {y}?"),
        1 => format!("What happened in {city} in {}?", ev.date.month_year()),
        _ => format!("Did anything important happen in {city} in {y}?"),
    };
    let a = match rng.int(0, 1) {
        0 => format!("In {y}, {} was {} in {city}.", ev.name, ev.participle),
        _ => format!("{} was {} in {city} in {y}.", capitalise(&ev.name), ev.participle),
    };
    (q, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorldConfig;
    use crate::rng::{Stream, stream};

    #[test]
    fn every_template_renders_the_answer() {
        let cfg = WorldConfig::default();
        let w = World::generate(&cfg, &cfg.plan().unwrap(), &mut stream(1, Stream::World));
        let mut rng = stream(1, Stream::Corpus);
        for f in &w.facts {
            for t in statements(f.relation) {
                let s = fill(&w, f, t, &f.answer);
                let lower = s.to_lowercase();
                assert!(
                    lower.contains(&f.answer.to_lowercase()) && lower.contains(&f.subject_name.to_lowercase()),
                    "{s}"
                );
                assert!(!s.contains('{'), "{s}");
            }
            let q = question(&w, f, &mut rng);
            assert!(
                q.ends_with('?') && !q.contains('{') && q.to_lowercase().contains(&f.subject_name.to_lowercase()),
                "{q}"
            );
            for v in wrong_values(&w, f, 3, &mut rng) {
                assert_ne!(v, f.answer);
            }
            if f.relation != Relation::Profession {
                let c = cloze(&w, f).unwrap_or_else(|| panic!("no cloze for {}", f.id));
                assert!(!c.is_empty() && canonical_with(&w, f, &f.answer).len() > c.len(), "{c}");
            }
        }
    }
}
