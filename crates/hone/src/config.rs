//! The root configuration: one section per part of the pipeline, each a typed struct with documented
//! defaults owned by the crate that uses it. Loaded from TOML with `--set section.key=value`
//! overrides, printed at start and saved as `config.toml` in the run directory.

use crate::pipeline::PipelineConfig;
use hone_data::prepare::DataConfig;
use hone_data::tokenizer::TokenizerConfig;
use hone_data::{config_root, config_section};
use hone_eval::EvalConfig;
use hone_model::{ModelConfig, SampleConfig};
use hone_train::dpo::DpoConfig;
use hone_train::reward::RewardConfig;
use hone_train::rl::RlConfig;
use hone_train::sft::SftConfig;
use hone_train::{OptimConfig, PretrainConfig};
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
        /// Show progress bars (they are hidden anyway when stderr is not a terminal).
        progress: bool = true,
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
        pretrain: PretrainConfig,
        sft: SftConfig,
        dpo: DpoConfig,
        reward: RewardConfig,
        rl: RlConfig,
        sample: SampleConfig,
        eval: EvalConfig,
        pipeline: PipelineConfig,
    }
}

impl HoneConfig {
    /// The run directory, `<run.root>/<run.name>`.
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(&self.run.root).join(&self.run.name)
    }
}
