//! Measuring a model on a set of tasks, once: the results stay in a folder with a `done` file, and a
//! rerun (or a resumed round) reads them back instead of evaluating again; an interrupted measurement
//! keeps the tasks it finished.

use crate::config::HoneConfig;
use hone_eval::{EvalOptions, TaskResult, TaskSpec};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

const DONE: &str = "done";

/// The results of `model` on `specs` in `out`, evaluating what is missing; `None` when stopped.
pub fn evaluate(
    cfg: &HoneConfig,
    model: &Path,
    specs: &[TaskSpec],
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<Option<Vec<TaskResult>>> {
    if out.join(DONE).is_file() {
        return Ok(Some(hone_eval::load_results(out)?));
    }
    let device = hone_model::device::select(&cfg.eval.device)?;
    let m = hone_model::load::load(model, &device)?;
    let mut eval = cfg.eval.clone();
    eval.format = "task".into();
    let opts = EvalOptions { eval, sample: cfg.sample.clone(), progress: cfg.run.progress };
    for spec in specs {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        if out.join(format!("{}.json", spec.name())).is_file() {
            continue;
        }
        let r = hone_eval::run_task(&m, spec, &opts)?;
        r.save(out)?;
    }
    hone_data::atomic::write_atomic(&out.join(DONE), model.display().to_string().as_bytes())?;
    Ok(Some(hone_eval::load_results(out)?))
}
