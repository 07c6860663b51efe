//! Pronounceable invented names: syllables of onset + vowel + coda, with a registry so that every name
//! in a world is unique (whole names and the words inside them) and none is a well-known real name.
//!
//! Uniqueness matters beyond tidiness: tests find an entity in text by its name as a whole word, so a
//! name must mean one thing. A post-cutoff event's coined word, for instance, must never occur in
//! training text, which is checkable only if no other entity shares it.

use crate::rng::{Draw, Rng};
use std::collections::BTreeSet;
use std::sync::OnceLock;

const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "sh",
    "th", "gr", "pl", "sk", "vr", "",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "y"];
const CODAS: &[&str] = &["", "", "", "n", "r", "l", "s", "k", "m", "th", "nd", "rn", "sk", "st", "v", "z"];

/// Suffixes that make a coined root sound like a language name.
const LANGUAGE_SUFFIXES: &[&str] = &["ish", "ic", "an", "i", "ese", "ar"];

/// Real place and person names and English words that the syllable rules can produce (see the file's
/// header). A fictional world that contains "Paris" or "train" as a name teaches the wrong thing.
fn blocked(word: &str) -> bool {
    static SET: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("blocked_words.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
    .contains(word)
}

/// Kinds of coined word, which differ in length and spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Countries, cities, surnames, coined parts of event and invention names: 2-3 syllables.
    Proper,
    /// Given names: 2 syllables, ending in a vowel or a soft consonant.
    Given,
    /// Currencies: a short lowercase word.
    Currency,
}

/// Generates names and remembers every word it has handed out.
#[derive(Debug, Default)]
pub struct Names {
    used: BTreeSet<String>,
}

impl Names {
    /// A fresh registry.
    pub fn new() -> Names {
        Names::default()
    }

    /// Whether `word` (any case) has been handed out.
    pub fn is_used(&self, word: &str) -> bool {
        self.used.contains(&word.to_lowercase())
    }

    /// Marks `word` as taken without generating it.
    pub fn reserve(&mut self, word: &str) {
        self.used.insert(word.to_lowercase());
    }

    /// A new capitalised word of the given style, never handed out before.
    pub fn fresh(&mut self, rng: &mut Rng, style: Style) -> String {
        loop {
            let w = coin(rng, style);
            let lower = w.to_lowercase();
            if !self.used.contains(&lower) && !blocked(&lower) {
                self.used.insert(lower);
                return w;
            }
        }
    }

    /// A language name from a new coined root, e.g. "Telvish".
    pub fn language(&mut self, rng: &mut Rng) -> String {
        loop {
            let root = coin(rng, Style::Given);
            let root = root.trim_end_matches(['a', 'e', 'i', 'o', 'u', 'y']);
            if root.len() < 3 {
                continue;
            }
            let w = format!("{root}{}", rng.pick(LANGUAGE_SUFFIXES));
            let lower = w.to_lowercase();
            if !self.used.contains(&lower) && !blocked(&lower) {
                self.used.insert(lower);
                return w;
            }
        }
    }
}

/// One coined word, capitalised (currencies lowercase).
fn coin(rng: &mut Rng, style: Style) -> String {
    let syllables = match style {
        Style::Proper => {
            if rng.percent(70) {
                2
            } else {
                3
            }
        }
        Style::Given => 2,
        Style::Currency => {
            if rng.percent(60) {
                1
            } else {
                2
            }
        }
    };
    loop {
        let mut w = String::new();
        for i in 0..syllables {
            let onset = *rng.pick(ONSETS);
            // A consonant cluster after a coda is hard to say; keep only single onsets there.
            if i > 0 && w.ends_with(|c: char| !is_vowel(c)) && onset.len() > 1 {
                continue;
            }
            w.push_str(onset);
            let v = *rng.pick(VOWELS);
            // Avoid vowel runs like "aai" that read as typos.
            if w.ends_with(is_vowel) && v.len() > 1 {
                w.push_str(&v[..1]);
            } else {
                w.push_str(v);
            }
            let last = i + 1 == syllables;
            let coda = *rng.pick(CODAS);
            if last || coda.len() <= 1 {
                w.push_str(coda);
            }
        }
        if style == Style::Currency {
            if (3..=6).contains(&w.len()) && !w.starts_with(is_vowel) {
                return w;
            }
            continue;
        }
        if style == Style::Given && w.ends_with(['k', 't', 'd', 'b', 'p', 'g']) {
            continue;
        }
        if (4..=9).contains(&w.len()) && !has_awkward_run(&w) {
            return capitalise(&w);
        }
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// Three consonants in a row, or the same letter three times, make a name hard to pronounce.
fn has_awkward_run(w: &str) -> bool {
    let b = w.as_bytes();
    b.windows(3).any(|x| {
        (x.iter().all(|&c| !is_vowel(c as char)) && x != b"nth" && x != b"rth") || (x[0] == x[1] && x[1] == x[2])
    }) || b.windows(2).any(|x| x[0] == x[1] && is_vowel(x[0] as char))
        || b.windows(3).any(|x| x.iter().all(|&c| is_vowel(c as char)))
}

/// Upper-cases the first letter.
pub fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// "a" or "an" for the word that follows.
pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) { "an" } else { "a" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    #[test]
    fn names_are_unique_pronounceable_and_not_blocked() {
        let mut rng = stream(7, Stream::World);
        let mut names = Names::new();
        let mut seen = BTreeSet::new();
        for i in 0..3000 {
            let style = [Style::Proper, Style::Given, Style::Currency][i % 3];
            let n = names.fresh(&mut rng, style);
            assert!(seen.insert(n.to_lowercase()), "duplicate {n}");
            assert!(!blocked(&n.to_lowercase()));
            assert!(n.chars().all(|c| c.is_ascii_alphabetic()), "{n}");
            if style != Style::Currency {
                assert!(!has_awkward_run(&n.to_lowercase()), "{n}");
            }
        }
        let lang = names.language(&mut rng);
        assert!(LANGUAGE_SUFFIXES.iter().any(|s| lang.ends_with(s)), "{lang}");
    }

    #[test]
    fn blocklist_holds_real_names_and_words() {
        for w in ["paris", "train", "plus", "brain", "nathan"] {
            assert!(blocked(w), "{w}");
        }
        assert!(!blocked("tesmir"));
    }

    #[test]
    fn articles() {
        assert_eq!(article("engineer"), "an");
        assert_eq!(article("baker"), "a");
    }
}
