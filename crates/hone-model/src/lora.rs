//! LoRA (Hu et al., 2021) as PEFT defines and stores it: beside a frozen projection `W [out, in]`,
//! two small matrices `A [r, in]` and `B [out, r]` add `scale · B · A · x` to its output, with
//! `scale = alpha / r` (or `alpha / √r` with rsLoRA). `A` starts uniform in ±1/√in (PyTorch's
//! `kaiming_uniform_(a=√5)`, PEFT's default) and `B` at zero, so training starts from the base
//! model exactly. Only `A` and `B` are trained: the base's tensors are untracked constants, so
//! backward computes no weight gradient for them and the optimizer keeps no state for them.
//!
//! On disk an adapter is PEFT's pair of files: `adapter_config.json` (`r`, `lora_alpha`,
//! `lora_dropout`, `target_modules`, `base_model_name_or_path`, ...) and `adapter_model.safetensors`
//! with names like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. Opening one
//! merges it into the base's weights (`W + scale · B · A`); the reference of a preference stage is
//! the same model with its adapter left out, which shares every base tensor (no copy).

use crate::config::LlamaConfig;
use crate::llama::{Param, ParamKind, ParamSpec, constant, leaf, linear};
use crate::weights::{HostTensor, read_f32, write_f32};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A projection LoRA can adapt, by its PEFT (and Hugging Face module) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl Target {
    /// Every projection of a decoder layer, in the order of [`Target::slot`].
    pub const ALL: [Target; 7] = [
        Target::QProj,
        Target::KProj,
        Target::VProj,
        Target::OProj,
        Target::GateProj,
        Target::UpProj,
        Target::DownProj,
    ];

    /// Its module name (`q_proj`, ...), as PEFT's `target_modules` lists it.
    pub fn name(self) -> &'static str {
        match self {
            Target::QProj => "q_proj",
            Target::KProj => "k_proj",
            Target::VProj => "v_proj",
            Target::OProj => "o_proj",
            Target::GateProj => "gate_proj",
            Target::UpProj => "up_proj",
            Target::DownProj => "down_proj",
        }
    }

    /// The projection by module name.
    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Its index among a layer's projections `[q, k, v, o, gate, up, down]` (the order the
    /// forward pass and the Q8_0 copies use).
    pub fn slot(self) -> usize {
        self as usize
    }

    /// Its path inside a decoder layer (`self_attn.q_proj`).
    fn path(self) -> String {
        let block = if self.slot() < 4 { "self_attn" } else { "mlp" };
        format!("{block}.{}", self.name())
    }

    /// `(out, in)` of its weight in a model with config `c`.
    pub fn dims(self, c: &LlamaConfig) -> (usize, usize) {
        let (d, hd, i) = (c.hidden_size, c.head_dim(), c.intermediate_size);
        let (q, kv) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        match self {
            Target::QProj => (q, d),
            Target::KProj | Target::VProj => (kv, d),
            Target::OProj => (d, q),
            Target::GateProj | Target::UpProj => (i, d),
            Target::DownProj => (d, i),
        }
    }
}

/// The valid module names, for messages.
pub fn target_names() -> String {
    Target::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// An adapter's shape and strength (PEFT's `LoraConfig` fields hone supports).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// `r`: the rank of `B · A`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// `lora_dropout`: dropout on the adapter's input while training.
    pub dropout: f64,
    /// `target_modules`, in [`Target::ALL`] order.
    pub targets: Vec<Target>,
    /// `use_rslora`: scale by `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
}

impl LoraSpec {
    /// The factor on `B · A`.
    pub fn scale(&self) -> f64 {
        if self.rslora { self.alpha / (self.rank as f64).sqrt() } else { self.alpha / self.rank as f64 }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.rank > 0, "LoRA rank must be positive");
        anyhow::ensure!(self.alpha > 0.0 && self.alpha.is_finite(), "lora_alpha must be positive");
        anyhow::ensure!((0.0..1.0).contains(&self.dropout), "lora_dropout must be in [0, 1)");
        anyhow::ensure!(!self.targets.is_empty(), "LoRA needs at least one target module ({})", target_names());
        Ok(())
    }

    /// PEFT's `adapter_config.json` for this adapter on the model at `base`.
    pub fn adapter_config(&self, base: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "use_rslora": self.rslora,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "use_dora": false,
            "revision": null,
        })
    }

    /// The spec of a PEFT `adapter_config.json` (`origin` names it in errors). Refuses what hone
    /// does not apply rather than applying it wrongly: another PEFT method, DoRA, trained biases,
    /// per-module ranks, a layer subset, extra trained modules, a regular expression of targets.
    pub fn from_adapter_config(v: &serde_json::Value, origin: &str) -> anyhow::Result<LoraSpec> {
        let field = |k: &str| v.get(k).filter(|x| !x.is_null());
        let peft_type = field("peft_type").and_then(|x| x.as_str()).unwrap_or("LORA");
        anyhow::ensure!(peft_type == "LORA", "{origin}: peft_type `{peft_type}`: hone applies LoRA adapters only");
        let rank = field("r").and_then(|x| x.as_u64()).unwrap_or(8) as usize;
        let alpha = field("lora_alpha").and_then(|x| x.as_f64()).unwrap_or(8.0);
        let dropout = field("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0);
        let rslora = field("use_rslora").and_then(|x| x.as_bool()).unwrap_or(false);
        let unsupported = |k: &str, why: &str| -> anyhow::Result<()> {
            anyhow::bail!("{origin}: `{k}` = {}: {why}; hone cannot apply this adapter", v[k])
        };
        if field("use_dora").and_then(|x| x.as_bool()) == Some(true) {
            unsupported("use_dora", "DoRA adapters are not supported")?;
        }
        if field("bias").and_then(|x| x.as_str()).is_some_and(|b| b != "none") {
            unsupported("bias", "the adapter trained biases, which Llama projections do not have")?;
        }
        if field("fan_in_fan_out").and_then(|x| x.as_bool()) == Some(true) {
            unsupported("fan_in_fan_out", "Llama projections are stored [out, in]")?;
        }
        for k in ["rank_pattern", "alpha_pattern"] {
            if field(k).and_then(|x| x.as_object()).is_some_and(|o| !o.is_empty()) {
                unsupported(k, "per-module ranks and alphas are not supported")?;
            }
        }
        if field("layers_to_transform").is_some() {
            unsupported("layers_to_transform", "adapters on a subset of layers are not supported")?;
        }
        if field("modules_to_save").and_then(|x| x.as_array()).is_some_and(|a| !a.is_empty()) {
            unsupported("modules_to_save", "fully trained extra modules are not supported")?;
        }
        let targets: Vec<Target> = match field("target_modules") {
            Some(serde_json::Value::String(s)) if s == "all-linear" => Target::ALL.to_vec(),
            Some(serde_json::Value::String(s)) => {
                anyhow::bail!(
                    "{origin}: target_modules `{s}` is a regular expression; hone reads a list of module names ({})",
                    target_names()
                )
            }
            Some(serde_json::Value::Array(a)) => {
                let mut out = Vec::new();
                for x in a {
                    let name = x.as_str().unwrap_or_default();
                    // A full path (`model.layers.0.self_attn.q_proj`) names the module by its last part.
                    let last = name.rsplit('.').next().unwrap_or(name);
                    let t = Target::parse(last).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{origin}: target module `{name}` is not a projection of a Llama layer (valid: {})",
                            target_names()
                        )
                    })?;
                    out.push(t);
                }
                out.sort();
                out.dedup();
                out
            }
            _ => anyhow::bail!("{origin}: no target_modules: which projections the adapter changes is unknown"),
        };
        let spec = LoraSpec { rank, alpha, dropout, targets, rslora };
        spec.validate().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        Ok(spec)
    }
}

/// One layer's adapters, indexed by [`Target::slot`]: `(A [r, in], B [out, r])`.
pub type LayerAdapters = [Option<(Tensor<2>, Tensor<2>)>; 7];

/// An adapter on every layer of a model: its spec, the model it adapts, and its matrices.
#[derive(Debug, Clone)]
pub struct Lora {
    pub spec: LoraSpec,
    /// `base_model_name_or_path`: where the adapted model is.
    pub base: String,
    layers: Vec<LayerAdapters>,
    /// Seed of the dropout masks of the current micro-batch; `None` (evaluation, inference): no
    /// dropout.
    dropout_seed: Option<u64>,
}

/// PEFT's name of a matrix (`A` or `B`) of `target` in layer `layer`.
pub fn param_name(layer: usize, target: Target, ab: char) -> String {
    format!("base_model.model.model.layers.{layer}.{}.lora_{ab}.weight", target.path())
}

impl Lora {
    /// A new adapter for a model with config `c`: `A` uniform in ±1/√in from ChaCha8 seeded with
    /// `seed` (drawn on the host, so every device starts alike), `B` zero.
    pub fn init(spec: LoraSpec, base: String, c: &LlamaConfig, seed: u64, device: &Device) -> anyhow::Result<Lora> {
        spec.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let r = spec.rank;
        let layers = (0..c.num_hidden_layers)
            .map(|_| {
                let mut l: LayerAdapters = Default::default();
                for t in &spec.targets {
                    let (out, inp) = t.dims(c);
                    let bound = 1.0 / (inp as f64).sqrt();
                    let a: Vec<f32> = (0..r * inp).map(|_| rng.random_range(-bound..bound) as f32).collect();
                    let a = Tensor::<2>::from_data(TensorData::new(a, [r, inp]), device);
                    let b = Tensor::<2>::zeros([out, r], device);
                    l[t.slot()] = Some((leaf(a, device), leaf(b, device)));
                }
                l
            })
            .collect();
        Ok(Lora { spec, base, layers, dropout_seed: None })
    }

    /// Every matrix with its spec (PEFT names; kind [`ParamKind::Adapter`]), layer by layer, `A`
    /// before `B`.
    pub fn params(&self) -> Vec<(ParamSpec, Param)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for t in Target::ALL {
                if let Some((a, b)) = &layer[t.slot()] {
                    for (ab, m) in [('A', a), ('B', b)] {
                        let spec = ParamSpec {
                            name: param_name(l, t, ab),
                            kind: ParamKind::Adapter,
                            shape: m.dims().to_vec(),
                        };
                        out.push((spec, Param::Matrix(m.clone())));
                    }
                }
            }
        }
        out
    }

    /// Replaces every matrix with `f(spec, current)`, in [`Lora::params`] order; the results become
    /// gradient-recording leaves on autodiff devices.
    pub fn update(
        &mut self,
        device: &Device,
        f: &mut dyn FnMut(&ParamSpec, Param) -> anyhow::Result<Param>,
    ) -> anyhow::Result<()> {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            for t in Target::ALL {
                if let Some((a, b)) = &mut layer[t.slot()] {
                    for (ab, m) in [('A', a), ('B', b)] {
                        let spec = ParamSpec {
                            name: param_name(l, t, ab),
                            kind: ParamKind::Adapter,
                            shape: m.dims().to_vec(),
                        };
                        match f(&spec, Param::Matrix(m.clone()))?.into_leaf(device) {
                            Param::Matrix(n) if n.dims() == m.dims() => *m = n,
                            other => anyhow::bail!("{}: replaced by a tensor of shape {:?}", spec.name, other.shape()),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Layer `l`'s adapters.
    pub(crate) fn layer(&self, l: usize) -> &LayerAdapters {
        &self.layers[l]
    }

    /// This adapter with layer `l`'s matrices replaced (a recomputed layer's fresh leaves).
    pub(crate) fn with_layer(&self, l: usize, adapters: LayerAdapters) -> Lora {
        let mut out = self.clone();
        out.layers[l] = adapters;
        out
    }

    /// The same adapter off the autodiff graph (for evaluation and sampling), without dropout.
    pub fn to_inference(&self) -> Lora {
        let mut out = self.clone();
        out.dropout_seed = None;
        for layer in &mut out.layers {
            for (a, b) in layer.iter_mut().flatten() {
                *a = a.clone().without_autodiff();
                *b = b.clone().without_autodiff();
            }
        }
        out
    }

    /// This adapter with dropout masks drawn from `seed` (a training micro-batch); no effect when
    /// `lora_dropout` is 0.
    pub fn with_dropout_seed(&self, seed: u64) -> Lora {
        Lora { dropout_seed: (self.spec.dropout > 0.0).then_some(seed), ..self.clone() }
    }

    /// `y + scale · B · A · x` for projection `slot` of layer `layer` (`y` is the base projection's
    /// output); `y` unchanged where the projection has no adapter. `x: [batch, seq, in]`,
    /// `y: [batch, seq, out]`.
    pub(crate) fn apply(&self, layer: usize, slot: usize, x: Tensor<3>, y: Tensor<3>) -> Tensor<3> {
        let Some((a, b)) = &self.layers[layer][slot] else { return y };
        let x = match self.dropout_seed {
            Some(seed) => {
                let p = self.spec.dropout;
                let dims = x.dims();
                let n: usize = dims.iter().product();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream((layer * 7 + slot) as u64);
                let keep = (1.0 / (1.0 - p)) as f32;
                let mask: Vec<f32> = (0..n).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
                x * constant(mask, dims, &y.device())
            }
            None => x,
        };
        // [batch, seq, r] → [batch, seq, out]
        y + linear(linear(x, a), b).mul_scalar(self.spec.scale())
    }

    /// `scale · B · A` of projection `slot` of layer `layer`, `[out, in]`, when it has an adapter.
    pub fn delta(&self, layer: usize, slot: usize) -> Option<Tensor<2>> {
        let (a, b) = self.layers[layer][slot].as_ref()?;
        Some(b.clone().matmul(a.clone()).mul_scalar(self.spec.scale()))
    }

    /// The matrices as PEFT's `adapter_model.safetensors`.
    pub fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        let tensors: BTreeMap<String, HostTensor> =
            self.params().into_iter().map(|(s, p)| (s.name, HostTensor { shape: s.shape, data: p.to_vec() })).collect();
        write_f32(&tensors, Some(HashMap::from([("format".to_string(), "pt".to_string())])))
    }

    /// The adapter of spec `spec` whose matrices are in the safetensors `bytes` (`origin` names the
    /// file), for a base model with config `c`. Every tensor must be an adapter matrix of a layer
    /// and target the base has, of the shape the base and the rank give: a file made for another
    /// base model is refused with the first mismatch named.
    pub fn from_safetensors(
        spec: LoraSpec,
        base: String,
        bytes: &[u8],
        c: &LlamaConfig,
        device: &Device,
        origin: &str,
    ) -> anyhow::Result<Lora> {
        Lora::from_tensors(spec, base, read_f32(bytes, origin)?, c, device, origin)
    }

    /// [`Lora::from_safetensors`] on tensors already read (a reward model's file holds its head
    /// beside them).
    pub fn from_tensors(
        spec: LoraSpec,
        base: String,
        mut tensors: BTreeMap<String, HostTensor>,
        c: &LlamaConfig,
        device: &Device,
        origin: &str,
    ) -> anyhow::Result<Lora> {
        spec.validate().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let another = "the adapter was made for another base model";
        // Names PEFT may save with the adapter's name inside (`lora_A.default.weight`).
        let names: Vec<String> = tensors.keys().cloned().collect();
        for n in names {
            if n.contains(".default.weight") {
                let t = tensors.remove(&n).expect("listed");
                tensors.insert(n.replace(".default.weight", ".weight"), t);
            }
        }
        let expected: std::collections::BTreeSet<String> = (0..c.num_hidden_layers)
            .flat_map(|l| spec.targets.iter().flat_map(move |&tg| [param_name(l, tg, 'A'), param_name(l, tg, 'B')]))
            .collect();
        for (name, t) in &tensors {
            if !expected.contains(name) {
                let layer = name
                    .split("layers.")
                    .nth(1)
                    .and_then(|r| r.split('.').next())
                    .and_then(|x| x.parse::<usize>().ok());
                if let Some(l) = layer.filter(|&l| l >= c.num_hidden_layers) {
                    anyhow::bail!(
                        "{origin}: `{name}` adapts layer {l} but the base model has {} layers: {another}",
                        c.num_hidden_layers
                    );
                }
                anyhow::bail!(
                    "{origin}: tensor `{name}` {:?} is not a LoRA matrix of a projection listed in target_modules ({})",
                    t.shape,
                    spec.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let r = spec.rank;
        let mut layers: Vec<LayerAdapters> = vec![Default::default(); c.num_hidden_layers];
        for (l, layer) in layers.iter_mut().enumerate() {
            for &tg in &spec.targets {
                let (out, inp) = tg.dims(c);
                let mut take = |ab: char, want: [usize; 2]| -> anyhow::Result<Tensor<2>> {
                    let name = param_name(l, tg, ab);
                    let t = tensors
                        .remove(&name)
                        .ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{name}` (shape {want:?})"))?;
                    anyhow::ensure!(
                        t.shape == want,
                        "{origin}: `{name}` has shape {:?} where the base model (hidden_size {}, intermediate_size \
                         {}) with r = {r} takes {want:?}: {another}",
                        t.shape,
                        c.hidden_size,
                        c.intermediate_size
                    );
                    Ok(leaf(Tensor::<2>::from_data(TensorData::new(t.data, want), device), device))
                };
                let a = take('A', [r, inp])?;
                let b = take('B', [out, r])?;
                layer[tg.slot()] = Some((a, b));
            }
        }
        Ok(Lora { spec, base, layers, dropout_seed: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LoraSpec {
        LoraSpec { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec![Target::QProj, Target::DownProj], rslora: false }
    }

    #[test]
    fn adapter_configs_round_trip_and_refuse_what_is_not_applied() {
        let s = spec();
        let v = s.adapter_config("/models/base");
        assert_eq!(LoraSpec::from_adapter_config(&v, "a").unwrap(), s);
        assert_eq!(v["target_modules"], serde_json::json!(["q_proj", "down_proj"]));
        let mut all = v.clone();
        all["target_modules"] = serde_json::json!("all-linear");
        assert_eq!(LoraSpec::from_adapter_config(&all, "a").unwrap().targets, Target::ALL.to_vec());
        let bad = |k: &str, x: serde_json::Value| {
            let mut w = v.clone();
            w[k] = x;
            format!("{:#}", LoraSpec::from_adapter_config(&w, "cfg.json").unwrap_err())
        };
        let e = bad("target_modules", serde_json::json!(["q_proj", "qkv_proj"]));
        assert!(e.contains("cfg.json") && e.contains("`qkv_proj`") && e.contains("gate_proj"), "{e}");
        assert!(bad("target_modules", serde_json::json!(".*proj")).contains("regular expression"));
        assert!(bad("use_dora", serde_json::json!(true)).contains("DoRA"));
        assert!(bad("peft_type", serde_json::json!("IA3")).contains("IA3"));
        assert!(bad("layers_to_transform", serde_json::json!([0])).contains("layers_to_transform"));
        assert!(bad("r", serde_json::json!(0)).contains("rank"));
    }

    #[test]
    fn scale_is_alpha_over_rank_or_its_root() {
        let mut s = spec();
        assert_eq!(s.scale(), 2.0);
        s.rslora = true;
        assert_eq!(s.scale(), 4.0);
    }
}
