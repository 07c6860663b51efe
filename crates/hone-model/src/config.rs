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

/// Longest context a config may claim (see [`LlamaConfig::validate`]).
pub const MAX_POSITIONS: usize = 1 << 20;

/// The resolved architecture, named as in Hugging Face `LlamaConfig`. Reads hone's own `config.json`
/// and a Llama-family model's from the Hugging Face hub alike: fields hone's files always write have
/// `transformers`' defaults when absent; [`LlamaConfig::from_hf_json`] also refuses what hone does not
/// implement (biases, other activations, other RoPE types), naming the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `transformers`' default: as many as query heads (no grouping).
    #[serde(default)]
    pub num_key_value_heads: usize,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Not a `LlamaConfig` field; `transformers` ignores it (Qwen3-style models always use it).
    #[serde(default)]
    pub qk_norm: bool,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Width of one attention head when it is not `hidden_size / num_attention_heads` (e.g. Gemma,
    /// some Llama derivatives); absent: the quotient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// RoPE frequency scaling for contexts beyond the pretraining length; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
}

fn default_max_positions() -> usize {
    2048
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_init_range() -> f64 {
    0.02
}

/// RoPE scaling as `transformers` names it (`rope_scaling.rope_type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Positions divided by `factor` (every frequency scaled alike).
    Linear { factor: f64 },
    /// Llama 3.1's: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

impl RopeScaling {
    /// The inverse frequencies `inv_freq` (one per pair of head dimensions) after scaling, as
    /// `transformers`' `ROPE_INIT_FUNCTIONS` compute them.
    pub fn apply(&self, inv_freq: &mut [f64]) {
        match *self {
            RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let old = original_max_position_embeddings as f64;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    *f = if wavelen < high_wavelen {
                        *f
                    } else if wavelen > low_wavelen {
                        *f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * *f / factor + smooth * *f
                    };
                }
            }
        }
    }
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
            head_dim: None,
            rope_scaling: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Reads the `config.json` at `path` (see [`LlamaConfig::from_hf_json`]).
    pub fn read(path: &std::path::Path) -> anyhow::Result<LlamaConfig> {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8 text: {e}", path.display()))?;
        Self::from_hf_json(&text, &path.display().to_string())
    }

    /// Reads a `config.json`, hone's or a Llama-family model's: `origin` names the file in errors.
    /// Refuses, naming the field, what this implementation would silently compute differently.
    pub fn from_hf_json(text: &str, origin: &str) -> anyhow::Result<LlamaConfig> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: not JSON: {e}"))?;
        let get = |k: &str| v.get(k).filter(|x| !x.is_null());
        let model_type = get("model_type").and_then(|t| t.as_str());
        if let Some(t) = model_type {
            anyhow::ensure!(
                matches!(t, "llama" | "mistral" | "qwen3"),
                "{origin}: model_type `{t}` is not a Llama-family decoder hone implements (llama, mistral, qwen3)"
            );
        }
        if let Some(a) = get("hidden_act").and_then(|a| a.as_str()) {
            anyhow::ensure!(a == "silu", "{origin}: hidden_act `{a}`: hone's MLP is SwiGLU (silu)");
        }
        for k in ["attention_bias", "mlp_bias"] {
            anyhow::ensure!(
                get(k).and_then(|b| b.as_bool()) != Some(true),
                "{origin}: {k} = true: hone's layers have no biases"
            );
        }
        // Qwen3 configs carry a window that `use_sliding_window = false` turns off.
        if let Some(w) = get("sliding_window")
            && get("use_sliding_window").and_then(|u| u.as_bool()) != Some(false)
        {
            anyhow::bail!("{origin}: sliding_window = {w}: hone attends over the whole context");
        }
        if let Some(p) = get("pretraining_tp").and_then(|p| p.as_u64()) {
            anyhow::ensure!(p == 1, "{origin}: pretraining_tp = {p}: only 1 is supported");
        }
        if let Some(f) = get("partial_rotary_factor").and_then(|f| f.as_f64()) {
            anyhow::ensure!(f == 1.0, "{origin}: partial_rotary_factor = {f}: hone rotates the whole head");
        }
        let mut v2 = v.clone();
        // Qwen3 is Llama with an RMSNorm over each query and key head before RoPE (hone's QK-norm,
        // under the same tensor names), which its config does not spell out.
        if model_type == Some("qwen3") {
            v2["qk_norm"] = serde_json::json!(true);
        }
        // `transformers` 5 writes `rope_parameters` (theta and scaling in one object) where earlier
        // versions wrote `rope_theta` and `rope_scaling`.
        if let Some(rp) = v.get("rope_parameters").and_then(|r| r.as_object()) {
            if let Some(theta) = rp.get("rope_theta") {
                v2["rope_theta"] = theta.clone();
            }
            let mut scaling = rp.clone();
            scaling.remove("rope_theta");
            v2["rope_scaling"] = serde_json::Value::Object(scaling);
        }
        // `rope_scaling` of the default type (or `type` instead of `rope_type`, as older files write).
        if let Some(rs) = v2.get_mut("rope_scaling").and_then(|r| r.as_object_mut()) {
            if let Some(t) = rs.remove("type") {
                rs.entry("rope_type").or_insert(t);
            }
            match rs.get("rope_type").and_then(|t| t.as_str()) {
                Some("default") => {
                    v2["rope_scaling"] = serde_json::Value::Null;
                }
                Some("linear" | "llama3") => {}
                Some(t) => {
                    anyhow::bail!("{origin}: rope_scaling.rope_type `{t}` is not implemented (linear, llama3 are)")
                }
                None => anyhow::bail!("{origin}: rope_scaling has no rope_type"),
            }
        }
        let mut c: LlamaConfig =
            serde_json::from_value(v2).map_err(|e| anyhow::anyhow!("{origin}: not a Llama config.json: {e}"))?;
        if c.num_key_value_heads == 0 {
            c.num_key_value_heads = c.num_attention_heads;
        }
        if c.head_dim == Some(c.hidden_size / c.num_attention_heads.max(1)) {
            c.head_dim = None;
        }
        c.validate().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        Ok(c)
    }

    /// Checks the shape constraints, naming the offending field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let c = self;
        anyhow::ensure!(c.vocab_size > 0, "model.vocab_size must be positive");
        anyhow::ensure!(c.num_attention_heads > 0 && c.num_key_value_heads > 0, "model: head counts must be positive");
        anyhow::ensure!(
            c.head_dim.is_some() || c.hidden_size.is_multiple_of(c.num_attention_heads),
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
        // The rotary tables are built for every position up front: a claimed context is only taken
        // up to a size whose tables fit in memory (1M positions × 128 dims: 1 GiB).
        anyhow::ensure!(
            c.max_position_embeddings >= 1 && c.max_position_embeddings <= MAX_POSITIONS,
            "model.max_position_embeddings ({}) must be between 1 and {MAX_POSITIONS}",
            c.max_position_embeddings
        );
        anyhow::ensure!(
            c.head_dim() <= 1024 && c.num_attention_heads <= 1024 && c.num_hidden_layers <= 1024,
            "model: head_dim ({}), num_attention_heads ({}) and num_hidden_layers ({}) must each be at most 1024",
            c.head_dim(),
            c.num_attention_heads,
            c.num_hidden_layers
        );
        Ok(())
    }

    /// The shape in one line: layers, width, heads, vocabulary, context and parameter count.
    pub fn summary(&self) -> String {
        format!(
            "{} layers, width {}, {} heads / {} KV heads, vocab {}, context {}, {:.1}M parameters",
            self.num_hidden_layers,
            self.hidden_size,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.vocab_size,
            self.max_position_embeddings,
            self.num_params() as f64 / 1e6
        )
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

    /// The Hugging Face `config.json` for this model (`LlamaForCausalLM`, or `Qwen3ForCausalLM` with
    /// QK-norm).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let o = v.as_object_mut().expect("object");
        // With QK-norm the layers are Qwen3's (`transformers`' Llama would ignore the norms' weights).
        let (arch, ty) = if self.qk_norm { ("Qwen3ForCausalLM", "qwen3") } else { ("LlamaForCausalLM", "llama") };
        o.insert("architectures".into(), serde_json::json!([arch]));
        o.insert("model_type".into(), serde_json::json!(ty));
        if self.qk_norm {
            o.insert("use_sliding_window".into(), serde_json::json!(false));
        }
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
    fn qk_norm_models_are_written_and_read_as_qwen3() {
        let mut c = ModelConfig::default().resolve(Some(512)).unwrap();
        let plain = c.to_hf_json();
        assert_eq!(
            (plain["model_type"].as_str(), plain["architectures"][0].as_str()),
            (Some("llama"), Some("LlamaForCausalLM"))
        );
        c.qk_norm = true;
        let q = c.to_hf_json();
        assert_eq!(
            (q["model_type"].as_str(), q["architectures"][0].as_str()),
            (Some("qwen3"), Some("Qwen3ForCausalLM"))
        );
        assert_eq!(LlamaConfig::from_hf_json(&q.to_string(), "q").unwrap(), c);
        // A Qwen3 config as `transformers` writes it: no qk_norm key, a window switched off.
        let mut q3 = q.clone();
        q3.as_object_mut().unwrap().remove("qk_norm");
        q3["sliding_window"] = serde_json::json!(4096);
        let back = LlamaConfig::from_hf_json(&q3.to_string(), "q3").unwrap();
        assert!(back.qk_norm);
        // A window that is on (Mistral's) is refused, naming the field.
        q3["use_sliding_window"] = serde_json::json!(true);
        let e = LlamaConfig::from_hf_json(&q3.to_string(), "q3").unwrap_err().to_string();
        assert!(e.contains("sliding_window"), "{e}");
    }

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
