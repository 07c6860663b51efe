//! Preference pairs: a prompt (a list of messages ending with a user turn) and two replies, the
//! preferred (`chosen`) and the other (`rejected`), from the formats people ship, detected per record:
//!
//! - TRL explicit prompt: `{"prompt", "chosen", "rejected"}`, each a string (user turn / assistant
//!   turn) or a list of messages;
//! - TRL implicit prompt: `{"chosen", "rejected"}` as message lists that repeat the prompt; the
//!   shared leading messages are the prompt;
//! - whole-dialogue transcripts as in Anthropic HH-RLHF: `chosen`/`rejected` strings
//!   `"\n\nHuman: … \n\nAssistant: …"`, converted to messages, the shared prefix being the prompt;
//! - LLaMA-Factory / ShareGPT pairs: `{"conversations": [{from, value}…], "chosen": {from, value},
//!   "rejected": {from, value}}`.
//!
//! Also [`encode_reply`]: the token ids of prompt + reply with a mask of the reply's tokens, which is
//! what DPO and the reward model score.

use crate::chat::{ChatEncoding, ChatTemplate, Message};
use crate::error::{DataError, Location};
use crate::read::{ByteCounter, json_kind, records};
use crate::sft::{Loaded, message, message_list, turns};
use crate::tokenizer::Tokenizer;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One preference pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub prompt: Vec<Message>,
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
    pub file: PathBuf,
    pub loc: Location,
}

impl Pair {
    pub fn origin(&self) -> String {
        format!("{}{}", self.file.display(), self.loc)
    }
}

/// `label`s of judgements that prefer neither answer (written by `hone serve`'s grade view).
pub const NO_PREFERENCE: [&str; 2] = ["tie", "both_bad"];

/// Whether a record is a judgement that prefers neither answer.
pub fn states_no_preference(v: &Value) -> bool {
    v.get("label").and_then(Value::as_str).is_some_and(|l| NO_PREFERENCE.contains(&l))
}

/// Reads every record of `paths` as a pair; bad records are counted and dropped under
/// `skip_invalid`; judgements that prefer neither answer (`label` tie / both_bad) are counted in
/// `set_aside`.
pub fn read_pairs(paths: &[PathBuf], format: &str, skip_invalid: bool) -> Result<Loaded<Pair>, DataError> {
    let mut out = Loaded::default();
    for path in paths {
        for r in records(path, format, ByteCounter::default())? {
            if matches!(&r, Ok((_, v)) if states_no_preference(v)) {
                out.set_aside += 1;
                continue;
            }
            let parsed = r.and_then(|(loc, v)| {
                let (prompt, chosen, rejected) = parse_pair(path, &loc, &v)?;
                Ok(Pair { prompt, chosen, rejected, file: path.clone(), loc })
            });
            match parsed {
                Ok(p) => out.items.push(p),
                Err(e) => out.skip_or_fail(e, skip_invalid)?,
            }
        }
    }
    Ok(out)
}

type Triple = (Vec<Message>, Vec<Message>, Vec<Message>);

/// One record as (prompt, chosen, rejected).
pub fn parse_pair(file: &Path, loc: &Location, v: &Value) -> Result<Triple, DataError> {
    let err = |msg: String| DataError::record(file, loc.clone(), msg, "fix the record, or set skip_invalid to drop it");
    let (Some(c), Some(r)) = (v.get("chosen"), v.get("rejected")) else {
        let present: Vec<&str> = v.as_object().map(|o| o.keys().map(|k| k.as_str()).collect()).unwrap_or_default();
        return Err(DataError::record(
            file,
            loc.clone(),
            format!("a preference pair needs `chosen` and `rejected` (fields present: {})", present.join(", ")),
            "use {\"prompt\", \"chosen\", \"rejected\"} (TRL), whole dialogues in `chosen`/`rejected` (HH-RLHF), \
             or `conversations` + `chosen` + `rejected` (LLaMA-Factory)",
        ));
    };
    let triple = if let Some(conv) = v.get("conversations") {
        let prompt = message_list(file, loc, conv, "conversations")?;
        let one = |x: &Value, f: &str| -> Result<Vec<Message>, DataError> {
            match x {
                Value::Object(_) => Ok(vec![message(file, loc, x, f)?]),
                _ => turns(file, loc, x, f, "assistant"),
            }
        };
        (prompt, one(c, "chosen")?, one(r, "rejected")?)
    } else if let Some(p) = v.get("prompt") {
        (
            turns(file, loc, p, "prompt", "user")?,
            turns(file, loc, c, "chosen", "assistant")?,
            turns(file, loc, r, "rejected", "assistant")?,
        )
    } else {
        let whole = |x: &Value, f: &str| -> Result<Vec<Message>, DataError> {
            match x {
                Value::String(s) => transcript(s).map_err(|m| err(format!("field `{f}`: {m}"))),
                Value::Array(_) => message_list(file, loc, x, f),
                other => Err(err(format!("field `{f}` is {}, expected a transcript or messages", json_kind(other)))),
            }
        };
        split_shared(whole(c, "chosen")?, whole(r, "rejected")?)
    };
    let (prompt, chosen, rejected) = triple;
    if chosen.is_empty() || rejected.is_empty() || chosen == rejected {
        return Err(err("`chosen` and `rejected` are the same, so the pair prefers nothing".into()));
    }
    for (name, side) in [("chosen", &chosen), ("rejected", &rejected)] {
        if !side.iter().any(|m| m.role == "assistant") {
            return Err(err(format!("`{name}` has no assistant turn")));
        }
    }
    if prompt.is_empty() {
        return Err(err("the prompt is empty".into()));
    }
    Ok((prompt, chosen, rejected))
}

/// Splits two dialogues into their shared leading messages (the prompt, made to end before an
/// assistant turn) and the two different continuations.
fn split_shared(a: Vec<Message>, b: Vec<Message>) -> Triple {
    let mut n = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    // The prompt ends where the assistant's reply begins: shared assistant turns at its end belong to
    // both replies.
    while n > 0 && a[n - 1].role == "assistant" {
        n -= 1;
    }
    (a[..n].to_vec(), a[n..].to_vec(), b[n..].to_vec())
}

/// Parses an HH-RLHF transcript `"\n\nHuman: …\n\nAssistant: …"` into messages.
pub fn transcript(s: &str) -> Result<Vec<Message>, String> {
    const MARKS: [(&str, &str); 2] = [("\n\nHuman:", "user"), ("\n\nAssistant:", "assistant")];
    let mut found: Vec<(usize, usize, &str)> = Vec::new(); // (start, end of marker, role)
    for (mark, role) in MARKS {
        found.extend(s.match_indices(mark).map(|(i, m)| (i, i + m.len(), role)));
    }
    found.sort();
    let Some(first) = found.first() else {
        return Err("no `\\n\\nHuman:` / `\\n\\nAssistant:` turns found".into());
    };
    if !s[..first.0].trim().is_empty() {
        return Err("text before the first `Human:` turn".into());
    }
    Ok(found
        .iter()
        .enumerate()
        .map(|(i, &(_, end, role))| {
            let stop = found.get(i + 1).map(|n| n.0).unwrap_or(s.len());
            Message::new(role, s[end..stop].trim())
        })
        .collect())
}

/// Token ids of `prompt` followed by `reply`, with the mask true exactly on the reply's assistant
/// tokens (assistant turns inside a multi-turn prompt are context, not scored).
pub fn encode_reply(
    template: &ChatTemplate,
    tok: &Tokenizer,
    prompt: &[Message],
    reply: &[Message],
) -> anyhow::Result<ChatEncoding> {
    let all: Vec<Message> = prompt.iter().chain(reply).cloned().collect();
    let mut enc = template.encode(tok, &all)?;
    // The prompt renders as a prefix of the whole and the chat's special tokens cut the text, so its
    // assistant tokens are the first ones of the whole's mask.
    let in_prompt = if prompt.iter().any(|m| m.role == "assistant") {
        template.encode(tok, prompt)?.assistant_mask.iter().filter(|m| **m).count()
    } else {
        0
    };
    let mut seen = 0;
    for m in enc.assistant_mask.iter_mut() {
        if *m {
            seen += 1;
            if seen <= in_prompt {
                *m = false;
            }
        }
    }
    Ok(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Triple, DataError> {
        parse_pair(Path::new("p.jsonl"), &Location::Line { line: 7, offset: 0 }, &v)
    }

    fn texts(m: &[Message]) -> Vec<String> {
        m.iter().map(|m| format!("{}:{}", m.role, m.content)).collect()
    }

    #[test]
    fn trl_strings_and_messages() {
        let (p, c, r) = parse(json!({"prompt": "q", "chosen": "good", "rejected": "bad"})).unwrap();
        assert_eq!(
            (texts(&p), texts(&c), texts(&r)),
            (vec!["user:q".into()], vec!["assistant:good".into()], vec!["assistant:bad".into()])
        );
        let (p, c, _) = parse(json!({"prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}]}))
        .unwrap();
        assert_eq!((texts(&p), texts(&c)), (vec!["user:q".into()], vec!["assistant:good".into()]));
        let u = json!({"role": "user", "content": "q"});
        let (p, c, r) = parse(json!({"chosen": [u, {"role": "assistant", "content": "g"}],
            "rejected": [u, {"role": "assistant", "content": "b"}]}))
        .unwrap();
        assert_eq!(
            (texts(&p), texts(&c), texts(&r)),
            (vec!["user:q".into()], vec!["assistant:g".into()], vec!["assistant:b".into()])
        );
    }

    #[test]
    fn hh_transcripts_split_at_the_shared_prefix() {
        let (p, c, r) = parse(json!({
            "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: well",
            "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: badly"}))
        .unwrap();
        assert_eq!(texts(&p), ["user:hi", "assistant:hello", "user:how?"]);
        assert_eq!((texts(&c), texts(&r)), (vec!["assistant:well".into()], vec!["assistant:badly".into()]));
        let e = parse(json!({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: b"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.jsonl:7") && e.contains("the same"), "{e}");
        let e = parse(json!({"chosen": "no markers", "rejected": "x"})).unwrap_err().to_string();
        assert!(e.contains("field `chosen`") && e.contains("Human:"), "{e}");
    }

    #[test]
    fn llamafactory_pairs() {
        let (p, c, r) = parse(json!({"conversations": [{"from": "human", "value": "q"}],
            "chosen": {"from": "gpt", "value": "g"}, "rejected": {"from": "gpt", "value": "b"}}))
        .unwrap();
        assert_eq!(
            (texts(&p), texts(&c), texts(&r)),
            (vec!["user:q".into()], vec!["assistant:g".into()], vec!["assistant:b".into()])
        );
        let e = parse(json!({"prompt": "q"})).unwrap_err().to_string();
        assert!(e.contains("needs `chosen` and `rejected`") && e.contains("fields present: prompt"), "{e}");
    }
}
