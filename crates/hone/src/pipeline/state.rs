//! What the pipeline remembers between invocations: one marker per step in `<run>/pipeline/`, holding
//! the key of the inputs and configuration the step ran with and whether it finished, plus
//! `<run>/timings.json` (wall seconds per step, summed over resumed attempts) and `<run>/memory.json`
//! (peak resident MiB per step, the largest over its attempts).
//!
//! A step is skipped when its marker says `done` with the same key; a marker with another key means
//! the step's inputs changed, so its old output is moved aside (`<stage>.replaced/`, keeping the most
//! recent replaced copy rather than deleting anything at once) and the step runs from scratch; a
//! `running` marker with the same key is an interrupted step, which resumes from its checkpoints.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub step: String,
    pub key: String,
    pub status: Status,
}

/// What to do with a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Finished earlier with the same key.
    Skip,
    /// Never started, or started with the same key and interrupted (resume).
    Run { resume: bool },
    /// Ran before with another key: its output is stale.
    Redo,
}

pub struct State {
    dir: PathBuf,
    timings: PathBuf,
    memory: PathBuf,
}

/// A short stable hash of the parts that determine a step's output.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

impl State {
    pub fn open(run_dir: &Path) -> anyhow::Result<State> {
        let dir = run_dir.join("pipeline");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(State { dir, timings: run_dir.join("timings.json"), memory: run_dir.join("memory.json") })
    }

    fn path(&self, step: &str) -> PathBuf {
        self.dir.join(format!("{step}.json"))
    }

    pub fn marker(&self, step: &str) -> anyhow::Result<Option<Marker>> {
        let p = self.path(step);
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| {
                format!("{}: unreadable pipeline marker; delete it to rerun the step", p.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", p.display())),
        }
    }

    pub fn plan(&self, step: &str, key: &str) -> anyhow::Result<Plan> {
        Ok(match self.marker(step)? {
            None => Plan::Run { resume: false },
            Some(m) if m.key != key => Plan::Redo,
            Some(m) if m.status == Status::Done => Plan::Skip,
            Some(_) => Plan::Run { resume: true },
        })
    }

    pub fn set(&self, step: &str, key: &str, status: Status) -> anyhow::Result<()> {
        let m = Marker { step: step.to_string(), key: key.to_string(), status };
        hone_data::fault::point("pipeline-state");
        hone_data::atomic::write_atomic(&self.path(step), serde_json::to_string_pretty(&m)?.as_bytes())
            .with_context(|| format!("writing {}", self.path(step).display()))
    }

    pub fn timings(&self) -> Vec<(String, f64)> {
        read_numbers(&self.timings)
    }

    /// Sets a step's wall time (`add`: to what earlier attempts spent).
    pub fn record_time(&self, step: &str, seconds: f64, add: bool) -> anyhow::Result<()> {
        let mut t = self.timings();
        match t.iter_mut().find(|(k, _)| k == step) {
            Some(x) => x.1 = if add { x.1 + seconds } else { seconds },
            None => t.push((step.to_string(), seconds)),
        }
        write_numbers(&self.timings, t)
    }

    /// Peak resident memory per step in MiB (`memory.json`).
    pub fn peaks(&self) -> Vec<(String, f64)> {
        read_numbers(&self.memory)
    }

    /// Records a step's peak resident memory: the largest over its attempts (`add`), else this one's.
    pub fn record_peak(&self, step: &str, mib: f64, add: bool) -> anyhow::Result<()> {
        let mut t = self.peaks();
        match t.iter_mut().find(|(k, _)| k == step) {
            Some(x) => x.1 = if add { x.1.max(mib) } else { mib },
            None => t.push((step.to_string(), mib)),
        }
        write_numbers(&self.memory, t)
    }
}

/// A JSON object of numbers per step; empty when the file is missing or unreadable (it is only
/// reported, never relied on).
fn read_numbers(path: &Path) -> Vec<(String, f64)> {
    let Ok(t) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&t) else { return Vec::new() };
    o.into_iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect()
}

fn write_numbers(path: &Path, t: Vec<(String, f64)>) -> anyhow::Result<()> {
    let o: serde_json::Map<String, serde_json::Value> =
        t.into_iter().map(|(k, v)| (k, serde_json::json!((v * 1000.0).round() / 1000.0))).collect();
    hone_data::atomic::write_atomic(path, serde_json::to_string_pretty(&o)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Moves a stale output out of the way, replacing an older moved copy.
pub fn move_aside(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(".replaced");
    let aside = PathBuf::from(aside);
    if aside.is_dir() {
        std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    } else if aside.exists() {
        std::fs::remove_file(&aside).with_context(|| format!("removing {}", aside.display()))?;
    }
    std::fs::rename(path, &aside).with_context(|| format!("moving {} to {}", path.display(), aside.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_markers_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.plan("sft", "k1").unwrap(), Plan::Run { resume: false });
        s.set("sft", "k1", Status::Running).unwrap();
        assert_eq!(s.plan("sft", "k1").unwrap(), Plan::Run { resume: true });
        s.set("sft", "k1", Status::Done).unwrap();
        assert_eq!(s.plan("sft", "k1").unwrap(), Plan::Skip);
        assert_eq!(s.plan("sft", "k2").unwrap(), Plan::Redo);
        assert_ne!(key(&["a", "bc"]), key(&["ab", "c"]));
        s.record_time("sft", 1.5, true).unwrap();
        s.record_time("sft", 2.0, true).unwrap();
        assert_eq!(s.timings(), vec![("sft".to_string(), 3.5)]);
        s.record_peak("sft", 300.0, true).unwrap();
        s.record_peak("sft", 250.0, true).unwrap();
        assert_eq!(s.peaks(), vec![("sft".to_string(), 300.0)]);
        s.record_peak("sft", 250.0, false).unwrap();
        assert_eq!(s.peaks(), vec![("sft".to_string(), 250.0)]);
    }
}
