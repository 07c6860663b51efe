//! Writing an opened model as a hone checkpoint folder that holds everything needed to open it again
//! (and that `transformers` opens): `config.json` with the special token ids, `generation_config.json`,
//! `model.safetensors`, `tokenizer.json` + `tokenizer_config.json` with the chat template.

use crate::load::LoadedModel;
use crate::weights::StoreAs;
use hone_data::chat::ChatTemplate;
use hone_data::checkpoint::CheckpointDir;
use hone_data::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// The files of `m`'s checkpoint: (name, bytes).
pub fn checkpoint_files(m: &LoadedModel) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    checkpoint_files_as(m, StoreAs::F32)
}

/// [`checkpoint_files`] with the weights stored `as_` (the config's `torch_dtype` says which).
pub fn checkpoint_files_as(m: &LoadedModel, as_: StoreAs) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut config = m.model.config.to_hf_json();
    if as_ == StoreAs::Bf16 {
        config["torch_dtype"] = serde_json::json!("bfloat16");
    }
    let mut files = model_files(config, &m.tokenizer, &m.template)?;
    files.push(("model.safetensors".to_string(), crate::weights::model_to_safetensors_as(&m.model, as_)?));
    Ok(files)
}

/// Everything of a checkpoint but its weights, so that the folder opens on its own (in hone and in
/// `transformers`, whatever tokenizer the run has): `config` (the model's HF `config.json`) with the
/// tokenizer's BOS, EOS and padding ids, `generation_config.json` (every id that ends a reply stops
/// generation), and `tokenizer.json` + `tokenizer_config.json` with the chat template.
pub fn model_files(
    mut config: serde_json::Value,
    tok: &Tokenizer,
    template: &ChatTemplate,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let o = config.as_object_mut().ok_or_else(|| anyhow::anyhow!("a model config is a JSON object"))?;
    o.insert("bos_token_id".into(), serde_json::json!(tok.bos_id));
    o.insert("eos_token_id".into(), serde_json::json!(tok.end_id));
    o.insert("pad_token_id".into(), serde_json::json!(tok.pad_id));
    let generation = serde_json::json!({
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.special_ids,
        "pad_token_id": tok.pad_id,
    });
    let (tokenizer, tokenizer_config) = tok.files_with_template(template.source())?;
    Ok(vec![
        ("config.json".to_string(), serde_json::to_vec_pretty(&config)?),
        ("generation_config.json".to_string(), serde_json::to_vec_pretty(&generation)?),
        ("tokenizer.json".to_string(), tokenizer),
        ("tokenizer_config.json".to_string(), tokenizer_config),
    ])
}

/// Writes `m` into `out` as the final checkpoint of a one-step stage; returns the checkpoint folder.
pub fn write_checkpoint(m: &LoadedModel, out: &Path) -> anyhow::Result<PathBuf> {
    CheckpointDir::new(out, 1).save(0, checkpoint_files(m)?, true)
}
