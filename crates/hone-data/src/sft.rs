//! Instruction-tuning data: conversations from the formats people ship, detected per record, all
//! turned into one list of chat messages (system / user / assistant) for the chat template.
//!
//! Formats (TRL's conventions, plus the common community ones):
//! - `{"messages": [{"role", "content"}, …]}` (TRL conversational);
//! - `{"prompt", "completion"}`, each a string or a list of messages (TRL prompt-completion);
//! - Alpaca `{"instruction", "input"?, "output" | "response"}` (the input, when not empty, follows the
//!   instruction after a blank line, as Alpaca's own prompt does);
//! - ShareGPT `{"conversations": [{"from", "value"}, …]}` with `from` one of human/user, gpt/assistant
//!   /chatgpt/bing/bard, system (`role`/`content` keys are accepted inside, too);
//! - `{"question", "answer"}` (GSM8K and similar) as one user turn and one assistant turn;
//! - any two string fields named by [`SftOptions::prompt_field`] and [`SftOptions::completion_field`];
//! - `{"text": "…"}` alone: a plain document, trained on every token (pretraining text mixed into
//!   instruction tuning, against forgetting what pretraining taught, as InstructGPT mixes
//!   pretraining gradients into its RL).
//!
//! A record without an assistant turn, with an unknown role or with a non-string content is a
//! [`DataError`] naming the file, the record and the field.

use crate::chat::Message;
use crate::error::{DataError, Location};
use crate::read::{ByteCounter, json_kind, records};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How to read instruction data.
#[derive(Debug, Clone)]
pub struct SftOptions {
    /// `auto` (from the file name), `jsonl` or `json`.
    pub format: String,
    /// With `completion_field`: read these two string fields as one user and one assistant turn
    /// instead of detecting the format. Empty = detect.
    pub prompt_field: String,
    pub completion_field: String,
    /// Count and drop bad records instead of stopping at the first.
    pub skip_invalid: bool,
}

impl Default for SftOptions {
    fn default() -> Self {
        Self {
            format: "auto".into(),
            prompt_field: String::new(),
            completion_field: String::new(),
            skip_invalid: false,
        }
    }
}

/// One conversation and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub messages: Vec<Message>,
    /// A plain document instead of messages (`{"text": …}`), trained on every token.
    pub text: Option<String>,
    pub file: PathBuf,
    pub loc: Location,
}

impl Conversation {
    /// `file:line` / `file: record N`, for messages.
    pub fn origin(&self) -> String {
        format!("{}{}", self.file.display(), self.loc)
    }
}

/// What reading produced: the conversations, and the bad records dropped under `skip_invalid`.
#[derive(Debug)]
pub struct Loaded<T> {
    pub items: Vec<T>,
    pub skipped: usize,
    /// The first few skip reasons, to print.
    pub skip_examples: Vec<String>,
    /// Well-formed records that state no preference (a person's tie or "both bad" judgement), kept
    /// in the file and counted, not trained on.
    pub set_aside: usize,
}

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Self { items: Vec::new(), skipped: 0, skip_examples: Vec::new(), set_aside: 0 }
    }
}

impl<T> Loaded<T> {
    /// Records a bad record, or returns it as the error when not skipping.
    pub fn skip_or_fail(&mut self, e: DataError, skip_invalid: bool) -> Result<(), DataError> {
        if !skip_invalid || !e.recoverable {
            return Err(e);
        }
        self.skipped += 1;
        if self.skip_examples.len() < 5 {
            self.skip_examples.push(e.to_string());
        }
        Ok(())
    }
}

/// Reads every record of `paths` as a conversation.
pub fn read_conversations(paths: &[PathBuf], opts: &SftOptions) -> Result<Loaded<Conversation>, DataError> {
    let mut out = Loaded::default();
    for path in paths {
        for r in records(path, &opts.format, ByteCounter::default())? {
            let parsed = r.and_then(|(loc, v)| {
                if let Some(text) = plain_text(&v, opts) {
                    return Ok(Conversation { messages: Vec::new(), text: Some(text), file: path.clone(), loc });
                }
                let messages = parse_record(path, &loc, &v, opts)?;
                Ok(Conversation { messages, text: None, file: path.clone(), loc })
            });
            match parsed {
                Ok(c) => out.items.push(c),
                Err(e) => out.skip_or_fail(e, opts.skip_invalid)?,
            }
        }
    }
    Ok(out)
}

/// The document of a `{"text": …}` record with no conversation field (and no field names set).
fn plain_text(v: &Value, opts: &SftOptions) -> Option<String> {
    let conversation = ["messages", "conversations", "prompt", "instruction", "question"];
    if !opts.prompt_field.is_empty() || conversation.iter().any(|k| v.get(k).is_some()) {
        return None;
    }
    v.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()).map(str::to_string)
}

/// One record as messages (see the module documentation for the formats).
pub fn parse_record(file: &Path, loc: &Location, v: &Value, opts: &SftOptions) -> Result<Vec<Message>, DataError> {
    let err = |msg: String, hint: &str| DataError::record(file, loc.clone(), msg, hint);
    let messages = if !opts.prompt_field.is_empty() || !opts.completion_field.is_empty() {
        let p = string_field(file, loc, v, &opts.prompt_field)?;
        let c = string_field(file, loc, v, &opts.completion_field)?;
        vec![Message::new("user", p), Message::new("assistant", c)]
    } else if let Some(m) = v.get("messages") {
        message_list(file, loc, m, "messages")?
    } else if let Some(c) = v.get("conversations") {
        message_list(file, loc, c, "conversations")?
    } else if v.get("prompt").is_some() && v.get("completion").is_some() {
        let mut m = turns(file, loc, &v["prompt"], "prompt", "user")?;
        m.extend(turns(file, loc, &v["completion"], "completion", "assistant")?);
        m
    } else if v.get("instruction").is_some() {
        let mut user = string_field(file, loc, v, "instruction")?;
        if let Some(input) = v.get("input") {
            let input = input.as_str().ok_or_else(|| {
                err(format!("field `input` is {}, expected a string", json_kind(input)), "fix the record")
            })?;
            if !input.trim().is_empty() {
                user = format!("{user}\n\n{input}");
            }
        }
        let key = if v.get("output").is_some() { "output" } else { "response" };
        vec![Message::new("user", user), Message::new("assistant", string_field(file, loc, v, key)?)]
    } else if v.get("question").is_some() && v.get("answer").is_some() {
        vec![
            Message::new("user", string_field(file, loc, v, "question")?),
            Message::new("assistant", string_field(file, loc, v, "answer")?),
        ]
    } else {
        let present: Vec<&str> = v.as_object().map(|o| o.keys().map(|k| k.as_str()).collect()).unwrap_or_default();
        return Err(err(
            format!("not a recognised conversation format (fields present: {})", present.join(", ")),
            "use `messages`, `prompt`+`completion`, `instruction`+`output`, `conversations` or \
             `question`+`answer`, or name the two fields with --set sft.prompt_field=<name> --set \
             sft.completion_field=<name>",
        ));
    };
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err(err(
            "the conversation has no assistant turn, so there is nothing to train on".into(),
            "add the assistant's reply, or set sft.skip_invalid = true to drop such records",
        ));
    }
    Ok(messages)
}

/// A required string field.
pub fn string_field(file: &Path, loc: &Location, v: &Value, key: &str) -> Result<String, DataError> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DataError::record(
            file,
            loc.clone(),
            format!("field `{key}` is {}, expected a string", json_kind(other)),
            "fix the record, or set skip_invalid to drop it",
        )),
        None => {
            let present: Vec<&str> = v.as_object().map(|o| o.keys().map(|k| k.as_str()).collect()).unwrap_or_default();
            Err(DataError::record(
                file,
                loc.clone(),
                format!("no field `{key}` (fields present: {})", present.join(", ")),
                "fix the record, or set skip_invalid to drop it",
            ))
        }
    }
}

/// A string (one turn of `role`) or a list of messages.
pub fn turns(file: &Path, loc: &Location, v: &Value, field: &str, role: &str) -> Result<Vec<Message>, DataError> {
    match v {
        Value::String(s) => Ok(vec![Message::new(role, s.clone())]),
        Value::Array(_) => message_list(file, loc, v, field),
        Value::Object(_) => Ok(vec![message(file, loc, v, field)?]),
        other => Err(DataError::record(
            file,
            loc.clone(),
            format!("field `{field}` is {}, expected a string or a list of messages", json_kind(other)),
            "fix the record, or set skip_invalid to drop it",
        )),
    }
}

/// A list of `{role, content}` or `{from, value}` objects.
pub fn message_list(file: &Path, loc: &Location, v: &Value, field: &str) -> Result<Vec<Message>, DataError> {
    let Value::Array(items) = v else {
        return Err(DataError::record(
            file,
            loc.clone(),
            format!("field `{field}` is {}, expected a list of messages", json_kind(v)),
            "fix the record, or set skip_invalid to drop it",
        ));
    };
    items.iter().enumerate().map(|(i, m)| message(file, loc, m, &format!("{field}[{i}]"))).collect()
}

/// One `{role, content}` (TRL) or `{from, value}` (ShareGPT) object.
pub fn message(file: &Path, loc: &Location, m: &Value, field: &str) -> Result<Message, DataError> {
    let bad = |msg: String| {
        DataError::record(
            file,
            loc.clone(),
            format!("`{field}`: {msg}"),
            "fix the record, or set skip_invalid to drop it",
        )
    };
    let (role_key, content_key) = if m.get("from").is_some() { ("from", "value") } else { ("role", "content") };
    let role = match m.get(role_key) {
        Some(Value::String(s)) => s.as_str(),
        Some(o) => return Err(bad(format!("`{role_key}` is {}, expected a string", json_kind(o)))),
        None => return Err(bad(format!("no `role` or `from` (found {})", json_kind(m)))),
    };
    let content = match m.get(content_key) {
        Some(Value::String(s)) => s.clone(),
        Some(o) => return Err(bad(format!("`{content_key}` is {}, expected a string", json_kind(o)))),
        None => return Err(bad(format!("no `{content_key}`"))),
    };
    let role = normalise_role(role)
        .ok_or_else(|| bad(format!("unknown role `{role}`; expected system, user/human or assistant/gpt")))?;
    Ok(Message::new(role, content))
}

/// The chat template's role for the names datasets use.
pub fn normalise_role(role: &str) -> Option<&'static str> {
    Some(match role.to_ascii_lowercase().as_str() {
        "system" => "system",
        "user" | "human" => "user",
        "assistant" | "gpt" | "chatgpt" | "bing" | "bard" | "model" => "assistant",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<Message>, DataError> {
        parse_record(Path::new("f.jsonl"), &Location::Line { line: 3, offset: 0 }, &v, &SftOptions::default())
    }

    fn roles(m: &[Message]) -> Vec<(&str, &str)> {
        m.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect()
    }

    #[test]
    fn every_format_becomes_messages() {
        let m = parse(json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"}]}))
        .unwrap();
        assert_eq!(roles(&m), [("system", "s"), ("user", "q"), ("assistant", "a")]);
        let m = parse(json!({"prompt": "q", "completion": "a"})).unwrap();
        assert_eq!(roles(&m), [("user", "q"), ("assistant", "a")]);
        let m = parse(json!({"prompt": [{"role": "user", "content": "q"}],
            "completion": [{"role": "assistant", "content": "a"}]}))
        .unwrap();
        assert_eq!(roles(&m), [("user", "q"), ("assistant", "a")]);
        let m = parse(json!({"instruction": "Do", "input": "this", "output": "done"})).unwrap();
        assert_eq!(roles(&m), [("user", "Do\n\nthis"), ("assistant", "done")]);
        let m = parse(json!({"instruction": "Do", "input": "", "response": "done"})).unwrap();
        assert_eq!(roles(&m), [("user", "Do"), ("assistant", "done")]);
        let m = parse(json!({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"},
            {"from": "human", "value": "again"}, {"from": "gpt", "value": "yo2"}]}))
        .unwrap();
        assert_eq!(roles(&m), [("user", "hi"), ("assistant", "yo"), ("user", "again"), ("assistant", "yo2")]);
        let m = parse(json!({"question": "1+1?", "answer": "#### 2"})).unwrap();
        assert_eq!(roles(&m), [("user", "1+1?"), ("assistant", "#### 2")]);
        let opts = SftOptions { prompt_field: "q".into(), completion_field: "a".into(), ..Default::default() };
        let m = parse_record(Path::new("f"), &Location::File, &json!({"q": "x", "a": "y"}), &opts).unwrap();
        assert_eq!(roles(&m), [("user", "x"), ("assistant", "y")]);
    }

    #[test]
    fn plain_documents_are_read_beside_conversations() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mix.jsonl");
        let lines = [
            json!({"text": "Pleitro is a country.", "genre": "encyclopedia"}),
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "text": "x"}),
            json!({"text": "  "}),
        ];
        std::fs::write(&p, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
        let e = read_conversations(std::slice::from_ref(&p), &SftOptions::default()).unwrap_err().to_string();
        assert!(e.contains("mix.jsonl:3") && e.contains("not a recognised"), "an empty text is no document: {e}");
        let opts = SftOptions { skip_invalid: true, ..Default::default() };
        let got = read_conversations(&[p], &opts).unwrap();
        assert_eq!(got.items.len(), 2);
        assert_eq!(got.items[0].text.as_deref(), Some("Pleitro is a country."));
        assert!(got.items[0].messages.is_empty());
        // A conversation field wins over `text`.
        assert!(got.items[1].text.is_none() && got.items[1].messages.len() == 2);
    }

    #[test]
    fn bad_records_name_file_line_and_field() {
        let e = parse(json!({"messages": [{"role": "user", "content": "q"}]})).unwrap_err().to_string();
        assert!(e.contains("f.jsonl:3") && e.contains("no assistant turn"), "{e}");
        let e = parse(json!({"messages": [{"role": "robot", "content": "q"}]})).unwrap_err().to_string();
        assert!(e.contains("messages[0]") && e.contains("unknown role `robot`"), "{e}");
        let e = parse(json!({"conversations": [{"from": "human", "value": 3}]})).unwrap_err().to_string();
        assert!(e.contains("conversations[0]") && e.contains("`value` is a number"), "{e}");
        // A record of text alone is a plain document, read by `read_conversations`, never a conversation.
        let e = parse(json!({"text": "x"})).unwrap_err().to_string();
        assert!(e.contains("not a recognised") && e.contains("fields present: text"), "{e}");
        let e = parse(json!({"instruction": "x", "output": 1})).unwrap_err().to_string();
        assert!(e.contains("field `output` is a number"), "{e}");
    }
}
