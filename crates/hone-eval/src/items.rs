//! Records to items: the task file's field mapping applied to each record, so the ARC schemas,
//! BLiMP's pairs, GSM8K and the world's probes all become the same three item types. A record that
//! does not fit is named by file, line and field, with the key of the task file to change.

use crate::doc::{DocTemplates, DocValue};
use crate::source::{Record, get, scalar_text};
use anyhow::Result;
use hone_data::read::json_kind;
use hone_tasks::tasks::{Generate, MultipleChoice, Rolling, Single};
use serde_json::Value;

/// A multiple-choice item: `context` is followed by each of `choices`.
#[derive(Debug, Clone, PartialEq)]
pub struct McItem {
    pub id: String,
    pub group: Option<String>,
    pub context: String,
    pub choices: Vec<String>,
    /// Text put between the context and each choice (the task's `choice_prefix`); not counted in
    /// the choice's bytes.
    pub prefix: String,
    pub gold: usize,
    /// Few-shot examples put before the context (before every choice's context with
    /// `shared_continuation`), already joined and ending with their delimiter; empty for 0-shot.
    pub fewshot: String,
    /// Winogrande-style partial scoring: every choice is a context, followed by this continuation.
    pub shared_continuation: Option<String>,
}

/// A single-target item (`loglikelihood` kind): `target` follows `context`.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleItem {
    pub id: String,
    pub group: Option<String>,
    pub context: String,
    pub target: String,
}

/// A generation item; `record` is the original record with `targets` normalised to a list, which is
/// what the scorers read.
#[derive(Debug, Clone, PartialEq)]
pub struct GenItem {
    pub id: String,
    pub group: Option<String>,
    pub prompt: String,
    pub targets: Vec<String>,
    pub record: Value,
}

/// A text scored as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct TextItem {
    pub id: String,
    pub group: Option<String>,
    pub text: String,
}

fn id_of(r: &Record) -> String {
    r.value.get("id").and_then(scalar_text).unwrap_or_else(|| r.fallback_id.clone())
}

fn group_of(r: &Record, field: Option<&str>) -> Option<String> {
    field.and_then(|f| get(&r.value, f)).and_then(scalar_text)
}

fn fields_present(v: &Value) -> String {
    v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

/// The string at `field`, or an error naming the task-file key that chose it.
fn string_at(r: &Record, field: &str, key: &str) -> Result<String> {
    match get(&r.value, field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(r
            .error(
                format!("field `{field}` is {}, expected a string", json_kind(other)),
                format!("point `{key}` at a string field"),
            )
            .into()),
        None => Err(r
            .error(
                format!("no field `{field}` (fields present: {})", fields_present(&r.value)),
                format!("set `{key}` in the task file to the field that holds it (dotted paths reach into objects)"),
            )
            .into()),
    }
}

fn apply_format(format: Option<&str>, s: &str) -> String {
    match format {
        Some(f) => f.replace("{}", s),
        None => s.to_string(),
    }
}

/// The templates of a multiple-choice task's `doc_to_*` keys (none when it uses field names).
pub fn mc_templates(m: &MultipleChoice) -> Result<Option<DocTemplates>> {
    let t: Vec<(&str, &str)> = [
        ("doc_to_text", m.doc_to_text.as_deref()),
        ("doc_to_choice", m.doc_to_choice.as_deref()),
        ("doc_to_target", m.doc_to_target.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if t.is_empty() { Ok(None) } else { DocTemplates::new(&t).map(Some) }
}

/// An error about record `r` as an `anyhow::Error`.
fn bad(r: &Record, message: String, hint: &str) -> anyhow::Error {
    r.error(message, hint.to_string()).into()
}

/// Maps one record to a multiple-choice item through lm-evaluation-harness's `doc_to_*` templates
/// (the keys a template does not set fall back to the field mapping).
fn mc_item_templated(r: &Record, m: &MultipleChoice, t: &DocTemplates, group_field: Option<&str>) -> Result<McItem> {
    let list = |name: &str| -> Result<Vec<String>> {
        match t.value(name, r)? {
            DocValue::List(l) => Ok(l),
            other => Err(bad(r, format!("`{name}` gave {other:?}, not a list"), "make it a list")),
        }
    };
    let delimiter = m.choice_prefix.clone().unwrap_or_else(|| " ".to_string());
    if m.multiple_input {
        let contexts = list("doc_to_choice")?;
        let gold = match t.value("doc_to_text", r)? {
            DocValue::Index(i) => i,
            other => {
                return Err(bad(
                    r,
                    format!("`doc_to_text` gave {other:?}, not an index"),
                    "with multiple_input, doc_to_text gives the gold index",
                ));
            }
        };
        let cont = match t.value("doc_to_target", r)? {
            DocValue::Text(s) => s,
            other => {
                return Err(bad(
                    r,
                    format!("`doc_to_target` gave {other:?}, not text"),
                    "with multiple_input, doc_to_target gives the continuation",
                ));
            }
        };
        if gold >= contexts.len() || contexts.len() < 2 {
            return Err(bad(r, format!("gold {gold} of {} contexts", contexts.len()), "fix the record"));
        }
        return Ok(McItem {
            id: id_of(r),
            group: group_of(r, group_field),
            context: String::new(),
            choices: contexts,
            prefix: delimiter,
            gold,
            fewshot: String::new(),
            shared_continuation: Some(cont),
        });
    }
    let context = match &m.doc_to_text {
        Some(_) => t.text("doc_to_text", r)?,
        None => apply_format(m.context_format.as_deref(), &string_at(r, &m.context_field, "context_field")?),
    };
    let mut base = MultipleChoice { doc_to_text: None, doc_to_choice: None, doc_to_target: None, ..m.clone() };
    base.context_field = String::new();
    if m.doc_to_target.is_some() {
        // The gold comes from the template; the field mapping only supplies the choices.
        (base.gold_field, base.gold_index) = (String::new(), Some(0));
    }
    let choices = if m.doc_to_choice.is_some() { list("doc_to_choice")? } else { mc_item(r, &base, None)?.choices };
    if choices.len() < 2 {
        return Err(bad(r, format!("{} choice(s); multiple choice needs at least 2", choices.len()), "fix the record"));
    }
    let gold = match &m.doc_to_target {
        Some(_) => match t.value("doc_to_target", r)? {
            DocValue::Index(i) => i,
            DocValue::Text(s) => choices.iter().position(|c| *c == s).ok_or_else(|| {
                bad(r, format!("`doc_to_target` gave {s:?}, not one of the choices"), "check doc_to_target")
            })?,
            DocValue::List(l) => {
                return Err(bad(r, format!("`doc_to_target` gave a list {l:?}"), "give one index or choice"));
            }
        },
        None => mc_item(r, &base, None)?.gold,
    };
    if gold >= choices.len() {
        return Err(bad(r, format!("gold choice {gold} but only {} choices", choices.len()), "fix the record"));
    }
    Ok(McItem {
        id: id_of(r),
        group: group_of(r, group_field),
        context,
        choices,
        prefix: delimiter,
        gold,
        fewshot: String::new(),
        shared_continuation: None,
    })
}

/// Maps one record to a multiple-choice item: through `templates` when the task has `doc_to_*`
/// keys, else by field names.
pub fn mc_item_with(
    r: &Record,
    m: &MultipleChoice,
    templates: Option<&DocTemplates>,
    group_field: Option<&str>,
) -> Result<McItem> {
    match templates {
        Some(t) => mc_item_templated(r, m, t, group_field),
        None => mc_item(r, m, group_field),
    }
}

/// Maps one record to a single-target item.
pub fn single_item(r: &Record, s: &Single, t: &DocTemplates, group_field: Option<&str>) -> Result<SingleItem> {
    let delimiter = s.target_delimiter.clone().unwrap_or_else(|| " ".to_string());
    Ok(SingleItem {
        id: id_of(r),
        group: group_of(r, group_field),
        context: t.text("doc_to_text", r)?,
        target: format!("{delimiter}{}", t.text("doc_to_target", r)?),
    })
}

/// Maps one record to a multiple-choice item.
pub fn mc_item(r: &Record, m: &MultipleChoice, group_field: Option<&str>) -> Result<McItem> {
    let context =
        if m.context_field.is_empty() { String::new() } else { string_at(r, &m.context_field, "context_field")? };
    let context = apply_format(m.context_format.as_deref(), &context);
    let text_key = m.choice_text_field.as_deref().unwrap_or("text");
    let label_key = m.choice_label_field.as_deref().unwrap_or("label");
    let mut labels: Vec<String> = Vec::new();
    let choices: Vec<String> = if !m.choice_fields.is_empty() {
        m.choice_fields.iter().map(|f| string_at(r, f, "choice_fields")).collect::<Result<_>>()?
    } else {
        let f = &m.choices_field;
        let bad = |what: String| -> anyhow::Error {
            r.error(
                format!("field `{f}` {what}"),
                "`choices_field` must hold a list of strings, a list of objects with `choice_text_field` / \
                 `choice_label_field`, or an object of lists (Hugging Face style)",
            )
            .into()
        };
        match get(&r.value, f) {
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, c) in a.iter().enumerate() {
                    match c {
                        Value::String(s) => out.push(s.clone()),
                        Value::Object(o) => {
                            let Some(t) = o.get(text_key).and_then(Value::as_str) else {
                                return Err(bad(format!("[{i}] has no string `{text_key}`")));
                            };
                            out.push(t.to_string());
                            if let Some(l) = o.get(label_key).and_then(scalar_text) {
                                labels.push(l);
                            }
                        }
                        other => return Err(bad(format!("[{i}] is {}", json_kind(other)))),
                    }
                }
                out
            }
            Some(Value::Object(o)) => {
                let Some(Value::Array(texts)) = o.get(text_key) else {
                    return Err(bad(format!("has no list `{text_key}`")));
                };
                let texts: Option<Vec<String>> = texts.iter().map(|t| t.as_str().map(str::to_string)).collect();
                let Some(texts) = texts else { return Err(bad(format!("`{text_key}` holds a non-string"))) };
                if let Some(Value::Array(ls)) = o.get(label_key) {
                    labels = ls.iter().filter_map(scalar_text).collect();
                }
                texts
            }
            Some(other) => return Err(bad(format!("is {}", json_kind(other)))),
            None => return Err(bad(format!("is missing (fields present: {})", fields_present(&r.value)))),
        }
    };
    if choices.len() < 2 {
        return Err(r
            .error(format!("{} choice(s); multiple choice needs at least 2", choices.len()), "fix the record")
            .into());
    }
    let gold = match m.gold_index {
        Some(g) => g,
        None => {
            let f = &m.gold_field;
            let v = get(&r.value, f).ok_or_else(|| {
                r.error(
                    format!("no field `{f}` (fields present: {})", fields_present(&r.value)),
                    "set `gold_field` to the field holding the answer (an index or a label)",
                )
            })?;
            let by_label = scalar_text(v).and_then(|s| labels.iter().position(|l| l.trim() == s.trim()));
            match (by_label, v) {
                (Some(i), _) => i,
                (None, Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap() as usize,
                (None, Value::String(s)) if labels.is_empty() && s.trim().parse::<usize>().is_ok() => {
                    s.trim().parse().unwrap()
                }
                _ => {
                    return Err(r
                        .error(
                            format!("`{f}` = {v} is neither a choice index nor one of the labels {labels:?}"),
                            "check `gold_field` and `choice_label_field`",
                        )
                        .into());
                }
            }
        }
    };
    if gold >= choices.len() {
        return Err(r.error(format!("gold choice {gold} but only {} choices", choices.len()), "fix the record").into());
    }
    Ok(McItem {
        id: id_of(r),
        group: group_of(r, group_field),
        context,
        choices,
        prefix: m.choice_prefix.clone().unwrap_or_default(),
        gold,
        fewshot: String::new(),
        shared_continuation: None,
    })
}

/// Maps one record to a generation item.
pub fn gen_item(r: &Record, g: &Generate, group_field: Option<&str>) -> Result<GenItem> {
    let pf = g.prompt_field.as_deref().unwrap_or("prompt");
    let prompt = apply_format(g.prompt_format.as_deref(), &string_at(r, pf, "prompt_field")?);
    let tf = g.targets_field.as_deref().unwrap_or("targets");
    let targets: Vec<String> = match get(&r.value, tf) {
        Some(Value::Array(a)) => a.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    };
    let mut record = r.value.clone();
    if let Value::Object(o) = &mut record {
        o.insert("targets".into(), Value::from(targets.clone()));
    }
    Ok(GenItem { id: id_of(r), group: group_of(r, group_field), prompt, targets, record })
}

/// Maps one record to a text item.
pub fn text_item(r: &Record, t: &Rolling, group_field: Option<&str>) -> Result<TextItem> {
    Ok(TextItem { id: id_of(r), group: group_of(r, group_field), text: string_at(r, &t.text_field, "text_field")? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_data::error::Location;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        Record { file: "x.jsonl".into(), loc: Location::Line { line: 3, offset: 0 }, fallback_id: "2".into(), value: v }
    }

    fn arc(context_field: &str) -> MultipleChoice {
        MultipleChoice {
            context_field: context_field.into(),
            choices_field: if context_field == "question" { "choices".into() } else { "question.choices".into() },
            gold_field: "answerKey".into(),
            context_format: Some("Question: {}\nAnswer:".into()),
            choice_text_field: None,
            choice_label_field: None,
            choice_prefix: Some(" ".into()),
            choice_fields: vec![],
            gold_index: None,
            ..Default::default()
        }
    }

    #[test]
    fn both_arc_schemas_and_digit_keys() {
        let orig = rec(json!({"id": "q1", "question": {"stem": "Why?", "choices": [
            {"text": "a", "label": "1"}, {"text": "b", "label": "2"}, {"text": "c", "label": "3"}]}, "answerKey": "2"}));
        let it = mc_item(&orig, &arc("question.stem"), None).unwrap();
        assert_eq!(it.context, "Question: Why?\nAnswer:");
        assert_eq!(it.choices, vec!["a", "b", "c"]);
        assert_eq!((it.gold, it.prefix.as_str(), it.id.as_str()), (1, " ", "q1"));
        let hf = rec(
            json!({"question": "Why?", "choices": {"text": ["a", "b", "c", "d"], "label": ["A", "B", "C", "D"]}, "answerKey": "D"}),
        );
        let it = mc_item(&hf, &arc("question"), None).unwrap();
        assert_eq!((it.gold, it.choices.len(), it.id.as_str()), (3, 4, "2"));
        let bad =
            rec(json!({"question": "Why?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}));
        let e = mc_item(&bad, &arc("question"), None).unwrap_err().to_string();
        assert!(e.contains("x.jsonl:3") && e.contains("answerKey") && e.contains("labels"), "{e}");
        let missing = rec(json!({"q": "Why?"}));
        let e = mc_item(&missing, &arc("question"), None).unwrap_err().to_string();
        assert!(
            e.contains("no field `question`") && e.contains("fields present: q") && e.contains("context_field"),
            "{e}"
        );
    }

    #[test]
    fn pairs_and_gsm8k_targets() {
        let m = MultipleChoice {
            context_field: String::new(),
            choices_field: String::new(),
            gold_field: String::new(),
            context_format: None,
            choice_text_field: None,
            choice_label_field: None,
            choice_prefix: None,
            choice_fields: vec!["good".into(), "bad".into()],
            gold_index: Some(0),
            ..Default::default()
        };
        let it =
            mc_item(&rec(json!({"good": "Cats run.", "bad": "Cats runs.", "UID": "agr"})), &m, Some("UID")).unwrap();
        assert_eq!((it.context.as_str(), it.gold, it.group.as_deref()), ("", 0, Some("agr")));
        let g = Generate {
            chat: false,
            max_new_tokens: 8,
            stop: vec![],
            scorer: "number".into(),
            samples: 1,
            temperature: 0.0,
            prompt_field: Some("question".into()),
            prompt_format: Some("Q: {}\nA:".into()),
            targets_field: Some("answer".into()),
        };
        let it = gen_item(&rec(json!({"question": "2+2?", "answer": "so\n#### 4"})), &g, None).unwrap();
        assert_eq!(it.prompt, "Q: 2+2?\nA:");
        assert_eq!(it.record["targets"], json!(["so\n#### 4"]));
    }
}
