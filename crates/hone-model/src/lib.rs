//! hone-model: the Llama-style decoder used by every stage, its configuration (Hugging Face
//! `LlamaConfig` names), the device choice, and safetensors weight IO with Hugging Face names.

pub mod config;
pub mod device;
pub mod llama;
pub mod weights;

pub use burn;
pub use config::{LlamaConfig, ModelConfig};
pub use llama::{Llama, Param, ParamKind, ParamSpec};
