//! The base stage: a model hone did not train (a Hugging Face folder or a GGUF file, e.g.
//! SmolLM2-135M-Instruct) opened once and written as the run's `base/` checkpoint (F32 weights, its
//! own tokenizer and chat template), so that post-training stages start from it as they would from
//! `pretrain`, and the report evaluates it as the first column.

use crate::stage::{Role, StageConfig, StageContext, StageDef, StageInfo, StageReport};
use crate::trainer::RunSummary;
use hone_data::checkpoint::{CheckpointDir, DataNotes};
use std::path::{Path, PathBuf};

hone_data::config_section! {
    /// The model post-training starts from, imported.
    pub struct BaseConfig {
        /// The model: a Hugging Face folder (config.json, safetensors, tokenizer files) or a .gguf
        /// file (any type hone reads: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K).
        model: String = String::new(),
    }
}

/// The base stage.
pub struct Base;

impl StageDef for Base {
    type Config = BaseConfig;
    const INFO: StageInfo = StageInfo {
        name: "base",
        about: "Import the model post-training starts from (a Hugging Face folder or a GGUF file) as the run's base.",
        starts_from: &[],
        reads: &[],
        role: Role::Policy,
        label: "base",
        data: None,
    };

    fn common(_: &BaseConfig) -> Option<&StageConfig> {
        None
    }
    fn common_mut(_: &mut BaseConfig) -> Option<&mut StageConfig> {
        None
    }

    fn validate(cfg: &BaseConfig) -> anyhow::Result<()> {
        anyhow::ensure!(
            !cfg.model.is_empty(),
            "base.model is empty: set it to a Hugging Face folder or a .gguf file (`--set base.model=PATH`, or \
             `hone base --model PATH`)"
        );
        Ok(())
    }

    fn estimate_tokens(_: &BaseConfig) -> f64 {
        0.0
    }

    fn run(cfg: &BaseConfig, ctx: &StageContext) -> anyhow::Result<StageReport> {
        let src = PathBuf::from(&cfg.model);
        let t = std::time::Instant::now();
        let device = hone_model::device::select("cpu")?;
        let m = hone_model::load(&src, &device).map_err(|e| anyhow::anyhow!("base.model {}: {e:#}", src.display()))?;
        eprintln!("base: {}: {} ({:.1} s)", src.display(), m.model.config.summary(), t.elapsed().as_secs_f64());
        let stage_dir = ctx.run_dir.join("base");
        let files = hone_model::import::save::checkpoint_files(&m)?;
        let dir = CheckpointDir::new(&stage_dir, 1).save(0, files, true)?;
        let summary =
            RunSummary { steps_done: 0, interrupted: false, last_eval: Vec::new(), tokens_per_s: 0.0, checkpoint: Some(dir) };
        Ok(StageReport { summary, stage_dir, init: None, resumed_from: None, notes: DataNotes::default() })
    }

    /// `--model PATH` names the model to import.
    fn flag_overrides(model: Option<&Path>, data: &[String]) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(data.is_empty(), "base reads no data: --data does not apply");
        Ok(model.map(|m| format!("base.model={}", toml::Value::String(m.display().to_string()))).into_iter().collect())
    }
}
