//! `hone sft`: supervised fine-tuning on conversations (loss on the assistant's tokens), from the
//! pretrained model by default. Rerunning resumes; Ctrl-C stops after the current step.

use super::stage::{StageArgs, options, report};
use crate::args::announce;
use anyhow::Result;

pub fn run(a: StageArgs) -> Result<()> {
    let cfg = a.config.load(&a.overrides("sft"))?;
    announce(&cfg, &["run", "optim", "sft"])?;
    let r = hone_train::sft::run_sft(&cfg.optim, &cfg.sft, &cfg.run_dir(), None, &options(cfg.run.progress))?;
    report("sft", &r);
    Ok(())
}
