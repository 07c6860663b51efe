//! A model as a GGUF file llama.cpp opens: `llama.*` hyper-parameters (`qwen3.*` for a model with
//! QK-norm, llama.cpp's Qwen3 being Llama with per-head query/key norms and rotate-half RoPE), the
//! tokenizer as `tokenizer.ggml.*` metadata (byte-level BPE: vocabulary, merges, token types,
//! special ids, the pre-tokenizer type llama.cpp splits text with) and the chat template, and the
//! tensors under llama.cpp's names, for `llama` with query/key rows permuted as its converter does.
//! The inverse of [`crate::import::gguf`].

use crate::llama::Llama;
use hone_data::tokenizer::Tokenizer;
use hone_gguf::write::Writer;
use hone_gguf::{GgmlType, Value};

/// llama.cpp's name for a Hugging Face parameter name.
pub fn gguf_tensor_name(hf: &str) -> String {
    hf.replace("model.embed_tokens.weight", "token_embd.weight")
        .replace("model.norm.weight", "output_norm.weight")
        .replace("lm_head.weight", "output.weight")
        .replace("model.layers.", "blk.")
        .replace(".input_layernorm.", ".attn_norm.")
        .replace(".self_attn.q_proj.", ".attn_q.")
        .replace(".self_attn.k_proj.", ".attn_k.")
        .replace(".self_attn.v_proj.", ".attn_v.")
        .replace(".self_attn.o_proj.", ".attn_output.")
        .replace(".self_attn.q_norm.", ".attn_q_norm.")
        .replace(".self_attn.k_norm.", ".attn_k_norm.")
        .replace(".post_attention_layernorm.", ".ffn_norm.")
        .replace(".mlp.gate_proj.", ".ffn_gate.")
        .replace(".mlp.up_proj.", ".ffn_up.")
        .replace(".mlp.down_proj.", ".ffn_down.")
}

/// llama.cpp's `permute` of query/key rows (`convert_hf_to_gguf.py`): within each head, the two RoPE
/// halves interleaved, so row `2j + t` holds Hugging Face's row `t · head_dim/2 + j`.
pub fn permute_rows(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let hd = data.len() / cols / heads;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for j in 0..hd / 2 {
            for t in 0..2 {
                let src = h * hd + t * (hd / 2) + j;
                out.extend_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The `tokenizer.ggml.pre` type whose split equals `tok`'s pre-tokenizer: `smollm` for a digit split
/// before GPT-2's regex (hone's `split_digits`), `gpt-2` for GPT-2's regex alone; other
/// pre-tokenizers are refused rather than exported with a split llama.cpp would not reproduce.
pub fn pre_type(tok: &Tokenizer) -> anyhow::Result<&'static str> {
    let json: serde_json::Value = serde_json::from_str(
        &tok.inner().to_string(false).map_err(|e| anyhow::anyhow!("serialising the tokenizer: {e}"))?,
    )?;
    let pre = &json["pre_tokenizer"];
    let byte_level =
        |v: &serde_json::Value| v["type"] == "ByteLevel" && v["use_regex"] != false && v["add_prefix_space"] != true;
    if byte_level(pre) {
        return Ok("gpt-2");
    }
    if pre["type"] == "Sequence"
        && let Some([digits, bl]) = pre["pretokenizers"].as_array().map(Vec::as_slice)
        && digits["type"] == "Digits"
        && digits["individual_digits"] == true
        && byte_level(bl)
    {
        return Ok("smollm");
    }
    anyhow::bail!("the tokenizer's pre-tokenizer {pre} has no llama.cpp equivalent hone knows (gpt2, smollm)")
}

/// The GGUF file of `model` with `tok` and chat template `template`: matrices stored as `ty` (F32,
/// F16 or Q8_0), norms in F32 as llama.cpp keeps them.
pub fn gguf_bytes(model: &Llama, tok: &Tokenizer, template: &str, ty: GgmlType) -> anyhow::Result<Vec<u8>> {
    let c = &model.config;
    anyhow::ensure!(c.rope_scaling.is_none(), "RoPE scaling is not written to GGUF files by hone");
    let mut w = Writer::new();
    let s = |x: &str| Value::String(x.to_string());
    let u = |x: usize| Value::U32(x as u32);
    let arch = if c.qk_norm { "qwen3" } else { "llama" };
    let key = |k: &str| format!("{arch}.{k}");
    w.meta("general.architecture", s(arch))
        .meta(&key("block_count"), u(c.num_hidden_layers))
        .meta(&key("context_length"), u(c.max_position_embeddings))
        .meta(&key("embedding_length"), u(c.hidden_size))
        .meta(&key("feed_forward_length"), u(c.intermediate_size))
        .meta(&key("attention.head_count"), u(c.num_attention_heads))
        .meta(&key("attention.head_count_kv"), u(c.num_key_value_heads))
        .meta(&key("rope.dimension_count"), u(c.head_dim()))
        .meta(&key("rope.freq_base"), Value::F32(c.rope_theta as f32))
        .meta(&key("attention.layer_norm_rms_epsilon"), Value::F32(c.rms_norm_eps as f32))
        .meta(&key("vocab_size"), u(c.vocab_size));
    if c.head_dim.is_some() || c.qk_norm {
        w.meta(&key("attention.key_length"), u(c.head_dim())).meta(&key("attention.value_length"), u(c.head_dim()));
    }
    let json: serde_json::Value = serde_json::from_str(
        &tok.inner().to_string(false).map_err(|e| anyhow::anyhow!("serialising the tokenizer: {e}"))?,
    )?;
    anyhow::ensure!(json["model"]["type"] == "BPE", "only byte-level BPE tokenizers are written to GGUF files");
    // Rows beyond the tokenizer's vocabulary (an embedding padded to a round size) get placeholder
    // tokens, as llama.cpp's converter writes `[PAD{i}]`.
    let mut tokens: Vec<String> = (0..c.vocab_size).map(|i| format!("[PAD{i}]")).collect();
    for (t, id) in tok.inner().get_vocab(true) {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = t;
        }
    }
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| {
            let id = i as u32;
            Value::I32(if tok.is_special(id) {
                3
            } else if i >= tok.vocab_size() {
                5
            } else {
                1
            })
        })
        .collect();
    let merges: Vec<Value> = json["model"]["merges"]
        .as_array()
        .map(|m| m.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|m| match m {
            serde_json::Value::Array(pair) => {
                s(&format!("{} {}", pair[0].as_str().unwrap_or(""), pair[1].as_str().unwrap_or("")))
            }
            other => s(other.as_str().unwrap_or("")),
        })
        .collect();
    w.meta("tokenizer.ggml.model", s("gpt2"))
        .meta("tokenizer.ggml.pre", s(pre_type(tok)?))
        .meta("tokenizer.ggml.tokens", Value::Array(tokens.iter().map(|t| s(t)).collect()))
        .meta("tokenizer.ggml.token_type", Value::Array(types))
        .meta("tokenizer.ggml.merges", Value::Array(merges))
        .meta("tokenizer.ggml.bos_token_id", u(tok.bos_id as usize))
        .meta("tokenizer.ggml.eos_token_id", u(tok.end_id as usize))
        .meta("tokenizer.ggml.padding_token_id", u(tok.pad_id as usize))
        .meta("tokenizer.ggml.add_bos_token", Value::Bool(tok.add_bos))
        .meta("tokenizer.chat_template", s(template));
    for (spec, p) in model.params() {
        let name = gguf_tensor_name(&spec.name);
        let mut data = p.to_vec();
        // llama.cpp's `llama` applies RoPE to interleaved halves; its Qwen3 to rotate-half ones.
        if !c.qk_norm && name.ends_with("attn_q.weight") {
            data = permute_rows(&data, c.num_attention_heads, spec.shape[1]);
        } else if !c.qk_norm && name.ends_with("attn_k.weight") {
            data = permute_rows(&data, c.num_key_value_heads, spec.shape[1]);
        }
        let t = if spec.shape.len() == 1 { GgmlType::F32 } else { ty };
        w.tensor(&name, &spec.shape, &data, t)?;
    }
    w.to_bytes()
}
