//! What each step of `hone run` does, what it reads (its key) and roughly what it costs.

use super::state::key;
use super::{Outcome, RunOptions, Step, is_policy};
use crate::config::HoneConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn section<T: serde::Serialize>(s: &T) -> String {
    toml::to_string(s).unwrap_or_default()
}

fn has(cfg: &HoneConfig, stage: &str) -> bool {
    cfg.pipeline.stages.iter().any(|s| s == stage)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Points every input that is left empty at the built-in world's files, when the world is a step.
pub fn fill_paths(cfg: &mut HoneConfig) -> anyhow::Result<()> {
    let run = cfg.run_dir();
    let world = run.join("world");
    if has(cfg, "world") {
        if cfg.data.inputs.is_empty() {
            cfg.data.inputs = vec![path_str(&world.join("corpus"))];
        }
        if cfg.eval.world_dir.is_empty() {
            cfg.eval.world_dir = path_str(&world);
        }
        cfg.fill_stage_data(&world);
    } else if world.join("summary.json").is_file() {
        cfg.fill_stage_data(&world);
    }
    set_starts(cfg)?;
    if cfg.eval.tasks.is_empty() {
        anyhow::ensure!(
            has(cfg, "world") || !cfg.pipeline.evaluate,
            "eval.tasks is empty: without the built-in world, name the tasks to evaluate (task files or names such as \
             arc_easy), or set pipeline.evaluate=false"
        );
        cfg.eval.tasks = vec!["world".into()];
    }
    Ok(())
}

/// Size and modification time of every input file: a changed file changes the key. Files the
/// pipeline writes itself (the world's) are covered by the world's key instead, since they do not
/// exist yet when the keys are computed.
fn files_fingerprint(cfg: &HoneConfig, inputs: &[String]) -> String {
    if has(cfg, "world") {
        return String::new();
    }
    let Ok(paths) = hone_data::read::expand_inputs(inputs) else { return String::new() };
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok();
            let len = m.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime = m.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{}:{len}:{}\n", p.display(), mtime.map(|d| d.as_nanos()).unwrap_or(0))
        })
        .collect()
}

/// Tokens per second a training stage is assumed to reach before any was measured (CPU, Flex: the
/// fused kernels reach about 55 effective GFLOP/s on two idle cores, optimizer and evaluations
/// included; assume a little less).
fn train_speed(cfg: &HoneConfig) -> f64 {
    let flops = cfg
        .model
        .resolve(Some(if cfg.model.vocab_size > 0 { cfg.model.vocab_size } else { cfg.tokenizer.vocab_size }))
        .map(|c| c.train_flops_per_token(cfg.stages.pretrain.seq_len))
        .unwrap_or(2e7);
    if cfg.stages.pretrain.run.device == "cpu" { 5.0e10 / flops } else { 5.0e12 / flops }
}

/// Where each training stage of the pipeline starts, set as its `init` when the user left it empty:
/// the final checkpoint of the nearest earlier policy stage of `pipeline.stages`. A stage that starts
/// from a trained model with none before it, and no final in the run folder of a stage it may start
/// from, fails here, before any work.
fn set_starts(cfg: &mut HoneConfig) -> anyhow::Result<()> {
    let run = cfg.run_dir();
    let order = cfg.pipeline.stages.clone();
    for (i, name) in order.iter().enumerate() {
        let Some(stage) = hone_train::stages::find(name) else { continue };
        let info = stage.info();
        if info.starts_from.is_empty() {
            continue;
        }
        let before = order[..i].iter().rev().find(|n| hone_train::stages::find(n).is_some_and(|s| is_policy(s.info())));
        let Some(common) = stage.common_mut(&mut cfg.stages) else { continue };
        if !common.init.is_empty() {
            continue;
        }
        match before {
            Some(prev) => common.init = path_str(&run.join(prev)),
            None => {
                let existing = info.starts_from.iter().any(|p| {
                    hone_data::checkpoint::CheckpointDir::new(&run.join(p), 1)
                        .final_checkpoint()
                        .ok()
                        .flatten()
                        .is_some()
                });
                anyhow::ensure!(
                    existing,
                    "pipeline.stages: `{name}` starts from a trained model (one of {}), but no policy stage comes \
                     before it and {} has none of their final checkpoints; put one of them before `{name}` (e.g. \
                     stages = [..., \"{}\", \"{name}\"]) or set {name}.init",
                    info.starts_from.join(", "),
                    run.display(),
                    info.starts_from[0]
                );
            }
        }
    }
    Ok(())
}

/// The steps of this pipeline, in order, with keys chained through what each reads.
pub fn plan(cfg: &HoneConfig) -> anyhow::Result<Vec<Step>> {
    let run = cfg.run_dir();
    let mut steps = Vec::new();
    let mut keys: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let speed = train_speed(cfg);
    let world_key = if has(cfg, "world") { key(&["world", &section(&cfg.world)]) } else { String::new() };
    // The policy stage each training stage starts from (its key chains into the stage's).
    let mut last_policy: Option<&str> = None;
    for name in &cfg.pipeline.stages {
        let name = name.as_str();
        let (k, outputs, est) = match name {
            "world" => (world_key.clone(), vec![run.join("world")], 3.0),
            "tokenizer" => (
                key(&[
                    "tokenizer",
                    &section(&cfg.tokenizer),
                    &section(&cfg.data),
                    &world_key,
                    &files_fingerprint(cfg, &cfg.data.inputs),
                ]),
                vec![run.join("tokenizer.json"), run.join("tokenizer_config.json")],
                15.0,
            ),
            "data" => (
                key(&["data", &section(&cfg.data), keys.get("tokenizer").map_or("", |s| s), &world_key]),
                vec![run.join("data")],
                10.0,
            ),
            super::ITERATE => {
                let from = last_policy.and_then(|p| keys.get(p)).cloned().unwrap_or_default();
                let k = key(&[super::ITERATE, &section(&cfg.iterate), &from, &section(&cfg.eval), &world_key]);
                // A round trains about as long as the stage it runs, and evaluates three times.
                (k, vec![run.join("iterate")], cfg.iterate.rounds as f64 * 150.0)
            }
            other => {
                let stage = hone_train::stages::find(other).ok_or_else(|| unknown_stage(other))?;
                let info = stage.info();
                let mut parts = vec![
                    other.to_string(),
                    stage.section_toml(&cfg.stages),
                    section(&cfg.optim),
                    section(&cfg.model),
                    world_key.clone(),
                ];
                if !info.starts_from.is_empty() {
                    parts.push(last_policy.and_then(|p| keys.get(p)).cloned().unwrap_or_default());
                }
                parts.extend(info.reads.iter().map(|r| keys.get(r).cloned().unwrap_or_default()));
                if let Some(c) = stage.common(&cfg.stages) {
                    parts.push(files_fingerprint(cfg, &c.data));
                    parts.push(files_fingerprint(cfg, std::slice::from_ref(&c.eval_data)));
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                (key(&refs), vec![run.join(other)], stage.estimate_tokens(&cfg.stages) / speed)
            }
        };
        keys.insert(name, k.clone());
        steps.push(Step { name: name.to_string(), key: k.clone(), outputs, estimate_s: est });
        let Some(stage) = hone_train::stages::find(name) else { continue };
        if !is_policy(stage.info()) {
            continue;
        }
        last_policy = Some(stage.info().name);
        if cfg.pipeline.evaluate {
            let fmt = if stage.info().starts_from.is_empty() { cfg.pipeline.base_format.as_str() } else { "task" };
            let ek = key(&["eval", &section(&cfg.eval), &section(&cfg.sample), fmt, &k, &world_key]);
            steps.push(Step {
                name: format!("eval-{name}"),
                key: ek,
                outputs: vec![run.join("eval").join(name)],
                estimate_s: eval_estimate(cfg),
            });
        }
    }
    Ok(steps)
}

/// The error for a name that is neither a preparation step nor a registered stage.
pub fn unknown_stage(name: &str) -> anyhow::Error {
    anyhow::anyhow!("pipeline.stages: unknown stage `{name}` (stages: {})", super::all_steps().join(", "))
}

fn eval_estimate(cfg: &HoneConfig) -> f64 {
    let items = if cfg.eval.limit > 0 { cfg.eval.limit.min(200) } else { 150 } as f64;
    // ~16 world tasks; generation dominates (the default preset's 100 items take about 16 s).
    16.0 * items * 0.005 * (cfg.sample.max_new_tokens.min(64) as f64 / 16.0)
}

/// Runs one step.
pub fn execute(cfg: &HoneConfig, step: &Step, opts: &RunOptions, stop: &Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let run = cfg.run_dir();
    match step.name.as_str() {
        "world" => {
            let summary = hone_world::generate(&cfg.world, &run.join("world"))?;
            eprint!("{summary}");
            Ok(Outcome::done())
        }
        "tokenizer" => {
            let (tok, stats) = hone_data::corpus::train_tokenizer(&cfg.data, &cfg.tokenizer, opts.progress)?;
            tok.save(&run.join("tokenizer.json"))?;
            eprintln!("tokenizer: {} tokens from {} documents", tok.vocab_size(), stats.documents);
            Ok(Outcome::done())
        }
        "data" => {
            let tok_path = run.join("tokenizer.json");
            let tok = hone_data::tokenizer::Tokenizer::load(&tok_path)?;
            let sha = hone_data::hash::sha256_file(&tok_path)?;
            let r = hone_data::prepare::prepare(&cfg.data, &tok, &sha, &run.join("data"), opts.progress)?;
            eprintln!("data: {} training tokens, {} held-out", r.index.train.tokens, r.index.val.tokens);
            Ok(Outcome::done())
        }
        name if name.starts_with("eval-") => evaluate(cfg, &name["eval-".len()..], opts),
        super::ITERATE => {
            let done = crate::iterate::run(cfg, cfg.iterate.rounds, stop, false)?;
            Ok(Outcome { interrupted: !done, notes: Vec::new() })
        }
        other => run_stage(cfg, other, opts, stop),
    }
}

/// Evaluates a stage's final model on every task; results go to `<run>/eval/<stage>/`.
fn evaluate(cfg: &HoneConfig, stage: &str, opts: &RunOptions) -> anyhow::Result<Outcome> {
    let run = cfg.run_dir();
    let device = hone_model::device::select(&cfg.eval.device)?;
    let m = hone_model::load_stage(&run, stage, &device)?;
    let mut eval = cfg.eval.clone();
    if hone_train::stages::find(stage).is_some_and(|s| s.info().starts_from.is_empty()) {
        eval.format = cfg.pipeline.base_format.clone();
    }
    let world = (!eval.world_dir.is_empty()).then(|| PathBuf::from(&eval.world_dir));
    let mut specs = Vec::new();
    for t in &eval.tasks {
        specs.extend(hone_eval::resolve(t, world.as_deref())?);
    }
    eval.check_limit_exempt(specs.iter().map(|s| s.file.name.as_str()))?;
    let out = run.join("eval").join(stage);
    let eopts = hone_eval::EvalOptions { eval, sample: cfg.sample.clone(), progress: opts.progress };
    for spec in &specs {
        let r = hone_eval::run_task(&m, spec, &eopts)?;
        let head = r.headline_metric().map(|x| format!("{} {:.3} (n={})", x.name, x.value, x.n)).unwrap_or_default();
        eprintln!("  {:<34} {head}", r.task);
        r.save(&out)?;
    }
    Ok(Outcome::done())
}

/// Runs a training stage of the pipeline.
fn run_stage(cfg: &HoneConfig, name: &str, opts: &RunOptions, stop: &Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let stage = hone_train::stages::find(name).ok_or_else(|| unknown_stage(name))?;
    let mut ctx = cfg.stage_context(opts.progress);
    ctx.stop = Some(stop.clone());
    let r = stage.run(&cfg.stages, &ctx)?;
    hone_data::checkpoint::save_data_notes(&r.stage_dir, &r.notes)?;
    let evals: Vec<String> = r.summary.last_eval.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    let note = format!("{name}: {} steps; {}", r.summary.steps_done, evals.join(", "));
    Ok(Outcome { interrupted: r.summary.interrupted, notes: vec![note] })
}
