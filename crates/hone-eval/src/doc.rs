//! lm-evaluation-harness's prompt fields: `doc_to_text`, `doc_to_choice` and `doc_to_target` are Jinja
//! templates over a record (the harness's "doc"), compiled with Python's string methods available
//! (`.split()`, `.strip()`, `.find()`, …) as the harness's Jinja sees them. A template that is exactly
//! one `{{ expression }}` is evaluated to a value (a list of choices, an index), as the harness
//! renders it and reads the text back as a Python literal; anything else renders to text. A
//! `regex_replace(pattern, replacement)` filter stands in for the harness's Python `re.sub`.

use crate::source::Record;
use anyhow::Result;
use minijinja::Value as JValue;
use serde_json::Value;

/// The compiled templates of one task.
pub struct DocTemplates {
    env: minijinja::Environment<'static>,
}

/// What a template gives for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum DocValue {
    Text(String),
    Index(usize),
    List(Vec<String>),
}

impl DocTemplates {
    /// Compiles `templates` (name, source); an error names the task-file key.
    pub fn new(templates: &[(&str, &str)]) -> Result<DocTemplates> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(python_methods);
        // `re.sub` for templates that clean text as the harness's Python preprocessing does
        // (HellaSwag's bracket artifacts).
        env.add_filter(
            "regex_replace",
            |s: String, pattern: String, repl: String| -> Result<String, minijinja::Error> {
                let re = regex::Regex::new(&pattern).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("regex_replace: {e}"))
                })?;
                Ok(re.replace_all(&s, repl.as_str()).into_owned())
            },
        );
        for (name, src) in templates {
            // A chain of ten thousand attribute lookups in a damaged task file overflowed the stack
            // (found by the reader fuzzer), as it did in chat templates.
            hone_data::chat::check_complexity(name, src)?;
            env.add_template_owned(name.to_string(), src.to_string())
                .map_err(|e| anyhow::anyhow!("{name}: the template does not compile: {e}"))?;
            if let Some(expr) = sole_expression(src) {
                env.add_template_owned(format!("{name}#expr"), format!("{{{{ ({expr}) | tojson }}}}"))
                    .map_err(|e| anyhow::anyhow!("{name}: the expression does not compile: {e}"))?;
            }
        }
        Ok(DocTemplates { env })
    }

    /// The text template `name` renders for record `r`.
    pub fn text(&self, name: &str, r: &Record) -> Result<String> {
        let t = self.env.get_template(name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        t.render(JValue::from_serialize(&r.value)).map_err(|e| {
            r.error(format!("`{name}` does not render: {e}"), format!("check `{name}` in the task file")).into()
        })
    }

    /// The value template `name` gives for record `r`: a list, an index or text.
    pub fn value(&self, name: &str, r: &Record) -> Result<DocValue> {
        let expr = format!("{name}#expr");
        let Ok(t) = self.env.get_template(&expr) else { return Ok(DocValue::Text(self.text(name, r)?)) };
        let json = t.render(JValue::from_serialize(&r.value)).map_err(|e| {
            r.error(format!("`{name}` does not evaluate: {e}"), format!("check `{name}` in the task file"))
        })?;
        let v: Value = serde_json::from_str(&json)
            .map_err(|e| r.error(format!("`{name}` gave {json}: {e}"), format!("check `{name}` in the task file")))?;
        Ok(match v {
            Value::Array(items) => DocValue::List(
                items
                    .into_iter()
                    .map(|x| match x {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            Value::Number(n) if n.as_u64().is_some() => DocValue::Index(n.as_u64().expect("checked") as usize),
            Value::String(s) => match s.trim().parse::<usize>() {
                // The harness reads a rendered digit string as an index.
                Ok(i) if !s.trim().is_empty() => DocValue::Index(i),
                _ => DocValue::Text(s),
            },
            other => DocValue::Text(other.to_string()),
        })
    }
}

/// Python's methods on values: minijinja-contrib's pycompat set, plus `.index(x)` on lists and
/// strings (the harness's ARC and Winogrande templates call it), which fails as Python's does when
/// `x` is absent.
fn python_methods(
    state: &minijinja::State,
    value: &JValue,
    method: &str,
    args: &[JValue],
) -> Result<JValue, minijinja::Error> {
    if method == "index" && args.len() == 1 {
        let missing =
            || minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("{} is not in {value}", args[0]));
        if let Some(s) = value.as_str() {
            let needle = args[0].as_str().ok_or_else(missing)?;
            let at = s.find(needle).ok_or_else(missing)?;
            return Ok(JValue::from(s[..at].chars().count()));
        }
        if let Ok(items) = value.try_iter() {
            return items.into_iter().position(|x| x == args[0]).map(JValue::from).ok_or_else(missing);
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// The expression of a template that is exactly one `{{ … }}` tag, else `None`.
fn sole_expression(src: &str) -> Option<&str> {
    let inner = src.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(v: Value) -> Record {
        Record {
            file: "t.jsonl".into(),
            loc: hone_data::Location::Line { line: 1, offset: 0 },
            fallback_id: "0".into(),
            value: v,
        }
    }

    #[test]
    fn templates_render_text_lists_and_indices() {
        let t = DocTemplates::new(&[
            ("doc_to_text", "Question: {{question.strip()}}\nAnswer:"),
            ("doc_to_choice", "{{choices.text}}"),
            ("doc_to_target", "{{choices.label.index(answerKey)}}"),
            ("partial", "{{ [sentence[:sentence.find('_')] ~ option1, sentence[:sentence.find('_')] ~ option2] }}"),
            ("last_word", "{{' ' + text.split(' ')[-1]}}"),
        ])
        .unwrap();
        let r = record(serde_json::json!({
            "question": " Which is a metal? ", "choices": {"text": ["iron", "wood"], "label": ["A", "B"]},
            "answerKey": "B", "sentence": "The cup fell off the _ because it was small.", "option1": "shelf",
            "option2": "table", "text": "the river runs past the mill"
        }));
        assert_eq!(t.text("doc_to_text", &r).unwrap(), "Question: Which is a metal?\nAnswer:");
        assert_eq!(t.value("doc_to_choice", &r).unwrap(), DocValue::List(vec!["iron".into(), "wood".into()]));
        assert_eq!(t.value("doc_to_target", &r).unwrap(), DocValue::Index(1));
        assert_eq!(
            t.value("partial", &r).unwrap(),
            DocValue::List(vec!["The cup fell off the shelf".into(), "The cup fell off the table".into()])
        );
        assert_eq!(t.value("last_word", &r).unwrap(), DocValue::Text(" mill".into()));
        let e = format!("{:#}", t.value("doc_to_target", &record(serde_json::json!({"x": 1}))).unwrap_err());
        assert!(e.contains("t.jsonl") && e.contains("doc_to_target"), "{e}");
    }
}
