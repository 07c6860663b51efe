//! Tests that need files a fresh clone lacks (the shared data folder, a downloaded model) skip
//! through here, so a skip is never silent: it prints `SKIPPED` with the reason, and when
//! `HONE_SKIP_LOG` names a file (`.ci/run` sets it) appends the same line there, so the CI output
//! counts the skipped cases beside the passed ones. Rust's test harness has no run-time skip, so
//! the case itself still shows as passed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Records that `case` was skipped because of `reason`.
pub fn record(case: &str, reason: &str) {
    let line = format!("SKIPPED {case}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("HONE_SKIP_LOG").filter(|v| !v.is_empty())
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&log)
    {
        // One write per line: test binaries run at once and append to the same file.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// `path` if it exists; otherwise records `case` as skipped (the file is absent) and returns `None`.
pub fn require(case: &str, path: &Path) -> Option<PathBuf> {
    if path.exists() {
        Some(path.to_path_buf())
    } else {
        record(case, &format!("{} is absent", path.display()));
        None
    }
}
