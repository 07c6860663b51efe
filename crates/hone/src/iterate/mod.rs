//! `hone iterate`: rounds of train → measure → adjust on a finished run. Each round
//!
//! 1. **measures** the current model on the development split (`hone_world::dev`: probe items made
//!    for iteration, none of the report's, written to `<run>/iterate/dev/`);
//! 2. **diagnoses** weaknesses: metrics short of a goal (`iterate.goals`) or worse than the best
//!    earlier stage beyond the noise (the report's paired test), with the items they failed;
//! 3. **adjusts**: builds data aimed at them ([`data`]): new world data of the weak kinds, the
//!    model's own answers graded by rule, by the reward model or by people, and replay;
//! 4. **trains** the stage the rules choose (SFT, DPO with the current model as the reference, or RL
//!    on the weak kinds) from the current model, into `<run>/iterate/round-N/<stage>/`;
//! 5. **gates** on the development split ([`gate`]): kept only if a targeted metric improves and no
//!    metric falls beyond the noise, else rolled back. Every candidate is then evaluated on the
//!    report's probes for the report (a kept one becomes the report's column `round N`); the
//!    report's probes never decide anything.
//!
//! Rounds are keyed like pipeline steps (`<run>/pipeline/iterate-round-N.json`): a rerun skips
//! finished rounds, resumes an interrupted one (its data, evaluations and checkpoints are reused;
//! training resumes from its checkpoint), and redoes a round whose configuration or inputs changed,
//! with every round after it.

pub mod config;
mod data;
mod diagnose;
mod gate;
pub mod goals;
mod grade;
mod measure;

pub use config::IterateConfig;

use crate::config::HoneConfig;
use crate::pipeline::state::{Plan, State, Status, key, move_aside};
use config::{Grader, Method};
use goals::Goal;
use hone_eval::TaskResult;
use hone_report::iteration::{Effect, RoundRecord};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A model in the chain: its label and folder, and its results on the development split and on the
/// report's probes.
struct Model {
    label: String,
    dir: PathBuf,
    dev: Vec<TaskResult>,
    report_eval: PathBuf,
}

/// What [`run`] reads once.
struct Setup<'a> {
    cfg: &'a HoneConfig,
    run: PathBuf,
    world_dir: PathBuf,
    dev_specs: Vec<hone_eval::TaskSpec>,
    report_specs: Vec<hone_eval::TaskSpec>,
    goals: Vec<Goal>,
    feedback: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

fn section<T: serde::Serialize>(s: &T) -> String {
    toml::to_string(s).unwrap_or_default()
}

fn final_of(stage_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    Ok(hone_data::checkpoint::CheckpointDir::new(stage_dir, 1).final_checkpoint()?.map(|c| c.dir))
}

/// Runs `rounds` rounds (after any already done) on the run of `cfg`; `Ok(false)` when stopped.
/// `standalone`: write the report and print the headlines at the end (`hone run` does both itself).
pub fn run(cfg: &HoneConfig, rounds: usize, stop: &Arc<AtomicBool>, standalone: bool) -> anyhow::Result<bool> {
    let it = &cfg.iterate;
    it.validate()?;
    let run = cfg.run_dir();
    let world_dir = if cfg.eval.world_dir.is_empty() { run.join("world") } else { PathBuf::from(&cfg.eval.world_dir) };
    anyhow::ensure!(
        world_dir.join("summary.json").is_file(),
        "hone iterate draws its data and development split from the built-in world, and {} holds none; run \
         `hone run` (with `world` in pipeline.stages) first",
        world_dir.display()
    );
    // The model to start from: the last policy stage of the pipeline with a final checkpoint.
    let policies: Vec<&str> = cfg
        .pipeline
        .stages
        .iter()
        .filter_map(|s| hone_train::stages::find(s))
        .filter(|s| crate::pipeline::is_policy(s.info()) && !s.info().starts_from.is_empty())
        .map(|s| s.info().name)
        .collect();
    let mut finished: Vec<(&str, PathBuf)> = Vec::new();
    for p in &policies {
        if let Some(d) = final_of(&run.join(p))? {
            finished.push((p, d));
        }
    }
    let Some((start, _)) = finished.last().cloned() else {
        anyhow::bail!(
            "hone iterate starts from a trained model, and {} has no final checkpoint of {}; run `hone run` first",
            run.display(),
            policies.join(", ")
        );
    };
    let state = State::open(&run)?;
    // Graders that must exist, checked before any work.
    let needs_rm = it.grader == Grader::RewardModel || it.compare_graders;
    if needs_rm && final_of(&run.join("reward"))?.is_none() {
        anyhow::bail!(
            "iterate.grader = reward_model{}: no trained reward model in {}; run the reward stage first (`hone \
             reward`, or `reward` in pipeline.stages) or set iterate.grader = rule",
            if it.compare_graders { " (iterate.compare_graders)" } else { "" },
            run.join("reward").display()
        );
    }
    let (feedback, feedback_hash) =
        if it.grader == Grader::Feedback { snapshot_feedback(&run)? } else { (None, String::new()) };
    let iter_dir = run.join("iterate");
    // The development split, made once per world configuration (`done` holds its key; another
    // world moves the old split, and every measurement on it, aside).
    let dev_dir = iter_dir.join("dev");
    let dev_key = key(&["dev", &section(&cfg.world)]);
    if std::fs::read_to_string(dev_dir.join("done")).ok().as_deref() != Some(dev_key.as_str()) {
        move_aside(&dev_dir)?;
        move_aside(&iter_dir.join("dev-eval"))?;
        let dev = hone_world::dev::dev_split(&cfg.world)?;
        hone_world::dev::write(&dev, &dev_dir)?;
        hone_data::atomic::write_atomic(&dev_dir.join("done"), dev_key.as_bytes())?;
        eprintln!("iterate: development split written to {}", dev_dir.display());
    }
    let mut goals: Vec<Goal> = it.goals.iter().map(|g| Goal::parse(g)).collect::<anyhow::Result<_>>()?;
    let (dev_specs, report_specs) = (hone_eval::load_dir(&dev_dir)?, hone_eval::load_dir(&world_dir.join("eval"))?);
    // A probe task the development split has no items of (a small world's probe can use up a kind's
    // prompts) cannot be measured: its goal is skipped, and said so. A task that is no probe at all is
    // an error, when the goals are checked below.
    goals.retain(|g| {
        let on_dev = dev_specs.iter().any(|t| t.name() == g.task);
        let probe = report_specs.iter().any(|t| t.name() == g.task);
        if probe && !on_dev {
            eprintln!("iterate: goal `{}` skipped: the development split has no items of {}", g.text(), g.task);
        }
        on_dev || !probe
    });
    let s = Setup {
        cfg,
        run: run.clone(),
        world_dir: world_dir.clone(),
        dev_specs,
        report_specs,
        goals,
        feedback,
        stop: stop.clone(),
    };
    // The earlier stages on the development split (what "worse than an earlier stage" compares with).
    let mut earlier: Vec<(String, Vec<TaskResult>)> = Vec::new();
    for (name, dir) in &finished {
        eprintln!("iterate: measuring {name} on the development split");
        let Some(dev) = measure::evaluate(cfg, dir, &s.dev_specs, &iter_dir.join("dev-eval").join(name), stop)? else {
            return Ok(false);
        };
        earlier.push((name.to_string(), dev));
    }
    for g in &s.goals {
        g.find(&earlier.last().expect("a start").1)?;
    }
    let (_, start_dev) = earlier.pop().expect("a start");
    let mut current = Model {
        label: start.to_string(),
        dir: run.join(start),
        dev: start_dev,
        report_eval: report_eval_of(&s, start, &run.join(start))?,
    };
    let start_key = state.marker(start)?.map(|m| m.key).unwrap_or_default();
    let base = IterateConfig { rounds: 0, ..it.clone() };
    let mut prev_key = key(&[
        "iterate",
        &section(&base),
        &hone_train::stages::REGISTRY.iter().map(|st| st.section_toml(&cfg.stages)).collect::<String>(),
        &section(&cfg.optim),
        &section(&cfg.sample),
        &section(&cfg.eval),
        &section(&cfg.world),
        &start_key,
        &feedback_hash,
    ]);
    // Stages of the rounds rolled back since the last kept one.
    let mut tried: Vec<Method> = Vec::new();
    let mut n = 1u32;
    while (n as usize) <= rounds {
        let step = format!("iterate-round-{n}");
        let k = key(&[&prev_key, &step]);
        let round_dir = iter_dir.join(format!("round-{n}"));
        let what = state.plan(&step, &k)?;
        if what == Plan::Skip && round_dir.join("round.json").is_file() {
            let rec = read_record(&round_dir)?;
            eprintln!("\n━━ round {n}: done earlier ({}), reused ━━", if rec.kept { "kept" } else { "rolled back" });
            if rec.method == "none" {
                break;
            }
            advance(&s, &mut current, &mut earlier, &mut tried, &rec, &round_dir)?;
            prev_key = k;
            n += 1;
            continue;
        }
        if what == Plan::Redo || what == Plan::Skip {
            eprintln!("\n━━ round {n}: configuration or inputs changed: running again ━━");
            for later in n.. {
                let d = iter_dir.join(format!("round-{later}"));
                if !d.exists() {
                    break;
                }
                move_aside(&d)?;
                for g in ["rule", "reward_model"] {
                    move_aside(&iter_dir.join(format!("round-{later}-{g}")))?;
                    move_aside(&iter_dir.join("dev-eval").join(format!("round-{later}-{g}")))?;
                }
                move_aside(&run.join("eval").join(format!("round-{later}")))?;
                move_aside(&iter_dir.join("dev-eval").join(format!("round-{later}")))?;
            }
        } else {
            eprintln!("\n━━ round {n}{} ━━", if what == (Plan::Run { resume: true }) { " (resuming)" } else { "" });
        }
        state.set(&step, &k, Status::Running)?;
        let t0 = Instant::now();
        hone_data::mem::reset_peak();
        let Some(rec) = round(&s, n, &current, &earlier, &tried, &round_dir, t0)? else {
            eprintln!("\nstopped during round {n}; run the same command to resume where it stopped");
            return Ok(false);
        };
        // A resumed round adds to its earlier attempts; a new one starts its count again.
        let resumed = what == (Plan::Run { resume: true });
        state.record_time(&step, t0.elapsed().as_secs_f64(), resumed)?;
        if let Some(peak) = hone_data::mem::peak_rss_mib() {
            state.record_peak(&step, peak, resumed)?;
        }
        state.set(&step, &k, Status::Done)?;
        eprintln!(
            "round {n}: {} in {:.0} s, peak resident memory {:.0} MiB",
            if rec.kept { "kept" } else { "rolled back" },
            t0.elapsed().as_secs_f64(),
            hone_data::mem::peak_rss_mib().unwrap_or(0.0)
        );
        if rec.method == "none" {
            break;
        }
        advance(&s, &mut current, &mut earlier, &mut tried, &rec, &round_dir)?;
        prev_key = k;
        n += 1;
    }
    if standalone {
        let files = hone_report::write_report(&run, &crate::pipeline::report_stages())?;
        crate::pipeline::print_headlines(&run)?;
        println!("report: {}", files.html.display());
    }
    Ok(true)
}

/// After a round: a kept round's model becomes the current one; a rolled-back round's stage is not
/// tried again on the same model.
fn advance(
    s: &Setup,
    current: &mut Model,
    earlier: &mut Vec<(String, Vec<TaskResult>)>,
    tried: &mut Vec<Method>,
    rec: &RoundRecord,
    round_dir: &Path,
) -> anyhow::Result<()> {
    if !rec.kept {
        tried.extend([Method::Sft, Method::Dpo, Method::Rl].into_iter().filter(|m| m.name() == rec.method));
        return Ok(());
    }
    tried.clear();
    let label = format!("round-{}", rec.round);
    let dir = round_dir.join(&rec.method);
    let dev = hone_eval::load_results(&s.run.join("iterate").join("dev-eval").join(&label))?;
    let next = Model { label: label.clone(), report_eval: s.run.join("eval").join(&label), dir, dev };
    let old = std::mem::replace(current, next);
    earlier.push((old.label, old.dev));
    Ok(())
}

fn read_record(round_dir: &Path) -> anyhow::Result<RoundRecord> {
    let p = round_dir.join("round.json");
    let t = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: {e}; delete the round folder to rerun it", p.display()))
}

/// The report's evaluation of a stage: the pipeline's `eval/<stage>/`, else one made here.
fn report_eval_of(s: &Setup, stage: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let pipeline = s.run.join("eval").join(stage);
    if pipeline.is_dir() && !hone_eval::load_results(&pipeline)?.is_empty() {
        return Ok(pipeline);
    }
    let out = s.run.join("iterate").join("report-eval").join(stage);
    measure::evaluate(s.cfg, dir, &s.report_specs, &out, &s.stop)?;
    Ok(out)
}

/// `<run>/feedback/preferences.jsonl` copied into `<run>/iterate/feedback-<hash>.jsonl`: the round
/// reads the snapshot, and its hash keys the rounds (new judgements redo them).
fn snapshot_feedback(run: &Path) -> anyhow::Result<(Option<PathBuf>, String)> {
    let src = run.join("feedback").join("preferences.jsonl");
    let bytes = match std::fs::read(&src) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "iterate.grader = feedback: {} does not exist; judge answers in `hone serve`'s compare view (it writes \
             that file), or set iterate.grader = rule",
            src.display()
        ),
        Err(e) => anyhow::bail!("{}: {e}", src.display()),
    };
    anyhow::ensure!(
        bytes.iter().any(|b| !b.is_ascii_whitespace()),
        "iterate.grader = feedback: {} is empty; judge answers in `hone serve`'s compare view first, or set \
         iterate.grader = rule",
        src.display()
    );
    let hash = hone_data::hash::sha256_hex(&bytes);
    let dst = run.join("iterate").join(format!("feedback-{}.jsonl", &hash[..12]));
    std::fs::create_dir_all(run.join("iterate"))?;
    hone_data::atomic::write_atomic(&dst, &bytes)?;
    Ok((Some(dst), hash))
}

/// Every prompt earlier rounds trained on (the data files of rounds before `n`).
fn earlier_prompts(iter_dir: &Path, n: u32) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for m in 1..n {
        for d in [format!("round-{m}"), format!("round-{m}-rule"), format!("round-{m}-reward_model")] {
            let data = iter_dir.join(d).join("data");
            for f in ["sft.jsonl", "preference.jsonl", "rl.jsonl"] {
                if data.join(f).is_file() {
                    out.extend(hone_world::draw::prompts_of(&data.join(f))?);
                }
            }
        }
    }
    Ok(out)
}

/// The SFT data files of the kept rounds before `n`.
fn kept_sft(iter_dir: &Path, n: u32) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for m in 1..n {
        let d = iter_dir.join(format!("round-{m}"));
        let f = d.join("data").join("sft.jsonl");
        if f.is_file() && read_record(&d)?.kept {
            out.push(f);
        }
    }
    Ok(out)
}

/// The (task, metric) pairs the gate watches: every task's headline, and every goal's metric.
fn watched(s: &Setup, dev: &[TaskResult]) -> Vec<(String, String)> {
    let mut w: Vec<(String, String)> =
        dev.iter().filter_map(|r| r.headline_metric().map(|m| (r.task.clone(), m.name.clone()))).collect();
    for g in &s.goals {
        let p = (g.task.clone(), g.metric.clone());
        if !w.contains(&p) {
            w.push(p);
        }
    }
    w
}

/// One round (or its resumption); `None` when stopped.
fn round(
    s: &Setup,
    n: u32,
    current: &Model,
    earlier: &[(String, Vec<TaskResult>)],
    tried: &[Method],
    round_dir: &Path,
    t0: Instant,
) -> anyhow::Result<Option<RoundRecord>> {
    let it = &s.cfg.iterate;
    let method = if it.grader == Grader::Feedback { Method::Dpo } else { it.method };
    let found = diagnose::diagnose(&current.dev, earlier, &s.goals, method, it.demonstrate_below)?;
    eprintln!("round {n}: {} weaknesses of {} on the development split", found.len(), current.label);
    for f in &found {
        let w = &f.weakness;
        eprintln!(
            "  {:<30} {:<18} {:.3} [{:.3}, {:.3}]  {}  → {}",
            w.task, w.metric, w.value, w.lo, w.hi, w.why, w.remedy
        );
    }
    let Some((method, targeted)) = diagnose::plan(&found, tried) else {
        let reason = if found.is_empty() {
            "nothing to train: every goal is met and nothing is worse than an earlier stage".to_string()
        } else if tried.is_empty() {
            "nothing to train: no weakness has data post-training can draw for it".to_string()
        } else {
            let t: Vec<&str> = tried.iter().map(|m| m.name()).collect();
            format!("nothing left to try: rounds of {} were rolled back, and no other stage fits", t.join(", "))
        };
        eprintln!("round {n}: {reason}; iteration ends here");
        let rec = RoundRecord {
            round: n,
            start: current.label.clone(),
            method: "none".into(),
            grader: it.grader.name().into(),
            branch: None,
            weaknesses: found.into_iter().map(|f| f.weakness).collect(),
            targeted: vec![],
            data: vec![],
            agreement: None,
            kept: false,
            reason,
            dev: vec![],
            report: vec![],
            seconds: t0.elapsed().as_secs_f64(),
        };
        write_record(round_dir, &rec)?;
        return Ok(Some(rec));
    };
    let names: Vec<&str> = targeted.iter().map(|f| f.weakness.task.as_str()).collect();
    eprintln!("round {n}: {} on {} (grader {})", method.name(), names.join(", "), it.grader.name());
    let targets: Vec<(String, String)> =
        targeted.iter().map(|f| (f.weakness.task.clone(), f.weakness.metric.clone())).collect();
    let mut rec = match attempt(s, n, current, method, it.grader, &targeted, &targets, round_dir, None, t0)? {
        Some(r) => r,
        None => return Ok(None),
    };
    rec.weaknesses = found.iter().map(|f| f.weakness.clone()).collect();
    if rec.kept {
        // The report's column: the kept round's results on the report's probes.
        let col = s.run.join("eval").join(format!("round-{n}"));
        for r in hone_eval::load_results(&round_dir.join("report-eval"))? {
            r.save(&col)?;
        }
    }
    write_record(round_dir, &rec)?;
    // Round 1 graded by the rules and by the reward model alone, side by side (never kept): the
    // round's own stage when it grades answers (DPO, RL), else DPO on pairs of the model's answers.
    if n == 1 && it.compare_graders {
        let m = if method == Method::Sft { Method::Dpo } else { method };
        for g in [Grader::Rule, Grader::RewardModel] {
            if m == method && g == it.grader {
                continue;
            }
            let dir = s.run.join("iterate").join(format!("round-1-{}", g.name()));
            if dir.join("round.json").is_file() {
                continue;
            }
            eprintln!("round 1 again as {}, graded by the {} alone (a comparison, not kept)", m.name(), g.name());
            let t1 = Instant::now();
            let Some(mut b) = attempt(s, n, current, m, g, &targeted, &targets, &dir, Some(g.name()), t1)? else {
                return Ok(None);
            };
            b.kept = false;
            write_record(&dir, &b)?;
        }
    }
    Ok(Some(rec))
}

fn write_record(dir: &Path, rec: &RoundRecord) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    hone_data::atomic::write_atomic(&dir.join("round.json"), serde_json::to_string_pretty(rec)?.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}/round.json: {e}", dir.display()))
}

/// Builds the data, trains, measures and gates one attempt of round `n` in `dir`; `None` when stopped.
#[allow(clippy::too_many_arguments)]
fn attempt(
    s: &Setup,
    n: u32,
    current: &Model,
    method: Method,
    grader: Grader,
    targeted: &[&diagnose::Found],
    targets: &[(String, String)],
    dir: &Path,
    branch: Option<&str>,
    t0: Instant,
) -> anyhow::Result<Option<RoundRecord>> {
    let cfg = s.cfg;
    let it = &cfg.iterate;
    let iter_dir = s.run.join("iterate");
    let rm = if grader == Grader::RewardModel || (it.compare_graders && method != Method::Sft) {
        Some(hone_train::reward_model::RewardModel::load(&s.run.join("reward"), &hone_model::device::select("cpu")?)?)
    } else {
        None
    };
    let inputs = data::Inputs {
        world: &cfg.world,
        world_dir: &s.world_dir,
        it,
        round: n,
        method,
        grader,
        targeted,
        tasks: current.dev.iter().map(|r| r.task.clone()).collect(),
        avoid: earlier_prompts(&iter_dir, n)?,
        kept_sft: kept_sft(&iter_dir, n)?,
        model: &current.dir,
        reward_model: rm.as_ref(),
        feedback: s.feedback.as_deref(),
        seed: cfg.run.seed.wrapping_add(n as u64),
    };
    let built = data::build(&inputs, &dir.join("data"))?;
    let parts: Vec<String> =
        built.parts.iter().map(|p| format!("{} {} {} ({})", p.count, p.family, p.kind, p.source)).collect();
    eprintln!("round {n} data: {}", parts.join(", "));
    if let Some(a) = &built.agreement {
        eprintln!(
            "round {n}: the reward model orders {:.0}% of {} answer pairs as the rules do",
            100.0 * a.rate,
            a.pairs
        );
    }
    if s.stop.load(Ordering::SeqCst) {
        return Ok(None);
    }
    // Train the round's stage from the current model.
    let mut st = cfg.stages.clone();
    let file = built.file.display().to_string();
    // SFT and DPO pass over the round's data once at most: a second pass over a small round's data
    // moved held-out bits per byte by +0.09 on the default run, just beyond the noise.
    let records = std::fs::read_to_string(&built.file).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())?;
    let once = |batch: usize| (records.div_ceil(batch.max(1)) as u64).max(1);
    let (stage, steps) = match method {
        Method::Sft => ("sft", it.sft_steps.min(once(st.sft.batch_size * st.sft.common.run.grad_accum))),
        Method::Dpo => ("dpo", it.dpo_steps.min(once(st.dpo.batch_size * st.dpo.common.run.grad_accum))),
        Method::Rl => ("rl", it.rl_steps),
        Method::Auto => unreachable!("chosen"),
    };
    match method {
        Method::Dpo => {
            st.dpo.max_pairs = 0;
            st.dpo.reference = String::new();
        }
        Method::Rl => {
            st.rl.kinds = Vec::new();
            st.rl.reference = String::new();
            if grader == Grader::RewardModel {
                st.rl.reward = hone_train::stages::rl::RewardKind::Model;
                st.rl.reward_model = s.run.join("reward").display().to_string();
            } else {
                st.rl.reward = hone_train::stages::rl::RewardKind::Verifier;
            }
            // Room for a JSON object or a list (the format probes allow 96 tokens).
            st.rl.max_new_tokens = st.rl.max_new_tokens.max(96);
        }
        _ => {}
    }
    let registered = hone_train::stages::find(stage).expect("registered");
    let common = registered.common_mut(&mut st).expect("a stage that starts from a model");
    common.init = current.dir.display().to_string();
    common.data = vec![file];
    common.eval_data = String::new();
    common.run.steps = steps;
    common.run.seed = n as u64;
    common.lr *= it.lr_scale;
    let mut ctx = cfg.stage_context(cfg.run.progress);
    ctx.run_dir = dir.to_path_buf();
    ctx.stop = Some(s.stop.clone());
    let r = registered.run(&st, &ctx)?;
    if r.summary.interrupted {
        return Ok(None);
    }
    let candidate = dir.join(stage);
    let label = match branch {
        None => format!("round-{n}"),
        Some(b) => format!("round-{n}-{b}"),
    };
    eprintln!("round {n}: measuring the new model on the development split");
    let Some(dev) = measure::evaluate(cfg, &candidate, &s.dev_specs, &iter_dir.join("dev-eval").join(&label), &s.stop)?
    else {
        return Ok(None);
    };
    let dev_effects = gate::effects(&current.dev, &dev, &watched(s, &current.dev), targets);
    let (kept, reason) = gate::decide(&dev_effects);
    let kept = kept && branch.is_none();
    eprintln!("round {n}: {reason}");
    print_effects(&dev_effects);
    // The report's probes: evaluated for the report only, after the decision.
    let Some(report) = measure::evaluate(cfg, &candidate, &s.report_specs, &dir.join("report-eval"), &s.stop)? else {
        return Ok(None);
    };
    let before = hone_eval::load_results(&current.report_eval)?;
    let report_watched: Vec<(String, String)> =
        before.iter().filter_map(|r| r.headline_metric().map(|m| (r.task.clone(), m.name.clone()))).collect();
    let report_effects = gate::effects(&before, &report, &report_watched, targets);
    Ok(Some(RoundRecord {
        round: n,
        start: current.label.clone(),
        method: method.name().into(),
        grader: grader.name().into(),
        branch: branch.map(str::to_string),
        weaknesses: vec![],
        targeted: targets.iter().map(|t| t.0.clone()).collect(),
        data: built.parts,
        agreement: built.agreement,
        kept,
        reason,
        dev: dev_effects,
        report: report_effects,
        seconds: t0.elapsed().as_secs_f64(),
    }))
}

fn print_effects(effects: &[Effect]) {
    for e in effects.iter().filter(|e| e.targeted || e.improved() || e.regressed()) {
        let mark = if e.improved() {
            "▲"
        } else if e.regressed() {
            "▼"
        } else {
            " "
        };
        eprintln!(
            "  {mark} {:<30} {:<18} {:.3} → {:.3}  Δ {:+.3} [{:+.3}, {:+.3}]{}",
            e.task,
            e.metric,
            e.before,
            e.after,
            e.delta,
            e.lo,
            e.hi,
            if e.targeted { "  (targeted)" } else { "" }
        );
    }
}
