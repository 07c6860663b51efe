//! `hone rl`: online RL (GRPO or RLOO) with the world's verifiers or a reward model, from the DPO
//! model (else the SFT model) by default. Rerunning resumes; Ctrl-C stops after the current step.

use super::stage::{StageArgs, options, report};
use crate::args::announce;
use anyhow::Result;

pub fn run(a: StageArgs) -> Result<()> {
    let cfg = a.config.load(&a.overrides("rl"))?;
    announce(&cfg, &["run", "optim", "rl"])?;
    let r = hone_train::rl::run_rl(&cfg.optim, &cfg.rl, &cfg.run_dir(), None, &options(cfg.run.progress))?;
    report("rl", &r);
    Ok(())
}
