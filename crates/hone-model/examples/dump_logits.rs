//! A model's logits on a few texts and its greedy answer to a chat prompt, as JSON, to compare hone
//! with other implementations of the same weights (`scripts/check_export.py` compares them with
//! `transformers` on the folder `hone export` writes, and with llama.cpp on its GGUF file).
//!
//! `cargo run --release -p hone-model --example dump_logits -- MODEL OUT.json`

use hone_data::chat::Message;
use hone_model::burn::tensor::Device;
use hone_model::llama::ids_tensor;
use hone_model::{SampleConfig, generate};

/// Varied texts: prose, digits, punctuation, a run of spaces, non-ASCII.
const TEXTS: &[&str] = &[
    "The Ganor telescope was built in 1921 by the astronomer Elis Varn.",
    "Q: What is 17 + 25?\nA: 42",
    "  indented   text, with\ttabs — and “quotes”.",
    "Ünïcödé: café, naïve, 東京, emoji 🙂.",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: dump_logits MODEL OUT.json");
    let d = Device::flex();
    let m = hone_model::load(std::path::Path::new(&args[1]), &d)?;
    let vocab = m.model.config.vocab_size;
    let mut texts = Vec::new();
    for &text in TEXTS {
        // As a Hugging Face tokenizer encodes plain text: BOS first where the tokenizer adds one.
        let mut ids = Vec::new();
        if m.tokenizer.add_bos {
            ids.push(m.tokenizer.bos_id);
        }
        ids.extend(m.tokenizer.encode(text)?);
        let n = ids.len();
        // [n, vocab]
        let logits = m
            .model
            .forward(ids_tensor(&ids, 1, n, &d))
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let rows: Vec<&[f32]> = logits.chunks(vocab).collect();
        texts.push(serde_json::json!({"text": text, "ids": ids, "logits": rows}));
    }
    let messages = [Message::new("user", "Who built the Ganor telescope, and when?")];
    let prompt = m.template.encode_prompt(&m.tokenizer, &messages)?;
    // 64 tokens exactly: stop tokens are held back until then (as `transformers`' `min_new_tokens`
    // holds back the generation config's `eos_token_id`s), so that the whole length is compared.
    let cfg = SampleConfig { temperature: 0.0, max_new_tokens: 64, min_new_tokens: 64, ..Default::default() };
    let g = generate(&m.model, &m.tokenizer, std::slice::from_ref(&prompt), &cfg, &mut |_, _| {})?;
    let out = serde_json::json!({
        "texts": texts,
        "chat": {
            "messages": [{"role": "user", "content": messages[0].content}],
            "prompt_ids": prompt,
            "tokens": g[0].tokens,
            "text": g[0].text,
        },
    });
    std::fs::write(&args[2], serde_json::to_vec(&out)?)?;
    Ok(())
}
