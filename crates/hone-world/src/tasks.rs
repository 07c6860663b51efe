//! Evaluation task files: one TOML file per task next to its JSONL source, in a shape modelled on
//! lm-evaluation-harness. The eval crate reads exactly this.
//!
//! ```toml
//! name = "world_known_facts_frequent"     # unique task name
//! description = "Held-out questions on facts mentioned >= 20 times in the corpus"
//! kind = "generate"                       # generate | multiple_choice | loglikelihood_rolling
//! source = "known_facts_frequent.jsonl"   # relative to this file
//! metric = "recall"                       # the headline metric: the mean item score under this name
//!
//! [generate]                              # only for kind = "generate"
//! chat = true            # render `prompt` as a user turn with the chat template; false = raw continuation
//! max_new_tokens = 48
//! stop = ["\n\n"]        # generation stops at the first of these (not included in the output)
//! scorer = "contains_any"  # a name parsed by `hone_world::score::Scorer`
//! samples = 1            # > 1: sample this many outputs per item and call `Scorer::score_samples`
//! temperature = 0.0      # 0 = greedy
//!
//! [multiple_choice]      # only for kind = "multiple_choice": score each choice by log-likelihood
//! context_field = "context"   # the text before the choice (no trailing space)
//! choices_field = "choices"   # continuations, each starting with a space
//! gold_field = "gold"         # index of the correct choice
//!
//! [loglikelihood_rolling]  # only for kind = "loglikelihood_rolling": perplexity / bits per byte
//! text_field = "text"
//! ```
//!
//! Generate records are `{"id", "prompt", "targets": [...], ...}` plus what the scorer reads (`n`, `keys`,
//! `candidates`) and descriptive fields (`frequency` = corpus mentions of the fact asked about,
//! `relation`, `fact`, `tier`, `category`, `event`, `year`). Multiple-choice records are
//! `{"id", "context", "choices", "gold", ...}`; rolling records `{"id", "text", "genre", "date"}`.
//!
//! Metrics whose direction is not "higher is better": `over_refusal_rate` (benign requests refused) and
//! `bits_per_byte` are better lower; the description of each task says so.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// A task file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    pub description: String,
    /// "generate", "multiple_choice" or "loglikelihood_rolling".
    pub kind: String,
    /// The JSONL records, relative to the task file.
    pub source: String,
    /// Name of the headline metric (the mean item score).
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_choice: Option<MultipleChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loglikelihood_rolling: Option<Rolling>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub chat: bool,
    pub max_new_tokens: u32,
    pub stop: Vec<String>,
    pub scorer: String,
    pub samples: u32,
    pub temperature: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipleChoice {
    pub context_field: String,
    pub choices_field: String,
    pub gold_field: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    pub text_field: String,
}

impl TaskFile {
    /// A generation task scored by `scorer`, greedy, one sample, chat template on.
    pub fn generate(stem: &str, description: String, metric: &str, scorer: &str) -> TaskFile {
        TaskFile {
            name: format!("world_{stem}"),
            description,
            kind: "generate".into(),
            source: format!("{stem}.jsonl"),
            metric: metric.into(),
            generate: Some(Generate {
                chat: true,
                max_new_tokens: 48,
                stop: vec!["\n\n".to_string()],
                scorer: scorer.into(),
                samples: 1,
                temperature: 0.0,
            }),
            multiple_choice: None,
            loglikelihood_rolling: None,
        }
    }

    pub fn multiple_choice(stem: &str, description: String) -> TaskFile {
        TaskFile {
            name: format!("world_{stem}"),
            description,
            kind: "multiple_choice".into(),
            source: format!("{stem}.jsonl"),
            metric: "acc".into(),
            generate: None,
            multiple_choice: Some(MultipleChoice {
                context_field: "context".into(),
                choices_field: "choices".into(),
                gold_field: "gold".into(),
            }),
            loglikelihood_rolling: None,
        }
    }

    pub fn rolling(stem: &str, description: String) -> TaskFile {
        TaskFile {
            name: format!("world_{stem}"),
            description,
            kind: "loglikelihood_rolling".into(),
            source: format!("{stem}.jsonl"),
            metric: "bits_per_byte".into(),
            generate: None,
            multiple_choice: None,
            loglikelihood_rolling: Some(Rolling { text_field: "text".into() }),
        }
    }

    /// The file stem shared by the task file and its source.
    pub fn stem(&self) -> &str {
        self.source.trim_end_matches(".jsonl")
    }

    /// Reads and checks a task file: the kind has its section, the scorer exists.
    pub fn load(path: &Path) -> Result<TaskFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading task file {}", path.display()))?;
        let t: TaskFile = toml::from_str(&text).with_context(|| format!("parsing task file {}", path.display()))?;
        t.check().with_context(|| format!("task file {}", path.display()))?;
        Ok(t)
    }

    /// Checks that the kind has its section (and only that one) and that the scorer exists.
    pub fn check(&self) -> Result<()> {
        let sections = [self.generate.is_some(), self.multiple_choice.is_some(), self.loglikelihood_rolling.is_some()];
        let want = match self.kind.as_str() {
            "generate" => [true, false, false],
            "multiple_choice" => [false, true, false],
            "loglikelihood_rolling" => [false, false, true],
            other => bail!("unknown kind `{other}` (expected generate, multiple_choice or loglikelihood_rolling)"),
        };
        if sections != want {
            bail!("kind `{}` needs exactly its own [{}] section", self.kind, self.kind);
        }
        if let Some(g) = &self.generate {
            g.scorer.parse::<crate::score::Scorer>()?;
            if g.samples == 0 {
                bail!("generate.samples must be at least 1");
            }
        }
        Ok(())
    }

    /// The TOML text, written by hand so that strings keep their escapes (`stop = ["\n\n"]`) and the
    /// layout matches the documentation above.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        let _ = writeln!(out, "name = {}", q(&self.name));
        let _ = writeln!(out, "description = {}", q(&self.description));
        let _ = writeln!(out, "kind = {}", q(&self.kind));
        let _ = writeln!(out, "source = {}", q(&self.source));
        let _ = writeln!(out, "metric = {}", q(&self.metric));
        if let Some(g) = &self.generate {
            let stop = g.stop.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
            let _ = writeln!(out, "\n[generate]");
            let _ = writeln!(out, "chat = {}", g.chat);
            let _ = writeln!(out, "max_new_tokens = {}", g.max_new_tokens);
            let _ = writeln!(out, "stop = [{stop}]");
            let _ = writeln!(out, "scorer = {}", q(&g.scorer));
            let _ = writeln!(out, "samples = {}", g.samples);
            let _ = writeln!(out, "temperature = {:?}", g.temperature);
        }
        if let Some(m) = &self.multiple_choice {
            let _ = writeln!(out, "\n[multiple_choice]");
            let _ = writeln!(out, "context_field = {}", q(&m.context_field));
            let _ = writeln!(out, "choices_field = {}", q(&m.choices_field));
            let _ = writeln!(out, "gold_field = {}", q(&m.gold_field));
        }
        if let Some(r) = &self.loglikelihood_rolling {
            let _ = writeln!(out, "\n[loglikelihood_rolling]");
            let _ = writeln!(out, "text_field = {}", q(&r.text_field));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_shape() {
        let t = TaskFile::generate("known_facts_frequent", "d".into(), "recall", "contains_any");
        let s = t.to_toml();
        assert!(s.contains("stop = [\"\\n\\n\"]"), "{s}");
        let back: TaskFile = toml::from_str(&s).unwrap();
        assert_eq!(back, t);
        back.check().unwrap();
        let v: toml::Table = toml::from_str(&s).unwrap();
        assert_eq!(v["name"].as_str(), Some("world_known_facts_frequent"));
        assert_eq!(v["source"].as_str(), Some("known_facts_frequent.jsonl"));
        assert_eq!(v["generate"]["scorer"].as_str(), Some("contains_any"));
        assert_eq!(v["generate"]["stop"][0].as_str(), Some("\n\n"));
        assert!(s.find("name").unwrap() < s.find("[generate]").unwrap());
        let m = TaskFile::multiple_choice("facts_mc", "d".into()).to_toml();
        assert!(m.contains("[multiple_choice]") && m.contains("gold_field = \"gold\""), "{m}");
        assert!(!m.contains("[generate]"));
        let r = TaskFile::rolling("heldout_text", "d \"quoted\"".into());
        assert_eq!(toml::from_str::<TaskFile>(&r.to_toml()).unwrap(), r);
        let mut bad = t.clone();
        bad.generate.as_mut().unwrap().scorer = "nope".into();
        assert!(bad.check().is_err());
        bad.kind = "multiple_choice".into();
        assert!(bad.check().is_err());
    }
}
