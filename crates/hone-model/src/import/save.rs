//! Writing an opened model as a hone checkpoint folder that holds everything needed to open it again
//! (and that `transformers` opens): `config.json` with the special token ids, `generation_config.json`,
//! `model.safetensors`, `tokenizer.json` + `tokenizer_config.json` with the chat template.

use crate::load::LoadedModel;
use hone_data::checkpoint::CheckpointDir;
use std::path::{Path, PathBuf};

/// The files of `m`'s checkpoint: (name, bytes).
pub fn checkpoint_files(m: &LoadedModel) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let tok = &m.tokenizer;
    let mut config = m.model.config.to_hf_json();
    let o = config.as_object_mut().expect("object");
    o.insert("bos_token_id".into(), serde_json::json!(tok.bos_id));
    o.insert("eos_token_id".into(), serde_json::json!(tok.end_id));
    o.insert("pad_token_id".into(), serde_json::json!(tok.pad_id));
    let generation = serde_json::json!({
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.special_ids,
        "pad_token_id": tok.pad_id,
    });
    // The tokenizer files go through a scratch folder: `save_with_template` writes both side by side.
    let scratch = tempfile_dir()?;
    let tok_path = scratch.join("tokenizer.json");
    tok.save_with_template(&tok_path, m.template.source())?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let files = vec![
        ("config.json".to_string(), serde_json::to_vec_pretty(&config)?),
        ("generation_config.json".to_string(), serde_json::to_vec_pretty(&generation)?),
        ("model.safetensors".to_string(), crate::weights::model_to_safetensors(&m.model)?),
        ("tokenizer.json".to_string(), read(&tok_path)?),
        ("tokenizer_config.json".to_string(), read(&tok_path.with_file_name("tokenizer_config.json"))?),
    ];
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(files)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("hone-import-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Writes `m` into `out` as the final checkpoint of a one-step stage; returns the checkpoint folder.
pub fn write_checkpoint(m: &LoadedModel, out: &Path) -> anyhow::Result<PathBuf> {
    CheckpointDir::new(out, 1).save(0, checkpoint_files(m)?, true)
}
