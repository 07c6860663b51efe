//! The reward model: the language model's trunk (embeddings, blocks, final norm: `Llama::hidden`) and a
//! scalar head read at each sequence's last real token, as Hugging Face's
//! `LlamaForSequenceClassification` with one label (`score.weight` `[1, hidden]`, no bias). Its
//! weight file has the HF names of that class (`model.*`, `score.weight`; no `lm_head`), and its
//! `config.json` says so, so RL and evaluation can open it with [`RewardModel::load`].
//!
//! Trained with LoRA, the trunk carries an adapter and the head is trained whole, as PEFT's
//! `SEQ_CLS` task does (`modules_to_save = ["score"]`): the checkpoint is `adapter_config.json` +
//! `adapter_model.safetensors` holding the adapter and `base_model.model.score.weight`.

use crate::trainable::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, Trainable};
use burn::tensor::{Device, Int, Tensor, TensorData};
use hone_model::llama::{Layout, ids_tensor};
use hone_model::lora::{Lora, LoraSpec};
use hone_model::weights::{HostTensor, read_f32, write_f32};
use hone_model::{Llama, LlamaConfig, Param, ParamKind, ParamSpec};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const HEAD: &str = "score.weight";
/// The head's name in an adapter file (PEFT's name of a module it saves whole).
pub const ADAPTER_HEAD: &str = "base_model.model.score.weight";

/// Trunk + scalar head. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct RewardModel {
    pub trunk: Llama,
    /// `[1, hidden]`.
    pub score: Tensor<2>,
}

impl RewardModel {
    /// `trunk` with a fresh head drawn from N(0, initializer_range²) by ChaCha8(seed).
    pub fn new(trunk: Llama, seed: u64) -> RewardModel {
        let h = trunk.config.hidden_size;
        let std = trunk.config.initializer_range;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f32> = (0..h)
            .map(|_| {
                let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
            })
            .collect();
        let device = trunk.device().clone();
        let score =
            Param::Matrix(Tensor::<2>::from_data(TensorData::new(w, [1, h]), &device.clone().without_autodiff()));
        let Param::Matrix(score) = score.into_leaf(&device) else { unreachable!("a matrix") };
        RewardModel { trunk, score }
    }

    /// Rewards `[batch]` of right-padded rows `ids` `[batch, seq]`, read at `last[b]`, each row's last
    /// real token.
    pub fn forward(&self, ids: Tensor<2, Int>, last: &[usize]) -> Tensor<1> {
        let [b, s] = ids.dims();
        let d = self.trunk.device();
        let hidden = self.trunk.hidden(ids, &Layout::causal(b, s, d)); // [b, s, h]
        let h = hidden.dims()[2];
        let at: Vec<i64> = last.iter().enumerate().map(|(r, &t)| (r * s + t) as i64).collect();
        let at = Tensor::<1, Int>::from_data(TensorData::new(at, [b]), d);
        let rows = hidden.reshape([b * s, h]).select(0, at); // [b, h]
        rows.matmul(self.score.clone().transpose()).reshape([b]) // [b]
    }

    /// The reward of each token sequence (prompt + reply ids), one at a time on an inference copy.
    pub fn scores(&self, seqs: &[Vec<u32>]) -> Vec<f32> {
        let m = RewardModel { trunk: self.trunk.to_inference(), score: self.score.clone().without_autodiff() };
        seqs.iter()
            .map(|ids| {
                let t = ids_tensor(ids, 1, ids.len(), m.trunk.device());
                m.forward(t, &[ids.len() - 1]).into_scalar()
            })
            .collect()
    }

    /// The reward of one sequence.
    pub fn score(&self, ids: &[u32]) -> f32 {
        self.scores(&[ids.to_vec()])[0]
    }

    /// Opens a reward checkpoint (or a stage folder: its final, else newest checkpoint).
    pub fn load(path: &Path, device: &Device) -> anyhow::Result<RewardModel> {
        let dir = hone_model::load::resolve_checkpoint(path)?;
        hone_data::checkpoint::verify(&dir)?;
        if hone_model::load::is_adapter(&dir) {
            return RewardModel::load_adapter(&dir, device);
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?;
        let config: LlamaConfig = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a Llama config.json: {e}", cfg_path.display()))?;
        let w = dir.join("model.safetensors");
        let bytes = std::fs::read(&w).map_err(|e| anyhow::anyhow!("{}: {e}", w.display()))?;
        let shell = RewardModel::new(Llama::init(&config, 0, device)?, 0);
        shell.with_weights(&bytes, &w.display().to_string())
    }

    /// A reward checkpoint trained with LoRA: its base language model with the adapter merged, and
    /// the head saved beside the adapter.
    fn load_adapter(dir: &Path, device: &Device) -> anyhow::Result<RewardModel> {
        let (base, base_path, mut v) = hone_model::load::adapter_base(dir)?;
        let origin = dir.join(ADAPTER_CONFIG).display().to_string();
        // The head is the module saved whole; the rest is a plain LoRA adapter.
        if let Some(o) = v.as_object_mut() {
            o.remove("modules_to_save");
        }
        let spec = LoraSpec::from_adapter_config(&v, &origin)?;
        let mut trunk = hone_model::load::load(&base_path, device)?.model;
        let w = dir.join(ADAPTER_WEIGHTS);
        let bytes = std::fs::read(&w).map_err(|e| anyhow::anyhow!("{}: {e}", w.display()))?;
        trunk.attach_lora(Lora::init(spec, base, &trunk.config.clone(), 0, device)?)?;
        let mut m = RewardModel::new(trunk, 0).with_weights(&bytes, &w.display().to_string())?;
        m.trunk.merge_lora()?;
        Ok(m)
    }

    /// Hugging Face `config.json` of the reward model (`LlamaForSequenceClassification`, `Qwen3…` with
    /// QK-norm; one label).
    pub fn hf_config(&self, pad_token_id: u32) -> serde_json::Value {
        let mut v = self.trunk.config.to_hf_json();
        let o = v.as_object_mut().expect("object");
        // The trunk's family (`to_hf_json`: Qwen3 with QK-norm), as a one-label sequence classifier.
        let arch =
            if self.trunk.config.qk_norm { "Qwen3ForSequenceClassification" } else { "LlamaForSequenceClassification" };
        o.insert("architectures".into(), serde_json::json!([arch]));
        o.insert("num_labels".into(), serde_json::json!(1));
        o.insert("pad_token_id".into(), serde_json::json!(pad_token_id));
        v
    }

    fn head_spec(&self) -> ParamSpec {
        ParamSpec { name: HEAD.into(), kind: ParamKind::Head, shape: vec![1, self.trunk.config.hidden_size] }
    }
}

impl Trainable for RewardModel {
    /// The trunk's parameters without `lm_head` (unused here), or its adapter's; then the head.
    fn params(&self) -> Vec<(ParamSpec, Param)> {
        let mut v: Vec<(ParamSpec, Param)> =
            Trainable::params(&self.trunk).into_iter().filter(|(s, _)| s.kind != ParamKind::Head).collect();
        v.push((self.head_spec(), Param::Matrix(self.score.clone())));
        v
    }

    fn update_params(&mut self, f: &mut dyn FnMut(&ParamSpec, Param) -> anyhow::Result<Param>) -> anyhow::Result<()> {
        Trainable::update_params(&mut self.trunk, &mut |spec, p| {
            if spec.kind == ParamKind::Head { Ok(p) } else { f(spec, p) }
        })?;
        let spec = self.head_spec();
        let device = self.trunk.device().clone();
        match f(&spec, Param::Matrix(self.score.clone()))?.into_leaf(&device) {
            Param::Matrix(t) => self.score = t,
            Param::Vector(_) => anyhow::bail!("{HEAD}: a matrix parameter was replaced by a vector"),
        }
        Ok(())
    }

    fn device(&self) -> &Device {
        self.trunk.device()
    }
    fn set_recompute(&mut self, on: bool) {
        self.trunk.set_recompute(on)
    }

    fn weights_file(&self) -> &'static str {
        self.trunk.weights_file()
    }

    fn weight_notes(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        Ok(match self.trunk.lora() {
            Some(l) => {
                let mut v = l.spec.adapter_config(&l.base);
                v["task_type"] = serde_json::json!("SEQ_CLS");
                v["modules_to_save"] = serde_json::json!(["score"]);
                vec![(ADAPTER_CONFIG.into(), serde_json::to_vec_pretty(&v)?)]
            }
            None => Vec::new(),
        })
    }

    fn keeps_file(&self, name: &str) -> bool {
        self.trunk.keeps_file(name)
    }

    fn for_micro_batch(&self, stream: u64) -> Self {
        RewardModel { trunk: self.trunk.for_micro_batch(stream), score: self.score.clone() }
    }

    fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        let adapter = self.trunk.lora().is_some();
        let tensors: BTreeMap<String, HostTensor> = self
            .params()
            .into_iter()
            .map(|(spec, p)| {
                let name = if adapter && spec.name == HEAD { ADAPTER_HEAD.to_string() } else { spec.name };
                (name, HostTensor { shape: spec.shape, data: p.to_vec() })
            })
            .collect();
        write_f32(&tensors, Some(HashMap::from([("format".to_string(), "pt".to_string())])))
    }

    fn with_weights(&self, bytes: &[u8], origin: &str) -> anyhow::Result<Self> {
        let mut tensors = read_f32(bytes, origin)?;
        if let Some(l) = self.trunk.lora() {
            let head = tensors
                .remove(ADAPTER_HEAD)
                .ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{ADAPTER_HEAD}` (the reward head)"))?;
            let spec = self.head_spec();
            anyhow::ensure!(
                head.shape == spec.shape,
                "{origin}: `{ADAPTER_HEAD}` has shape {:?}, expected {:?}",
                head.shape,
                spec.shape
            );
            let device = self.device().clone();
            let lora =
                Lora::from_tensors(l.spec.clone(), l.base.clone(), tensors, &self.trunk.config, &device, origin)?;
            let mut trunk = self.trunk.clone();
            *trunk.lora_mut().expect("has one") = lora;
            let score = Param::Matrix(Tensor::<2>::from_data(
                TensorData::new(head.data, spec.shape),
                &device.clone().without_autodiff(),
            ));
            let Param::Matrix(score) = score.into_leaf(&device) else { unreachable!("a matrix") };
            return Ok(RewardModel { trunk, score });
        }
        let head = tensors.remove(HEAD).ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{HEAD}`"))?;
        let spec = self.head_spec();
        anyhow::ensure!(
            head.shape == spec.shape,
            "{origin}: `{HEAD}` has shape {:?}, expected {:?}",
            head.shape,
            spec.shape
        );
        // The trunk's own `lm_head` is not part of a reward model; keep the current one.
        if let Some(Param::Matrix(h)) =
            self.trunk.params().into_iter().find(|(s, _)| s.kind == ParamKind::Head).map(|(_, p)| p)
        {
            tensors.insert(
                "lm_head.weight".into(),
                HostTensor { shape: h.dims().to_vec(), data: Param::Matrix(h).to_vec() },
            );
        }
        let device = self.device().clone();
        let trunk = hone_model::weights::model_from_tensors(&mut tensors, &self.trunk.config, &device, origin)?;
        let score = Param::Matrix(Tensor::<2>::from_data(
            TensorData::new(head.data, spec.shape),
            &device.clone().without_autodiff(),
        ));
        let Param::Matrix(score) = score.into_leaf(&device) else { unreachable!("a matrix") };
        Ok(RewardModel { trunk, score })
    }
}
