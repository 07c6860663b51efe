//! The chat template: conversations (system / user / assistant turns) rendered to text by a Jinja
//! template, as Hugging Face stores it in `tokenizer_config.json`, then to token ids with a mask that
//! marks the assistant's tokens (the only ones SFT trains on).
//!
//! The mask works for any template: the text of assistant turn *i* is the difference between the
//! conversation rendered up to turn *i* and the conversation up to turn *i − 1* with a generation
//! prompt. The whole conversation is tokenized once and each token is masked by the byte span it
//! covers, so the ids are exactly those of the rendered text.

use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// hone's own template. `<|end|>` closes every turn; the assistant learns to emit it, so it is part of
/// the assistant's span. The newline after a role tag keeps rendered chats readable.
pub const DEFAULT_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}\
{% if m.role == 'system' %}<|system|>\n{{ m.content }}<|end|>\n\
{% elif m.role == 'user' %}<|user|>\n{{ m.content }}<|end|>\n\
{% elif m.role == 'assistant' %}<|assistant|>\n{{ m.content }}<|end|>\n\
{% else %}{{ raise_exception('unknown role: ' ~ m.role) }}{% endif %}\
{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.to_string(), content: content.into() }
    }
}

/// A rendered and tokenized conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEncoding {
    pub ids: Vec<u32>,
    /// True for tokens the assistant produced (the training targets in SFT).
    pub assistant_mask: Vec<bool>,
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    source: String,
    /// Where the template came from, for errors ("<file>: chat_template").
    origin: String,
    bos_token: String,
    eos_token: String,
}

/// Longest chat template accepted (real ones: a few KiB).
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;
/// Most operators (`.`, `[`, `(`, `|`, `%`, `+`, `and`, …) one template tag may hold, outside its
/// string literals (real ones: a few dozen).
pub const MAX_TAG_OPERATORS: usize = 256;

/// Refuses templates the template engine would recurse too deeply on: it parses a chain like
/// `a.b.c…` in a loop but builds and walks it as a nested tree, so ten thousand links overflow a
/// thread's stack (found by the reader fuzzer, crates/hone-fuzz). A tag is what sits between
/// `{{`/`{%` and its closing `}}`/`%}`. `what` names the template in errors. Every Jinja template
/// hone compiles from a file (chat templates, lm-evaluation-harness task templates) goes through it.
pub fn check_complexity(what: &str, source: &str) -> Result<()> {
    anyhow::ensure!(
        source.len() <= MAX_TEMPLATE_BYTES,
        "{what} of {} bytes is longer than hone reads ({MAX_TEMPLATE_BYTES}); real ones are a few KiB",
        source.len()
    );
    let b = source.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'{' && (b[i + 1] == b'{' || b[i + 1] == b'%') {
            let close = if b[i + 1] == b'{' { b"}}" } else { b"%}" };
            let end = source[i + 2..].find(std::str::from_utf8(close).expect("ascii")).map_or(b.len(), |e| i + 2 + e);
            let ops = operators(&source[i + 2..end]);
            anyhow::ensure!(
                ops <= MAX_TAG_OPERATORS,
                "{what}: the tag at byte {i} chains {ops} operations (more than {MAX_TAG_OPERATORS}); the template \
                 is damaged"
            );
            i = end;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Operators in the text of one tag, outside string literals: each can add a level to the tree the
/// engine builds (`a.b.c`, `a % b % c`, `a and b and c`, `[[[`).
fn operators(tag: &str) -> usize {
    let (mut n, mut quote, mut escaped) = (0, None::<char>, false);
    let mut word = String::new();
    let flush = |w: &mut String, n: &mut usize| {
        if matches!(w.as_str(), "and" | "or" | "not" | "in" | "is" | "if" | "else") {
            *n += 1;
        }
        w.clear();
    };
    for c in tag.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut n);
        match c {
            '\'' | '"' => quote = Some(c),
            '.' | '[' | '(' | '{' | '|' | '%' | '+' | '-' | '*' | '/' | '~' | '<' | '>' | '=' | '!' => n += 1,
            _ => {}
        }
    }
    flush(&mut word, &mut n);
    n
}

impl ChatTemplate {
    /// Compiles a Jinja chat template the way `transformers` does: blocks trimmed (`trim_blocks`,
    /// `lstrip_blocks`), Python's string and dict methods available (`.strip()`, `.startswith()`,
    /// `.items()`, … through minijinja-contrib's pycompat), `raise_exception` and `strftime_now`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        check_complexity("chat template", source)?;
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        // Real templates stamp the date into a system prompt; a fixed one keeps renderings (and so
        // training data and evaluation prompts) reproducible.
        env.add_function("strftime_now", |_format: String| -> String { "01 Jan 2025".to_string() });
        env.add_template_owned("chat", source.to_string()).context("chat template does not compile")?;
        Ok(Self {
            env,
            source: source.to_string(),
            origin: "chat template".to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Names where the template came from in rendering errors (e.g. `<dir>/tokenizer_config.json`).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = format!("{}: chat_template", origin.into());
        self
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// hone's default template with hone's special tokens.
    pub fn hone_default() -> Self {
        Self::new(DEFAULT_TEMPLATE, crate::tokenizer::BOS, crate::tokenizer::END).expect("default template compiles")
    }

    /// Renders messages to text; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let t = self.env.get_template("chat").expect("added in new");
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| anyhow::anyhow!("{}: rendering: {e}", self.origin))
    }

    /// Renders and tokenizes a conversation, masking the assistant's tokens.
    pub fn encode(&self, tok: &Tokenizer, messages: &[Message]) -> Result<ChatEncoding> {
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = self.render(&messages[..i], true)?;
            let upto = self.render(&messages[..=i], false)?;
            if !upto.starts_with(&before) || !full.starts_with(&upto) {
                bail!(
                    "the chat template is not prefix-stable at turn {i}: rendering a conversation's first turns \
                     must give a prefix of rendering all of it, or the assistant's tokens cannot be located"
                );
            }
            spans.push((before.len(), upto.len()));
        }
        let (ids, offsets) = tok.encode_with_offsets(&full)?;
        // A token belongs to the assistant when it starts inside an assistant span.
        let assistant_mask =
            offsets.iter().map(|&(s, e)| spans.iter().any(|&(a, b)| s >= a && s < b && e <= b)).collect();
        Ok(ChatEncoding { ids, assistant_mask })
    }

    /// Renders and tokenizes a prompt for generation (ends with the assistant's opening).
    pub fn encode_prompt(&self, tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
        tok.encode(&self.render(messages, true)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_that_would_recurse_too_deeply_are_refused() {
        let chain = format!("{{{{ message{} }}}}", ".age".repeat(10_000));
        let e = format!("{:#}", ChatTemplate::new(&chain, "<s>", "</s>").err().expect("refused"));
        assert!(e.contains("chains 10000 operations"), "{e}");
        let nested = format!("{{{{ {} }}}}", "[".repeat(100_000));
        assert!(ChatTemplate::new(&nested, "<s>", "</s>").is_err());
        let modulo = format!("{{% for m in messages{} %}}{{% endfor %}}", " % x".repeat(10_000));
        assert!(ChatTemplate::new(&modulo, "<s>", "</s>").is_err());
        let and = format!("{{{{ a{} }}}}", " and a".repeat(10_000));
        assert!(ChatTemplate::new(&and, "<s>", "</s>").is_err());
        // Operators inside string literals do not count.
        let quoted = format!("{{{{ '{}' }}}}", ".".repeat(10_000));
        assert!(ChatTemplate::new(&quoted, "<s>", "</s>").is_ok());
        // Ordinary templates, however long their plain text, still compile.
        let ok = format!("{}{{{{ messages[0]['content'] | trim }}}}", "text ".repeat(1000));
        assert!(ChatTemplate::new(&ok, "<s>", "</s>").is_ok());
    }

    use super::*;
    use crate::tokenizer::{TokenizerConfig, train};

    fn tok() -> Tokenizer {
        let docs: Vec<String> = (0..30)
            .map(|i| format!("<|user|>\nWhat is the capital of Varnok {i}?<|end|>\n<|assistant|>\nTesmir.<|end|>\n"))
            .collect();
        train(docs.into_iter(), &TokenizerConfig { vocab_size: 320, ..Default::default() }).unwrap()
    }

    fn convo() -> Vec<Message> {
        vec![
            Message::new("system", "Be brief."),
            Message::new("user", "Capital of Varnok?"),
            Message::new("assistant", "Tesmir."),
            Message::new("user", "And its river? 🦀"),
            Message::new("assistant", "The Oss, 日本."),
        ]
    }

    #[test]
    fn renders_the_default_template() {
        let t = ChatTemplate::hone_default();
        let s = t.render(&convo()[..2], true).unwrap();
        assert_eq!(s, "<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\nCapital of Varnok?<|end|>\n<|assistant|>\n");
    }

    #[test]
    fn mask_covers_exactly_the_assistant_turns() {
        let tk = tok();
        let t = ChatTemplate::hone_default();
        let enc = t.encode(&tk, &convo()).unwrap();
        assert_eq!(enc.ids.len(), enc.assistant_mask.len());
        // Decoding the masked tokens gives the assistant replies with their end tokens, and the
        // newline that follows each in the template.
        let masked: Vec<u32> = enc.ids.iter().zip(&enc.assistant_mask).filter(|(_, m)| **m).map(|(i, _)| *i).collect();
        assert_eq!(tk.decode(&masked).unwrap(), "Tesmir.<|end|>\nThe Oss, 日本.<|end|>\n");
        let unmasked: Vec<u32> =
            enc.ids.iter().zip(&enc.assistant_mask).filter(|(_, m)| !**m).map(|(i, _)| *i).collect();
        let text = tk.decode(&unmasked).unwrap();
        assert!(text.contains("Capital of Varnok?") && text.contains("<|assistant|>") && !text.contains("Tesmir"));
        // The ids are those of the whole rendered text.
        assert_eq!(tk.decode(&enc.ids).unwrap(), t.render(&convo(), false).unwrap());
    }

    #[test]
    fn no_assistant_turn_masks_nothing_and_prompt_ends_with_assistant_tag() {
        let tk = tok();
        let t = ChatTemplate::hone_default();
        let enc = t.encode(&tk, &convo()[..2]).unwrap();
        assert!(enc.assistant_mask.iter().all(|m| !m));
        let p = t.encode_prompt(&tk, &convo()[..2]).unwrap();
        assert!(tk.decode(&p).unwrap().ends_with("<|assistant|>\n"));
    }

    #[test]
    fn unknown_role_and_bad_template_are_errors() {
        let t = ChatTemplate::hone_default();
        let e = t.render(&[Message::new("robot", "x")], false).unwrap_err();
        assert!(format!("{e:#}").contains("unknown role: robot"), "{e:#}");
        assert!(ChatTemplate::new("{% for %}", "a", "b").is_err());
    }
}
