//! What the trainer loop and the optimizer need from a model: its parameters in a fixed order with
//! their specs, a way to replace them, and weight-file IO. The language model implements it; so does
//! a model that adds parameters to it (the reward model's scalar head), without the loop knowing.

use burn::tensor::Device;
use hone_model::lora::Lora;
use hone_model::{Llama, Param, ParamSpec};

pub trait Trainable: Clone {
    /// Every parameter with its spec, in a fixed order.
    fn params(&self) -> Vec<(ParamSpec, Param)>;
    /// Replaces every parameter with `f(spec, current)`, in [`Trainable::params`] order; the results
    /// become gradient-recording leaves on autodiff devices.
    fn update_params(&mut self, f: &mut dyn FnMut(&ParamSpec, Param) -> anyhow::Result<Param>) -> anyhow::Result<()>;
    fn device(&self) -> &Device;
    /// The weights as a safetensors file.
    fn to_safetensors(&self) -> anyhow::Result<Vec<u8>>;
    /// A model of the same architecture with the weights of a file written by
    /// [`Trainable::to_safetensors`]; `origin` names the file in errors.
    fn with_weights(&self, bytes: &[u8], origin: &str) -> anyhow::Result<Self>;
    /// The name of the weights file in a checkpoint.
    fn weights_file(&self) -> &'static str {
        "model.safetensors"
    }
    /// Files a checkpoint holds besides the weights that describe them (an adapter's
    /// `adapter_config.json`).
    fn weight_notes(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }
    /// Whether a checkpoint holds the extra file `name` (the stage's `config.json`, tokenizer
    /// files, ...).
    fn keeps_file(&self, name: &str) -> bool {
        let _ = name;
        true
    }
    /// The model as micro-batch `stream` of training sees it: the same, or with that micro-batch's
    /// dropout masks (a pure function of the stream, so a resumed run draws the same ones).
    fn for_micro_batch(&self, stream: u64) -> Self {
        let _ = stream;
        self.clone()
    }
    /// Activation checkpointing on or off ([`Llama::set_recompute`]).
    fn set_recompute(&mut self, on: bool);
}

/// An adapter's files: PEFT's names.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// The language model: all its weights, or only its adapter's matrices when it has one
/// ([`Llama::attach_lora`]), saved as PEFT saves them.
impl Trainable for Llama {
    fn params(&self) -> Vec<(ParamSpec, Param)> {
        match self.lora() {
            Some(l) => l.params(),
            None => Llama::params(self),
        }
    }
    fn update_params(&mut self, f: &mut dyn FnMut(&ParamSpec, Param) -> anyhow::Result<Param>) -> anyhow::Result<()> {
        let device = self.device().clone();
        match self.lora_mut() {
            Some(l) => l.update(&device, f),
            None => Llama::update_params(self, f),
        }
    }
    fn device(&self) -> &Device {
        Llama::device(self)
    }
    fn set_recompute(&mut self, on: bool) {
        Llama::set_recompute(self, on)
    }
    fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        match self.lora() {
            Some(l) => l.to_safetensors(),
            None => hone_model::weights::model_to_safetensors(self),
        }
    }
    fn with_weights(&self, bytes: &[u8], origin: &str) -> anyhow::Result<Self> {
        match self.lora() {
            Some(l) => {
                let lora =
                    Lora::from_safetensors(l.spec.clone(), l.base.clone(), bytes, &self.config, self.device(), origin)?;
                let mut m = self.clone();
                *m.lora_mut().expect("has one") = lora;
                Ok(m)
            }
            None => hone_model::weights::model_from_safetensors(bytes, &self.config, self.device(), origin),
        }
    }
    fn weights_file(&self) -> &'static str {
        if self.lora().is_some() { ADAPTER_WEIGHTS } else { "model.safetensors" }
    }
    fn weight_notes(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        Ok(match self.lora() {
            Some(l) => vec![(ADAPTER_CONFIG.into(), serde_json::to_vec_pretty(&l.spec.adapter_config(&l.base))?)],
            None => Vec::new(),
        })
    }
    /// An adapter's folder holds no `config.json`: `transformers` takes a folder with one for a
    /// whole model (and fails on its missing weights) instead of loading the adapter onto
    /// `base_model_name_or_path`.
    fn keeps_file(&self, name: &str) -> bool {
        self.lora().is_none() || name != "config.json"
    }
    fn for_micro_batch(&self, stream: u64) -> Self {
        match self.lora() {
            Some(l) if l.spec.dropout > 0.0 => {
                let mut m = self.clone();
                *m.lora_mut().expect("has one") = l.with_dropout_seed(stream);
                m
            }
            _ => self.clone(),
        }
    }
}
