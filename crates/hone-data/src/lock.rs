//! Locks that keep two processes from writing one run at once: an exclusive lock on the run
//! directory for commands that train or rebuild it (`hone run`, the stages, data preparation), and a
//! narrow lock on one folder for commands that only add files there (`hone eval` writing
//! `eval/<stage>/`), so those can run beside training.
//!
//! Both are OS advisory locks (`flock` on Unix, `LockFileEx` on Windows, through `std::fs::File::lock`)
//! held on an open file: the OS drops them when the process exits in any way, SIGKILL included, so a
//! crashed run never leaves a stale lock behind. The run lock's file, `<run>/.lock`, also records who
//! holds it (pid, command line, start time) so a refused second writer can say so.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The file inside a run directory whose lock marks the run as being written.
pub const RUN_LOCK: &str = ".lock";

/// An exclusive lock on a run directory, released when dropped or when the process ends.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `run_dir` (created if missing) for `command`, or fails at once, naming the
    /// process that holds it.
    pub fn acquire(run_dir: &Path, command: &str) -> Result<RunLock> {
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("creating the run directory {}", run_dir.display()))?;
        let path = run_dir.join(RUN_LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                bail!(
                    "{} is in use by another hone process ({}); wait for it to finish or stop it, or use another \
                     run directory (--set run.name=...)",
                    run_dir.display(),
                    if holder.is_empty() { "it has not written its name yet".to_string() } else { holder.to_string() }
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        // Who holds it, for the message a second writer gets. Written in place: the lock is on this
        // open file, so replacing the file would leave a second writer locking a different one.
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let who = format!("pid {}, `{command}`, started {}\n", std::process::id(), utc(started));
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(who.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Empty the holder line before letting go; the file itself stays (removing it could race with
        // a process that just opened it and is about to lock it).
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (the civil-from-days conversion of the proleptic
/// Gregorian calendar).
/// Now as RFC 3339 in UTC, `2026-12-02T16:12:23Z` (for records people and tools read back).
pub fn rfc3339_now() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let u = utc(s);
    format!("{}T{}Z", &u[..10], &u[11..19])
}

pub(crate) fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The command line of this process, for [`RunLock::acquire`].
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Runs `f` holding an exclusive lock on the folder of `path` (waiting for other holders): for
/// writers that only add to or replace files in one folder, such as evaluation results beside a
/// running training. The folder itself is locked, so no lock file sits among the results (on
/// systems that cannot open a folder as a file, a hidden `.lock` file in it is locked instead).
pub fn with_file_lock<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = match File::open(&dir) {
        Ok(f) if cfg!(unix) => f,
        _ => {
            let p = dir.join(RUN_LOCK);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)
                .with_context(|| format!("opening the lock {}", p.display()))?
        }
    };
    file.lock().with_context(|| format!("locking {}", dir.display()))?;
    let out = f();
    let _ = file.unlock();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run, "hone run --preset quick").unwrap();
        let err = RunLock::acquire(&run, "hone sft").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("hone run --preset quick") && err.contains("in use"), "{err}");
        drop(first);
        let again = RunLock::acquire(&run, "hone sft").unwrap();
        assert!(std::fs::read_to_string(again.path()).unwrap().contains("`hone sft`"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_227_943), "2026-12-02 16:12:23 UTC");
    }

    #[test]
    fn file_locks_serialise_writers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("eval").join("task.json");
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (target, counter) = (target.clone(), counter.clone());
                std::thread::spawn(move || {
                    with_file_lock(&target, || {
                        // Inside the lock no other writer runs: the counter goes 0 -> 1 -> 0.
                        assert_eq!(counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Nothing but results in the folder.
        assert_eq!(std::fs::read_dir(dir.path().join("eval")).unwrap().count(), 0);
    }
}
