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
        fill_stage_paths(cfg, &world);
    }
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
        .map(|c| c.train_flops_per_token(cfg.pretrain.seq_len))
        .unwrap_or(2e7);
    if cfg.pretrain.device == "cpu" { 5.0e10 / flops } else { 5.0e12 / flops }
}

/// The steps of this pipeline, in order, with keys chained through what each reads.
pub fn plan(cfg: &HoneConfig) -> anyhow::Result<Vec<Step>> {
    let run = cfg.run_dir();
    let mut steps = Vec::new();
    let mut keys: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let speed = train_speed(cfg);
    let world_key = if has(cfg, "world") { key(&["world", &section(&cfg.world)]) } else { String::new() };
    for stage in &cfg.pipeline.stages {
        let stage = stage.as_str();
        let (k, outputs, est) = match stage {
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
            "pretrain" => {
                let p = &cfg.pretrain;
                let tokens = (p.steps * (p.batch_size * p.seq_len * p.grad_accum) as u64) as f64;
                (
                    key(&[
                        "pretrain",
                        &section(&cfg.model),
                        &section(&cfg.optim),
                        &section(p),
                        keys.get("data").map_or("", |s| s),
                    ]),
                    vec![run.join("pretrain")],
                    tokens / speed,
                )
            }
            other => stage_step(cfg, other, &keys, &world_key, speed)?,
        };
        keys.insert(stage, k.clone());
        steps.push(Step { name: stage.to_string(), key: k.clone(), outputs, estimate_s: est });
        if is_policy(stage) && cfg.pipeline.evaluate {
            let fmt = if stage == "pretrain" { cfg.pipeline.base_format.as_str() } else { "task" };
            let ek = key(&["eval", &section(&cfg.eval), &section(&cfg.sample), fmt, &k, &world_key]);
            steps.push(Step {
                name: format!("eval-{stage}"),
                key: ek,
                outputs: vec![run.join("eval").join(stage)],
                estimate_s: eval_estimate(cfg),
            });
        }
    }
    Ok(steps)
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
        "pretrain" => {
            let o = hone_train::PretrainOptions { progress: opts.progress, stop: Some(stop.clone()) };
            let r = hone_train::run_pretrain(&cfg.model, &cfg.optim, &cfg.pretrain, &run, &o)?;
            Ok(Outcome { interrupted: r.summary.interrupted, notes: Vec::new() })
        }
        name if name.starts_with("eval-") => evaluate(cfg, &name["eval-".len()..], opts),
        other => run_stage(cfg, other, opts, stop),
    }
}

/// Evaluates a stage's final model on every task; results go to `<run>/eval/<stage>/`.
fn evaluate(cfg: &HoneConfig, stage: &str, opts: &RunOptions) -> anyhow::Result<Outcome> {
    let run = cfg.run_dir();
    let device = hone_model::device::select(&cfg.eval.device)?;
    let m = hone_model::load_stage(&run, stage, &device)?;
    let mut eval = cfg.eval.clone();
    if stage == "pretrain" {
        eval.format = cfg.pipeline.base_format.clone();
    }
    let world = (!eval.world_dir.is_empty()).then(|| PathBuf::from(&eval.world_dir));
    let mut specs = Vec::new();
    for t in &eval.tasks {
        specs.extend(hone_eval::resolve(t, world.as_deref())?);
    }
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

/// The post-training stages read the world's files by default; nothing to fill.
fn fill_stage_paths(_cfg: &mut HoneConfig, _world: &Path) {}

/// Key, outputs and cost of a post-training stage.
fn stage_step(
    cfg: &HoneConfig,
    stage: &str,
    keys: &std::collections::HashMap<&str, String>,
    world_key: &str,
    speed: f64,
) -> anyhow::Result<(String, Vec<PathBuf>, f64)> {
    let run = cfg.run_dir();
    let prev = |names: &[&str]| names.iter().find_map(|n| keys.get(n).cloned()).unwrap_or_default();
    let optim = section(&cfg.optim);
    // Tokens a stage trains on, per step, for the estimate (sequences are up to max_len long; half is typical).
    let (k, tokens) = match stage {
        "sft" => (
            key(&[
                "sft",
                &section(&cfg.sft),
                &optim,
                &prev(&["pretrain"]),
                world_key,
                &files_fingerprint(cfg, &cfg.sft.data),
            ]),
            (cfg.sft.steps * (cfg.sft.batch_size * cfg.sft.grad_accum * cfg.sft.max_len / 2) as u64) as f64,
        ),
        "reward" => (
            key(&[
                "reward",
                &section(&cfg.reward),
                &optim,
                &prev(&["sft", "pretrain"]),
                world_key,
                &files_fingerprint(cfg, &cfg.reward.data),
            ]),
            (cfg.reward.steps * (cfg.reward.batch_size * cfg.reward.grad_accum * cfg.reward.max_len) as u64) as f64,
        ),
        "dpo" => (
            key(&[
                "dpo",
                &section(&cfg.dpo),
                &optim,
                &prev(&["sft", "pretrain"]),
                world_key,
                &files_fingerprint(cfg, &cfg.dpo.data),
                &files_fingerprint(cfg, std::slice::from_ref(&cfg.dpo.eval_data)),
            ]),
            // Chosen and rejected, plus the reference pass up front.
            (cfg.dpo.steps * (cfg.dpo.batch_size * cfg.dpo.grad_accum * cfg.dpo.max_len) as u64) as f64 * 1.3,
        ),
        "rl" => (
            key(&[
                "rl",
                &section(&cfg.rl),
                &optim,
                &prev(&["dpo", "sft", "pretrain"]),
                &prev(&["reward"]),
                world_key,
                &files_fingerprint(cfg, &cfg.rl.data),
            ]),
            // Sampling costs about as much as training on what was sampled, several times over.
            (cfg.rl.steps * (cfg.rl.prompts_per_step * cfg.rl.group_size * cfg.rl.max_new_tokens) as u64) as f64 * 4.0,
        ),
        other => anyhow::bail!("pipeline.stages: unknown stage `{other}`"),
    };
    Ok((k, vec![run.join(stage)], tokens / speed))
}

/// Runs a post-training stage from the previous stage of the pipeline.
fn run_stage(cfg: &HoneConfig, stage: &str, opts: &RunOptions, stop: &Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let run = cfg.run_dir();
    let so = hone_train::stage::StageOptions { progress: opts.progress, stop: Some(stop.clone()) };
    let r = match stage {
        "sft" => hone_train::sft::run_sft(&cfg.optim, &cfg.sft, &run, None, &so)?,
        "reward" => hone_train::reward::run_reward(&cfg.optim, &cfg.reward, &run, None, &so)?,
        "dpo" => hone_train::dpo::run_dpo(&cfg.optim, &cfg.dpo, &run, None, &so)?,
        "rl" => hone_train::rl::run_rl(&cfg.optim, &cfg.rl, &run, None, &so)?,
        other => anyhow::bail!("pipeline.stages: unknown stage `{other}`"),
    };
    for n in &r.notes {
        eprintln!("{n}");
    }
    let evals: Vec<String> = r.summary.last_eval.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    let note = format!("{stage}: {} steps; {}", r.summary.steps_done, evals.join(", "));
    Ok(Outcome { interrupted: r.summary.interrupted, notes: vec![note] })
}
