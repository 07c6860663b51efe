//! `hone eval`: evaluate a checkpoint on tasks and write one result JSON per task, or compare two
//! evaluations (`--compare A B`) and report what got worse beyond noise. The evaluation logic is in
//! the hone-eval crate; this file resolves paths and flags.

use crate::args::{ConfigArgs, print_sections, toml_list};
use anyhow::{Result, bail};
use clap::Args;
use hone_eval::{EvalOptions, compare, load_results, table};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint folder, or a stage folder (its final checkpoint), e.g. runs/default/pretrain.
    #[arg(long, short = 'm', required_unless_present = "compare")]
    pub model: Option<PathBuf>,
    /// Task file (.toml) or name: arc_easy, arc_challenge, blimp, gsm8k, world (every world probe) or
    /// one world probe (facts_mc, known_facts_frequent, …). Repeatable; sets `eval.tasks`.
    #[arg(long, short = 't')]
    pub task: Vec<String>,
    /// Folder for the result files (default: `<run>/eval/<stage>/` when the model is a stage of a run).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Evaluate at most N items per task, evenly spaced over the set unless `eval.limit_mode = first`
    /// (sets `eval.limit`).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Prompt format of generation tasks: task, chat or text (sets `eval.format`).
    #[arg(long)]
    pub format: Option<String>,
    /// The built-in world's folder, for world probes (sets `eval.world_dir`; default `<run>/world`).
    #[arg(long)]
    pub world: Option<PathBuf>,
    /// Compare two evaluations: result files or folders of them (A = before, B = after).
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "model")]
    pub compare: Option<Vec<PathBuf>>,
    /// With --compare: also compare the per-group metrics (e.g. BLiMP phenomena, fact tiers).
    #[arg(long, requires = "compare")]
    pub groups: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(paths) = &a.compare {
        return run_compare(&paths[0], &paths[1], a.groups);
    }
    let mut extra = Vec::new();
    if !a.task.is_empty() {
        extra.push(format!("eval.tasks={}", toml_list(&a.task)));
    }
    if let Some(n) = a.limit {
        extra.push(format!("eval.limit={n}"));
    }
    if let Some(f) = &a.format {
        extra.push(format!("eval.format={}", toml::Value::String(f.clone())));
    }
    if let Some(w) = &a.world {
        extra.push(format!("eval.world_dir={}", toml::Value::String(w.display().to_string())));
    }
    let cfg = a.config.load(&extra)?;
    cfg.sample.validate()?;
    if cfg.eval.tasks.is_empty() {
        bail!("no task given\n  fix: pass --task NAME|FILE (e.g. --task arc_easy --task world), or set eval.tasks");
    }
    print_sections(&cfg, &["eval", "sample"]);
    let model_path = a.model.expect("clap requires --model without --compare");
    let device = hone_model::device::select(&cfg.eval.device)?;
    let loaded = hone_model::load(&model_path, &device)?;
    let run_stage = hone_eval::run_and_stage(&loaded.dir);
    let world_dir = if !cfg.eval.world_dir.is_empty() {
        Some(PathBuf::from(&cfg.eval.world_dir))
    } else {
        [run_stage.as_ref().map(|(r, _)| r.join("world")), Some(cfg.run_dir().join("world"))]
            .into_iter()
            .flatten()
            .find(|d| d.is_dir())
    };
    let mut tasks = Vec::new();
    for t in &cfg.eval.tasks {
        tasks.extend(hone_eval::resolve(t, world_dir.as_deref())?);
    }
    cfg.eval.check_limit_exempt(tasks.iter().map(|s| s.file.name.as_str()))?;
    let out = match a.out {
        Some(o) => o,
        None => hone_eval::default_out_dir(&loaded.dir).unwrap_or_else(|| {
            let name =
                loaded.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            cfg.run_dir().join("eval").join(name)
        }),
    };
    eprintln!("evaluating {} on {} task(s); results in {}", loaded.dir.display(), tasks.len(), out.display());
    let opts = EvalOptions { eval: cfg.eval.clone(), sample: cfg.sample.clone(), progress: cfg.run.progress };
    let mut results = Vec::new();
    for t in &tasks {
        let r = hone_eval::run_task(&loaded, t, &opts)?;
        let path = r.save(&out)?;
        if let Some(m) = r.headline_metric() {
            eprintln!(
                "{}: {} = {:.4} [{:.4}, {:.4}] over {} of {} items in {:.1}s -> {}",
                r.task,
                m.name,
                m.value,
                m.lo,
                m.hi,
                r.items_evaluated,
                r.items_total,
                r.elapsed_s,
                path.display()
            );
        }
        results.push(r);
    }
    print!("{}", table::results(&results));
    Ok(())
}

fn run_compare(a: &Path, b: &Path, groups: bool) -> Result<()> {
    let (ra, rb) = (load_results(a)?, load_results(b)?);
    let mut deltas = compare::compare_sets(&ra, &rb);
    if !groups {
        deltas.retain(|d| d.group.is_none());
    }
    if deltas.is_empty() {
        let names = |v: &[hone_eval::TaskResult]| v.iter().map(|r| r.task.clone()).collect::<Vec<_>>().join(", ");
        bail!(
            "no task is in both {} ({}) and {} ({})\n  fix: compare evaluations of the same tasks",
            a.display(),
            names(&ra),
            b.display(),
            names(&rb)
        );
    }
    println!("A = {}\nB = {}", a.display(), b.display());
    print!("{}", table::comparison(&deltas));
    Ok(())
}
