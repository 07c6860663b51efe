//! Evaluation task files: one TOML file per task next to its JSONL source, in a shape modelled on
//! lm-evaluation-harness. The eval crate reads exactly this.
//!
//! ```toml
//! name = "world_known_facts_frequent"     # unique task name
//! description = "Held-out questions on facts mentioned >= 20 times in the corpus"
//! kind = "generate"                       # generate | multiple_choice | loglikelihood | loglikelihood_rolling
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
//! Optional keys (left out of the world's own files; they map other data sets onto the same kinds):
//!
//! ```toml
//! members = "blimp/data/"     # source is a .tar / .tar.xz archive: read its .jsonl members whose path
//!                             # starts with this (all .jsonl members when absent)
//! group_field = "tier"        # also report every metric per value of this item field
//!
//! [generate]
//! prompt_field = "question"   # where the prompt is (default "prompt"; dotted paths reach into objects)
//! prompt_format = "Question: {}\nAnswer:"   # `{}` is replaced by the prompt
//! targets_field = "answer"    # where the targets are (default "targets"; a string or a list)
//!
//! [multiple_choice]
//! context_format = "Question: {}\nAnswer:"  # `{}` is replaced by the context
//! choices_field = "question.choices"  # a list of strings, a list of objects, or an object of lists
//! choice_text_field = "text"          # the text of a choice given as an object / the list of texts
//! choice_label_field = "label"        # its label: then `gold_field` may hold a label (A-E, 1-5)
//! choice_prefix = " "                 # put before every choice (the world's choices carry their space)
//! choice_fields = ["sentence_good", "sentence_bad"]  # instead of choices_field: one field per choice
//! gold_index = 0                      # instead of gold_field: the same gold for every item
//! ```
//!
//! lm-evaluation-harness's own terms, for sets whose prompts need more than a field and a format:
//!
//! ```toml
//! [multiple_choice]
//! context_field = ""
//! doc_to_text = "Question: {{question.strip()}}\nAnswer:"   # Jinja over the record
//! doc_to_choice = "{{choices}}"   # one {{ expression }}: a list
//! doc_to_target = "{{answer}}"    # an index, or the gold choice's text
//! multiple_input = false          # true: choices are contexts, doc_to_target the one continuation
//! mutual_info = false             # true: also `acc_mutual_info`
//!
//! [fewshot]                       # multiple_choice and loglikelihood
//! num = 5
//! source = "dev.jsonl"            # default: the task's own records (an item is never its own example)
//! sampler = "first_n"             # or "random" (seeded by `seed`, default 1234)
//! description = "The following are questions (with answers) about …\n\n"
//!
//! kind = "loglikelihood"          # one target per record (LAMBADA)
//! [loglikelihood]
//! doc_to_text = "{{text.split(' ')[:-1]|join(' ')}}"
//! doc_to_target = "{{' '+text.split(' ')[-1]}}"
//! target_delimiter = ""
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
    /// For an archive source (`.tar`, `.tar.xz`): read the `.jsonl` members under this path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<String>,
    /// Also report every metric per value of this item field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_choice: Option<MultipleChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loglikelihood_rolling: Option<Rolling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loglikelihood: Option<Single>,
    /// Examples put before each item's context (lm-evaluation-harness's `num_fewshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fewshot: Option<Fewshot>,
}

/// Kind `loglikelihood`: one target continuation per record (LAMBADA-style): its log-likelihood and
/// whether it is the model's greedy continuation (`acc`); `perplexity` is exp of the mean negative
/// log-likelihood over items, as lm-evaluation-harness reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Single {
    /// Jinja template over the record giving the context (lm-evaluation-harness's `doc_to_text`).
    pub doc_to_text: String,
    /// Jinja template giving the target continuation (`doc_to_target`).
    pub doc_to_target: String,
    /// Put between context and target (the harness's `target_delimiter`, default " ").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_delimiter: Option<String>,
}

/// Few-shot examples: `num` records of `source` (default the task's own), each rendered as its
/// context + target delimiter + its gold continuation, joined by `delimiter` and put before the
/// item's context, after `description`, as lm-evaluation-harness builds a few-shot context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fewshot {
    pub num: usize,
    /// Records to draw examples from, relative to the task file (default: the task's source; an
    /// item is then never its own example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `first_n` (the first `num` records, as the harness's `first_n` sampler) or `random` (a seeded
    /// draw per item; hone's own generator, so not the harness's Python draw).
    #[serde(default)]
    pub sampler: FewshotSampler,
    #[serde(default = "default_fewshot_seed")]
    pub seed: u64,
    /// Between examples, and between the last example and the item (default "\n\n").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Put before everything (the harness's `description`).
    #[serde(default)]
    pub description: String,
}

fn default_fewshot_seed() -> u64 {
    1234
}

/// How few-shot examples are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FewshotSampler {
    #[default]
    FirstN,
    Random,
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
    /// Field holding the prompt (default `prompt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_field: Option<String>,
    /// Wraps the prompt: `{}` is replaced by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_format: Option<String>,
    /// Field holding the targets (default `targets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_field: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipleChoice {
    /// Field holding the context; empty = no context (each choice is scored as a whole text).
    pub context_field: String,
    /// Field holding the choices; empty when `choice_fields` names them.
    #[serde(default)]
    pub choices_field: String,
    /// Field holding the gold choice (an index, or a label when choices have labels); empty when
    /// `gold_index` is set.
    #[serde(default)]
    pub gold_field: String,
    /// Wraps the context: `{}` is replaced by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_format: Option<String>,
    /// Text of a choice given as an object (or the list of texts in an object of lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_text_field: Option<String>,
    /// Label of a choice given as an object (or the list of labels in an object of lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_label_field: Option<String>,
    /// Put before every choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_prefix: Option<String>,
    /// One field per choice, instead of `choices_field`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choice_fields: Vec<String>,
    /// The same gold choice for every item, instead of `gold_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_index: Option<usize>,
    /// lm-evaluation-harness's `doc_to_text`: a Jinja template over the record giving the context
    /// (instead of `context_field` / `context_format`). With `multiple_input`, it gives the gold index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_to_text: Option<String>,
    /// `doc_to_choice`: `{{ expression }}` giving the list of choices (instead of `choices_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_to_choice: Option<String>,
    /// `doc_to_target`: a template giving the gold choice's index, or its text (instead of
    /// `gold_field`); with `multiple_input`, the continuation every choice is followed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_to_target: Option<String>,
    /// The choices are contexts, each scored with the same continuation (Winogrande's partial
    /// scoring: `doc_to_choice` gives the sentence up to the blank with each option filled in).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiple_input: bool,
    /// Also score each choice without the context and report `acc_mutual_info`: the choice whose
    /// log-likelihood gains most from the context.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mutual_info: bool,
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
            members: None,
            group_field: None,
            generate: Some(Generate {
                chat: true,
                max_new_tokens: 48,
                stop: vec!["\n\n".to_string()],
                scorer: scorer.into(),
                samples: 1,
                temperature: 0.0,
                prompt_field: None,
                prompt_format: None,
                targets_field: None,
            }),
            multiple_choice: None,
            loglikelihood_rolling: None,
            loglikelihood: None,
            fewshot: None,
        }
    }

    pub fn multiple_choice(stem: &str, description: String) -> TaskFile {
        TaskFile {
            name: format!("world_{stem}"),
            description,
            kind: "multiple_choice".into(),
            source: format!("{stem}.jsonl"),
            metric: "acc".into(),
            members: None,
            group_field: None,
            generate: None,
            multiple_choice: Some(MultipleChoice {
                context_field: "context".into(),
                choices_field: "choices".into(),
                gold_field: "gold".into(),
                context_format: None,
                choice_text_field: None,
                choice_label_field: None,
                choice_prefix: None,
                choice_fields: Vec::new(),
                gold_index: None,
                doc_to_text: None,
                doc_to_choice: None,
                doc_to_target: None,
                multiple_input: false,
                mutual_info: false,
            }),
            loglikelihood_rolling: None,
            loglikelihood: None,
            fewshot: None,
        }
    }

    pub fn rolling(stem: &str, description: String) -> TaskFile {
        TaskFile {
            name: format!("world_{stem}"),
            description,
            kind: "loglikelihood_rolling".into(),
            source: format!("{stem}.jsonl"),
            metric: "bits_per_byte".into(),
            members: None,
            group_field: None,
            generate: None,
            multiple_choice: None,
            loglikelihood_rolling: Some(Rolling { text_field: "text".into() }),
            loglikelihood: None,
            fewshot: None,
        }
    }

    /// The file stem shared by the task file and its source.
    pub fn stem(&self) -> &str {
        self.source.trim_end_matches(".jsonl")
    }

    /// Reads and checks a task file: the kind has its section, the scorer exists.
    pub fn load(path: &Path) -> Result<TaskFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading task file {}", path.display()))?;
        let t: TaskFile = toml::from_str(&text).map_err(|e| {
            // A missing field is reported by the parser at the start of its table (line 1, column 1
            // for a top-level one), which reads as a syntax error; name the field instead.
            let msg = e.message();
            if msg.starts_with("missing field") {
                anyhow::anyhow!(
                    "task file {}: {msg}; a task file has name, description, kind, source and metric, and the \
                     section of its kind ([multiple_choice], [generate] or [loglikelihood_rolling]); tasks/arc_easy.toml \
                     is an example",
                    path.display()
                )
            } else {
                anyhow::anyhow!("task file {}: {e}", path.display())
            }
        })?;
        t.check().with_context(|| format!("task file {}", path.display()))?;
        Ok(t)
    }

    /// Checks that the kind has its section (and only that one) and that the scorer exists.
    pub fn check(&self) -> Result<()> {
        let sections = [
            self.generate.is_some(),
            self.multiple_choice.is_some(),
            self.loglikelihood_rolling.is_some(),
            self.loglikelihood.is_some(),
        ];
        let want = match self.kind.as_str() {
            "generate" => [true, false, false, false],
            "multiple_choice" => [false, true, false, false],
            "loglikelihood_rolling" => [false, false, true, false],
            "loglikelihood" => [false, false, false, true],
            other => bail!(
                "unknown kind `{other}` (expected generate, multiple_choice, loglikelihood or loglikelihood_rolling)"
            ),
        };
        if self.fewshot.is_some() && !matches!(self.kind.as_str(), "multiple_choice" | "loglikelihood") {
            bail!("[fewshot] applies to multiple_choice and loglikelihood tasks");
        }
        if sections != want {
            bail!("kind `{}` needs exactly its own [{}] section", self.kind, self.kind);
        }
        if let Some(g) = &self.generate {
            g.scorer.parse::<crate::score::Scorer>()?;
            if g.samples == 0 {
                bail!("generate.samples must be at least 1");
            }
        }
        if let Some(m) = &self.multiple_choice {
            let choice_ways = [!m.choices_field.is_empty(), !m.choice_fields.is_empty(), m.doc_to_choice.is_some()];
            if choice_ways.iter().filter(|x| **x).count() != 1 {
                bail!("multiple_choice: set exactly one of `choices_field`, `choice_fields` and `doc_to_choice`");
            }
            let gold_ways = [!m.gold_field.is_empty(), m.gold_index.is_some(), m.doc_to_target.is_some()];
            if !m.multiple_input && gold_ways.iter().filter(|x| **x).count() != 1 {
                bail!("multiple_choice: set exactly one of `gold_field`, `gold_index` and `doc_to_target`");
            }
            if m.multiple_input && (m.doc_to_text.is_none() || m.doc_to_choice.is_none() || m.doc_to_target.is_none()) {
                bail!(
                    "multiple_choice.multiple_input needs doc_to_text (the gold index), doc_to_choice and doc_to_target"
                );
            }
            if let Some(g) = m.gold_index
                && !m.choice_fields.is_empty()
                && g >= m.choice_fields.len()
            {
                bail!("multiple_choice.gold_index = {g} but there are {} choice_fields", m.choice_fields.len());
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
        let opt = |out: &mut String, key: &str, v: &Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(out, "{key} = {}", q(v));
            }
        };
        opt(&mut out, "members", &self.members);
        opt(&mut out, "group_field", &self.group_field);
        if let Some(g) = &self.generate {
            let stop = g.stop.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
            let _ = writeln!(out, "\n[generate]");
            let _ = writeln!(out, "chat = {}", g.chat);
            let _ = writeln!(out, "max_new_tokens = {}", g.max_new_tokens);
            let _ = writeln!(out, "stop = [{stop}]");
            let _ = writeln!(out, "scorer = {}", q(&g.scorer));
            let _ = writeln!(out, "samples = {}", g.samples);
            let _ = writeln!(out, "temperature = {:?}", g.temperature);
            opt(&mut out, "prompt_field", &g.prompt_field);
            opt(&mut out, "prompt_format", &g.prompt_format);
            opt(&mut out, "targets_field", &g.targets_field);
        }
        if let Some(m) = &self.multiple_choice {
            let _ = writeln!(out, "\n[multiple_choice]");
            let _ = writeln!(out, "context_field = {}", q(&m.context_field));
            let _ = writeln!(out, "choices_field = {}", q(&m.choices_field));
            let _ = writeln!(out, "gold_field = {}", q(&m.gold_field));
            opt(&mut out, "context_format", &m.context_format);
            opt(&mut out, "choice_text_field", &m.choice_text_field);
            opt(&mut out, "choice_label_field", &m.choice_label_field);
            opt(&mut out, "choice_prefix", &m.choice_prefix);
            if !m.choice_fields.is_empty() {
                let _ = writeln!(
                    out,
                    "choice_fields = [{}]",
                    m.choice_fields.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
                );
            }
            if let Some(g) = m.gold_index {
                let _ = writeln!(out, "gold_index = {g}");
            }
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
        let mut blimp = TaskFile::multiple_choice("blimp", "d".into());
        blimp.members = Some("blimp/data/".into());
        blimp.group_field = Some("UID".into());
        let mc = blimp.multiple_choice.as_mut().unwrap();
        mc.context_field = String::new();
        mc.choices_field = String::new();
        mc.gold_field = String::new();
        mc.choice_fields = vec!["sentence_good".into(), "sentence_bad".into()];
        mc.gold_index = Some(0);
        mc.context_format = Some("Q: {}\nA:".into());
        let back: TaskFile = toml::from_str(&blimp.to_toml()).unwrap();
        assert_eq!(back, blimp);
        back.check().unwrap();
        let mut bad = blimp.clone();
        bad.multiple_choice.as_mut().unwrap().gold_index = Some(2);
        assert!(bad.check().is_err());
        bad.multiple_choice.as_mut().unwrap().gold_index = None;
        assert!(bad.check().is_err(), "neither gold_field nor gold_index");
        let r = TaskFile::rolling("heldout_text", "d \"quoted\"".into());
        assert_eq!(toml::from_str::<TaskFile>(&r.to_toml()).unwrap(), r);
        let mut bad = t.clone();
        bad.generate.as_mut().unwrap().scorer = "nope".into();
        assert!(bad.check().is_err());
        bad.kind = "multiple_choice".into();
        assert!(bad.check().is_err());
    }
}
