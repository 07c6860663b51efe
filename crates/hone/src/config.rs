//! The root configuration: one section per part of the pipeline, each a typed struct with documented
//! defaults owned by the crate that uses it; the training stages' sections come from the stage
//! registry. Loaded from TOML with `--set section.key=value`
//! overrides, printed at start and saved as `config.toml` in the run directory.

use crate::iterate::IterateConfig;
use crate::pipeline::PipelineConfig;
use hone_data::prepare::DataConfig;
use hone_data::tokenizer::TokenizerConfig;
use hone_data::{config_root, config_section};
use hone_eval::EvalConfig;
use hone_model::{ModelConfig, SampleConfig};
use hone_serve::ServeConfig;
use hone_train::{OptimConfig, StageSections};
use hone_world::WorldConfig;
use std::path::PathBuf;

config_section! {
    /// Where the run lives and what fixes its randomness.
    pub struct RunConfig {
        /// Name of the run; its directory is `<root>/<name>`.
        name: String = "default".to_string(),
        /// Directory holding runs.
        root: String = "runs".to_string(),
        /// Seed of the run: data order, initialisation and sampling derive from it.
        seed: u64 = 1,
        /// Show progress: bars on a terminal, a timestamped line every 10 s otherwise (`-q` hides it,
        /// `-v` writes a line every second).
        progress: bool = true,
        /// Activation checkpointing in every training stage: keep only each decoder layer's input
        /// for the backward pass and run the layer again inside it. The same gradients (bit for bit on
        /// the CPU backend's fused path) for about half the peak memory and a fifth less throughput
        /// (README, LoRA section); it changes no result, so a run resumes across it. CPU backend only.
        activation_checkpointing: bool = false,
    }
}

config_root! {
    /// Everything hone can be configured with.
    pub struct HoneConfig {
        run: RunConfig,
        data: DataConfig,
        tokenizer: TokenizerConfig,
        world: WorldConfig,
        model: ModelConfig,
        optim: OptimConfig,
        sample: SampleConfig,
        eval: EvalConfig,
        pipeline: PipelineConfig,
        serve: ServeConfig,
        iterate: IterateConfig,
        // One section per registered training stage (`hone_train::stages`), under the stage's name.
        ..stages: StageSections,
    }
}

impl HoneConfig {
    /// The run directory, `<run.root>/<run.name>`.
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(&self.run.root).join(&self.run.name)
    }
}

/// The stage context of a command: the run folder and the shared sections.
impl HoneConfig {
    pub fn stage_context(&self, progress: bool) -> hone_train::StageContext<'_> {
        hone_train::StageContext {
            run_dir: self.run_dir(),
            optim: &self.optim,
            model: &self.model,
            progress,
            activation_checkpointing: self.run.activation_checkpointing,
            stop: None,
        }
    }

    /// Points every registered stage whose `data` is empty at the built-in world's file of the kind it
    /// reads (and its held-out file), when `world` holds a world: the one place the world's files
    /// meet the stages.
    pub fn fill_stage_data(&mut self, world: &std::path::Path) {
        for stage in hone_train::REGISTRY {
            let Some(kind) = stage.info().data else { continue };
            let Some((train, eval)) = hone_world::files::for_kind(kind) else { continue };
            let Some(common) = stage.common_mut(&mut self.stages) else { continue };
            if common.data.is_empty() {
                common.data = vec![world.join(train).display().to_string()];
                if common.eval_data.is_empty()
                    && let Some(e) = eval
                {
                    common.eval_data = world.join(e).display().to_string();
                }
            }
        }
    }
}
