//! `hone reward`: trains a reward model (the SFT model's trunk with a scalar head) on preference
//! pairs; RL can then score completions with it. Rerunning resumes; Ctrl-C stops after the step.

use super::stage::{StageArgs, options, report};
use crate::args::announce;
use anyhow::Result;

pub fn run(a: StageArgs) -> Result<()> {
    let cfg = a.config.load(&a.overrides("reward"))?;
    announce(&cfg, &["run", "optim", "reward"])?;
    let r = hone_train::reward::run_reward(&cfg.optim, &cfg.reward, &cfg.run_dir(), None, &options(cfg.run.progress))?;
    report("reward", &r);
    Ok(())
}
