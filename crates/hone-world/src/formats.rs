//! Format instructions (one word, a list of N, JSON, uppercase): the request, a compliant reply and a
//! non-compliant one, plus what the scorer needs (`n`, `keys`).

use crate::facts::{Relation, Split, Subject, World};
use crate::names::capitalise;
use crate::rng::{Draw, Rng};
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    OneWord,
    ListN,
    Json,
    Uppercase,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::OneWord, Format::ListN, Format::Json, Format::Uppercase];

    pub fn key(self) -> &'static str {
        match self {
            Format::OneWord => "one_word",
            Format::ListN => "list_n",
            Format::Json => "json",
            Format::Uppercase => "uppercase",
        }
    }

    /// The scorer that checks compliance.
    pub fn scorer(self) -> &'static str {
        match self {
            Format::OneWord => "format_one_word",
            Format::ListN => "format_list_n",
            Format::Json => "format_json",
            Format::Uppercase => "format_uppercase",
        }
    }
}

/// A format request with a compliant and a non-compliant reply.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    pub format: Format,
    pub prompt: String,
    pub good: String,
    pub bad: String,
    /// List length for `ListN`.
    pub n: Option<usize>,
    /// Required keys for `Json`.
    pub keys: Vec<String>,
}

/// Relations whose answer is a single word.
const ONE_WORD: &[Relation] = &[
    Relation::Capital,
    Relation::Language,
    Relation::Currency,
    Relation::CityCountry,
    Relation::Profession,
    Relation::HomeCity,
    Relation::EventPlace,
    Relation::BirthYear,
    Relation::InventionYear,
    Relation::EventYear,
];

/// A random format request whose reply states only facts for which `allowed` holds.
pub fn request(w: &World, format: Format, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> FormatRequest {
    loop {
        let r = match format {
            Format::OneWord => one_word(w, rng, allowed),
            Format::Uppercase => uppercase(w, rng, allowed),
            Format::ListN => list(w, rng, allowed),
            Format::Json => json(w, rng, allowed),
        };
        if let Some(r) = r {
            return r;
        }
    }
}

/// A request for drawn training data (`crate::draw`): as [`request`], with lists of N asked in more
/// ways ("Give", "Write down", …) than the probe's "Name" and "List", whose few prompts the probe,
/// the development split and the default data between them nearly use up.
pub fn request_drawn(w: &World, format: Format, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> FormatRequest {
    let mut r = request(w, format, rng, allowed);
    if format == Format::ListN
        && let Some((_, rest)) = r.prompt.split_once(' ')
    {
        let verb = rng.pick(&["Name", "List", "Give", "Give me", "Write down", "Tell me", "Write"]);
        r.prompt = format!("{verb} {rest}");
    }
    r
}

fn random_fact(w: &World, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool, rels: Option<&[Relation]>) -> Option<usize> {
    let i = rng.index(w.facts.len());
    let f = &w.facts[i];
    (f.split != Split::Withheld && allowed(i) && rels.is_none_or(|r| r.contains(&f.relation))).then_some(i)
}

fn one_word(w: &World, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> Option<FormatRequest> {
    let i = random_fact(w, rng, allowed, Some(ONE_WORD))?;
    let f = &w.facts[i];
    let q = text::question(w, f, rng);
    let prompt = match rng.int(0, 3) {
        0 => format!("Answer in one word: {q}"),
        1 => format!("{q} Answer with one word only."),
        2 => format!("{q} Reply with a single word."),
        _ => format!("One word only, please. {q}"),
    };
    Some(FormatRequest {
        format: Format::OneWord,
        prompt,
        good: f.answer.clone(),
        bad: text::canonical_with(w, f, &f.answer),
        n: None,
        keys: Vec::new(),
    })
}

fn uppercase(w: &World, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> Option<FormatRequest> {
    let i = random_fact(w, rng, allowed, None)?;
    let f = &w.facts[i];
    let q = text::question(w, f, rng);
    let prompt = match rng.int(0, 2) {
        0 => format!("Answer in uppercase letters: {q}"),
        1 => format!("{q} Reply in capital letters only."),
        _ => format!("{q} Write your answer in all caps."),
    };
    let answer = text::canonical_with(w, f, &f.answer);
    Some(FormatRequest {
        format: Format::Uppercase,
        prompt,
        good: answer.to_uppercase(),
        bad: answer,
        n: None,
        keys: Vec::new(),
    })
}

fn list(w: &World, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> Option<FormatRequest> {
    let n = rng.int(2, 5) as usize;
    let (prompt, mut pool): (String, Vec<String>) = match rng.int(0, 5) {
        0 => {
            // Naming a country's cities states where they lie, so only allowed facts count.
            let c = rng.index(w.countries.len());
            let cities: Vec<String> = w.countries[c]
                .cities
                .iter()
                .filter(|&&ci| {
                    w.facts
                        .iter()
                        .position(|f| f.relation == Relation::CityCountry && f.subject == Subject::City(ci))
                        .is_some_and(allowed)
                })
                .map(|&ci| w.cities[ci].name.clone())
                .collect();
            let verb = rng.pick(&["List", "Name"]);
            (format!("{verb} {n} cities in {}.", w.countries[c].name), cities)
        }
        1 => {
            let t = rng.pick(&["Name {n} countries.", "List {n} countries of the world."]);
            (t.replace("{n}", &n.to_string()), w.countries.iter().map(|c| c.name.clone()).collect())
        }
        2 => {
            let t = rng.pick(&["List {n} inventions.", "Name {n} inventions."]);
            (t.replace("{n}", &n.to_string()), w.inventions.iter().map(|i| capitalise(&i.name)).collect())
        }
        3 => {
            let t = rng.pick(&["Name {n} professions.", "List {n} jobs that people do."]);
            (t.replace("{n}", &n.to_string()), crate::facts::PROFESSIONS.iter().map(|p| capitalise(p)).collect())
        }
        4 => {
            let t = rng.pick(&["List {n} languages.", "Name {n} languages spoken in the world."]);
            (t.replace("{n}", &n.to_string()), w.countries.iter().map(|c| c.language.clone()).collect())
        }
        _ => {
            let t = rng.pick(&["Name {n} days of the week.", "List {n} months of the year."]);
            let items: Vec<String> = if t.contains("days") {
                ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
                    .map(String::from)
                    .to_vec()
            } else {
                crate::date::MONTHS.map(String::from).to_vec()
            };
            (t.replace("{n}", &n.to_string()), items)
        }
    };
    if pool.len() < n + 1 {
        return None;
    }
    rng.shuffle(&mut pool);
    let (style, bulleted) = match rng.int(0, 2) {
        0 => ("", false),
        1 => (" Use a numbered list.", false),
        _ => (" Use bullet points.", true),
    };
    let items = &pool[..n];
    let render = |items: &[String]| -> String {
        items
            .iter()
            .enumerate()
            .map(|(k, it)| if bulleted { format!("- {it}") } else { format!("{}. {it}", k + 1) })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let bad = if rng.percent(50) {
        // The wrong count, in the right shape.
        let m = if n > 2 && rng.percent(50) { n - 1 } else { n + 1 };
        render(&pool[..m])
    } else {
        let (last, rest) = items.split_last().expect("n >= 2");
        format!("Some examples are {} and {last}.", rest.join(", "))
    };
    Some(FormatRequest {
        format: Format::ListN,
        prompt: format!("{prompt}{style}"),
        good: render(items),
        bad,
        n: Some(n),
        keys: Vec::new(),
    })
}

/// A JSON field: key, value, whether the value is a number, and the fact it states (if any).
type Field = (&'static str, String, bool, Option<usize>);

fn json(w: &World, rng: &mut Rng, allowed: &dyn Fn(usize) -> bool) -> Option<FormatRequest> {
    let fact_of = |rel: Relation, s: Subject| {
        w.facts.iter().position(|f| f.relation == rel && f.subject == s).expect("fact exists")
    };
    let (subject, fields): (String, Vec<Field>) = match rng.int(0, 3) {
        0 => {
            let c = rng.index(w.countries.len());
            let s = Subject::Country(c);
            let all =
                [("capital", Relation::Capital), ("language", Relation::Language), ("currency", Relation::Currency)];
            let a = rng.index(3);
            let b = (a + 1 + rng.index(2)) % 3;
            let pick = [all[a.min(b)], all[a.max(b)]];
            (
                w.countries[c].name.clone(),
                pick.iter()
                    .map(|(k, r)| {
                        let i = fact_of(*r, s);
                        (*k, w.facts[i].answer.clone(), false, Some(i))
                    })
                    .collect(),
            )
        }
        1 => {
            let p = rng.index(w.people.len());
            let s = Subject::Person(p);
            let (k, r, num) = *rng.pick(&[
                ("born", Relation::BirthYear, true),
                ("profession", Relation::Profession, false),
                ("city", Relation::HomeCity, false),
            ]);
            let i = fact_of(r, s);
            (
                w.people[p].name.clone(),
                vec![("name", w.people[p].name.clone(), false, None), (k, w.facts[i].answer.clone(), num, Some(i))],
            )
        }
        2 => {
            let v = rng.index(w.inventions.len());
            let s = Subject::Invention(v);
            let (k, r, num) =
                *rng.pick(&[("inventor", Relation::Inventor, false), ("year", Relation::InventionYear, true)]);
            let i = fact_of(r, s);
            (
                w.inventions[v].name.clone(),
                vec![
                    ("name", capitalise(&w.inventions[v].name), false, None),
                    (k, w.facts[i].answer.clone(), num, Some(i)),
                ],
            )
        }
        _ => {
            let e = rng.index(w.events.len());
            if w.events[e].after_cutoff {
                return None;
            }
            let s = Subject::Event(e);
            let (k, r, num) = *rng.pick(&[("city", Relation::EventPlace, false), ("year", Relation::EventYear, true)]);
            let i = fact_of(r, s);
            (
                w.events[e].name.clone(),
                vec![
                    ("name", capitalise(&w.events[e].name), false, None),
                    (k, w.facts[i].answer.clone(), num, Some(i)),
                ],
            )
        }
    };
    if fields.iter().any(|(_, _, _, f)| f.is_some_and(|i| !allowed(i))) {
        return None;
    }
    let keys: Vec<String> = fields.iter().map(|(k, ..)| k.to_string()).collect();
    let quoted = keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(" and ");
    let prompt = match rng.int(0, 2) {
        0 => format!("Give the facts about {subject} as JSON with the keys {quoted}."),
        1 => format!("Return a JSON object with the keys {quoted} for {subject}."),
        _ => format!("Describe {subject} in JSON. Use the keys {quoted}."),
    };
    let good = format!(
        "{{{}}}",
        fields
            .iter()
            .map(|(k, v, num, _)| if *num {
                format!("\"{k}\": {v}")
            } else {
                format!("\"{k}\": {}", serde_json::Value::String(v.clone()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bad = fields
        .iter()
        .filter_map(|(_, _, _, f)| f.map(|i| text::canonical_with(w, &w.facts[i], &w.facts[i].answer)))
        .collect::<Vec<_>>()
        .join(" ");
    Some(FormatRequest { format: Format::Json, prompt, good, bad, n: None, keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorldConfig;
    use crate::rng::{Stream, stream};
    use crate::score::Scorer;
    use serde_json::json;

    #[test]
    fn good_replies_comply_and_bad_ones_do_not() {
        let cfg = WorldConfig::default();
        let w = World::generate(&cfg, &cfg.plan().unwrap(), &mut stream(1, Stream::World));
        let mut rng = stream(2, Stream::Sft);
        for k in 0..400 {
            let fmt = Format::ALL[k % 4];
            let r = request(&w, fmt, &mut rng, &|i| w.facts[i].split == Split::Train);
            let item = json!({"n": r.n, "keys": r.keys});
            let sc: Scorer = fmt.scorer().parse().unwrap();
            assert_eq!(sc.score(&r.good, &item).score, 1.0, "{} -> {}", r.prompt, r.good);
            assert_eq!(sc.score(&r.bad, &item).score, 0.0, "{} -> {}", r.prompt, r.bad);
        }
    }
}
