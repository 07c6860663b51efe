//! `hone run`: the whole pipeline as one command. The steps are the preparation steps (world,
//! tokenizer, data) and the training stages of the registry (`hone_train::stages`) named in
//! `pipeline.stages`, with an evaluation after every policy stage and the report at the end. Each step's output is reused when its key (its configuration and the keys
//! of the steps it reads from) is unchanged; see [`state`] for what happens otherwise. Ctrl-C stops
//! after the current training step with a checkpoint; the same command resumes.

pub mod presets;
pub mod state;
mod steps;

use crate::config::HoneConfig;
use state::{Plan, State, Status, move_aside};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

hone_data::config_section! {
    /// `hone run`: which steps run and what is evaluated after each training stage.
    pub struct PipelineConfig {
        /// Steps in order: the preparation steps world, tokenizer, data, then training stages of the
        /// registry (pretrain, sft, reward, dpo, rl, …; `hone --help` lists them). Leave one out to skip
        /// it (e.g. without `world`, point data and each stage's `data` at your own files). A stage
        /// starts from the nearest policy stage before it.
        stages: Vec<String> = ["world", "tokenizer", "data", "pretrain", "sft", "reward", "dpo", "rl"]
            .iter().map(|s| s.to_string()).collect(),
        /// Evaluate each policy stage (pretrain, sft, dpo, rl) on `eval.tasks` (default: every probe of
        /// the built-in world).
        evaluate: bool = true,
        /// Prompt format of generation tasks for the base model: `text` (plain continuation, what a
        /// base model can do) or `task`.
        base_format: String = "text".to_string(),
    }
}

/// The preparation steps, which come before the training stages.
pub const PREPARATION: &[&str] = &["world", "tokenizer", "data"];

/// The step that comes after the training stages: rounds of targeted training (`crate::iterate`).
pub const ITERATE: &str = "iterate";

/// Every name `pipeline.stages` accepts: the preparation steps, the registered stages, then `iterate`.
pub fn all_steps() -> Vec<&'static str> {
    PREPARATION.iter().copied().chain(hone_train::stages::names()).chain([ITERATE]).collect()
}

/// The report's columns: the registered policy stages in registry order, with their labels.
pub fn report_stages() -> Vec<hone_report::ReportStage> {
    hone_train::REGISTRY
        .iter()
        .map(|s| s.info())
        .map(|i| hone_report::ReportStage {
            name: i.name.to_string(),
            label: i.label.to_string(),
            policy: is_policy(i),
        })
        .collect()
}

/// How `hone run` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun this step and every later one even if their outputs are current.
    pub from: Option<String>,
    pub progress: bool,
}

/// One unit of work: a stage or the evaluation of one.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The key of the step's configuration and inputs.
    pub key: String,
    /// What the step writes (moved aside when its key changes).
    pub outputs: Vec<PathBuf>,
    /// Rough cost in seconds on this kind of machine, for the overall ETA.
    pub estimate_s: f64,
}

/// What a step reported.
pub struct Outcome {
    pub interrupted: bool,
    /// Headline lines for the final summary.
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn done() -> Outcome {
        Outcome { interrupted: false, notes: Vec::new() }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 { format!("{}h{:02}m", s / 3600, (s % 3600) / 60) } else { format!("{}:{:02}", s / 60, s % 60) }
}

/// Checks `pipeline.stages` and points the inputs left empty at the run's files, as `hone run` does
/// before its steps (for commands that work on a run `hone run` made).
pub fn prepare(cfg: &mut HoneConfig) -> anyhow::Result<()> {
    validate_stages(cfg)?;
    steps::fill_paths(cfg)
}

/// Runs the pipeline; returns the report's path, or `None` when interrupted.
pub fn run(cfg: &mut HoneConfig, opts: &RunOptions) -> anyhow::Result<Option<PathBuf>> {
    validate_stages(cfg)?;
    steps::fill_paths(cfg)?;
    let run_dir = cfg.run_dir();
    crate::args::announce(cfg, &[])?;
    let state = State::open(&run_dir)?;
    let plan = steps::plan(cfg)?;
    if let Some(f) = &opts.from {
        anyhow::ensure!(
            plan.iter().any(|s| &s.name == f),
            "--from {f}: not a step of this pipeline (steps: {})",
            plan.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let stop = hone_train::signal::stop_flag();
    let start = Instant::now();
    let total_est: f64 = plan.iter().map(|s| s.estimate_s).sum();
    let mut done_est: f64 = 0.0;
    let mut worked_s: f64 = 0.0;
    let mut forced = false;
    let mut notes = Vec::new();
    eprintln!(
        "hone run: {} steps into {} (estimated {} on this machine)",
        plan.len(),
        run_dir.display(),
        fmt_secs(total_est)
    );
    for (i, step) in plan.iter().enumerate() {
        forced |= opts.from.as_deref() == Some(step.name.as_str());
        let mut what = state.plan(&step.name, &step.key)?;
        if forced && what == Plan::Skip {
            what = Plan::Redo;
        }
        let header = |status: &str| {
            let elapsed = start.elapsed().as_secs_f64();
            // Scale the remaining estimate by how the finished work compared with its estimate, once
            // enough has run for the comparison to mean something (the first steps take seconds).
            let speed = if done_est >= 60.0 && worked_s > 0.0 { (worked_s / done_est).clamp(0.25, 4.0) } else { 1.0 };
            let left = (total_est - done_est) * speed;
            eprintln!(
                "\n━━ [{}/{}] {} {status} ━━ elapsed {} · remaining ≈ {}",
                i + 1,
                plan.len(),
                step.name,
                fmt_secs(elapsed),
                fmt_secs(left)
            );
        };
        match what {
            Plan::Skip => {
                header("(up to date, reused)");
                done_est += step.estimate_s;
                continue;
            }
            Plan::Redo => {
                header("(configuration or inputs changed: running again)");
                for o in &step.outputs {
                    move_aside(o)?;
                }
            }
            Plan::Run { resume: true } => header("(resuming)"),
            Plan::Run { resume: false } => header(""),
        }
        state.set(&step.name, &step.key, Status::Running)?;
        let t0 = Instant::now();
        // Each step's peak: the high-water mark starts again at what is resident now (memory the
        // allocator still holds from earlier steps is counted, as the process really holds it).
        hone_data::mem::reset_peak();
        let out = steps::execute(cfg, step, opts, &stop)?;
        let secs = t0.elapsed().as_secs_f64();
        state.record_time(&step.name, secs, what != Plan::Redo)?;
        if let Some(peak) = hone_data::mem::peak_rss_mib() {
            state.record_peak(&step.name, peak, what != Plan::Redo)?;
            eprintln!("{}: {} wall, peak resident memory {peak:.0} MiB", step.name, fmt_secs(secs));
        }
        if out.interrupted || stop.load(Ordering::SeqCst) {
            eprintln!("\nstopped during {}; run the same command to resume where it stopped", step.name);
            return Ok(None);
        }
        state.set(&step.name, &step.key, Status::Done)?;
        worked_s += secs;
        done_est += step.estimate_s;
        notes.extend(out.notes);
    }
    let files = hone_report::write_report(&run_dir, &report_stages())?;
    eprintln!("\nhone run finished in {}", fmt_secs(start.elapsed().as_secs_f64()));
    for n in notes {
        println!("{n}");
    }
    print_headlines(&run_dir)?;
    println!("report: {}", files.html.display());
    Ok(Some(files.html))
}

/// The headline metric of every task, first and last evaluated stage, on stdout.
pub(crate) fn print_headlines(run_dir: &std::path::Path) -> anyhow::Result<()> {
    let facts = hone_report::gather(run_dir, &report_stages())?;
    let table = hone_report::build_table(&facts);
    if table.columns.is_empty() {
        return Ok(());
    }
    let labels: Vec<&str> = table.columns.iter().map(|c| c.1.as_str()).collect();
    println!("\n{:<34} {:<22} {}", "task", "metric", labels.iter().map(|l| format!("{l:>8}")).collect::<String>());
    for r in table.rows.iter().filter(|r| r.headline) {
        let cells: String = r
            .cells
            .iter()
            .map(|c| c.as_ref().map(|c| format!("{:>8.3}", c.value)).unwrap_or_else(|| format!("{:>8}", "–")))
            .collect();
        let dir = if r.higher_is_better { "↑" } else { "↓" };
        println!("{:<34} {:<22} {cells}", r.task, format!("{} {dir}", r.metric));
    }
    let regs = table.regressions();
    for (r, c) in &regs {
        let group = r.group.as_ref().map(|g| format!(" ({g})")).unwrap_or_default();
        println!(
            "REGRESSION: {} {}{group} got worse from {} to {} beyond the noise",
            r.task,
            r.metric,
            table.columns[c - 1].1,
            table.columns[*c].1
        );
    }
    Ok(())
}

/// Whether a stage is a policy stage that gets evaluated.
pub fn is_policy(info: &hone_train::stage::StageInfo) -> bool {
    info.role == hone_train::stage::Role::Policy
}

/// Checks `pipeline.stages` before any work: known names, preparation steps first and in order, no
/// repeats, and each stage's settings.
pub fn validate_stages(cfg: &HoneConfig) -> anyhow::Result<()> {
    let stages = &cfg.pipeline.stages;
    for s in stages {
        if !all_steps().contains(&s.as_str()) {
            return Err(steps::unknown_stage(s));
        }
    }
    for (i, s) in stages.iter().enumerate() {
        anyhow::ensure!(!stages[..i].contains(s), "pipeline.stages: `{s}` appears twice");
    }
    let prep: Vec<&str> = stages.iter().map(String::as_str).filter(|s| PREPARATION.contains(s)).collect();
    let first_stage = stages.iter().position(|s| !PREPARATION.contains(&s.as_str())).unwrap_or(stages.len());
    let ordered = PREPARATION.iter().copied().filter(|p| prep.contains(p)).collect::<Vec<_>>() == prep;
    anyhow::ensure!(
        ordered && stages[first_stage..].iter().all(|s| !PREPARATION.contains(&s.as_str())),
        "pipeline.stages: the preparation steps come first, in the order {}, then the training stages (got {})",
        PREPARATION.join(", "),
        stages.join(", ")
    );
    if let Some(i) = stages.iter().position(|s| s == ITERATE) {
        let policy_before = stages[..i].iter().filter_map(|s| hone_train::stages::find(s)).any(|s| is_policy(s.info()));
        anyhow::ensure!(
            i + 1 == stages.len() && policy_before,
            "pipeline.stages: `{ITERATE}` comes last, after the training stages it improves on (got {})",
            stages.join(", ")
        );
        cfg.iterate.validate()?;
    }
    for s in stages.iter().filter_map(|s| hone_train::stages::find(s)) {
        s.validate(&cfg.stages)?;
    }
    Ok(())
}
