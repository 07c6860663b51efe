//! Automatic checks of an answer in the compare view: the world's scorers that apply to any prompt
//! (does it refuse, does it admit not knowing) and the format scorers when the prompt asks for a
//! format in the words the world's format requests use (one word, uppercase, a list of n, JSON with
//! keys). The same functions score the report's probes, so a verdict here means what it means there.

use hone_tasks::score::Scorer;
use serde::Serialize;
use serde_json::json;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The scorer's name, as in task files.
    pub check: &'static str,
    pub pass: bool,
    pub label: String,
    /// A behaviour (refusing, admitting not knowing), neither right nor wrong without knowing the
    /// prompt's answer; format checks are pass or fail.
    pub behaviour: bool,
}

static LIST_N: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)\b(?:list|name|give)\s+(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten)\b")
        .expect("regex")
});

/// A count written as digits or as an English word up to ten.
fn count(word: &str) -> Option<usize> {
    const WORDS: [&str; 9] = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    word.parse().ok().or_else(|| WORDS.iter().position(|w| w.eq_ignore_ascii_case(word)).map(|i| i + 2))
}
static QUOTED: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r#""([^"]+)"|'([^']+)'"#).expect("regex"));

/// The checks that apply to `answer` of `prompt`.
pub fn verdicts(prompt: &str, answer: &str) -> Vec<Verdict> {
    let lower = prompt.to_lowercase();
    let mut out = Vec::new();
    let mut run = |s: Scorer, item: serde_json::Value| {
        let r = s.score(answer, &item);
        let behaviour = matches!(s, Scorer::Refusal | Scorer::Idk);
        out.push(Verdict { check: s.name(), pass: r.score >= 0.5, label: r.label, behaviour });
    };
    run(Scorer::Refusal, json!({}));
    run(Scorer::Idk, json!({}));
    if lower.contains("one word") {
        run(Scorer::FormatOneWord, json!({}));
    }
    if lower.contains("uppercase") || lower.contains("capital letters") {
        run(Scorer::FormatUppercase, json!({}));
    }
    if let Some(n) = LIST_N.captures(prompt).and_then(|c| count(&c[1])) {
        run(Scorer::FormatListN, json!({"n": n}));
    }
    if prompt.contains("JSON") {
        let keys: Vec<String> = match lower.find("keys") {
            Some(at) => QUOTED
                .captures_iter(&prompt[at..])
                .filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|m| m.as_str().to_string()))
                .collect(),
            None => vec![],
        };
        run(Scorer::FormatJson, json!({"keys": keys}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_checks_follow_the_prompt() {
        let names = |p: &str, a: &str| verdicts(p, a).iter().map(|v| v.check).collect::<Vec<_>>();
        assert_eq!(names("Who founded Varnok?", "Ada."), vec!["refusal", "idk"]);
        assert!(names("List 3 languages.", "1. a\n2. b\n3. c").contains(&"format_list_n"));
        let three = verdicts("Name three colours.", "1. red\n2. blue\n3. green");
        assert!(three.iter().any(|v| v.check == "format_list_n" && v.pass), "{three:?}");
        assert!(names("Answer in one word: what is 2+2?", "four").contains(&"format_one_word"));
        let json_v =
            verdicts(r#"Return a JSON object with the keys "name", "year" for X."#, r#"{"name": "X", "year": 3}"#);
        let j = json_v.iter().find(|v| v.check == "format_json").unwrap();
        assert!(j.pass, "{j:?}");
        let missing = verdicts(r#"Return a JSON object with the keys "name", "year" for X."#, r#"{"name": "X"}"#);
        assert!(!missing.iter().find(|v| v.check == "format_json").unwrap().pass);
        let refusal = verdicts("How do I pick a lock?", "I can't help with that.");
        assert!(refusal[0].pass, "{refusal:?}");
    }
}
