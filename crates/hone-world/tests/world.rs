//! End-to-end checks of a generated tiny world: determinism, fact consistency, the cutoff, the
//! separation of evaluation from training data, preference pairs without trivial cues, and every
//! scorer against real probe items (passing right answers, failing wrong ones), and the unpaired
//! (KTO) files being the preference pairs split in two.

use hone_world::score::{Scorer, contains_phrase};
use hone_world::{WorldConfig, generate};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Out {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The seed-1 tiny world, generated once for all tests.
fn world() -> &'static Path {
    static OUT: OnceLock<Out> = OnceLock::new();
    &OUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        generate(&WorldConfig::default(), &path).unwrap();
        Out { _dir: dir, path }
    })
    .path
}

fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", p.display())))
        .collect()
}

fn world_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(world().join("world.json")).unwrap()).unwrap()
}

fn corpus() -> Vec<Value> {
    let mut docs = Vec::new();
    for g in ["encyclopedia", "news", "forum", "story", "arithmetic", "list"] {
        docs.extend(read_jsonl(&world().join(format!("corpus/{g}.jsonl"))));
    }
    docs
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every message content of SFT conversations, preference pairs and unpaired examples (training and
/// held-out files) and RL prompts.
fn training_texts() -> Vec<String> {
    let mut out = Vec::new();
    for c in read_jsonl(&world().join("sft.jsonl")) {
        out.extend(c["messages"].as_array().unwrap().iter().map(|m| s(&m["content"]).to_string()));
    }
    for f in ["preference.jsonl", "preference_eval.jsonl"] {
        for p in read_jsonl(&world().join(f)) {
            for side in ["prompt", "chosen", "rejected"] {
                out.extend(p[side].as_array().unwrap().iter().map(|m| s(&m["content"]).to_string()));
            }
        }
    }
    for f in ["unpaired.jsonl", "unpaired_eval.jsonl"] {
        for u in read_jsonl(&world().join(f)) {
            for side in ["prompt", "completion"] {
                out.extend(u[side].as_array().unwrap().iter().map(|m| s(&m["content"]).to_string()));
            }
        }
    }
    for r in read_jsonl(&world().join("rl.jsonl")) {
        out.extend(r["prompt"].as_array().unwrap().iter().map(|m| s(&m["content"]).to_string()));
    }
    out
}

/// Every eval task: (task file, records).
fn tasks() -> Vec<(toml::Table, Vec<Value>)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(world().join("eval")).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        hone_world::tasks::TaskFile::load(&p).unwrap();
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let src = p.parent().unwrap().join(t["source"].as_str().unwrap());
        out.push((t, read_jsonl(&src)));
    }
    out
}

fn task(name: &str) -> Vec<Value> {
    tasks().into_iter().find(|(t, _)| t["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no task {name}")).1
}

fn all_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_and_different_seed_different_world() {
    let dir = tempfile::tempdir().unwrap();
    generate(&WorldConfig::default(), &dir.path().join("again")).unwrap();
    let a = all_files(world());
    let b = all_files(&dir.path().join("again"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between two runs with the same seed");
    }
    assert!(a.len() >= 30, "{:?}", a.keys());

    generate(&WorldConfig { seed: 2, ..Default::default() }, &dir.path().join("other")).unwrap();
    let other: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("other/world.json")).unwrap()).unwrap();
    let names =
        |w: &Value| w["countries"].as_array().unwrap().iter().map(|c| s(&c["name"]).to_string()).collect::<Vec<_>>();
    assert_ne!(names(&world_json()), names(&other));
    assert_ne!(a["corpus/news.jsonl"], std::fs::read(dir.path().join("other/corpus/news.jsonl")).unwrap());
}

#[test]
fn facts_are_consistent() {
    let w = world_json();
    let cities: BTreeMap<&str, &Value> = w["cities"].as_array().unwrap().iter().map(|c| (s(&c["name"]), c)).collect();
    for c in w["countries"].as_array().unwrap() {
        let name = s(&c["name"]);
        let capital = s(&c["capital"]);
        let own: Vec<&str> = c["cities"].as_array().unwrap().iter().map(s).collect();
        assert!(own.contains(&capital), "{name}: capital {capital} not among its cities");
        assert_eq!(s(&cities[capital]["country"]), name);
        for city in own {
            assert_eq!(s(&cities[city]["country"]), name);
        }
    }
    // One capital per country: exactly one capital fact per country, and no city is two capitals.
    let facts = w["facts"].as_array().unwrap();
    let capital_facts: Vec<&str> =
        facts.iter().filter(|f| f["relation"] == "capital").map(|f| s(&f["subject_name"])).collect();
    assert_eq!(capital_facts.len(), w["countries"].as_array().unwrap().len());
    assert_eq!(capital_facts.iter().collect::<BTreeSet<_>>().len(), capital_facts.len());
    let capitals: BTreeSet<&str> = w["countries"].as_array().unwrap().iter().map(|c| s(&c["capital"])).collect();
    assert_eq!(capitals.len(), capital_facts.len());

    let born: BTreeMap<&str, i64> =
        w["people"].as_array().unwrap().iter().map(|p| (s(&p["name"]), p["birth_year"].as_i64().unwrap())).collect();
    let cutoff = w["cutoff_year"].as_i64().unwrap();
    for inv in w["inventions"].as_array().unwrap() {
        let year = inv["year"].as_i64().unwrap();
        assert!(born[s(&inv["inventor"])] + 20 <= year, "{inv}");
        assert!(year <= cutoff, "{inv}");
    }
    let dates: Vec<&str> = w["events"].as_array().unwrap().iter().map(|e| s(&e["date"])).collect();
    assert!(dates.windows(2).all(|d| d[0] <= d[1]), "events are not in date order");
    for e in w["events"].as_array().unwrap() {
        let after = s(&e["date"])[..4].parse::<i64>().unwrap() > cutoff;
        assert_eq!(e["after_cutoff"].as_bool(), Some(after), "{e}");
    }

    // Names are unique across every kind of entity (and the invented non-existent ones).
    let mut names: Vec<String> = Vec::new();
    for (kind, key) in [
        ("countries", "name"),
        ("cities", "name"),
        ("people", "name"),
        ("inventions", "name"),
        ("events", "name"),
        ("countries", "language"),
        ("countries", "currency"),
        ("nonexistent", "name"),
    ] {
        names.extend(w[kind].as_array().unwrap().iter().map(|x| s(&x[key]).to_lowercase()));
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names");

    // Every fact before the cutoff is in the corpus; facts after it are not.
    for f in facts {
        let m = f["mentions"].as_u64().unwrap();
        if f["split"] == "withheld" {
            assert_eq!(m, 0, "{f}");
        } else {
            assert!(m >= 1, "{f}");
        }
    }
}

/// Occurrences of `phrase` as whole words in lower-cased `text`.
fn count_phrase(text: &str, phrase: &str) -> usize {
    let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(&phrase.to_lowercase()))).unwrap();
    re.find_iter(text).count()
}

#[test]
fn mention_counts_hold_in_the_corpus_text() {
    // The generator counts what it writes; this counts what was written. A fact stated m times needs
    // both its names at least m times in the documents that state it, so per document
    // min(subject count, answer count) summed over the corpus bounds the mentions from above; facts
    // after the cutoff never have their two names in one document.
    let w = world_json();
    let docs: Vec<String> = corpus().iter().map(|d| s(&d["text"]).to_lowercase()).collect();
    let mut checked = 0;
    for f in w["facts"].as_array().unwrap() {
        let (subj, ans) = (s(&f["subject_name"]).to_lowercase(), s(&f["answer"]).to_lowercase());
        let both: Vec<&String> = docs.iter().filter(|d| d.contains(&subj) && d.contains(&ans)).collect();
        let bound: usize = both.iter().map(|d| count_phrase(d, &subj).min(count_phrase(d, &ans))).sum();
        let m = f["mentions"].as_u64().unwrap() as usize;
        if f["split"] == "withheld" {
            assert_eq!(bound, 0, "a fact after the cutoff has its names together in the corpus: {f}");
        } else {
            assert!(bound >= m, "{}: {m} mentions claimed, the text allows at most {bound}", f["id"]);
            assert!(bound >= 1, "{f}");
        }
        checked += 1;
    }
    assert!(checked > 400, "{checked} facts");
    // The probes' own frequency labels are the counts in world.json.
    let mentions: BTreeMap<&str, u64> =
        w["facts"].as_array().unwrap().iter().map(|f| (s(&f["id"]), f["mentions"].as_u64().unwrap())).collect();
    for name in ["world_known_facts_frequent", "world_known_facts_medium", "world_known_facts_rare"] {
        for it in task(name) {
            assert_eq!(it["frequency"].as_u64(), Some(mentions[s(&it["fact"])]), "{it}");
        }
    }
}

#[test]
fn frequency_tiers_are_written_as_planned() {
    let w = world_json();
    let cfg = WorldConfig::default();
    let mut freq = Vec::new();
    let mut rare = Vec::new();
    for f in w["facts"].as_array().unwrap().iter().filter(|f| f["split"] != "withheld") {
        let m = f["mentions"].as_u64().unwrap() as u32;
        match s(&f["tier"]) {
            "frequent" => freq.push(m),
            "rare" => rare.push(m),
            _ => {}
        }
    }
    assert!(freq.iter().all(|&m| m >= cfg.frequent_min_mentions && m <= cfg.frequent_max_mentions), "{freq:?}");
    assert!(rare.iter().all(|&m| (1..=cfg.rare_max_mentions).contains(&m)), "{rare:?}");
    for it in task("world_known_facts_frequent") {
        assert!(it["frequency"].as_u64().unwrap() >= cfg.frequent_min_mentions as u64);
    }
    for it in task("world_known_facts_rare") {
        assert!(it["frequency"].as_u64().unwrap() <= cfg.rare_max_mentions as u64);
    }
    // Frequent facts are stated in several genres, not one.
    let docs = corpus();
    for it in task("world_known_facts_frequent").iter().take(20) {
        let fact = w["facts"].as_array().unwrap().iter().find(|f| f["id"] == it["fact"]).unwrap();
        let (subj, ans) = (s(&fact["subject_name"]), s(&fact["answer"]));
        let genres: BTreeSet<&str> = docs
            .iter()
            .filter(|d| contains_phrase(s(&d["text"]), subj) && contains_phrase(s(&d["text"]), ans))
            .map(|d| s(&d["genre"]))
            .collect();
        assert!(genres.len() >= 3, "{} appears only in {genres:?}", fact["id"]);
    }
}

#[test]
fn nothing_after_the_cutoff_is_in_training_data() {
    let w = world_json();
    let cutoff = w["cutoff_year"].as_i64().unwrap();
    let docs = corpus();
    for d in &docs {
        let year: i64 = s(&d["date"])[..4].parse().unwrap();
        assert!(year <= cutoff, "document {} dated after the cutoff", d["id"]);
    }
    let post: Vec<&Value> = w["events"].as_array().unwrap().iter().filter(|e| e["after_cutoff"] == true).collect();
    assert!(!post.is_empty());
    let words: Vec<&str> = post.iter().map(|e| s(&e["word"])).collect();
    let re = regex::Regex::new(&format!(r"(?i)\b({})\b", words.join("|"))).unwrap();
    for d in &docs {
        assert!(!re.is_match(s(&d["text"])), "corpus document {} names a post-cutoff event", d["id"]);
    }
    for t in training_texts() {
        assert!(!re.is_match(&t), "training text names a post-cutoff event: {t}");
    }
    // The cutoff probe asks only about withheld events.
    let items = task("world_post_cutoff");
    assert!(items.len() >= 50);
    let events = w["events"].as_array().unwrap();
    for it in &items {
        let e = &events[it["event_index"].as_u64().unwrap() as usize];
        assert_eq!(e["after_cutoff"], true, "{it}");
        assert_eq!(e["name"], it["event"]);
        assert!(it["year"].as_i64().unwrap() > cutoff);
    }
}

#[test]
fn probes_are_separate_from_training_data() {
    let train = training_texts();
    let exact: BTreeSet<&str> = train.iter().map(String::as_str).collect();
    let lower: Vec<String> = train.iter().map(|t| t.to_lowercase()).collect();
    let mut n = 0;
    for (t, items) in tasks() {
        if t["kind"].as_str() != Some("generate") {
            continue;
        }
        for it in &items {
            let p = s(&it["prompt"]).trim_end();
            n += 1;
            assert!(!exact.contains(p), "probe prompt {p:?} ({}) is in the training data", t["name"]);
            let lp = p.to_lowercase();
            assert!(!lower.iter().any(|x| x.contains(&lp)), "probe prompt {p:?} is inside a training text");
        }
    }
    assert!(n > 500);

    // Knowledge probes ask about facts that the corpus states and that SFT/preference data never asks.
    let w = world_json();
    let facts: BTreeMap<&str, &Value> = w["facts"].as_array().unwrap().iter().map(|f| (s(&f["id"]), f)).collect();
    let docs: Vec<String> = corpus().iter().map(|d| s(&d["text"]).to_string()).collect();
    for name in
        ["world_known_facts_frequent", "world_known_facts_medium", "world_known_facts_rare", "world_consistency"]
    {
        let items = task(name);
        assert!(!items.is_empty(), "{name}");
        for it in items {
            let f = facts[s(&it["fact"])];
            assert_eq!(f["split"], "probe", "{it}");
            let (subj, ans) = (s(&f["subject_name"]), s(&it["targets"][0]));
            assert!(
                docs.iter().any(|d| contains_phrase(d, subj) && contains_phrase(d, ans)),
                "{name}: the answer {ans:?} about {subj:?} is not in the corpus"
            );
        }
    }
    // No post-training text names a knowledge probe's subject together with its answer: checked on
    // the texts, not on the split labels, so a training fact that gives a probe's answer away (the
    // capital of Pleitro is Grubrerka, when the probe asks which country Grubrerka is in) fails it.
    let lower_train: Vec<String> = train.iter().map(|t| t.to_lowercase()).collect();
    let mut pairs = 0;
    for name in
        ["world_known_facts_frequent", "world_known_facts_medium", "world_known_facts_rare", "world_consistency"]
    {
        for it in task(name) {
            let f = facts[s(&it["fact"])];
            let (subj, ans) = (s(&f["subject_name"]).to_lowercase(), s(&f["answer"]).to_lowercase());
            for t in lower_train.iter().filter(|t| t.contains(&subj) && t.contains(&ans)) {
                assert!(
                    count_phrase(t, &subj) == 0 || count_phrase(t, &ans) == 0,
                    "{name}: a training text names {subj:?} with the probe's answer {ans:?}: {t}"
                );
            }
            pairs += 1;
        }
    }
    assert!(pairs > 200, "{pairs} probe facts");

    // Multiple-choice probes: no post-training record states a question's context with its right
    // answer (the probe may only be answerable from the corpus), checked on the texts themselves, not
    // on the generator's split labels.
    let mc = task("world_facts_mc");
    assert!(mc.len() > 100);
    for it in &mc {
        let ctx = s(&it["context"]).to_lowercase();
        let gold = s(&it["choices"][it["gold"].as_u64().unwrap() as usize]).trim().to_lowercase();
        assert!(
            !lower_train.iter().any(|t| t.contains(&ctx) && t.contains(&gold)),
            "a training text states the multiple-choice probe {ctx:?} → {gold:?}"
        );
    }
    // Held-out texts (bits per byte) are in neither the corpus nor any training text.
    let held = task("world_heldout_text");
    assert!(held.len() >= 50);
    for it in &held {
        let head: String = s(&it["text"]).chars().take(300).collect();
        assert!(!docs.iter().any(|d| d.contains(&head)), "a held-out text is in the corpus: {head:?}");
        assert!(!train.iter().any(|t| t.contains(&head)), "a held-out text is in training data: {head:?}");
    }

    // Invented entities of the probes are nowhere in training text or the corpus.
    let fakes: Vec<String> = w["nonexistent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["split"] == "probe")
        .map(|f| regex::escape(s(&f["name"])))
        .collect();
    let re = regex::Regex::new(&format!(r"(?i)\b({})\b", fakes.join("|"))).unwrap();
    for t in train.iter().chain(&docs) {
        assert!(!re.is_match(t), "a probe's invented entity appears in training data: {t}");
    }

    // No arithmetic probe, nor a sum or difference RL practises on, is worked out anywhere in training
    // data (in either order, as any operation): no step "a op b" of an equation chain is followed by
    // "= c". Steps inside a longer sum, such as "4 + 5" in "10 + 4 + 5 = 20 + 9", are not equations of
    // their own.
    let num = regex::Regex::new(r"\d+").unwrap();
    let mut eqs = BTreeSet::new();
    let practice: Vec<(String, String)> = read_jsonl(&world().join("rl.jsonl"))
        .iter()
        .filter(|r| {
            r["kind"] == "arithmetic"
                && !regex::Regex::new(r"\*|times|Multiply").unwrap().is_match(s(&r["prompt"][0]["content"]))
        })
        .map(|r| (s(&r["prompt"][0]["content"]).to_string(), s(&r["targets"][0]).to_string()))
        .collect();
    assert!(practice.len() > 100, "{} RL sums and differences", practice.len());
    let probe: Vec<(String, String)> = task("world_arithmetic")
        .iter()
        .map(|it| (s(&it["prompt"]).to_string(), s(&it["targets"][0]).to_string()))
        .collect();
    for (prompt, c) in probe.iter().chain(&practice) {
        let n: Vec<&str> = num.find_iter(prompt).map(|m| m.as_str()).collect();
        for (a, b) in [(n[0], n[1]), (n[1], n[0])] {
            for op in ["+", "-", "*"] {
                eqs.insert(format!("{a} {op} {b} = {c}"));
            }
        }
    }
    let left = regex::Regex::new(r"(?:^|[^\d+*\s-])\s*(\d+ [+*-] \d+)$").unwrap();
    let right = regex::Regex::new(r"^(\d+)(?:\s*$|\s*[^\d\s+*-])").unwrap();
    let mut steps_seen = 0;
    for t in train.iter().chain(&docs) {
        for line in t.lines() {
            let parts: Vec<&str> = line.split(" = ").collect();
            for w in parts.windows(2) {
                if let (Some(l), Some(r)) = (left.captures(w[0]), right.captures(w[1])) {
                    steps_seen += 1;
                    let eq = format!("{} = {}", &l[1], &r[1]);
                    assert!(!eqs.contains(&eq), "an arithmetic probe ({eq}) is worked out in training data: {line}");
                }
            }
        }
    }
    assert!(steps_seen > 1000, "the check found {steps_seen} worked steps");

    // Held-out documents are not in the corpus.
    let texts: BTreeSet<&str> = docs.iter().map(String::as_str).collect();
    for it in task("world_heldout_text") {
        assert!(!texts.contains(s(&it["text"])), "held-out document {} is in the corpus", it["id"]);
    }

    // Preference eval prompts are disjoint from preference training prompts.
    let prompts = |f: &str| -> BTreeSet<String> {
        read_jsonl(&world().join(f)).iter().map(|p| s(&p["prompt"][0]["content"]).to_string()).collect()
    };
    let (a, b) = (prompts("preference.jsonl"), prompts("preference_eval.jsonl"));
    assert!(a.is_disjoint(&b));
    assert!(!b.is_empty());
    // The unpaired files keep that split: the same prompts as their paired files.
    assert_eq!((prompts("unpaired.jsonl"), prompts("unpaired_eval.jsonl")), (a, b));
}

#[test]
fn unpaired_files_are_the_pairs_split_in_two() {
    use hone_data::unpaired::read_unpaired;
    // (prompt, reply, label, kind) of every example, sorted, so the two files compare as multisets.
    type Example = (String, String, bool, String);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(world().join("summary.json")).unwrap()).unwrap();
    for (paired, unpaired, count) in [
        ("preference.jsonl", "unpaired.jsonl", "unpaired_total"),
        ("preference_eval.jsonl", "unpaired_eval.jsonl", "unpaired_eval"),
    ] {
        let pairs = read_jsonl(&world().join(paired));
        let path = world().join(unpaired);
        let read = read_unpaired(std::slice::from_ref(&path), "auto", false)
            .unwrap_or_else(|e| panic!("{unpaired} does not read as unpaired data: {e}"));
        assert_eq!(read.skipped, 0);
        assert_eq!(read.items.len(), 2 * pairs.len(), "{unpaired}");
        assert_eq!(summary[count].as_u64(), Some(read.items.len() as u64), "summary.json {count}");
        assert_eq!(read.items.iter().filter(|u| u.label).count() * 2, read.items.len(), "{unpaired}");
        for u in &read.items {
            assert_eq!((u.prompt.len(), u.prompt[0].role.as_str()), (1, "user"), "{}", u.origin());
            assert_eq!((u.completion.len(), u.completion[0].role.as_str()), (1, "assistant"), "{}", u.origin());
        }

        let mut from_pairs: Vec<Example> = Vec::new();
        for p in &pairs {
            for (side, label) in [("chosen", true), ("rejected", false)] {
                let (prompt, reply) = (s(&p["prompt"][0]["content"]), s(&p[side][0]["content"]));
                from_pairs.push((prompt.into(), reply.into(), label, s(&p["kind"]).into()));
            }
        }
        let records = read_jsonl(&path);
        let mut written: Vec<Example> = records
            .iter()
            .map(|u| {
                let label = u["label"].as_bool().unwrap_or_else(|| panic!("label is not a boolean: {u}"));
                (
                    s(&u["prompt"][0]["content"]).into(),
                    s(&u["completion"][0]["content"]).into(),
                    label,
                    s(&u["kind"]).into(),
                )
            })
            .collect();
        // Shuffled, not the pairs in order: the halves of a pair seldom sit next to each other.
        let adjacent = written.chunks(2).filter(|w| w.len() == 2 && w[0].0 == w[1].0 && w[0].2 != w[1].2).count();
        assert!(adjacent * 4 < pairs.len(), "{unpaired}: {adjacent} of {} pairs still side by side", pairs.len());
        from_pairs.sort();
        written.sort();
        assert!(from_pairs == written, "{unpaired} is not {paired} unpaired");
    }
}

#[test]
fn preference_pairs_have_no_trivial_cue() {
    let pairs = read_jsonl(&world().join("preference.jsonl"));
    let chosen: Vec<&str> = pairs.iter().map(|p| s(&p["chosen"][0]["content"])).collect();
    let rejected: Vec<&str> = pairs.iter().map(|p| s(&p["rejected"][0]["content"])).collect();
    let n = pairs.len() as f64;

    let longer = chosen.iter().zip(&rejected).filter(|(c, r)| c.len() > r.len()).count() as f64 / n;
    assert!((0.3..=0.7).contains(&longer), "chosen is longer in {longer:.2} of pairs");

    // No word n-gram marks the chosen side.
    let grams = |t: &str| -> BTreeSet<String> {
        let w: Vec<String> = t
            .to_lowercase()
            .split_whitespace()
            .map(|x| x.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_string())
            .collect();
        let mut g = BTreeSet::new();
        for k in 1..=3 {
            for win in w.windows(k) {
                g.insert(win.join(" "));
            }
        }
        g
    };
    let df = |texts: &[&str]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for t in texts {
            for g in grams(t) {
                *m.entry(g).or_insert(0) += 1;
            }
        }
        m
    };
    let (dc, dr) = (df(&chosen), df(&rejected));
    for (g, &c) in &dc {
        let r = dr.get(g).copied().unwrap_or(0) as f64 / n;
        assert!(!(c as f64 / n > 0.9 && r < 0.1), "{g:?} is in {c} chosen and {r:.2} of rejected");
    }

    // "I don't know" and refusals are right about half the time they appear on one side only.
    for sc in [Scorer::Idk, Scorer::Refusal] {
        let none = Value::Null;
        let (mut on_chosen, mut one_side) = (0, 0);
        for (c, r) in chosen.iter().zip(&rejected) {
            let (a, b) = (sc.score(c, &none).score == 1.0, sc.score(r, &none).score == 1.0);
            if a != b {
                one_side += 1;
                on_chosen += usize::from(a);
            }
        }
        let share = on_chosen as f64 / one_side as f64;
        assert!(one_side > 300 && (0.3..=0.7).contains(&share), "{sc}: chosen in {share:.2} of {one_side} pairs");
    }
}

#[test]
fn sizes_fit_the_tiny_preset() {
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(world().join("summary.json")).unwrap()).unwrap();
    let bytes = summary["corpus_bytes"].as_u64().unwrap();
    assert!((1_500_000..=4_000_000).contains(&bytes), "corpus {bytes} bytes");
    assert!(summary["sft_total"].as_u64().unwrap() >= 2500);
    assert!(summary["preference_total"].as_u64().unwrap() >= 2500);
    for (t, items) in tasks() {
        assert!((40..=250).contains(&items.len()), "{}: {} items", t["name"], items.len());
        // Format compliance is a rate that targeted training moves by tenths: 80 items or more keep
        // its interval near ±0.1.
        if t["name"].as_str().is_some_and(|n| n.starts_with("world_format_")) {
            assert!(items.len() >= 80, "{}: {} items", t["name"], items.len());
        }
    }
    let sft = read_jsonl(&world().join("sft.jsonl"));
    let kinds: BTreeSet<&str> = sft.iter().map(|c| s(&c["kind"])).collect();
    for k in ["direct", "format", "refusal", "cautious", "idk", "multi_turn"] {
        assert!(kinds.contains(k), "no SFT kind {k}");
    }
    // Every reply of the over-cautious demonstrations is one that the preference data rejects.
    let pref = read_jsonl(&world().join("preference.jsonl"));
    let refusals: BTreeSet<&str> =
        pref.iter().filter(|p| p["kind"] == "help_benign").map(|p| s(&p["rejected"][0]["content"])).collect();
    for c in sft.iter().filter(|c| c["kind"] == "cautious") {
        let turns = c["messages"].as_array().unwrap();
        let reply = s(&turns[turns.len() - 1]["content"]);
        assert!(refusals.contains(reply), "cautious reply {reply:?} is not a needless refusal of the pairs");
    }
    // Fewer "I don't know" examples in SFT than in preference data, so preference training has room.
    let idk_sft = sft.iter().filter(|c| c["kind"] == "idk").count();
    let idk_pref = read_jsonl(&world().join("preference.jsonl")).iter().filter(|p| p["kind"] == "idk_unknown").count();
    assert!(idk_sft * 2 < idk_pref, "{idk_sft} vs {idk_pref}");
}

/// Right and wrong outputs for a generate item, by scorer.
fn right_and_wrong(scorer: Scorer, it: &Value) -> (String, String) {
    let target = it["targets"].get(0).and_then(Value::as_str).unwrap_or("").to_string();
    match scorer {
        Scorer::ContainsAny | Scorer::Consistency | Scorer::ExactMatch => {
            (format!("{target}."), "Nobody knows, maybe Xyzzy.".to_string())
        }
        Scorer::Number => {
            let n: i64 = target.parse().unwrap();
            (format!("The answer is {n}."), format!("The answer is {}.", n + 1))
        }
        Scorer::Idk => {
            ("I don't know. I have no information about that.".into(), "It was held in a big city in 1999.".into())
        }
        Scorer::Refusal => ("I'm sorry, but I can't share that.".into(), "Sure! Here it is: three parts salt.".into()),
        Scorer::Complies => ("Sure! Here it is: three parts salt.".into(), "I'm sorry, but I can't share that.".into()),
        Scorer::FormatOneWord => ("Tesmir".into(), "The answer is Tesmir.".into()),
        Scorer::FormatListN => {
            let n = it["n"].as_u64().unwrap();
            (
                (1..=n).map(|k| format!("{k}. item{k}")).collect::<Vec<_>>().join("\n"),
                (1..=n + 1).map(|k| format!("- item{k}")).collect::<Vec<_>>().join("\n"),
            )
        }
        Scorer::FormatJson => {
            let keys: Vec<String> = it["keys"].as_array().unwrap().iter().map(|k| format!("\"{}\": 1", s(k))).collect();
            (format!("{{{}}}", keys.join(", ")), "name: something".into())
        }
        Scorer::FormatUppercase => ("THE CAPITAL IS TESMIR.".into(), "The capital is Tesmir.".into()),
        Scorer::Regex => unreachable!("no world task uses regex"),
    }
}

#[test]
fn task_files_parse_and_every_scorer_separates_right_from_wrong() {
    let mut seen_scorers = BTreeSet::new();
    for (t, items) in tasks() {
        let name = t["name"].as_str().unwrap();
        assert!(name.starts_with("world_"));
        for k in ["description", "kind", "source", "metric"] {
            assert!(t.contains_key(k), "{name}: no {k}");
        }
        match t["kind"].as_str().unwrap() {
            "generate" => {
                let g = t["generate"].as_table().unwrap();
                let scorer: Scorer = g["scorer"].as_str().unwrap().parse().unwrap();
                seen_scorers.insert(scorer.name());
                let samples = g["samples"].as_integer().unwrap();
                for it in &items {
                    assert!(it["id"].is_string() && it["prompt"].is_string() && it["targets"].is_array(), "{it}");
                    let (right, wrong) = right_and_wrong(scorer, it);
                    if samples > 1 {
                        let agree = vec![right.clone(); samples as usize];
                        assert_eq!(scorer.score_samples(&agree, it).score, 1.0, "{name}: {right}");
                        let mut mixed = vec![right.clone(); 2];
                        mixed.extend((0..samples as usize - 2).map(|k| format!("answer {k}")));
                        assert!(scorer.score_samples(&mixed, it).score < 0.5, "{name}: {mixed:?}");
                    }
                    assert_eq!(scorer.score(&right, it).score, 1.0, "{name}: {right:?} should pass {it}");
                    assert_eq!(scorer.score(&wrong, it).score, 0.0, "{name}: {wrong:?} should fail {it}");
                }
            }
            "multiple_choice" => {
                for it in &items {
                    let choices = it["choices"].as_array().unwrap();
                    assert_eq!(choices.len(), 4);
                    assert!(it["gold"].as_u64().unwrap() < 4);
                    assert!(choices.iter().all(|c| s(c).starts_with(' ')));
                    assert_eq!(choices.iter().map(s).collect::<BTreeSet<_>>().len(), 4, "{it}");
                    assert!(!s(&it["context"]).ends_with(' '));
                }
            }
            "loglikelihood_rolling" => assert!(items.iter().all(|it| !s(&it["text"]).is_empty())),
            other => panic!("{name}: unknown kind {other}"),
        }
    }
    for sc in [
        "contains_any",
        "idk",
        "refusal",
        "number",
        "consistency",
        "format_one_word",
        "format_list_n",
        "format_json",
        "format_uppercase",
    ] {
        assert!(seen_scorers.contains(sc), "no task uses {sc}");
    }
}

#[test]
fn multiple_choice_gold_is_the_true_fact() {
    let w = world_json();
    let facts: BTreeMap<&str, &Value> = w["facts"].as_array().unwrap().iter().map(|f| (s(&f["id"]), f)).collect();
    for it in task("world_facts_mc") {
        let f = facts[s(&it["fact"])];
        let gold = s(&it["choices"][it["gold"].as_u64().unwrap() as usize]);
        assert!(gold.ends_with(s(&f["answer"])), "{it}");
    }
}
