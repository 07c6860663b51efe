//! Model configuration. [`ModelConfig`] is the `[model]` section a user writes (a preset name plus
//! overrides); [`LlamaConfig`] is the resolved architecture, with the field names and JSON shape of
//! Hugging Face `LlamaConfig` so a run's `config.json` reads in `transformers`.

use serde::{Deserialize, Serialize};

hone_data::config_section! {
    /// The transformer: a preset sets the architecture; any field set to a non-zero value overrides it.
    pub struct ModelConfig {
        /// Architecture preset: `micro` (tests, ~0.1M parameters), `tiny` (a few million, sized for a
        /// 2-core CPU), `small` (~20M), `gpt2-small` (~124M-like, for a GPU).
        preset: String = "tiny".to_string(),
        /// Vocabulary size; 0 = take it from the tokenizer / token shards.
        vocab_size: usize = 0,
        /// Width of the residual stream; 0 = from the preset.
        hidden_size: usize = 0,
        /// Width of the SwiGLU MLP; 0 = from the preset.
        intermediate_size: usize = 0,
        /// Number of decoder layers; 0 = from the preset.
        num_hidden_layers: usize = 0,
        /// Number of query heads; 0 = from the preset.
        num_attention_heads: usize = 0,
        /// Number of key/value heads (grouped-query attention); 0 = from the preset.
        num_key_value_heads: usize = 0,
        /// Longest sequence the rotary tables are built for; 0 = from the preset.
        max_position_embeddings: usize = 0,
        /// Epsilon inside RMSNorm; 0 = from the preset.
        rms_norm_eps: f64 = 0.0,
        /// Base of the rotary position embedding frequencies; 0 = from the preset.
        rope_theta: f64 = 0.0,
        /// Share the input embedding matrix with the output projection (`lm_head`).
        tie_word_embeddings: bool = false,
        /// RMSNorm over each head's queries and keys before RoPE (as in Qwen3 / OLMo 2).
        qk_norm: bool = false,
        /// Standard deviation of the normal initialisation of weight matrices.
        initializer_range: f64 = 0.02,
    }
}

/// The resolved architecture, named as in Hugging Face `LlamaConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    /// Not a `LlamaConfig` field; `transformers` ignores it (Qwen3-style models always use it).
    #[serde(default)]
    pub qk_norm: bool,
    pub initializer_range: f64,
}

/// Architecture presets: `(hidden, intermediate, layers, heads, kv heads, max positions)`.
fn preset(name: &str) -> Option<(usize, usize, usize, usize, usize, usize)> {
    Some(match name {
        "micro" => (64, 176, 2, 4, 2, 256),
        "tiny" => (256, 688, 4, 4, 2, 1024),
        "small" => (512, 1376, 6, 8, 4, 1024),
        "gpt2-small" => (768, 2048, 12, 12, 12, 1024),
        _ => return None,
    })
}

/// Names of the presets, for error messages and `--help`.
pub const PRESETS: &[&str] = &["micro", "tiny", "small", "gpt2-small"];

impl ModelConfig {
    /// Resolves the preset and overrides. `data_vocab` is the tokenizer's vocabulary, used when
    /// `vocab_size` is 0.
    pub fn resolve(&self, data_vocab: Option<usize>) -> anyhow::Result<LlamaConfig> {
        let (h, i, l, nh, nkv, maxp) = preset(&self.preset).ok_or_else(|| {
            anyhow::anyhow!("model.preset: unknown preset `{}` (known: {})", self.preset, PRESETS.join(", "))
        })?;
        let pick = |v: usize, d: usize| if v == 0 { d } else { v };
        let pickf = |v: f64, d: f64| if v == 0.0 { d } else { v };
        let vocab_size = match (self.vocab_size, data_vocab) {
            (0, Some(v)) => v,
            (0, None) => {
                anyhow::bail!("model.vocab_size: 0 means `from the tokenizer`, but no tokenizer is known here")
            }
            (v, _) => v,
        };
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size: pick(self.hidden_size, h),
            intermediate_size: pick(self.intermediate_size, i),
            num_hidden_layers: pick(self.num_hidden_layers, l),
            num_attention_heads: pick(self.num_attention_heads, nh),
            num_key_value_heads: pick(self.num_key_value_heads, nkv),
            max_position_embeddings: pick(self.max_position_embeddings, maxp),
            rms_norm_eps: pickf(self.rms_norm_eps, 1e-5),
            rope_theta: pickf(self.rope_theta, 10_000.0),
            tie_word_embeddings: self.tie_word_embeddings,
            qk_norm: self.qk_norm,
            initializer_range: self.initializer_range,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks the shape constraints, naming the offending field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let c = self;
        anyhow::ensure!(c.vocab_size > 0, "model.vocab_size must be positive");
        anyhow::ensure!(c.num_attention_heads > 0 && c.num_key_value_heads > 0, "model: head counts must be positive");
        anyhow::ensure!(
            c.hidden_size.is_multiple_of(c.num_attention_heads),
            "model.hidden_size ({}) must be a multiple of model.num_attention_heads ({})",
            c.hidden_size,
            c.num_attention_heads
        );
        anyhow::ensure!(
            c.num_attention_heads.is_multiple_of(c.num_key_value_heads),
            "model.num_attention_heads ({}) must be a multiple of model.num_key_value_heads ({})",
            c.num_attention_heads,
            c.num_key_value_heads
        );
        anyhow::ensure!(c.head_dim().is_multiple_of(2), "model: head dimension {} must be even for RoPE", c.head_dim());
        anyhow::ensure!(c.rms_norm_eps > 0.0, "model.rms_norm_eps must be positive");
        Ok(())
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        let (d, hd) = (self.hidden_size, self.head_dim());
        let attn = d * hd * (2 * self.num_attention_heads + 2 * self.num_key_value_heads);
        let qk = if self.qk_norm { 2 * hd } else { 0 };
        let layer = attn + qk + 3 * d * self.intermediate_size + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * d };
        self.vocab_size * d + self.num_hidden_layers * layer + d + head
    }

    /// Training FLOPs per token (forward + backward) at sequence length `seq`: 6 per weight of every
    /// matrix multiply (the embedding lookup is free) plus the attention score and value products,
    /// counted in full as PyTorch's naive attention computes them (`6 * 2 * layers * seq * hidden`).
    pub fn train_flops_per_token(&self, seq: usize) -> f64 {
        let (d, hd) = (self.hidden_size, self.head_dim());
        let attn = d * hd * (2 * self.num_attention_heads + 2 * self.num_key_value_heads);
        let matmul_weights = self.num_hidden_layers * (attn + 3 * d * self.intermediate_size) + self.vocab_size * d;
        6.0 * matmul_weights as f64 + 12.0 * (self.num_hidden_layers * seq * d) as f64
    }

    /// The Hugging Face `config.json` for this model (`LlamaForCausalLM`).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let o = v.as_object_mut().expect("object");
        o.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
        o.insert("model_type".into(), serde_json::json!("llama"));
        o.insert("hidden_act".into(), serde_json::json!("silu"));
        o.insert("head_dim".into(), serde_json::json!(self.head_dim()));
        o.insert("attention_bias".into(), serde_json::json!(false));
        o.insert("mlp_bias".into(), serde_json::json!(false));
        o.insert("torch_dtype".into(), serde_json::json!("float32"));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_overrides_win() {
        let mut m = ModelConfig::default();
        let c = m.resolve(Some(4096)).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.vocab_size), (256, 4, 4096));
        assert!(c.num_params() > 2_000_000 && c.num_params() < 10_000_000, "{}", c.num_params());
        m.hidden_size = 128;
        m.vocab_size = 100;
        let c = m.resolve(Some(4096)).unwrap();
        assert_eq!((c.hidden_size, c.vocab_size), (128, 100));
        m.preset = "huge".into();
        assert!(m.resolve(Some(1)).unwrap_err().to_string().contains("model.preset"));
    }

    #[test]
    fn invalid_shapes_name_the_field() {
        let m = ModelConfig { num_attention_heads: 3, ..Default::default() };
        let e = m.resolve(Some(10)).unwrap_err().to_string();
        assert!(e.contains("model.hidden_size"), "{e}");
    }
}
