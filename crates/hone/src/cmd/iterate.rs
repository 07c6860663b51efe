//! `hone iterate`: rounds of targeted training on a finished run (see `crate::iterate`), with the
//! run's preset and configuration, `--set` overrides, and the rounds' own flags.

use crate::args::ConfigArgs;
use crate::config::HoneConfig;
use crate::pipeline::presets;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct IterateArgs {
    /// Rounds to run (sets `iterate.rounds`); rounds already done are reused.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Who grades the model's answers: rule, reward_model or feedback (sets `iterate.grader`).
    #[arg(long)]
    pub grader: Option<String>,
    /// Also run round 1 graded by the world's rules and by the reward model alone, side by side and
    /// never kept (sets `iterate.compare_graders`).
    #[arg(long)]
    pub compare_graders: bool,
    /// The preset the run was made with (its settings are the run's).
    #[arg(long, default_value = "default")]
    pub preset: String,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: IterateArgs) -> Result<()> {
    let layer = presets::preset(&a.preset)?;
    let origin = format!("preset `{}`", a.preset);
    let mut sets = a.config.set.clone();
    if let Some(r) = a.rounds {
        sets.push(format!("iterate.rounds={r}"));
    }
    if let Some(g) = &a.grader {
        sets.push(format!("iterate.grader={}", toml::Value::String(g.clone())));
    }
    if a.compare_graders {
        sets.push("iterate.compare_graders=true".into());
    }
    let mut cfg: HoneConfig =
        hone_data::config::load_layered(&[(origin.as_str(), layer)], a.config.config.as_deref(), &sets)?;
    let _lock = hone_data::lock::RunLock::acquire(&cfg.run_dir(), &hone_data::lock::command_line())?;
    crate::pipeline::prepare(&mut cfg)?;
    let stop = hone_train::signal::stop_flag();
    let rounds = cfg.iterate.rounds;
    if crate::iterate::run(&cfg, rounds, &stop, true)? { Ok(()) } else { std::process::exit(130) }
}
