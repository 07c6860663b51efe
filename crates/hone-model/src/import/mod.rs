//! Opening models that hone did not train: a Hugging Face folder (`config.json`, one
//! `model.safetensors` or a sharded index, `tokenizer.json` + `tokenizer_config.json`,
//! `generation_config.json`) and a llama.cpp GGUF file (weights dequantised, tokenizer and chat
//! template rebuilt from its metadata). [`crate::load::load`] dispatches here, so every command that
//! takes `-m/--model` opens them; `hone import` writes one as a hone checkpoint.

pub mod gguf;
pub mod gguf_tokenizer;
pub mod hf;
pub mod save;

/// Whether `path` is a GGUF file (by its magic, not its name).
pub fn is_gguf(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file() && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}
