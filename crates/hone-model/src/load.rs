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
///
/// A LoRA adapter folder (PEFT's `adapter_config.json` + `adapter_model.safetensors`, as stages
/// trained with `lora_rank` > 0 write them) opens as its base model (`base_model_name_or_path`, a
/// local path, itself opened this way) with the adapter merged into the weights.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    load_at(path, device, 0)
}

/// Adapters on adapters deeper than this are taken for a loop of `base_model_name_or_path`s.
const MAX_ADAPTER_DEPTH: usize = 16;

fn load_at(path: &Path, device: &Device, depth: usize) -> anyhow::Result<LoadedModel> {
    if import::is_gguf(path) {
        return import::gguf::load(path, device);
    }
    let dir = resolve_checkpoint(path)?;
    hone_data::checkpoint::verify(&dir)?;
    if is_adapter(&dir) {
        return load_adapter(&dir, device, depth);
    }
    let config = LlamaConfig::read(&dir.join("config.json"))?;
    let model = import::hf::load_weights(&dir, &config, device)?;
    let (tokenizer, template) = tokenizer_of(&dir, config.vocab_size)?;
    Ok(LoadedModel { model, tokenizer, template, dir })
}

/// The tokenizer and chat template of the checkpoint in `dir` (the `tokenizer.json` there or in the
/// nearest folder above), with the stop ids of its `generation_config.json`.
fn tokenizer_of(dir: &Path, vocab_size: usize) -> anyhow::Result<(Tokenizer, ChatTemplate)> {
    let tok_path = find_upwards(dir, "tokenizer.json").ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no tokenizer.json in this folder or above it; copy the run's tokenizer.json next to config.json",
            dir.display()
        )
    })?;
    let mut tokenizer = Tokenizer::load(&tok_path)?;
    anyhow::ensure!(
        tokenizer.vocab_size() <= vocab_size,
        "{}: tokenizer has {} tokens but the model only {}; is it the tokenizer of this run?",
        tok_path.display(),
        tokenizer.vocab_size(),
        vocab_size
    );
    // The model's own list of ids that end a reply (e.g. `<|eot_id|>` besides `<|end_of_text|>`).
    for id in import::hf::generation_stop_ids(dir)? {
        if (id as usize) < vocab_size && !tokenizer.is_special(id) {
            tokenizer.special_ids.push(id);
            tokenizer.special_ids.sort_unstable();
        }
    }
    let template = chat_template(&tok_path, &tokenizer.bos_token, &tokenizer.eos_token)?;
    Ok((tokenizer, template))
}

/// Whether `dir` holds a LoRA adapter rather than weights.
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
        && dir.join(ADAPTER_WEIGHTS).is_file()
        && !dir.join("model.safetensors").is_file()
}

/// PEFT's file names.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// The base model an adapter's `base_model_name_or_path` names: the path as written (absolute, or
/// relative to the working folder as PEFT reads it), else relative to the adapter's folder.
pub fn adapter_base(dir: &Path) -> anyhow::Result<(String, PathBuf, serde_json::Value)> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", cfg_path.display()))?;
    let base = v.get("base_model_name_or_path").and_then(|b| b.as_str()).unwrap_or_default().to_string();
    anyhow::ensure!(
        !base.is_empty(),
        "{}: no base_model_name_or_path; set it to the folder of the model the adapter was trained on",
        cfg_path.display()
    );
    let path = [PathBuf::from(&base), dir.join(&base)].into_iter().find(|p| p.exists()).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: base_model_name_or_path `{base}` is not a local folder or file (hone does not download models); \
             set it to the path of the base model",
            cfg_path.display()
        )
    })?;
    Ok((base, path, v))
}

/// Opens an adapter folder: its base, with the adapter merged.
fn load_adapter(dir: &Path, device: &Device, depth: usize) -> anyhow::Result<LoadedModel> {
    anyhow::ensure!(
        depth < MAX_ADAPTER_DEPTH,
        "{}: more than {MAX_ADAPTER_DEPTH} adapters on adapters; do their base_model_name_or_path form a loop?",
        dir.display()
    );
    let (base, base_path, v) = adapter_base(dir)?;
    let cfg_origin = dir.join(ADAPTER_CONFIG).display().to_string();
    let spec = crate::lora::LoraSpec::from_adapter_config(&v, &cfg_origin)?;
    let mut opened = load_at(&base_path, device, depth + 1)
        .map_err(|e| anyhow::anyhow!("{}: opening its base model {}: {e:#}", dir.display(), base_path.display()))?;
    let weights = dir.join(ADAPTER_WEIGHTS);
    let bytes = std::fs::read(&weights).map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
    let origin = format!("{} (base {})", weights.display(), base_path.display());
    let lora = crate::lora::Lora::from_safetensors(spec, base, &bytes, &opened.model.config, device, &origin)?;
    opened.model.attach_lora(lora)?;
    opened.model.merge_lora()?;
    // The adapter's own tokenizer files when it has them (a hone stage writes them into every
    // checkpoint), else the base's.
    if dir.join("tokenizer.json").is_file() {
        (opened.tokenizer, opened.template) = tokenizer_of(dir, opened.model.config.vocab_size)?;
    }
    opened.dir = dir.to_path_buf();
    Ok(opened)
}

/// Loads the final (else newest) checkpoint of `stage` in a run folder.
pub fn load_stage(run_dir: &Path, stage: &str, device: &Device) -> anyhow::Result<LoadedModel> {
    load(&run_dir.join(stage), device)
}

/// The checkpoint folder `path` stands for.
pub fn resolve_checkpoint(path: &Path) -> anyhow::Result<PathBuf> {
    if (path.join("config.json").is_file()
        && (path.join("model.safetensors").is_file() || path.join(import::hf::INDEX).is_file()))
        || is_adapter(path)
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
