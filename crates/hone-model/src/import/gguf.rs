//! A llama.cpp GGUF file as a hone model: the architecture from `llama.*` (or `qwen3.*`, Llama with
//! QK-norm) metadata, tensors renamed from llama.cpp's names to Hugging Face's and dequantised to
//! f32, and for `llama` the query/key rows put back in Hugging Face's order (llama.cpp's converter
//! interleaves the two RoPE halves of every head there; Qwen3 keeps rotate-half order).

use crate::config::LlamaConfig;
use crate::llama::Llama;
use crate::load::LoadedModel;
use crate::weights::{HostTensor, model_from_tensors};
use burn::tensor::Device;
use hone_gguf::Gguf;
use std::collections::BTreeMap;
use std::path::Path;

/// Opens `path` on `device`: model, tokenizer and chat template.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let g = Gguf::open(path)?;
    let config = config(&g)?;
    let model = weights(&g, &config, device)?;
    let (tokenizer, template) = super::gguf_tokenizer::tokenizer(&g)?;
    anyhow::ensure!(
        tokenizer.vocab_size() <= config.vocab_size,
        "{}: the tokenizer has {} tokens but the embedding only {} rows",
        path.display(),
        tokenizer.vocab_size(),
        config.vocab_size
    );
    Ok(LoadedModel { model, tokenizer, template, dir: path.to_path_buf() })
}

/// The architecture in `g`'s metadata: `general.architecture` `llama`, or `qwen3` (QK-norm).
pub fn config(g: &Gguf) -> anyhow::Result<LlamaConfig> {
    let origin = g.path.display().to_string();
    let arch = g.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("");
    anyhow::ensure!(
        matches!(arch, "llama" | "qwen3"),
        "{origin}: general.architecture is `{arch}`; hone opens Llama-architecture GGUF files (llama, qwen3)"
    );
    let int = |k: &str| -> anyhow::Result<usize> {
        g.get(&format!("{arch}.{k}"))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| anyhow::anyhow!("{origin}: metadata `{arch}.{k}` is missing or not an integer"))
    };
    let float = |k: &str| g.get(&format!("{arch}.{k}")).and_then(|v| v.as_f64());
    let embed =
        g.tensor("token_embd.weight").ok_or_else(|| anyhow::anyhow!("{origin}: no tensor `token_embd.weight`"))?;
    let shape = embed.shape();
    anyhow::ensure!(shape.len() == 2, "{origin}: token_embd.weight is not a matrix");
    let (hidden, heads) = (int("embedding_length")?, int("attention.head_count")?);
    let head_dim = match g.get(&format!("{arch}.attention.key_length")).and_then(|v| v.as_u64()) {
        Some(k) => k as usize,
        None => int("rope.dimension_count").unwrap_or(hidden / heads.max(1)),
    };
    if let Some(t) = g.get(&format!("{arch}.rope.scaling.type")).and_then(|v| v.as_str()) {
        anyhow::ensure!(t == "none", "{origin}: {arch}.rope.scaling.type `{t}` is not implemented for GGUF files");
    }
    anyhow::ensure!(
        g.tensor("rope_freqs.weight").is_none(),
        "{origin}: tensor `rope_freqs.weight` (Llama 3.1 RoPE scaling) is not implemented for GGUF files; \
         open the Hugging Face folder instead"
    );
    let mut c = LlamaConfig {
        vocab_size: shape[0],
        hidden_size: hidden,
        intermediate_size: int("feed_forward_length")?,
        num_hidden_layers: int("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: int("attention.head_count_kv").unwrap_or(heads),
        max_position_embeddings: int("context_length")?,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: float("rope.freq_base").unwrap_or(10_000.0),
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        qk_norm: arch == "qwen3",
        initializer_range: 0.02,
        head_dim: Some(head_dim),
        rope_scaling: None,
    };
    if c.head_dim == Some(c.hidden_size / c.num_attention_heads.max(1)) {
        c.head_dim = None;
    }
    c.validate().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    Ok(c)
}

/// llama.cpp's name of the tensor Hugging Face calls `hf`, and whether its rows were permuted for
/// RoPE (with the number of heads they were permuted over: `llama` files only, as Qwen3's keep
/// rotate-half order).
fn gguf_name(hf: &str, c: &LlamaConfig) -> Option<(String, Option<usize>)> {
    let permuted = |heads: usize| (!c.qk_norm).then_some(heads);
    Some(match hf {
        "model.embed_tokens.weight" => ("token_embd.weight".into(), None),
        "model.norm.weight" => ("output_norm.weight".into(), None),
        "lm_head.weight" => ("output.weight".into(), None),
        _ => {
            let rest = hf.strip_prefix("model.layers.")?;
            let (layer, param) = rest.split_once('.')?;
            let (name, perm) = match param {
                "input_layernorm.weight" => ("attn_norm", None),
                "self_attn.q_proj.weight" => ("attn_q", permuted(c.num_attention_heads)),
                "self_attn.k_proj.weight" => ("attn_k", permuted(c.num_key_value_heads)),
                "self_attn.q_norm.weight" => ("attn_q_norm", None),
                "self_attn.k_norm.weight" => ("attn_k_norm", None),
                "self_attn.v_proj.weight" => ("attn_v", None),
                "self_attn.o_proj.weight" => ("attn_output", None),
                "post_attention_layernorm.weight" => ("ffn_norm", None),
                "mlp.gate_proj.weight" => ("ffn_gate", None),
                "mlp.up_proj.weight" => ("ffn_up", None),
                "mlp.down_proj.weight" => ("ffn_down", None),
                _ => return None,
            };
            (format!("blk.{layer}.{name}.weight"), perm)
        }
    })
}

/// Undoes llama.cpp's RoPE permutation of a `[heads · head_dim, in]` matrix: within each head, its
/// row `2j + t` holds Hugging Face's row `t · head_dim/2 + j`.
pub fn unpermute_rows(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols;
    let hd = rows / heads;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for j in 0..hd / 2 {
            for t in 0..2 {
                let src = h * hd + 2 * j + t;
                let dst = h * hd + t * (hd / 2) + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The model's weights from `g`, dequantised and renamed.
pub fn weights(g: &Gguf, c: &LlamaConfig, device: &Device) -> anyhow::Result<Llama> {
    let origin = g.path.display().to_string();
    let mut tensors = BTreeMap::new();
    for spec in crate::llama::param_specs(c) {
        let (name, perm) = gguf_name(&spec.name, c)
            .ok_or_else(|| anyhow::anyhow!("{origin}: hone has no llama.cpp name for `{}`", spec.name))?;
        let info = g
            .tensor(&name)
            .ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{name}` (hone's `{}`)", spec.name))?;
        anyhow::ensure!(
            info.shape() == spec.shape,
            "{origin}: tensor `{name}` has shape {:?}, the metadata implies {:?}",
            info.shape(),
            spec.shape
        );
        let mut data = g.tensor_f32(&name)?;
        if let Some(heads) = perm {
            data = unpermute_rows(&data, heads, spec.shape[1]);
        }
        tensors.insert(spec.name.clone(), HostTensor { shape: spec.shape.clone(), data });
    }
    model_from_tensors(&mut tensors, c, device, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, hd, cols) = (3, 8, 5);
        let data: Vec<f32> = (0..heads * hd * cols).map(|i| i as f32).collect();
        let p = crate::export::permute_rows(&data, heads, cols);
        assert_ne!(p, data);
        assert_eq!(unpermute_rows(&p, heads, cols), data);
        // Row 1 of head 0 after the permutation is Hugging Face's row hd/2 (the second half's first).
        assert_eq!(p[cols], data[(hd / 2) * cols]);
    }
}
