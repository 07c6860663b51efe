//! Opening a trained model: a checkpoint folder of the design's run directory (`config.json` in Hugging
//! Face `LlamaConfig` form plus `model.safetensors`), with the tokenizer and chat template of its run.
//! Accepts what a user would type: a checkpoint, a stage folder (its `final`), or a run folder + stage.

use crate::config::LlamaConfig;
use crate::llama::Llama;
use burn::tensor::Device;
use hone_data::chat::ChatTemplate;
use hone_data::checkpoint::CheckpointDir;
use hone_data::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// A model ready for sampling or evaluation.
pub struct LoadedModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// The checkpoint folder the weights came from.
    pub dir: PathBuf,
}

/// Loads `path`: a checkpoint folder (holding `config.json` and `model.safetensors`), or a stage folder
/// (its `final` checkpoint, else its newest complete one). The tokenizer is the `tokenizer.json` in the
/// checkpoint folder or in the nearest folder above it.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let dir = resolve_checkpoint(path)?;
    hone_data::checkpoint::verify(&dir)?;
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?;
    let config: LlamaConfig = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a Llama config.json: {e}", cfg_path.display()))?;
    let weights = dir.join("model.safetensors");
    let model = crate::weights::load_model(&weights, &config, device)?;
    let tok_path = find_upwards(&dir, "tokenizer.json").ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no tokenizer.json in this folder or above it; copy the run's tokenizer.json next to config.json",
            dir.display()
        )
    })?;
    let tokenizer = Tokenizer::load(&tok_path)?;
    anyhow::ensure!(
        tokenizer.vocab_size() <= config.vocab_size,
        "{}: tokenizer has {} tokens but the model only {}; is it the tokenizer of this run?",
        tok_path.display(),
        tokenizer.vocab_size(),
        config.vocab_size
    );
    let template = chat_template(&tok_path)?;
    Ok(LoadedModel { model, tokenizer, template, dir })
}

/// Loads the final (else newest) checkpoint of `stage` in a run folder.
pub fn load_stage(run_dir: &Path, stage: &str, device: &Device) -> anyhow::Result<LoadedModel> {
    load(&run_dir.join(stage), device)
}

/// The checkpoint folder `path` stands for.
pub fn resolve_checkpoint(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("config.json").is_file() && path.join("model.safetensors").is_file() {
        return Ok(path.to_path_buf());
    }
    anyhow::ensure!(path.is_dir(), "{}: no such checkpoint or stage folder", path.display());
    let stage = CheckpointDir::new(path, usize::MAX);
    let ckpt = match stage.final_checkpoint()? {
        Some(c) => c,
        None => stage.latest()?.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: neither a checkpoint (config.json + model.safetensors) nor a stage folder with a complete \
                 checkpoint; has the stage run?",
                path.display()
            )
        })?,
    };
    Ok(ckpt.dir)
}

fn find_upwards(start: &Path, name: &str) -> Option<PathBuf> {
    let start = start.canonicalize().ok()?;
    start.ancestors().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The chat template stored beside the tokenizer (`tokenizer_config.json`, as Hugging Face keeps it),
/// else hone's default.
pub fn chat_template(tok_path: &Path) -> anyhow::Result<ChatTemplate> {
    let cfg_path = tok_path.with_file_name("tokenizer_config.json");
    let Ok(text) = std::fs::read_to_string(&cfg_path) else { return Ok(ChatTemplate::hone_default()) };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", cfg_path.display()))?;
    let field = |k: &str, d: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or(d).to_string();
    match v.get("chat_template").and_then(|t| t.as_str()) {
        Some(src) => ChatTemplate::new(
            src,
            &field("bos_token", hone_data::tokenizer::BOS),
            &field("eos_token", hone_data::tokenizer::END),
        )
        .map_err(|e| anyhow::anyhow!("{}: chat_template: {e:#}", cfg_path.display())),
        None => Ok(ChatTemplate::hone_default()),
    }
}
