//! `hone dpo`: preference optimisation (DPO, IPO, SimPO) against a frozen reference, from the SFT
//! model by default. Rerunning resumes (the reference's log-probabilities are cached in the stage
//! folder); Ctrl-C stops after the current step.

use super::stage::{StageArgs, options, report};
use crate::args::announce;
use anyhow::Result;

pub fn run(a: StageArgs) -> Result<()> {
    let cfg = a.config.load(&a.overrides("dpo"))?;
    announce(&cfg, &["run", "optim", "dpo"])?;
    let r = hone_train::dpo::run_dpo(&cfg.optim, &cfg.dpo, &cfg.run_dir(), None, &options(cfg.run.progress))?;
    report("dpo", &r);
    Ok(())
}
