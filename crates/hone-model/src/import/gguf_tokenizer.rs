//! The tokenizer and chat template of a GGUF file, rebuilt from its metadata as the equivalent
//! `tokenizer.json` (byte-level BPE: `tokenizer.ggml.model = gpt2`). The pre-tokenizer follows
//! `tokenizer.ggml.pre` as llama.cpp reads it (its `llama-vocab.cpp` regexes per pre-tokenizer
//! type); a type hone does not know is an error naming it rather than a silently different split.

use hone_data::chat::ChatTemplate;
use hone_data::tokenizer::{Specials, Tokenizer};
use hone_gguf::{Gguf, Value};
use serde_json::json;

/// llama.cpp's token types (`llama_token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The Llama 3 split (llama.cpp's `llama-bpe`): letters, up to three digits, punctuation runs.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's: as Llama 3's with single digits.
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `pre_tokenizer` of a `tokenizer.json` for llama.cpp's pre-tokenizer type `pre`, and whether
/// BPE ignores merges for words already in the vocabulary (Llama 3).
fn pre_tokenizer(pre: &str) -> Option<(serde_json::Value, bool)> {
    let byte_level =
        |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        // GPT-2's own regex, inside the byte-level pre-tokenizer.
        "default" | "gpt2" | "gpt-2" => (byte_level(true), false),
        // SmolLM: every digit alone, then GPT-2's regex.
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            false,
        ),
        "llama-bpe" | "llama3" => {
            (json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]}), true)
        }
        "qwen2" => (json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]}), false),
        _ => return None,
    })
}

/// The known pre-tokenizer types, for the error message.
const KNOWN_PRE: &str = "default, gpt2, smollm, llama-bpe, qwen2";

fn strings<'a>(g: &'a Gguf, key: &str) -> anyhow::Result<Vec<&'a str>> {
    let origin = g.path.display();
    let arr = g
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow::anyhow!("{origin}: metadata `{key}` is missing or not an array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| v.as_str().ok_or_else(|| anyhow::anyhow!("{origin}: `{key}`[{i}] is not a string")))
        .collect()
}

/// The `tokenizer.json` text equivalent to `g`'s tokenizer, and the special tokens it names.
pub fn tokenizer_json(g: &Gguf) -> anyhow::Result<(String, Specials)> {
    let origin = g.path.display().to_string();
    let model = g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
    anyhow::ensure!(
        model == "gpt2",
        "{origin}: tokenizer.ggml.model is `{model}`; hone rebuilds byte-level BPE tokenizers (gpt2) from GGUF \
         metadata, not SentencePiece ones (llama); open the model's Hugging Face folder instead"
    );
    let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let (pre_tok, ignore_merges) = pre_tokenizer(pre).ok_or_else(|| {
        anyhow::anyhow!("{origin}: tokenizer.ggml.pre `{pre}` is not a pre-tokenizer hone knows ({KNOWN_PRE})")
    })?;
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let merges = strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(a) => a.iter().map(|v| v.as_f64().map_or(1, |x| x as i64)).collect(),
        None => vec![1; tokens.len()],
    };
    anyhow::ensure!(
        types.len() == tokens.len(),
        "{origin}: tokenizer.ggml.token_type has {} entries for {} tokens",
        types.len(),
        tokens.len()
    );
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, (&t, &ty)) in tokens.iter().zip(&types).enumerate() {
        vocab.insert(t.to_string(), json!(id));
        if ty == CONTROL || ty == USER_DEFINED {
            added.push(json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": ty == CONTROL}));
        }
    }
    let text = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tok,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    })
    .to_string();
    let token = |key: &str| -> anyhow::Result<Option<String>> {
        match g.get(key).and_then(Value::as_u64) {
            None => Ok(None),
            Some(i) => tokens
                .get(i as usize)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{origin}: `{key}` = {i} is beyond the {} tokens", tokens.len())),
        }
    };
    let eos = token("tokenizer.ggml.eos_token_id")?
        .ok_or_else(|| anyhow::anyhow!("{origin}: metadata `tokenizer.ggml.eos_token_id` is missing"))?;
    let specials = Specials {
        bos: token("tokenizer.ggml.bos_token_id")?,
        eos,
        pad: token("tokenizer.ggml.padding_token_id")?,
        add_bos: g.get("tokenizer.ggml.add_bos_token").and_then(|v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }) == Some(true),
    };
    Ok((text, specials))
}

/// The tokenizer and chat template of `g` (hone's default template when it has none).
pub fn tokenizer(g: &Gguf) -> anyhow::Result<(Tokenizer, ChatTemplate)> {
    let origin = g.path.display().to_string();
    let (text, specials) = tokenizer_json(g)?;
    let tok = Tokenizer::from_json(&text, &origin, Some(&specials))?;
    let template = match g.get("tokenizer.chat_template").and_then(Value::as_str) {
        Some(src) => ChatTemplate::new(src, &tok.bos_token, &tok.eos_token)
            .map(|t| t.with_origin(format!("{origin}: tokenizer")))
            .map_err(|e| anyhow::anyhow!("{origin}: tokenizer.chat_template: {e:#}"))?,
        None => ChatTemplate::hone_default(),
    };
    Ok((tok, template))
}
