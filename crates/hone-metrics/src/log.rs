//! `metrics.jsonl` in the run directory: one JSON object per line (stage, step, and the numbers of a
//! training or evaluation step), flushed as written so a killed run keeps what it logged.

use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    file: File,
    stage: String,
}

impl MetricsLog {
    /// Opens `path` for appending lines tagged with `stage`.
    pub fn open(path: &Path, stage: &str) -> anyhow::Result<MetricsLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot open for appending: {e}", path.display()))?;
        Ok(MetricsLog { path: path.to_path_buf(), file, stage: stage.to_string() })
    }

    /// Appends `{"stage", "kind", "step", fields…}`.
    pub fn write(&mut self, kind: &str, step: u64, fields: &[(&str, f64)]) -> anyhow::Result<()> {
        let mut o = Map::new();
        o.insert("stage".into(), Value::from(self.stage.clone()));
        o.insert("kind".into(), Value::from(kind));
        o.insert("step".into(), Value::from(step));
        for (k, v) in fields {
            // JSON has no NaN/inf; a non-finite number is written as null.
            o.insert((*k).to_string(), serde_json::Number::from_f64(*v).map(Value::Number).unwrap_or(Value::Null));
        }
        let line = serde_json::to_string(&Value::Object(o))? + "\n";
        self.file.write_all(line.as_bytes()).map_err(|e| anyhow::anyhow!("{}: cannot append: {e}", self.path.display()))
    }
}

/// The `(step, value)` series of `field` for `stage` and `kind`. When a resumed run logged a step
/// twice, the later line wins.
pub fn read_series(path: &Path, stage: &str, kind: &str, field: &str) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut by_step = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["stage"] == stage
            && v["kind"] == kind
            && let (Some(s), Some(x)) = (v["step"].as_u64(), v[field].as_f64())
        {
            by_step.insert(s, x);
        }
    }
    by_step.into_iter().collect()
}
