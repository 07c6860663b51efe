//! The Llama-style decoder: token embedding, `num_hidden_layers` pre-norm blocks of grouped-query
//! attention with rotary positions (optionally QK-norm) and a SwiGLU MLP, a final RMSNorm and the
//! output projection (optionally tied to the embedding). It follows Hugging Face's
//! `modeling_llama.py` operation for operation, so weights move between the two unchanged: Linear
//! weights are `[out, in]`, parameter names are the `LlamaForCausalLM` state-dict keys.
//!
//! Norms, the SwiGLU gate, plain causal attention and the log-softmax over the vocabulary go through
//! [`crate::fused`], which runs fused kernels with hand-written backward passes on Flex and the plain
//! burn compositions elsewhere; everything else is plain burn ops differentiated by burn's autodiff.

use crate::config::LlamaConfig;
use crate::fused;
use crate::lora::Lora;
use crate::q8::QMatrix;
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// What a parameter is, for optimizers that treat kinds differently (no weight decay on norms and
/// embeddings; Muon only for hidden matrices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// The token embedding matrix `[vocab, hidden]`.
    Embedding,
    /// An RMSNorm gain vector.
    Norm,
    /// A hidden weight matrix `[out, in]` inside a block.
    Matrix,
    /// The output projection `lm_head` `[vocab, hidden]` (absent when tied).
    Head,
    /// A LoRA matrix (`lora_A [r, in]` or `lora_B [out, r]`, [`crate::lora`]).
    Adapter,
}

/// A parameter tensor: norms are vectors, everything else a matrix.
#[derive(Debug, Clone)]
pub enum Param {
    Vector(Tensor<1>),
    Matrix(Tensor<2>),
}

impl Param {
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Param::Vector(t) => t.dims().to_vec(),
            Param::Matrix(t) => t.dims().to_vec(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// The values as a flat f32 vector (row-major).
    pub fn to_vec(&self) -> Vec<f32> {
        let data = match self {
            Param::Vector(t) => t.to_data(),
            Param::Matrix(t) => t.to_data(),
        };
        data.convert::<f32>().try_into_vec::<f32>().expect("parameters are f32")
    }

    /// A flat view `[numel]`, for elementwise optimizer math.
    pub fn flat(&self) -> Tensor<1> {
        match self {
            Param::Vector(t) => t.clone(),
            Param::Matrix(t) => t.clone().reshape([-1]),
        }
    }

    /// A tensor of this parameter's shape from a flat `[numel]` tensor.
    pub fn like(&self, flat: Tensor<1>) -> Param {
        match self {
            Param::Vector(_) => Param::Vector(flat),
            Param::Matrix(t) => Param::Matrix(flat.reshape(t.dims())),
        }
    }

    /// This parameter's gradient in `grads`, if it took part in the graph.
    pub fn grad(&self, grads: &burn::tensor::Gradients) -> Option<Param> {
        match self {
            Param::Vector(t) => t.grad(grads).map(Param::Vector),
            Param::Matrix(t) => t.grad(grads).map(Param::Matrix),
        }
    }

    /// The same values as a fresh leaf that records gradients when `device` is an autodiff device.
    pub fn into_leaf(self, device: &Device) -> Param {
        match self {
            Param::Vector(t) => Param::Vector(leaf(t, device)),
            Param::Matrix(t) => Param::Matrix(leaf(t, device)),
        }
    }
}

/// Makes `t` a gradient-recording leaf on autodiff devices, and plain elsewhere.
pub(crate) fn leaf<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    let t = t.without_autodiff();
    if device.is_autodiff() { t.autodiff().require_grad() } else { t }
}

/// One parameter's name (its Hugging Face state-dict key), kind and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub shape: Vec<usize>,
}

/// Where a parameter lives in [`Llama`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Embed,
    Layer(usize, LayerParam),
    Norm,
    Head,
}

/// A parameter of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerParam {
    InputNorm,
    QProj,
    KProj,
    VProj,
    OProj,
    QNorm,
    KNorm,
    PostNorm,
    Gate,
    Up,
    Down,
}

impl LayerParam {
    /// The projection a LoRA target adapts.
    fn of(t: crate::lora::Target) -> LayerParam {
        use crate::lora::Target::*;
        match t {
            QProj => LayerParam::QProj,
            KProj => LayerParam::KProj,
            VProj => LayerParam::VProj,
            OProj => LayerParam::OProj,
            GateProj => LayerParam::Gate,
            UpProj => LayerParam::Up,
            DownProj => LayerParam::Down,
        }
    }
}

/// Every parameter of a model with this config (name, kind, shape) and where it lives, in the
/// canonical order used everywhere (initialisation, safetensors files, optimizer state): the one
/// declaration of the parameters, from which [`param_specs`], building and updating all derive.
fn layout(c: &LlamaConfig) -> Vec<(ParamSpec, Loc)> {
    let (d, hd, i) = (c.hidden_size, c.head_dim(), c.intermediate_size);
    let (q, kv) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
    let spec = |name: String, kind, shape: Vec<usize>| ParamSpec { name, kind, shape };
    let mut v =
        vec![(spec("model.embed_tokens.weight".into(), ParamKind::Embedding, vec![c.vocab_size, d]), Loc::Embed)];
    for l in 0..c.num_hidden_layers {
        use LayerParam::*;
        let mut params = vec![
            ("input_layernorm", ParamKind::Norm, vec![d], InputNorm),
            ("self_attn.q_proj", ParamKind::Matrix, vec![q, d], QProj),
            ("self_attn.k_proj", ParamKind::Matrix, vec![kv, d], KProj),
            ("self_attn.v_proj", ParamKind::Matrix, vec![kv, d], VProj),
            ("self_attn.o_proj", ParamKind::Matrix, vec![d, q], OProj),
        ];
        if c.qk_norm {
            params.push(("self_attn.q_norm", ParamKind::Norm, vec![hd], QNorm));
            params.push(("self_attn.k_norm", ParamKind::Norm, vec![hd], KNorm));
        }
        params.extend([
            ("post_attention_layernorm", ParamKind::Norm, vec![d], PostNorm),
            ("mlp.gate_proj", ParamKind::Matrix, vec![i, d], Gate),
            ("mlp.up_proj", ParamKind::Matrix, vec![i, d], Up),
            ("mlp.down_proj", ParamKind::Matrix, vec![d, i], Down),
        ]);
        for (name, kind, shape, p) in params {
            v.push((spec(format!("model.layers.{l}.{name}.weight"), kind, shape), Loc::Layer(l, p)));
        }
    }
    v.push((spec("model.norm.weight".into(), ParamKind::Norm, vec![d]), Loc::Norm));
    if !c.tie_word_embeddings {
        v.push((spec("lm_head.weight".into(), ParamKind::Head, vec![c.vocab_size, d]), Loc::Head));
    }
    v
}

/// Every parameter of a model with this config, in the canonical order used everywhere
/// (initialisation, safetensors files, optimizer state).
pub fn param_specs(c: &LlamaConfig) -> Vec<ParamSpec> {
    layout(c).into_iter().map(|(s, _)| s).collect()
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Tensor<2>,
    pub k_proj: Tensor<2>,
    pub v_proj: Tensor<2>,
    pub o_proj: Tensor<2>,
    pub q_norm: Option<Tensor<1>>,
    pub k_norm: Option<Tensor<1>>,
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Tensor<2>,
    pub up_proj: Tensor<2>,
    pub down_proj: Tensor<2>,
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub input_layernorm: Tensor<1>,
    pub self_attn: Attention,
    pub post_attention_layernorm: Tensor<1>,
    pub mlp: Mlp,
}

/// The model. Cloning is cheap (tensors are reference counted).
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: LlamaConfig,
    pub embed_tokens: Tensor<2>,
    pub layers: Vec<DecoderLayer>,
    pub norm: Tensor<1>,
    /// `None` when the output projection is tied to `embed_tokens`.
    pub lm_head: Option<Tensor<2>>,
    /// Rotary tables `[max_positions, head_dim]`, constants.
    rope_cos: Tensor<2>,
    rope_sin: Tensor<2>,
    device: Device,
    /// Q8_0 copies of the matrices for decoding ([`Llama::quantize_q8`]); dropped by any update.
    quant: Option<std::sync::Arc<Q8Weights>>,
    /// A LoRA adapter on the projections ([`Llama::attach_lora`]): the base weights are then frozen.
    lora: Option<Lora>,
    /// Activation checkpointing while training ([`Llama::set_recompute`]).
    recompute: bool,
}

/// Q8_0 copies of a model's matrices, per layer `[q, k, v, o, gate, up, down]`, and the output
/// projection.
#[derive(Debug)]
pub struct Q8Weights {
    layers: Vec<[Arc<QMatrix>; 7]>,
    head: Arc<QMatrix>,
}

impl Q8Weights {
    pub fn layers(&self) -> &[[Arc<QMatrix>; 7]] {
        &self.layers
    }

    pub fn head(&self) -> &Arc<QMatrix> {
        &self.head
    }
}

/// A mutable reference to one parameter tensor inside the model.
enum Slot<'a> {
    V(&'a mut Tensor<1>),
    M(&'a mut Tensor<2>),
}

impl Llama {
    /// A freshly initialised model: weight matrices ~ N(0, initializer_range²), with the two
    /// projections that write into the residual stream (`o_proj`, `down_proj`) scaled by
    /// 1/√(2·layers) as in GPT-2, and norm gains at 1. A pure function of `(config, seed)`: values are
    /// drawn on the host with ChaCha8, so every device starts from the same weights.
    pub fn init(config: &LlamaConfig, seed: u64, device: &Device) -> anyhow::Result<Llama> {
        config.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let residual_scale = 1.0 / (2.0 * config.num_hidden_layers as f64).sqrt();
        Llama::build(config, device, |spec| {
            let n: usize = spec.shape.iter().product();
            Ok(match spec.kind {
                ParamKind::Norm => vec![1.0; n],
                _ => {
                    let out_proj = spec.name.ends_with("o_proj.weight") || spec.name.ends_with("down_proj.weight");
                    let std = config.initializer_range * if out_proj { residual_scale } else { 1.0 };
                    normal_vec(&mut rng, n, std)
                }
            })
        })
    }

    /// Builds a model whose parameter values come from `values` (called once per [`ParamSpec`], in
    /// canonical order, returning `numel` f32 values).
    pub fn build(
        config: &LlamaConfig,
        device: &Device,
        mut values: impl FnMut(&ParamSpec) -> anyhow::Result<Vec<f32>>,
    ) -> anyhow::Result<Llama> {
        config.validate()?;
        // Empty placeholders, each replaced by its parameter below through the one layout.
        let m0 = || Tensor::<2>::empty([0, 0], device);
        let v0 = || Tensor::<1>::empty([0], device);
        let layer = || DecoderLayer {
            input_layernorm: v0(),
            self_attn: Attention {
                q_proj: m0(),
                k_proj: m0(),
                v_proj: m0(),
                o_proj: m0(),
                q_norm: config.qk_norm.then(v0),
                k_norm: config.qk_norm.then(v0),
            },
            post_attention_layernorm: v0(),
            mlp: Mlp { gate_proj: m0(), up_proj: m0(), down_proj: m0() },
        };
        let (rope_cos, rope_sin) = rope_tables(config, device);
        let mut model = Llama {
            config: config.clone(),
            embed_tokens: m0(),
            layers: (0..config.num_hidden_layers).map(|_| layer()).collect(),
            norm: v0(),
            lm_head: (!config.tie_word_embeddings).then(m0),
            rope_cos,
            rope_sin,
            device: device.clone(),
            quant: None,
            lora: None,
            recompute: false,
        };
        for (spec, loc) in layout(config) {
            let v = values(&spec)?;
            let n: usize = spec.shape.iter().product();
            anyhow::ensure!(v.len() == n, "{}: expected {n} values, got {}", spec.name, v.len());
            let data = TensorData::new(v, spec.shape.clone());
            match model.slot(loc) {
                Slot::V(t) => *t = leaf(Tensor::<1>::from_data(data, device), device),
                Slot::M(t) => *t = leaf(Tensor::<2>::from_data(data, device), device),
            }
        }
        Ok(model)
    }

    /// Keeps Q8_0 copies of every matrix (llama.cpp's 8-bit blocks), used on the inference path
    /// for a few rows at a time (decoding: [`crate::q8::MAX_ROWS`]); prompts keep the f32 GEMM.
    /// Fails on an autodiff device (training updates the f32 weights) or when a width is not a
    /// multiple of 32.
    pub fn quantize_q8(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.device.is_autodiff(), "Q8_0 weights are for inference: use to_inference() first");
        let q = |t: &Tensor<2>| -> anyhow::Result<Arc<QMatrix>> {
            let [rows, cols] = t.dims();
            let data = t.to_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            QMatrix::quantize(&data, rows, cols)
                .map(Arc::new)
                .ok_or_else(|| anyhow::anyhow!("a width of {cols} is not a multiple of 32: no Q8_0 blocks"))
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (a, m) = (&l.self_attn, &l.mlp);
                Ok([
                    q(&a.q_proj)?,
                    q(&a.k_proj)?,
                    q(&a.v_proj)?,
                    q(&a.o_proj)?,
                    q(&m.gate_proj)?,
                    q(&m.up_proj)?,
                    q(&m.down_proj)?,
                ])
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let head = q(self.lm_head.as_ref().unwrap_or(&self.embed_tokens))?;
        self.quant = Some(std::sync::Arc::new(Q8Weights { layers, head }));
        Ok(())
    }

    /// Whether [`Llama::quantize_q8`] copies are in use.
    pub fn is_q8(&self) -> bool {
        self.quant.is_some()
    }

    /// The Q8_0 copies, when there are some.
    pub fn q8_weights(&self) -> Option<std::sync::Arc<Q8Weights>> {
        self.quant.clone()
    }

    /// The rotary tables `[max_positions, head_dim]` (cos, sin).
    pub fn rope_tables(&self) -> (Tensor<2>, Tensor<2>) {
        (self.rope_cos.clone(), self.rope_sin.clone())
    }

    /// A copy off the autodiff graph, for evaluation and sampling (records nothing).
    pub fn to_inference(&self) -> Llama {
        let mut m = self.clone();
        m.device = self.device.clone().without_autodiff();
        m.update_params(|_, p| Ok(p)).expect("same parameters back");
        m.quant = self.quant.clone();
        m.lora = self.lora.as_ref().map(Lora::to_inference);
        m.rope_cos = m.rope_cos.without_autodiff();
        m.rope_sin = m.rope_sin.without_autodiff();
        m
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trains `lora` instead of the weights: every base tensor becomes an untracked constant (no
    /// gradient, no optimizer state), and the projections add the adapter's output.
    pub fn attach_lora(&mut self, lora: Lora) -> anyhow::Result<()> {
        anyhow::ensure!(self.lora.is_none(), "the model already has an adapter; merge it first");
        anyhow::ensure!(self.quant.is_none(), "an adapter on Q8_0 weights: attach it before quantising");
        let autodiff = self.device.is_autodiff();
        for (_, loc) in layout(&self.config) {
            match self.slot(loc) {
                Slot::V(t) => *t = freeze(t.clone(), autodiff),
                Slot::M(t) => *t = freeze(t.clone(), autodiff),
            }
        }
        self.lora = Some(lora);
        Ok(())
    }

    /// The adapter, when one is attached.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    pub fn lora_mut(&mut self) -> Option<&mut Lora> {
        self.lora.as_mut()
    }

    /// The base model alone: the same tensors (shared, not copied) with the adapter switched off;
    /// the reference of a preference stage that trains an adapter.
    pub fn without_lora(&self) -> Llama {
        Llama { lora: None, ..self.clone() }
    }

    /// Folds the adapter into the weights (`W + scale · B · A`) and drops it.
    pub fn merge_lora(&mut self) -> anyhow::Result<()> {
        let Some(lora) = self.lora.take() else { return Ok(()) };
        self.quant = None;
        for l in 0..self.config.num_hidden_layers {
            for t in crate::lora::Target::ALL {
                if let Some(delta) = lora.delta(l, t.slot()) {
                    let Slot::M(w) = self.slot(Loc::Layer(l, LayerParam::of(t))) else { unreachable!("a projection") };
                    *w = w.clone().without_autodiff() + delta.without_autodiff();
                }
            }
        }
        // Every weight a trainable leaf again, as the model was before the adapter froze it.
        self.update_params(|_, p| Ok(p))
    }

    /// The parameter at `loc`.
    fn slot(&mut self, loc: Loc) -> Slot<'_> {
        use LayerParam::*;
        let missing = "the layout lists q_norm/k_norm only with qk_norm and lm_head only untied";
        match loc {
            Loc::Embed => Slot::M(&mut self.embed_tokens),
            Loc::Norm => Slot::V(&mut self.norm),
            Loc::Head => Slot::M(self.lm_head.as_mut().expect(missing)),
            Loc::Layer(l, p) => {
                let layer = &mut self.layers[l];
                let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
                match p {
                    InputNorm => Slot::V(&mut layer.input_layernorm),
                    QProj => Slot::M(&mut a.q_proj),
                    KProj => Slot::M(&mut a.k_proj),
                    VProj => Slot::M(&mut a.v_proj),
                    OProj => Slot::M(&mut a.o_proj),
                    QNorm => Slot::V(a.q_norm.as_mut().expect(missing)),
                    KNorm => Slot::V(a.k_norm.as_mut().expect(missing)),
                    PostNorm => Slot::V(&mut layer.post_attention_layernorm),
                    Gate => Slot::M(&mut m.gate_proj),
                    Up => Slot::M(&mut m.up_proj),
                    Down => Slot::M(&mut m.down_proj),
                }
            }
        }
    }

    /// Every parameter with its spec, in canonical order.
    pub fn params(&self) -> Vec<(ParamSpec, Param)> {
        let mut me = self.clone();
        layout(&self.config)
            .into_iter()
            .map(|(s, loc)| {
                let p = match me.slot(loc) {
                    Slot::V(t) => Param::Vector(t.clone()),
                    Slot::M(t) => Param::Matrix(t.clone()),
                };
                (s, p)
            })
            .collect()
    }

    /// Replaces every parameter with `f(spec, current)`, in canonical order. The results become fresh
    /// gradient-recording leaves on autodiff devices.
    pub fn update_params(
        &mut self,
        mut f: impl FnMut(&ParamSpec, Param) -> anyhow::Result<Param>,
    ) -> anyhow::Result<()> {
        let device = self.device.clone();
        // Quantised copies would describe the old weights.
        self.quant = None;
        for (spec, loc) in layout(&self.config) {
            let spec = &spec;
            match self.slot(loc) {
                Slot::V(t) => match f(spec, Param::Vector(t.clone()))?.into_leaf(&device) {
                    Param::Vector(n) => *t = n,
                    Param::Matrix(_) => anyhow::bail!("{}: a vector parameter was replaced by a matrix", spec.name),
                },
                Slot::M(t) => match f(spec, Param::Matrix(t.clone()))?.into_leaf(&device) {
                    Param::Matrix(n) => *t = n,
                    Param::Vector(_) => anyhow::bail!("{}: a matrix parameter was replaced by a vector", spec.name),
                },
            }
        }
        Ok(())
    }

    /// Logits for every position with plain causal attention. `ids`: `[batch, seq]` token ids;
    /// returns `[batch, seq, vocab]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, s] = ids.dims();
        self.forward_with(ids, &Layout::causal(b, s, &self.device))
    }

    /// Logits for every position under `layout` (packing, padding). `[batch, seq]` → `[batch, seq, vocab]`.
    pub fn forward_with(&self, ids: Tensor<2, Int>, layout: &Layout) -> Tensor<3> {
        self.logits(self.hidden(ids, layout))
    }

    /// Hidden states after the final RMSNorm, `[batch, seq, hidden]`: the input of the output
    /// projection, and of a scalar head (reward model).
    pub fn hidden(&self, ids: Tensor<2, Int>, layout: &Layout) -> Tensor<3> {
        self.run_layers(ids, layout, None)
    }

    /// Logits of the newest tokens, extending `cache` with their keys and values. `layout` covers the
    /// new tokens as queries and the cache plus the new tokens as keys (see [`Layout::left_padded_step`]).
    /// `[batch, new]` → `[batch, new, vocab]`.
    pub fn forward_cached(&self, ids: Tensor<2, Int>, layout: &Layout, cache: &mut KvCache) -> Tensor<3> {
        self.logits(self.hidden_cached(ids, layout, cache))
    }

    /// Logits of the last new position only, extending `cache` as [`Llama::forward_cached`] does: a
    /// prompt's prefill, where only the last position is sampled from. Skipping the output projection
    /// of the other positions saves a tenth of SmolLM2's prompt work and its `[seq, vocab]` logits
    /// (100 MB for 512 tokens). `[batch, new]` → `[batch, vocab]`.
    pub fn forward_last_cached(&self, ids: Tensor<2, Int>, layout: &Layout, cache: &mut KvCache) -> Tensor<2> {
        let h = self.hidden_cached(ids, layout, cache);
        let [b, s, _] = h.dims();
        // The f32 head even when the model has Q8_0 copies: the prompt's last logits as the full
        // pass gives them. (Through the Q8_0 head, SmolLM2's Q4_1 file started its answer to "What
        // is the capital of France?" with another token.)
        linear(h.narrow(1, s - 1, 1), self.lm_head.as_ref().unwrap_or(&self.embed_tokens))
            .reshape([b, self.config.vocab_size])
    }

    /// Hidden states of the newest tokens (after the final RMSNorm), extending `cache` as
    /// [`Llama::forward_cached`] does but without the output projection: for a prefix whose logits are
    /// not needed. `[batch, new]` → `[batch, new, hidden]`.
    pub fn hidden_cached(&self, ids: Tensor<2, Int>, layout: &Layout, cache: &mut KvCache) -> Tensor<3> {
        if cache.layers.is_empty() {
            cache.layers = vec![None; self.config.num_hidden_layers];
        }
        let [_, s] = ids.dims();
        let h = self.run_layers(ids, layout, Some(cache));
        cache.len += s;
        h
    }

    /// The output projection (tied or not): `[batch, seq, hidden]` → `[batch, seq, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        qlinear(hidden, self.lm_head.as_ref().unwrap_or(&self.embed_tokens), self.quant.as_ref().map(|q| &*q.head))
    }

    fn run_layers(&self, ids: Tensor<2, Int>, layout: &Layout, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let c = &self.config;
        let [b, s] = ids.dims();
        assert_eq!((layout.batch, layout.seq), (b, s), "layout is for [{}, {}] tokens", layout.batch, layout.seq);
        let past = cache.as_ref().map_or(0, |c| c.len);
        assert_eq!(layout.kv_len, past + s, "layout expects {} keys, the cache holds {past}", layout.kv_len);
        let hd = c.head_dim();
        let (cos, sin) = match &layout.positions {
            // [1, 1, seq, head_dim]
            None => (
                self.rope_cos.clone().narrow(0, past, s).reshape([1, 1, s, hd]),
                self.rope_sin.clone().narrow(0, past, s).reshape([1, 1, s, hd]),
            ),
            // [batch, 1, seq, head_dim]
            Some(pos) => {
                let top = pos.iter().copied().max().unwrap_or(0);
                assert!(top < c.max_position_embeddings, "position {top} exceeds max_position_embeddings");
                let idx = Tensor::<1, Int>::from_data(
                    TensorData::new(pos.iter().map(|&p| p as i64).collect::<Vec<_>>(), [b * s]),
                    &self.device,
                );
                (
                    self.rope_cos.clone().select(0, idx.clone()).reshape([b, 1, s, hd]),
                    self.rope_sin.clone().select(0, idx).reshape([b, 1, s, hd]),
                )
            }
        };
        assert!(
            past + s <= c.max_position_embeddings,
            "sequence of {} tokens exceeds max_position_embeddings",
            past + s
        );
        let ctx = LayerContext { cos, sin, mask: layout.mask.clone(), plain_causal: layout.plain_causal };
        let mut x = embedding(self.embed_tokens.clone(), ids); // [batch, seq, hidden]
        let recompute = self.recompute && cache.is_none() && self.quant.is_none() && self.device.is_autodiff();
        for (l, layer) in self.layers.iter().enumerate() {
            if recompute {
                x = crate::recompute::apply(x, self.layer_inputs(l), self.layer_block(l, ctx.clone()));
                continue;
            }
            let kv = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            let proj = Proj { q8: self.quant.as_ref().map(|q| &q.layers[l]), lora: self.lora.as_ref(), layer: l };
            x = layer.forward(x, &ctx, c, kv, &proj);
        }
        rms_norm(x, &self.norm, c.rms_norm_eps)
    }

    /// Keeps only each decoder layer's input for the backward pass and recomputes the layer in it
    /// ([`crate::recompute`]) when `on`: the activations a step keeps shrink from every layer's to one
    /// layer's, for one more forward pass per step. Training only: decoding and evaluation (no
    /// autodiff) are unaffected.
    pub fn set_recompute(&mut self, on: bool) {
        self.recompute = on;
    }

    pub fn recompute(&self) -> bool {
        self.recompute
    }

    /// The tensors decoder layer `l` computes with, in the order [`Llama::layer_block`] reads them:
    /// its own (input norm, q, k, v, o, [q_norm, k_norm], post norm, gate, up, down), then its
    /// adapter's `(A, B)` pairs by slot.
    fn layer_inputs(&self, l: usize) -> Vec<Param> {
        let layer = &self.layers[l];
        let (a, m) = (&layer.self_attn, &layer.mlp);
        let mut out = vec![Param::Vector(layer.input_layernorm.clone())];
        out.extend([&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj].map(|t| Param::Matrix(t.clone())));
        if let (Some(qn), Some(kn)) = (&a.q_norm, &a.k_norm) {
            out.extend([Param::Vector(qn.clone()), Param::Vector(kn.clone())]);
        }
        out.push(Param::Vector(layer.post_attention_layernorm.clone()));
        out.extend([&m.gate_proj, &m.up_proj, &m.down_proj].map(|t| Param::Matrix(t.clone())));
        if let Some(lora) = &self.lora {
            for (a, b) in lora.layer(l).iter().flatten() {
                out.extend([Param::Matrix(a.clone()), Param::Matrix(b.clone())]);
            }
        }
        out
    }

    /// Decoder layer `l` as a function of [`Llama::layer_inputs`], for [`crate::recompute`]: it
    /// rebuilds the layer (and its adapter) around the tensors it is given, so that the recomputation
    /// differentiates fresh leaves rather than the model's own tensors.
    fn layer_block(&self, l: usize, ctx: LayerContext) -> Arc<crate::recompute::BlockFn> {
        let config = self.config.clone();
        let lora = self.lora.clone();
        let ctx = ctx.off_graph();
        Arc::new(move |x: Tensor<3>, p: &[Param]| {
            let v = |i: usize| match &p[i] {
                Param::Vector(t) => t.clone(),
                Param::Matrix(_) => unreachable!("layer_inputs puts a vector here"),
            };
            let m = |i: usize| match &p[i] {
                Param::Matrix(t) => t.clone(),
                Param::Vector(_) => unreachable!("layer_inputs puts a matrix here"),
            };
            let qk = config.qk_norm;
            let o = if qk { 2 } else { 0 };
            let layer = DecoderLayer {
                input_layernorm: v(0),
                self_attn: Attention {
                    q_proj: m(1),
                    k_proj: m(2),
                    v_proj: m(3),
                    o_proj: m(4),
                    q_norm: qk.then(|| v(5)),
                    k_norm: qk.then(|| v(6)),
                },
                post_attention_layernorm: v(5 + o),
                mlp: Mlp { gate_proj: m(6 + o), up_proj: m(7 + o), down_proj: m(8 + o) },
            };
            let lora = lora.as_ref().map(|lora| {
                let mut next = 9 + o;
                let mut adapters = lora.layer(l).clone();
                for (a, b) in adapters.iter_mut().flatten() {
                    (*a, *b) = (m(next), m(next + 1));
                    next += 2;
                }
                lora.with_layer(l, adapters)
            });
            let ctx = ctx.on(&x.device());
            let proj = Proj { q8: None, lora: lora.as_ref(), layer: l };
            layer.forward(x, &ctx, &config, None, &proj)
        })
    }
}

/// Keys and values of the tokens seen so far, per layer `[batch, kv_heads, len, head_dim]`, so each
/// generated token costs one position's work instead of the whole sequence's.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each layer's keys and values `[batch, kv_heads, len, head_dim]` (layers not yet run left out).
    pub fn layer_tensors(&self) -> Vec<(Tensor<4>, Tensor<4>)> {
        self.layers.iter().flatten().cloned().collect()
    }

    /// A cache whose row `i` is row `rows[i]` of this one (rows may repeat): one prefix computed once
    /// and continued several ways.
    pub fn select_rows(&self, rows: &[usize]) -> KvCache {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|(k, v)| {
                    let idx = Tensor::<1, Int>::from_data(
                        TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]),
                        &k.device(),
                    );
                    (k.clone().select(0, idx.clone()), v.clone().select(0, idx))
                })
            })
            .collect();
        KvCache { layers, len: self.len }
    }
}

/// Where each token sits (its rotary position) and which keys it may attend to.
#[derive(Debug, Clone)]
pub struct Layout {
    batch: usize,
    /// Query tokens per row.
    seq: usize,
    /// Key tokens per row (cached + new).
    kv_len: usize,
    /// Rotary position of every query token `[batch * seq]`; `None` = `past..past + seq` in every row.
    positions: Option<Vec<usize>>,
    /// Additive mask (0 or −∞) `[batch or 1, 1, seq, kv_len]`.
    mask: Tensor<4>,
    /// Plain causal attention from position 0 (no packing, padding or cache): the fused kernel's case.
    plain_causal: bool,
}

impl Layout {
    /// Plain causal attention over each row.
    pub fn causal(batch: usize, seq: usize, device: &Device) -> Layout {
        let mask = mask_tensor(1, seq, seq, device, |_, q, k| k <= q);
        Layout { batch, seq, kv_len: seq, positions: None, mask, plain_causal: true }
    }

    /// Packed rows: `segments[b * seq + t]` is the example index of token `t` of row `b`. Positions
    /// restart at 0 where a segment starts, and a token attends only to earlier tokens of its own
    /// segment, so packed examples do not see each other.
    pub fn packed(segments: &[u32], batch: usize, seq: usize, device: &Device) -> Layout {
        assert_eq!(segments.len(), batch * seq, "one segment id per token");
        let mut positions = Vec::with_capacity(batch * seq);
        for row in segments.chunks(seq) {
            let mut p = 0;
            for t in 0..seq {
                if t > 0 && row[t] != row[t - 1] {
                    p = 0;
                }
                positions.push(p);
                p += 1;
            }
        }
        let mask =
            mask_tensor(batch, seq, seq, device, |b, q, k| k <= q && segments[b * seq + k] == segments[b * seq + q]);
        Layout { batch, seq, kv_len: seq, positions: Some(positions), mask, plain_causal: false }
    }

    /// Left-padded rows: row `b` starts with `pad[b]` padding tokens that no real token attends to;
    /// positions count from the row's first real token.
    pub fn left_padded(pad: &[usize], seq: usize, device: &Device) -> Layout {
        Layout::left_padded_step(pad, 0, seq, device)
    }

    /// `new` tokens following `past` cached ones in left-padded rows (decoding with a [`KvCache`]).
    pub fn left_padded_step(pad: &[usize], past: usize, new: usize, device: &Device) -> Layout {
        let batch = pad.len();
        let kv_len = past + new;
        let positions =
            (0..batch).flat_map(|b| (past..kv_len).map(move |t| t.saturating_sub(pad[b]))).collect::<Vec<_>>();
        // A padding query attends to itself only, so its softmax stays finite; its output is unused.
        let mask = mask_tensor(batch, new, kv_len, device, |b, q, k| {
            let q = past + q;
            (k >= pad[b] && k <= q) || k == q
        });
        Layout { batch, seq: new, kv_len, positions: Some(positions), mask, plain_causal: false }
    }
}

/// An additive mask `[rows, 1, seq, kv]`: 0 where `allowed(row, query, key)`, −∞ elsewhere. Built on
/// the plain device; it joins autodiff graphs as a constant.
fn mask_tensor(
    rows: usize,
    seq: usize,
    kv: usize,
    device: &Device,
    allowed: impl Fn(usize, usize, usize) -> bool,
) -> Tensor<4> {
    let mut m = vec![0f32; rows * seq * kv];
    for r in 0..rows {
        for q in 0..seq {
            for k in 0..kv {
                if !allowed(r, q, k) {
                    m[(r * seq + q) * kv + k] = f32::NEG_INFINITY;
                }
            }
        }
    }
    constant(m, [rows, 1, seq, kv], device)
}

/// What a decoder layer needs besides its weights: rotary tables `[batch or 1, 1, seq, head_dim]`,
/// the attention mask `[batch or 1, 1, seq, kv]`, and whether it is plain causal.
#[derive(Debug, Clone)]
struct LayerContext {
    cos: Tensor<4>,
    sin: Tensor<4>,
    mask: Tensor<4>,
    plain_causal: bool,
}

impl LayerContext {
    fn off_graph(self) -> LayerContext {
        LayerContext {
            cos: self.cos.without_autodiff(),
            sin: self.sin.without_autodiff(),
            mask: self.mask.without_autodiff(),
            ..self
        }
    }

    /// As constants on `device`'s side of autodiff (a recomputed layer runs once off the graph, once on it).
    fn on(&self, device: &Device) -> LayerContext {
        if !device.is_autodiff() {
            return self.clone();
        }
        LayerContext {
            cos: self.cos.clone().autodiff(),
            sin: self.sin.clone().autodiff(),
            mask: self.mask.clone().autodiff(),
            ..*self
        }
    }
}

impl DecoderLayer {
    /// One pre-norm block: `x + attn(norm(x))`, then `+ mlp(norm(·))`. `[batch, seq, hidden]` → same.
    fn forward(
        &self,
        x: Tensor<3>,
        ctx: &LayerContext,
        c: &LlamaConfig,
        kv: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        proj: &Proj,
    ) -> Tensor<3> {
        let h = rms_norm(x.clone(), &self.input_layernorm, c.rms_norm_eps);
        let x = x + self.self_attn.forward(h, ctx, c, kv, proj);
        let h = rms_norm(x.clone(), &self.post_attention_layernorm, c.rms_norm_eps);
        x + self.mlp.forward(h, proj)
    }
}

impl Attention {
    /// `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`. With `cache`, the new keys and values are
    /// appended to it and attention covers all of them. A plain causal mask without a cache takes
    /// the fused kernel.
    fn forward(
        &self,
        x: Tensor<3>,
        ctx: &LayerContext,
        c: &LlamaConfig,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        proj: &Proj,
    ) -> Tensor<3> {
        let LayerContext { cos, sin, mask, plain_causal } = ctx;
        let plain_causal = *plain_causal;
        let [b, s, _] = x.dims();
        let lin = |x: Tensor<3>, w: &Tensor<2>, i: usize| proj.apply(x, w, i);
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        if plain_causal && cache.is_none() && fused::active(&x.device()) {
            // The projections' own layout [batch, seq, heads, head_dim]: no transposes on this path.
            let split = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]);
            let mut q = split(lin(x.clone(), &self.q_proj, 0), nh);
            let mut k = split(lin(x.clone(), &self.k_proj, 1), nkv);
            let v = split(lin(x, &self.v_proj, 2), nkv);
            if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
                q = rms_norm(q, qn, c.rms_norm_eps);
                k = rms_norm(k, kn, c.rms_norm_eps);
            }
            // [seq, head_dim]: positions 0..seq, the same for every row and head.
            let (cos, sin) = (cos.clone().reshape([s, hd]), sin.clone().reshape([s, hd]));
            let (q, k) = (fused::rope(q, &cos, &sin), fused::rope(k, &cos, &sin));
            let out = fused::causal_attention(q, k, v, 1.0 / (hd as f64).sqrt()); // [b, s, nh, hd]
            return lin(out.reshape([b, s, nh * hd]), &self.o_proj, 3);
        }
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2); // [batch, n, seq, head_dim]
        let mut q = heads(lin(x.clone(), &self.q_proj, 0), nh);
        let mut k = heads(lin(x.clone(), &self.k_proj, 1), nkv);
        let mut v = heads(lin(x, &self.v_proj, 2), nkv);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = rms_norm(q, qn, c.rms_norm_eps);
            k = rms_norm(k, kn, c.rms_norm_eps);
        }
        let q = apply_rope(q, cos, sin);
        k = apply_rope(k, cos, sin);
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.take() {
                k = Tensor::cat(vec![pk, k], 2); // [batch, kv_heads, past + seq, head_dim]
                v = Tensor::cat(vec![pv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let out = fused::masked_attention(q, k, v, mask.clone(), 1.0 / (hd as f64).sqrt()); // [b, nh, seq, head_dim]
        lin(out.swap_dims(1, 2).reshape([b, s, nh * hd]), &self.o_proj, 3)
    }
}

impl Mlp {
    /// SwiGLU: `down(silu(gate(x)) * up(x))`, `[batch, seq, hidden]` → same.
    fn forward(&self, x: Tensor<3>, proj: &Proj) -> Tensor<3> {
        let lin = |x: Tensor<3>, w: &Tensor<2>, i: usize| proj.apply(x, w, i);
        let g = lin(x.clone(), &self.gate_proj, 4); // [batch, seq, intermediate]
        lin(fused::swiglu(g, lin(x, &self.up_proj, 5)), &self.down_proj, 6)
    }
}

/// How one layer's projections run: through their Q8_0 copies when there are some (decoding), and
/// with the adapter's term when there is one.
struct Proj<'a> {
    q8: Option<&'a [Arc<QMatrix>; 7]>,
    lora: Option<&'a Lora>,
    layer: usize,
}

impl Proj<'_> {
    /// Projection `slot` (`[q, k, v, o, gate, up, down]`) of `x: [batch, seq, in]` by `w`.
    fn apply(&self, x: Tensor<3>, w: &Tensor<2>, slot: usize) -> Tensor<3> {
        match self.lora {
            Some(lora) => lora.apply(self.layer, slot, x.clone(), qlinear(x, w, self.q8.map(|q| &*q[slot]))),
            None => qlinear(x, w, self.q8.map(|q| &*q[slot])),
        }
    }
}

/// `t` as an untracked constant: on an autodiff device it joins graphs without recording a gradient.
fn freeze<const D: usize>(t: Tensor<D>, autodiff: bool) -> Tensor<D> {
    let t = t.without_autodiff();
    if autodiff { t.autodiff() } else { t }
}

/// [`linear`], through the Q8_0 copy `q` when there is one and the activations are a few rows
/// (decoding); `x: [batch, seq, in]` → `[batch, seq, out]`.
fn qlinear(x: Tensor<3>, w: &Tensor<2>, q: Option<&QMatrix>) -> Tensor<3> {
    let [b, s, k] = x.dims();
    match q {
        Some(q) if b * s <= crate::q8::MAX_ROWS => {
            let device = x.device();
            let data = x.into_data().convert::<f32>().try_into_vec::<f32>().expect("activations are f32");
            debug_assert_eq!(k, q.cols);
            constant(q.matmul(&data, b * s), [b, s, q.rows], &device)
        }
        _ => linear(x, w),
    }
}

/// `x @ wᵀ` for a PyTorch-layout weight `w: [out, in]`; `x: [batch, seq, in]` → `[batch, seq, out]`.
pub fn linear(x: Tensor<3>, w: &Tensor<2>) -> Tensor<3> {
    fused::linear(x, w)
}

/// RMSNorm over the last axis: `w · x / sqrt(mean(x²) + eps)`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    fused::rms_norm(x, w, eps)
}

/// HF's rotary embedding: `x·cos + rotate_half(x)·sin` with `rotate_half(x) = [-x₂, x₁]` over the two
/// halves of the head dimension. `x`: `[batch, heads, seq, head_dim]`.
fn apply_rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// cos/sin tables `[max_positions, head_dim]`, computed in f64 and rounded once to f32.
fn rope_tables(c: &LlamaConfig, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let (hd, n) = (c.head_dim(), c.max_position_embeddings);
    // `pos / theta^(2i/hd)`, or with scaling `pos · inv_freq'` (the unscaled form divides, as the
    // tables of every checkpoint trained so far were computed).
    let denom: Vec<f64> = (0..hd / 2).map(|i| c.rope_theta.powf(2.0 * i as f64 / hd as f64)).collect();
    let scaled: Option<Vec<f64>> = c.rope_scaling.as_ref().map(|s| {
        let mut inv: Vec<f64> = denom.iter().map(|d| 1.0 / d).collect();
        s.apply(&mut inv);
        inv
    });
    let mut cos = Vec::with_capacity(n * hd);
    let mut sin = Vec::with_capacity(n * hd);
    for pos in 0..n {
        for j in 0..hd {
            let i = j % (hd / 2);
            let angle = match &scaled {
                Some(inv) => pos as f64 * inv[i],
                None => pos as f64 / denom[i],
            };
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (constant(cos, [n, hd], device), constant(sin, [n, hd], device))
}

/// Log-probability of each target token: `logits [batch, seq, vocab]`, `targets [batch, seq]` →
/// `[batch, seq]`.
pub fn token_log_probs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    fused::token_log_probs(logits, targets)
}

/// Mean cross-entropy (nats per token) over every position.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    token_log_probs(logits, targets).mean().neg()
}

/// `n` draws from N(0, std²) (Box–Muller on ChaCha8, so the sequence is portable).
fn normal_vec(rng: &mut impl Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Token ids as an int tensor `[batch, seq]`.
pub fn ids_tensor(ids: &[u32], batch: usize, seq: usize, device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    Tensor::<2, Int>::from_data(TensorData::new(v, [batch, seq]), device)
}

/// A constant f32 tensor `shape` on `device`: made on the plain device, and joining autodiff graphs as
/// an untracked input (it records no gradient) when `device` is an autodiff device.
pub fn constant<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    let plain = device.clone().without_autodiff();
    let t = Tensor::<D>::from_data(TensorData::new(values, shape), &plain);
    if device.is_autodiff() { t.autodiff() } else { t }
}
