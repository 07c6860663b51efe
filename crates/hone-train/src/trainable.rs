//! What the trainer loop and the optimizer need from a model: its parameters in a fixed order with
//! their specs, a way to replace them, and weight-file IO. The language model implements it; so does
//! a model that adds parameters to it (the reward model's scalar head), without the loop knowing.

use burn::tensor::Device;
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
}

impl Trainable for Llama {
    fn params(&self) -> Vec<(ParamSpec, Param)> {
        Llama::params(self)
    }
    fn update_params(&mut self, f: &mut dyn FnMut(&ParamSpec, Param) -> anyhow::Result<Param>) -> anyhow::Result<()> {
        Llama::update_params(self, f)
    }
    fn device(&self) -> &Device {
        Llama::device(self)
    }
    fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        hone_model::weights::model_to_safetensors(self)
    }
    fn with_weights(&self, bytes: &[u8], origin: &str) -> anyhow::Result<Self> {
        hone_model::weights::model_from_safetensors(bytes, &self.config, self.device(), origin)
    }
}
