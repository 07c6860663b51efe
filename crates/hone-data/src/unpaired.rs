//! Unpaired preference data, as KTO (Kahneman-Tversky Optimization) trains on it: a prompt, one
//! completion and a label saying whether the completion is desirable (`true`) or undesirable
//! (`false`). No second reply to compare with is needed, which is why such data is cheaper to collect
//! than pairs (a thumbs up or down on one reply is enough). Formats, detected per record:
//!
//! - TRL unpaired: `{"prompt", "completion", "label"}`, the prompt a string (one user turn) or a list
//!   of messages, the completion a string (one assistant turn) or a list of messages, and `label` a
//!   JSON `true` or `false`;
//! - any preference pair [`crate::pairs`] reads (TRL explicit or implicit prompt, HH-RLHF transcripts,
//!   LLaMA-Factory), unpaired as TRL's `unpair_preference_dataset` does: the pair (prompt, chosen,
//!   rejected) becomes (prompt, chosen, `true`) and (prompt, rejected, `false`), both named by the
//!   pair's own file and line.
//!
//! A completion must hold an assistant turn with some text: an empty reply labelled desirable would
//! teach the model to say nothing, and one labelled undesirable teaches nothing about what to say. So
//! a pair with an empty reply on either side is a bad record here even though [`crate::pairs`] accepts
//! it (a few HH-RLHF transcripts end on an empty assistant turn).
//!
//! The trainer encodes an example with [`crate::pairs::encode_reply`] (prompt, completion).

use crate::chat::Message;
use crate::error::{DataError, Location};
use crate::pairs::parse_pair;
use crate::read::{ByteCounter, json_kind, records};
use crate::sft::{Loaded, turns};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One judged completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpaired {
    pub prompt: Vec<Message>,
    pub completion: Vec<Message>,
    /// True when the completion is desirable.
    pub label: bool,
    pub file: PathBuf,
    pub loc: Location,
}

impl Unpaired {
    /// `file:line` / `file: record N`, for messages.
    pub fn origin(&self) -> String {
        format!("{}{}", self.file.display(), self.loc)
    }
}

/// One record as examples `(prompt, completion, label)`: one for an unpaired record, two for a pair.
pub type Judged = (Vec<Message>, Vec<Message>, bool);

const HINT: &str = "fix the record, or set skip_invalid to drop it";

/// Reads every record of `paths` as unpaired examples, a pair giving two; bad records are counted and
/// dropped under `skip_invalid` (a pair is dropped whole, so both labels stay equally common).
pub fn read_unpaired(paths: &[PathBuf], format: &str, skip_invalid: bool) -> Result<Loaded<Unpaired>, DataError> {
    let mut out = Loaded::default();
    for path in paths {
        for r in records(path, format, ByteCounter::default())? {
            if matches!(&r, Ok((_, v)) if crate::pairs::states_no_preference(v)) {
                out.set_aside += 1;
                continue;
            }
            let parsed = r.and_then(|(loc, v)| Ok((parse_unpaired(path, &loc, &v)?, loc)));
            match parsed {
                Ok((examples, loc)) => out.items.extend(examples.into_iter().map(|(prompt, completion, label)| {
                    Unpaired { prompt, completion, label, file: path.clone(), loc: loc.clone() }
                })),
                Err(e) => out.skip_or_fail(e, skip_invalid)?,
            }
        }
    }
    Ok(out)
}

/// One record as judged examples (see the module documentation for the formats).
pub fn parse_unpaired(file: &Path, loc: &Location, v: &Value) -> Result<Vec<Judged>, DataError> {
    let err = |msg: String| DataError::record(file, loc.clone(), msg, HINT);
    let has = |k: &str| v.get(k).is_some();
    // `completion` or `label` alone already says the record means to be unpaired, so a missing partner
    // field is reported as such rather than as an unknown format.
    // A judgement from the grade view is a pair with a text `label` (which answer won).
    let judgement = has("chosen") && has("rejected") && v.get("label").is_some_and(Value::is_string);
    let (examples, paired) = if !judgement && (has("completion") || has("label")) {
        let label_err = |msg: String| {
            DataError::record(
                file,
                loc.clone(),
                format!("{msg}; it must be true (desirable) or false (undesirable)"),
                "write `\"label\": true` when the completion is a good reply and `false` when it is a bad one \
                 (a JSON boolean, not a string or number), or set skip_invalid to drop the record",
            )
        };
        let label = match v.get("label") {
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(label_err(format!("field `label` is {}", json_kind(other)))),
            None => return Err(label_err(format!("no field `label` (fields present: {})", fields(v)))),
        };
        let Some(c) = v.get("completion") else {
            return Err(err(format!("no field `completion` (fields present: {})", fields(v))));
        };
        let Some(p) = v.get("prompt") else {
            return Err(err(format!("no field `prompt` (fields present: {})", fields(v))));
        };
        let prompt = turns(file, loc, p, "prompt", "user")?;
        if prompt.is_empty() {
            return Err(err("the prompt is empty".into()));
        }
        (vec![(prompt, turns(file, loc, c, "completion", "assistant")?, label)], false)
    } else if has("chosen") || has("rejected") {
        let (prompt, chosen, rejected) = parse_pair(file, loc, v)?;
        (vec![(prompt.clone(), chosen, true), (prompt, rejected, false)], true)
    } else {
        return Err(DataError::record(
            file,
            loc.clone(),
            format!("not a recognised unpaired or preference format (fields present: {})", fields(v)),
            "use {\"prompt\", \"completion\", \"label\": true|false} (TRL unpaired), or a pair to split in two: \
             {\"prompt\", \"chosen\", \"rejected\"} (TRL), whole dialogues in `chosen`/`rejected` (HH-RLHF), \
             or `conversations` + `chosen` + `rejected` (LLaMA-Factory)",
        ));
    };
    for (_, completion, label) in &examples {
        if !completion.iter().any(|m| m.role == "assistant" && !m.content.trim().is_empty()) {
            let field = match (paired, label) {
                (false, _) => "completion",
                (true, true) => "chosen",
                (true, false) => "rejected",
            };
            return Err(err(format!("`{field}` has no assistant text, so there is no reply to judge")));
        }
    }
    Ok(examples)
}

fn fields(v: &Value) -> String {
    let present: Vec<&str> = v.as_object().map(|o| o.keys().map(|k| k.as_str()).collect()).unwrap_or_default();
    present.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<Judged>, DataError> {
        parse_unpaired(Path::new("u.jsonl"), &Location::Line { line: 4, offset: 0 }, &v)
    }

    #[test]
    fn completion_without_assistant_text_is_an_error() {
        let e = parse(json!({"prompt": "q", "completion": "  ", "label": true})).unwrap_err().to_string();
        assert!(e.contains("u.jsonl:4") && e.contains("`completion` has no assistant text"), "{e}");
        let e = parse(json!({"prompt": "q", "completion": [], "label": false})).unwrap_err().to_string();
        assert!(e.contains("no assistant text"), "{e}");
        let e = parse(json!({"prompt": "q", "completion": [{"role": "user", "content": "x"}], "label": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no assistant text"), "{e}");
        let e = parse(json!({"chosen": "\n\nHuman: a\n\nAssistant:", "rejected": "\n\nHuman: a\n\nAssistant: b"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`chosen` has no assistant text"), "{e}");
    }

    #[test]
    fn a_missing_prompt_or_completion_is_named() {
        let e = parse(json!({"completion": "a", "label": true})).unwrap_err().to_string();
        assert!(e.contains("no field `prompt`"), "{e}");
        let e = parse(json!({"prompt": "q", "label": true})).unwrap_err().to_string();
        assert!(e.contains("no field `completion`"), "{e}");
        let e = parse(json!({"prompt": "", "completion": "a", "label": true, "x": 1})).unwrap();
        assert_eq!(e.len(), 1, "an empty prompt string is still one user turn");
        let e = parse(json!({"prompt": [], "completion": "a", "label": true})).unwrap_err().to_string();
        assert!(e.contains("the prompt is empty"), "{e}");
    }
}
