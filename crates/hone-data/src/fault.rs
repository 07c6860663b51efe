//! Deterministic fault points for the fault-injection script (`scripts/fault_injection.sh`): named
//! places inside checkpoint, evaluation and report writes where a test can make the process die or
//! a write fail, to check that a rerun resumes to the same result. Inert unless the environment asks:
//!
//! - `HONE_FAULT=<point>[@<n>]` aborts the process (as a SIGKILL would: no unwinding, no cleanup) the
//!   `n`-th time (default the first) it reaches `<point>`;
//! - `HONE_FAULT_ENOSPC=<point>` makes the write at `<point>` fail with "no space left on device".
//!
//! [`POINTS`] lists every point, so the script can visit each one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every fault point, in the order a run reaches them.
pub const POINTS: &[&str] = &[
    "checkpoint-files",
    "checkpoint-manifest",
    "checkpoint-rename",
    "checkpoint-final",
    "eval-result",
    "pipeline-state",
    "report",
];

static HITS: AtomicU64 = AtomicU64::new(0);

/// Marks `point`; aborts the process if `HONE_FAULT` names it (and this is the hit it names).
pub fn point(point: &str) {
    let Ok(want) = std::env::var("HONE_FAULT") else { return };
    let (name, nth) = match want.split_once('@') {
        Some((n, k)) => (n.to_string(), k.parse::<u64>().unwrap_or(1)),
        None => (want.clone(), 1),
    };
    if name != point {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("HONE_FAULT: aborting at {point} (hit {nth})");
        std::process::abort();
    }
}

/// `Err(ENOSPC)` if `HONE_FAULT_ENOSPC` names `point`, for a write to fail as on a full disk.
pub fn io(point: &str) -> std::io::Result<()> {
    match std::env::var("HONE_FAULT_ENOSPC") {
        Ok(p) if p == point => Err(std::io::Error::from_raw_os_error(28)),
        _ => Ok(()),
    }
}
