//! Opening a model: a checkpoint folder of the design's run directory (`config.json` in Hugging
//! Face `LlamaConfig` form plus `model.safetensors`), with the tokenizer and chat template of its run;
//! a Hugging Face folder of a Llama-family model (sharded weights too, its own special tokens and
//! chat template); or a GGUF file. Accepts what a user would type: a checkpoint, a stage folder (its
//! `final`), a run folder + stage, a model folder or a `.gguf` file.

use crate::config::LlamaConfig;
use crate::import;
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
    /// The checkpoint folder (or GGUF file) the weights came from.
    pub dir: PathBuf,
}

/// Loads `path`: a GGUF file, a checkpoint or model folder (holding `config.json` and
/// `model.safetensors` or a sharded index), or a stage folder (its `final` checkpoint, else its
/// newest complete one). The tokenizer is the `tokenizer.json` in the folder or in the nearest
/// folder above it.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    if import::is_gguf(path) {
        return import::gguf::load(path, device);
    }
    let dir = resolve_checkpoint(path)?;
    hone_data::checkpoint::verify(&dir)?;
    let config = LlamaConfig::read(&dir.join("config.json"))?;
    let model = import::hf::load_weights(&dir, &config, device)?;
    let tok_path = find_upwards(&dir, "tokenizer.json").ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no tokenizer.json in this folder or above it; copy the run's tokenizer.json next to config.json",
            dir.display()
        )
    })?;
    let mut tokenizer = Tokenizer::load(&tok_path)?;
    anyhow::ensure!(
        tokenizer.vocab_size() <= config.vocab_size,
        "{}: tokenizer has {} tokens but the model only {}; is it the tokenizer of this run?",
        tok_path.display(),
        tokenizer.vocab_size(),
        config.vocab_size
    );
    // The model's own list of ids that end a reply (e.g. `<|eot_id|>` besides `<|end_of_text|>`).
    for id in import::hf::generation_stop_ids(&dir)? {
        if (id as usize) < config.vocab_size && !tokenizer.is_special(id) {
            tokenizer.special_ids.push(id);
            tokenizer.special_ids.sort_unstable();
        }
    }
    let template = chat_template(&tok_path, &tokenizer.bos_token, &tokenizer.eos_token)?;
    Ok(LoadedModel { model, tokenizer, template, dir })
}

/// Loads the final (else newest) checkpoint of `stage` in a run folder.
pub fn load_stage(run_dir: &Path, stage: &str, device: &Device) -> anyhow::Result<LoadedModel> {
    load(&run_dir.join(stage), device)
}

/// The checkpoint folder `path` stands for.
pub fn resolve_checkpoint(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("config.json").is_file()
        && (path.join("model.safetensors").is_file() || path.join(import::hf::INDEX).is_file())
    {
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

/// The tokenizer and chat template that [`load`] gives a checkpoint in `dir` without its own
/// tokenizer files: the `tokenizer.json` in `dir` or the nearest folder above it. `None` when there
/// is none.
pub fn tokenizer_above(dir: &Path) -> anyhow::Result<Option<(Tokenizer, ChatTemplate)>> {
    let Some(tok_path) = find_upwards(dir, "tokenizer.json") else { return Ok(None) };
    let tokenizer = Tokenizer::load(&tok_path)?;
    let template = chat_template(&tok_path, &tokenizer.bos_token, &tokenizer.eos_token)?;
    Ok(Some((tokenizer, template)))
}

fn find_upwards(start: &Path, name: &str) -> Option<PathBuf> {
    let start = start.canonicalize().ok()?;
    start.ancestors().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The chat template stored beside the tokenizer: `chat_template.jinja` (as `transformers` 5 saves
/// it), else `chat_template` in `tokenizer_config.json` (a string, or a list of named templates of
/// which `default` is taken), else hone's default.
/// `bos_token` and `eos_token` are the texts the template may name.
pub fn chat_template(tok_path: &Path, bos_token: &str, eos_token: &str) -> anyhow::Result<ChatTemplate> {
    let compile = |src: &str, origin: &Path| {
        ChatTemplate::new(src, bos_token, eos_token)
            .map(|t| t.with_origin(origin.display().to_string()))
            .map_err(|e| anyhow::anyhow!("{}: chat_template: {e:#}", origin.display()))
    };
    let jinja = tok_path.with_file_name("chat_template.jinja");
    if let Ok(src) = std::fs::read_to_string(&jinja) {
        return compile(&src, &jinja);
    }
    let cfg_path = tok_path.with_file_name("tokenizer_config.json");
    let Ok(text) = std::fs::read_to_string(&cfg_path) else { return Ok(ChatTemplate::hone_default()) };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", cfg_path.display()))?;
    match v.get("chat_template") {
        Some(serde_json::Value::String(src)) => compile(src, &cfg_path),
        Some(serde_json::Value::Array(named)) => {
            let src = named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str())
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: chat_template lists no template named `default`", cfg_path.display())
                })?;
            compile(src, &cfg_path)
        }
        _ => Ok(ChatTemplate::hone_default()),
    }
}
