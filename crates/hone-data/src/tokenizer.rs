//! The tokenizer: byte-level BPE trained with Hugging Face's `tokenizers` crate and saved as a standard
//! `tokenizer.json` (plus `tokenizer_config.json` holding the chat template and special tokens, as
//! Hugging Face stores them), so Python's `tokenizers`/`transformers` load it and encode identically.
//!
//! Byte-level means every byte sequence is representable: decoding the ids of any UTF-8 text gives the
//! text back exactly. No normaliser is used for the same reason.

use crate::config_section;
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::path::Path;
use std::str::FromStr;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder,
};

/// Beginning of a document; also separates documents in token shards.
pub const BOS: &str = "<|bos|>";
/// End of a chat turn; the model emits it to stop.
pub const END: &str = "<|end|>";
pub const USER: &str = "<|user|>";
pub const ASSISTANT: &str = "<|assistant|>";
pub const SYSTEM: &str = "<|system|>";
pub const PAD: &str = "<|pad|>";
/// Special tokens in id order: they take ids 0..6 in a tokenizer trained by hone.
pub const SPECIAL_TOKENS: [&str; 6] = [BOS, END, USER, ASSISTANT, SYSTEM, PAD];

config_section! {
    /// Tokenizer training.
    pub struct TokenizerConfig {
        /// Vocabulary size, special tokens included. 256 byte tokens + merges + specials.
        vocab_size: usize = 4096,
        /// A pair must occur at least this often to be merged.
        min_frequency: u64 = 2,
        /// Train on at most this many MiB of text (0 = all input). BPE statistics settle long before
        /// a large corpus is exhausted.
        max_train_mb: u64 = 0,
        /// Extra special tokens to reserve after the chat template's.
        extra_special_tokens: Vec<String> = vec![],
        /// Split numbers into single digits before BPE (as Llama and DeepSeek do), so "372" is three
        /// tokens and every number is spelled with the same ten: arithmetic becomes digit by digit
        /// instead of a lookup over every number the corpus happens to merge.
        split_digits: bool = false,
    }
}

type Inner = tokenizers::Tokenizer;

/// The byte span `[start, end)` of the text each token covers.
pub type Offsets = Vec<(usize, usize)>;

/// A loaded tokenizer with its special tokens resolved: hone's own names for a tokenizer hone
/// trained, the model's files' names for any other.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Inner,
    /// The token that starts a document, and the prefix of a log-likelihood request with an empty
    /// context: the model's BOS, else its EOS (as lm-evaluation-harness's `prefix_token_id`).
    pub bos_id: u32,
    /// The token that ends a turn or a document (EOS): generation stops at it.
    pub end_id: u32,
    pub pad_id: u32,
    /// Whether plain text (not a chat) starts with `bos_id` when given to the model: always for
    /// hone's tokenizers (every pretraining document starts with it), `add_bos_token` of the
    /// model's `tokenizer_config.json` (or GGUF metadata) for others.
    pub add_bos: bool,
    /// The special tokens' text, as the chat template names them.
    pub bos_token: String,
    pub eos_token: String,
    /// Ids of every special (control) token: generation ends at any of them.
    pub special_ids: Vec<u32>,
}

/// The special tokens a model's files name (`tokenizer_config.json` or GGUF metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Specials {
    /// BOS text; `None` when the model has none (Qwen-style).
    pub bos: Option<String>,
    pub eos: String,
    /// PAD text; `None`: EOS pads.
    pub pad: Option<String>,
    pub add_bos: bool,
}

impl Specials {
    /// hone's own.
    pub fn hone() -> Specials {
        Specials { bos: Some(BOS.into()), eos: END.into(), pad: Some(PAD.into()), add_bos: true }
    }

    /// From a `tokenizer_config.json`'s text: `bos_token`, `eos_token`, `pad_token` (strings, or
    /// objects with `content` as older files write them) and `add_bos_token`. `None` when it names no
    /// EOS (then the tokenizer is taken to be hone's).
    pub fn from_tokenizer_config(text: &str, origin: &str) -> Result<Option<Specials>> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: not JSON: {e}"))?;
        let token = |k: &str| -> Option<String> {
            match v.get(k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let Some(eos) = token("eos_token") else { return Ok(None) };
        let bos = token("bos_token");
        if bos.as_deref() == Some(BOS) && eos == END {
            return Ok(Some(Specials::hone()));
        }
        let add_bos = v.get("add_bos_token").and_then(|b| b.as_bool()).unwrap_or(false);
        Ok(Some(Specials { bos, eos, pad: token("pad_token"), add_bos }))
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer(vocab={}, bos={}, end={})", self.vocab_size(), self.bos_id, self.end_id)
    }
}

/// Trains a byte-level BPE tokenizer on a stream of documents.
pub fn train<I>(docs: I, cfg: &TokenizerConfig) -> Result<Tokenizer>
where
    I: Iterator<Item = String> + Send,
{
    let mut specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|s| AddedToken::from(*s, true)).collect();
    specials.extend(cfg.extra_special_tokens.iter().map(|s| AddedToken::from(s.clone(), true)));
    let min_vocab = 256 + specials.len();
    if cfg.vocab_size < min_vocab {
        bail!("tokenizer.vocab_size = {} is too small: byte-level BPE needs at least {min_vocab}", cfg.vocab_size);
    }
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size)
        .min_frequency(cfg.min_frequency)
        .special_tokens(specials.clone())
        // Every byte gets a token even if absent from the corpus, so any UTF-8 round-trips.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut tok = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default().into())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(pre_tokenizer(cfg.split_digits)))
    .with_post_processor(None)
    .with_decoder(Some(ByteLevelDecoder::new(false, true, true).into()))
    .build()
    .map_err(|e| anyhow::anyhow!("building tokenizer: {e}"))?;
    let limit = if cfg.max_train_mb == 0 { u64::MAX } else { cfg.max_train_mb << 20 };
    let mut seen = 0u64;
    let docs = docs.take_while(move |d| {
        let keep = seen < limit;
        seen += d.len() as u64;
        keep
    });
    // Feed long documents in safe pieces: same statistics, bounded memory.
    let pieces = docs.flat_map(|d| {
        if d.len() <= CHUNK_BYTES {
            vec![d]
        } else {
            safe_chunks(&d, CHUNK_BYTES).into_iter().map(str::to_string).collect()
        }
    });
    tok.train(&mut trainer, pieces).map_err(|e| anyhow::anyhow!("training tokenizer: {e}"))?;
    tok.add_special_tokens(&specials);
    Tokenizer::from_inner(tok.into())
}

/// GPT-2's byte-level pre-tokenizer, after a digit splitter when `split_digits`.
fn pre_tokenizer(split_digits: bool) -> PreTokenizerWrapper {
    let bytes = ByteLevel::new(false, true, true);
    if split_digits { Sequence::new(vec![Digits::new(true).into(), bytes.into()]).into() } else { bytes.into() }
}

impl Tokenizer {
    fn from_inner(inner: Inner) -> Result<Self> {
        Self::with_specials(inner, &Specials::hone())
    }

    /// Resolves `specials` in `inner`'s vocabulary; a token the vocabulary lacks is an error naming it.
    pub fn with_specials(inner: Inner, specials: &Specials) -> Result<Self> {
        let id = |t: &str| inner.token_to_id(t).with_context(|| format!("the vocabulary has no `{t}` token"));
        let end_id = id(&specials.eos)?;
        let bos_id = match &specials.bos {
            Some(b) => id(b)?,
            None => end_id,
        };
        let pad_id = match &specials.pad {
            Some(p) => id(p).unwrap_or(end_id),
            None => end_id,
        };
        let mut special_ids: Vec<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&i, _)| i)
            .chain([end_id])
            .collect();
        special_ids.sort_unstable();
        special_ids.dedup();
        Ok(Self {
            bos_id,
            end_id,
            pad_id,
            add_bos: specials.add_bos,
            bos_token: specials.bos.clone().unwrap_or_else(|| specials.eos.clone()),
            eos_token: specials.eos.clone(),
            special_ids,
            inner,
        })
    }

    /// Loads a `tokenizer.json`, with the special tokens that `tokenizer_config.json` beside it
    /// names (hone's when there is none, or it names none).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        let specials = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => Specials::from_tokenizer_config(&t, &cfg_path.display().to_string())?,
            Err(_) => None,
        };
        Self::from_json(&text, &path.display().to_string(), specials.as_ref())
    }

    /// A tokenizer from `tokenizer.json` text (`origin` names it in errors), with `specials` (hone's
    /// when `None`).
    pub fn from_json(text: &str, origin: &str, specials: Option<&Specials>) -> Result<Self> {
        // The `tokenizers` library trusts its input: a damaged file can make it panic (an `expect` in
        // its decoder deserializer) or recurse deeply enough to overflow a thread's stack (its
        // untagged enums buffer nested values). Found by the reader fuzzer (crates/hone-fuzz). Real
        // tokenizer.json files nest a few levels, so deeper ones are refused before parsing, and a
        // panic becomes an error naming the file.
        let depth = json_depth(text);
        anyhow::ensure!(
            depth <= MAX_JSON_DEPTH,
            "{origin}: nested {depth} levels deep (a tokenizer.json nests at most a few); the file is damaged"
        );
        check_added_tokens(origin, text)?;
        let inner = std::panic::catch_unwind(|| Inner::from_str(text))
            .map_err(|_| anyhow::anyhow!("{origin}: not a readable tokenizer.json (the parser gave up on it)"))?
            .map_err(|e| anyhow::anyhow!("{origin}: not a readable tokenizer.json: {e}"))?;
        match specials {
            Some(s) => Self::with_specials(inner, s).with_context(|| {
                format!("{origin}: the special tokens its tokenizer_config.json names are not all in the vocabulary")
            }),
            None => Self::from_inner(inner).with_context(|| {
                format!(
                    "{origin}: neither a hone tokenizer nor one with a tokenizer_config.json beside it naming its \
                     special tokens (bos_token, eos_token)"
                )
            }),
        }
    }

    /// Whether `id` is a special (control) token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.binary_search(&id).is_ok()
    }

    /// Writes `tokenizer.json` and, beside it, `tokenizer_config.json` with hone's chat template.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with_template(path, crate::chat::DEFAULT_TEMPLATE)
    }

    /// Writes `tokenizer.json` and, beside it, `tokenizer_config.json` with its special tokens and
    /// `chat_template`.
    pub fn save_with_template(&self, path: &Path, chat_template: &str) -> Result<()> {
        let (json, cfg) = self.files_with_template(chat_template)?;
        crate::atomic::write_atomic(path, &json).with_context(|| format!("writing {}", path.display()))?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        crate::atomic::write_atomic(&cfg_path, &cfg).with_context(|| format!("writing {}", cfg_path.display()))?;
        Ok(())
    }

    /// The bytes of `tokenizer.json` and of `tokenizer_config.json` (special tokens, BOS handling,
    /// `chat_template`), as [`Tokenizer::save_with_template`] writes them.
    pub fn files_with_template(&self, chat_template: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let json = if self.add_bos && self.inner.get_post_processor().is_none() {
            // Plain text reaches the model after BOS (`add_bos`): the file's post-processor adds it,
            // so `transformers` and `tokenizers` encode text as hone feeds it (hone's own encoding
            // never applies post-processors; chat templates, which write BOS themselves, are
            // tokenized without special tokens).
            let bos = tokenizers::processors::template::TemplateProcessing::builder()
                .try_single(format!("{} $A", self.bos_token))
                .and_then(|b| b.try_pair(format!("{} $A {} $B", self.bos_token, self.bos_token)))
                .map_err(|e| anyhow::anyhow!("BOS template: {e}"))?
                .special_tokens(vec![(self.bos_token.clone(), self.bos_id)])
                .build()
                .map_err(|e| anyhow::anyhow!("BOS template: {e}"))?;
            let mut inner = self.inner.clone();
            inner.with_post_processor(Some(bos));
            inner.to_string(true)
        } else {
            self.inner.to_string(true)
        }
        .map_err(|e| anyhow::anyhow!("serialising tokenizer: {e}"))?;
        let pad = self.inner.id_to_token(self.pad_id).unwrap_or_else(|| self.eos_token.clone());
        let cfg = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": pad,
            "model_max_length": 1_000_000_000u64,
            // Whether plain text starts with BOS (the post-processor adds it; chat templates write
            // it themselves).
            "add_bos_token": self.add_bos,
            "chat_template": chat_template,
        });
        Ok((json.into_bytes(), serde_json::to_vec_pretty(&cfg)?))
    }

    /// Vocabulary size including special tokens: the model's embedding rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`. Special-token strings inside the text are recognised as special tokens.
    /// Long texts are encoded in pieces (in parallel) cut where the result cannot change; see
    /// [`safe_chunks`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.len() <= CHUNK_BYTES {
            return self.encode_one(text);
        }
        let parts: Vec<Vec<u32>> =
            safe_chunks(text, CHUNK_BYTES).par_iter().map(|c| self.encode_one(c)).collect::<Result<_>>()?;
        Ok(parts.concat())
    }

    fn encode_one(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids and the byte span of the text each covers.
    pub fn encode_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Offsets)> {
        let enc = self.inner.encode(text, false).map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }

    /// The token string of an id as stored in the vocabulary (byte-level symbols, e.g. `Ġthe`).
    pub fn piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The raw bytes an id stands for (special tokens: their text), for streaming decode.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(piece) = self.inner.id_to_token(id) else { return Vec::new() };
        if self.is_special(id) || self.inner.get_added_vocabulary().is_special_token(&piece) {
            return piece.into_bytes();
        }
        let table = byte_decoder();
        piece.chars().map(|c| table.get(&c).copied().unwrap_or(b'?')).collect()
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The wrapped Hugging Face tokenizer.
    pub fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// Longest added (special) token accepted, in bytes (real ones: a few dozen).
pub const MAX_ADDED_TOKEN_BYTES: usize = 1024;

/// Refuses added tokens longer than [`MAX_ADDED_TOKEN_BYTES`]: the library builds an Aho-Corasick
/// automaton over them, which took minutes for one 100 KB token (found by the reader fuzzer).
fn check_added_tokens(origin: &str, text: &str) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: not a readable tokenizer.json: {e}"))?;
    if let Some(tokens) = v.get("added_tokens").and_then(|t| t.as_array()) {
        for (i, t) in tokens.iter().enumerate() {
            let len = t.get("content").and_then(|c| c.as_str()).map_or(0, str::len);
            anyhow::ensure!(
                len <= MAX_ADDED_TOKEN_BYTES,
                "{origin}: added_tokens[{i}].content is {len} bytes long (at most {MAX_ADDED_TOKEN_BYTES}); the file is damaged"
            );
        }
    }
    Ok(())
}

/// Deepest JSON nesting a tokenizer.json may have (real ones: under 10).
pub const MAX_JSON_DEPTH: usize = 32;

/// The deepest nesting of `[`/`{` in JSON text, outside strings.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Texts longer than this are tokenized in pieces: the library's intermediate structures take tens
/// of bytes per input byte, which for a whole book would dominate memory.
pub const CHUNK_BYTES: usize = 1 << 16;

/// A stretch this long without a safe cut is cut anyway (see [`safe_chunks`]).
pub const FORCED_CUT_BYTES: usize = 2 * CHUNK_BYTES;

/// Cuts `text` into pieces of about `target` bytes, only after a lone newline or before a lone space
/// that sits between two non-whitespace characters. The byte-level pre-tokenizer's pieces never
/// cross such a point (a piece of letters, digits or punctuation ends at the whitespace; a lone newline
/// is a piece of its own whether or not text follows; a lone space joins the word after it, which
/// starts the next piece either way), and no special token contains whitespace, so encoding the
/// pieces and concatenating gives exactly the ids of the whole text.
///
/// A stretch of `max(2 · target, FORCED_CUT_BYTES)` bytes (128 KiB) with no such point (minified code, base64, long unspaced CJK text)
/// is cut anyway, at a character boundary outside any special token: one pre-tokenizer piece that
/// long would make the library's structures tens of bytes per input byte (a 60 MB unspaced document
/// took 10 GB). Only such stretches can encode differently from the whole text (the BPE merges
/// around the cut), which no ordinary text has.
pub fn safe_chunks(text: &str, target: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while text.len() - start > target {
        let mut p = start + target;
        let cut = loop {
            if p >= bytes.len() {
                break None;
            }
            if p >= start + (2 * target).max(FORCED_CUT_BYTES) {
                break Some(forced_cut(text, start, start + target.max(FORCED_CUT_BYTES / 2)));
            }
            // Cut after a lone newline, or before a lone space.
            let (ws, after_at) = match (bytes[p - 1], bytes[p]) {
                (b'\n', _) => (p - 1, p),
                (_, b' ') => (p, p + 1),
                _ => (usize::MAX, 0),
            };
            if ws != usize::MAX && after_at < bytes.len() && text.is_char_boundary(ws) {
                // The whitespace character must be a run of its own: a longer run at the end of a
                // piece would be split differently. Non-ASCII characters may be Unicode spaces,
                // which the patterns treat as whitespace too.
                let before = text[start..ws].chars().next_back();
                let after = text[after_at..].chars().next();
                if before.is_some_and(|c| !c.is_whitespace()) && after.is_some_and(|c| !c.is_whitespace()) {
                    break Some(p);
                }
            }
            p += 1;
        };
        match cut {
            Some(p) => {
                out.push(&text[start..p]);
                start = p;
            }
            None => break,
        }
    }
    out.push(&text[start..]);
    out
}

/// A cut at or before `at` (and after `start`) on a character boundary that does not split a special
/// token (`<|...|>`, at most a few dozen bytes).
fn forced_cut(text: &str, start: usize, at: usize) -> usize {
    let mut p = at.min(text.len());
    while p > start && !text.is_char_boundary(p) {
        p -= 1;
    }
    if p == start {
        p = at;
        while p < text.len() && !text.is_char_boundary(p) {
            p += 1;
        }
        return p;
    }
    let mut w = p.saturating_sub(64).max(start);
    while w < p && !text.is_char_boundary(w) {
        w += 1;
    }
    if let Some(open) = text[w..p].rfind("<|")
        && !text[w + open..p].contains("|>")
        && w + open > start
    {
        return w + open;
    }
    p
}

/// GPT-2's byte-to-unicode table, inverted: the byte each byte-level symbol stands for.
fn byte_decoder() -> &'static std::collections::HashMap<char, u8> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<char, u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
        let mut cs = bs.clone();
        let mut n = 0;
        for b in 0..256u32 {
            if !bs.contains(&b) {
                bs.push(b);
                cs.push(256 + n);
                n += 1;
            }
        }
        bs.into_iter().zip(cs).map(|(b, c)| (char::from_u32(c).expect("valid char"), b as u8)).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small_corpus() -> Vec<String> {
        let base = [
            "The capital of Varnok is Tesmir. Tesmir lies on the river Oss.",
            "In 1987 the engineer Ilsa Marrow built the first steam loom in Tesmir.",
            "Question: what is 12 plus 30? Answer: 42.",
            "Émile a écrit « bonjour » — naïve café. 日本語のテキスト。 emoji 🦀🚀 ok",
        ];
        (0..40).map(|i| format!("{} {}", base[i % base.len()], i)).collect()
    }

    fn trained() -> Tokenizer {
        train(small_corpus().into_iter(), &TokenizerConfig { vocab_size: 400, ..Default::default() }).unwrap()
    }

    #[test]
    fn saved_files_add_bos_to_plain_text_as_hone_feeds_it() {
        let t = trained();
        assert!(t.add_bos);
        let (json, cfg) =
            t.files_with_template("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}").unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(cfg["add_bos_token"], true);
        let text = "Question: what is 12 plus 30?";
        let plain = t.encode(text).unwrap();
        assert_ne!(plain.first(), Some(&t.bos_id), "hone's own encoding adds nothing");
        // The saved file, as `tokenizers` (and `transformers`) encode with special tokens.
        let back = tokenizers::Tokenizer::from_bytes(&json).unwrap();
        let ids = back.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(ids, [vec![t.bos_id], plain.clone()].concat());
        assert_eq!(back.encode(text, false).unwrap().get_ids(), plain.as_slice());
        // Saved again after loading, the file keeps one post-processor (no second BOS).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), &json).unwrap();
        let reloaded = Tokenizer::load(&dir.path().join("tokenizer.json")).unwrap();
        let (json2, _) = reloaded.files_with_template("").unwrap();
        let again = tokenizers::Tokenizer::from_bytes(&json2).unwrap();
        assert_eq!(again.encode(text, true).unwrap().get_ids(), ids.as_slice());
    }

    #[test]
    fn special_tokens_take_the_first_ids() {
        let t = trained();
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(t.id(s), Some(i as u32), "{s}");
        }
        assert_eq!(t.bos_id, 0);
        assert_eq!(t.end_id, 1);
        assert!(t.vocab_size() <= 400 && t.vocab_size() > 262, "{}", t.vocab_size());
        // Special tokens in text are single ids.
        let ids = t.encode("<|user|>hi<|end|>").unwrap();
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.last(), Some(&1));
    }

    #[test]
    fn round_trip_is_exact_for_tricky_text() {
        let t = trained();
        let cases = [
            "",
            " ",
            "  leading and trailing spaces  ",
            "tabs\tand\nnewlines\r\n\n\n",
            "emoji 🦀🚀👩‍👩‍👧 with ZWJ and skin tone 👍🏽",
            "CJK 中文字符 日本語 한국어, never seen in training: 龘",
            "combining: e\u{301} vs é; RTL: שלום مرحبا",
            "control \u{0}\u{1}\u{7f} and BOM \u{feff}",
            "unknown bytes everywhere: \u{10FFFF}\u{E000}",
        ];
        for c in cases {
            let ids = t.encode(c).unwrap();
            assert_eq!(t.decode(&ids).unwrap(), c, "ids {ids:?}");
            let bytes: Vec<u8> = ids.iter().flat_map(|&i| t.token_bytes(i)).collect();
            assert_eq!(bytes, c.as_bytes(), "token_bytes of {c:?}");
        }
    }

    #[test]
    fn save_and_load_give_the_same_encoding() {
        let t = trained();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        t.save(&p).unwrap();
        assert!(dir.path().join("tokenizer_config.json").exists());
        let back = Tokenizer::load(&p).unwrap();
        for s in small_corpus() {
            assert_eq!(t.encode(&s).unwrap(), back.encode(&s).unwrap());
        }
        // Training learned merges: common words take fewer tokens than bytes.
        assert!(t.encode("The capital of Varnok").unwrap().len() < 10);
    }

    #[test]
    fn long_texts_encode_in_pieces_exactly_as_whole() {
        let t = trained();
        let para =
            "The capital of Varnok is Tesmir.\n  indented line\n\n\nÉmile 🦀 日本語\n\u{3000}ideographic space\n";
        let long: String = (0..3000).map(|i| format!("{para}{i}<|end|>\n")).collect();
        assert!(long.len() > 3 * CHUNK_BYTES);
        let pieces = safe_chunks(&long, CHUNK_BYTES);
        assert!(pieces.len() >= 3);
        assert_eq!(pieces.concat(), long);
        let whole = t.inner().encode_fast(long.as_str(), false).unwrap().get_ids().to_vec();
        assert_eq!(t.encode(&long).unwrap(), whole);
        // Small targets put cuts everywhere a cut is allowed: after runs of newlines, before spaces,
        // around Unicode spaces and special tokens.
        let text =
            "a\n\nB c\n d\n\u{3000}e\nf<|end|>\ng \nh\t\ni\n'll\n12\n!?\n\n\n x  y\r\nz \u{3000}w 'd 3 4\u{a0}5 "
                .repeat(20);
        let whole = t.inner().encode_fast(text.as_str(), false).unwrap().get_ids().to_vec();
        for target in [1, 2, 3, 5, 8, 13, 40] {
            let pieces = safe_chunks(&text, target);
            assert!(pieces.len() > 10);
            let ids: Vec<u32> = pieces.iter().flat_map(|p| t.encode_one(p).unwrap()).collect();
            assert_eq!(ids, whole, "target {target}");
        }
        // A text with no safe cut for two chunks' length is cut anyway, at character boundaries and
        // never inside a special token.
        let flat = "wörd\t".repeat(30_000);
        let pieces = safe_chunks(&flat, CHUNK_BYTES);
        assert!(pieces.len() >= 2 && pieces.iter().all(|p| p.len() <= 2 * CHUNK_BYTES), "{}", pieces.len());
        assert_eq!(pieces.concat(), flat);
        let tagged = "x".repeat(CHUNK_BYTES - 3) + "<|end|>" + &"y".repeat(3 * CHUNK_BYTES);
        let pieces = safe_chunks(&tagged, CHUNK_BYTES);
        assert_eq!(pieces.concat(), tagged);
        assert!(pieces.iter().all(|p| p.matches("<|").count() == p.matches("|>").count()), "a special token was cut");
        // A short stretch without a safe cut is not cut.
        assert_eq!(safe_chunks(&"word\t".repeat(100), CHUNK_BYTES).len(), 1);
    }

    #[test]
    fn an_unspaced_document_encodes_in_pieces() {
        // 4 MiB with no whitespace (what minified code or base64 look like to the pre-tokenizer):
        // encoded chunk by chunk, and every byte comes back.
        let t = trained();
        let text: String = (0..4 << 20).map(|i| (b'a' + (i * 7 % 26) as u8) as char).collect();
        let ids = t.encode(&text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), text);
    }

    #[test]
    fn split_digits_spells_numbers_digit_by_digit() {
        let cfg = TokenizerConfig { vocab_size: 400, split_digits: true, ..Default::default() };
        let t = train(small_corpus().into_iter(), &cfg).unwrap();
        let text = "Question: what is 12 plus 30? Answer: 42. In 1987, 3.14 and x2y";
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), text);
        let tokens: Vec<String> = ids.iter().map(|&i| String::from_utf8(t.token_bytes(i)).unwrap()).collect();
        for tok in &tokens {
            let digits = tok.chars().filter(char::is_ascii_digit).count();
            assert!(digits == 0 || tok.len() == 1, "token {tok:?} mixes a digit with other characters: {tokens:?}");
        }
        assert_eq!(tokens.iter().filter(|t| t.len() == 1 && t.as_bytes()[0].is_ascii_digit()).count(), 14);
        // Without the option the corpus's numbers merge (the default).
        let merged = trained().encode("1987").unwrap();
        assert!(merged.len() < 4, "{merged:?}");
        // The setting travels in tokenizer.json, and piecewise encoding still equals the whole.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        t.save(&p).unwrap();
        assert_eq!(Tokenizer::load(&p).unwrap().encode(text).unwrap(), ids);
        let long = format!("{text}\n").repeat(50);
        let ids: Vec<u32> = safe_chunks(&long, 7).iter().flat_map(|p| t.encode_one(p).unwrap()).collect();
        assert_eq!(ids, t.inner().encode_fast(long.as_str(), false).unwrap().get_ids().to_vec());
    }

    #[test]
    fn too_small_vocab_is_an_error() {
        let e = train(small_corpus().into_iter(), &TokenizerConfig { vocab_size: 100, ..Default::default() });
        assert!(e.unwrap_err().to_string().contains("too small"));
    }

    #[test]
    fn json_depth_ignores_strings_and_deep_files_are_refused() {
        assert_eq!(json_depth(r#"{"a": [1, {"b": "[[[{{"}], "c": "\"]"}"#), 3);
        assert_eq!(json_depth("[]"), 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        std::fs::write(&p, "[".repeat(10_000)).unwrap();
        let e = Tokenizer::load(&p).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("nested"), "{e}");
    }

    #[test]
    fn load_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = Tokenizer::load(&p).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }
}
