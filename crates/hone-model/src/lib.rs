//! hone-model: the Llama-style decoder used by every stage, its configuration (Hugging Face
//! `LlamaConfig` names), the device choice, safetensors weight IO with Hugging Face names, loading a
//! trained checkpoint or importing a Hugging Face folder or GGUF file, and the sampler.

pub mod config;
pub mod decode;
pub mod device;
pub mod export;
pub mod fused;
pub mod hostmat;
pub mod import;
pub mod llama;
pub mod load;
pub mod lora;
pub mod q8;
pub mod recompute;
pub mod sample;
pub mod simd;
pub mod spin;
pub mod weights;

pub use burn;
pub use config::{LlamaConfig, ModelConfig};
pub use llama::{KvCache, Layout, Llama, Param, ParamKind, ParamSpec};
pub use load::{LoadedModel, load, load_stage};
pub use sample::{Finish, Generation, SampleConfig, generate};
