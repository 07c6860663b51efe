//! Hugging Face folders: weights in one `model.safetensors` or shards listed by
//! `model.safetensors.index.json`, and the stop tokens of `generation_config.json`.

use crate::config::LlamaConfig;
use crate::llama::Llama;
use crate::weights::{HostTensor, model_from_tensors, read_f32};
use burn::tensor::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The index file of sharded weights.
pub const INDEX: &str = "model.safetensors.index.json";

/// The weight files of checkpoint folder `dir`: `model.safetensors`, else the shards its index
/// names (each once, in order). Shard names must be plain file names inside `dir`.
pub fn weight_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX);
    let text = std::fs::read_to_string(&index)
        .map_err(|e| anyhow::anyhow!("{}: no model.safetensors and no readable {INDEX}: {e}", dir.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| anyhow::anyhow!("{}: no `weight_map` object", index.display()))?;
    let mut files: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let f = file
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{}: weight_map[{tensor:?}] is not a file name", index.display()))?;
        anyhow::ensure!(
            !f.contains('/') && !f.contains('\\') && f != ".." && !f.is_empty(),
            "{}: weight_map[{tensor:?}] = {f:?} is not a file in this folder",
            index.display()
        );
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{}: weight_map lists no files", index.display());
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// The model in checkpoint folder `dir` with `config`: every weight file read, tensors matched by
/// their Hugging Face names (a tied model's `lm_head.weight`, if present, is ignored).
pub fn load_weights(dir: &Path, config: &LlamaConfig, device: &Device) -> anyhow::Result<Llama> {
    let files = weight_files(dir)?;
    let mut tensors: BTreeMap<String, HostTensor> = BTreeMap::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let origin = f.display().to_string();
        for (name, t) in read_f32(&bytes, &origin)? {
            anyhow::ensure!(!tensors.contains_key(&name), "{origin}: tensor `{name}` is also in another shard");
            tensors.insert(name, t);
        }
    }
    let origin = if files.len() == 1 { files[0].display().to_string() } else { dir.join(INDEX).display().to_string() };
    model_from_tensors(&mut tensors, config, device, &origin)
}

/// Token ids that end generation according to `generation_config.json` in `dir` (`eos_token_id`:
/// one id or a list); empty when there is no such file.
pub fn generation_stop_ids(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
    let ids = match v.get("eos_token_id") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_u64()).collect(),
        Some(x) => x.as_u64().into_iter().collect(),
    };
    Ok(ids.into_iter().filter_map(|i| u32::try_from(i).ok()).collect())
}
