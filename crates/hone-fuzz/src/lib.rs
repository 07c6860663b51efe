//! The harness that throws mutated files at hone's readers of outside bytes. A reader is a name, a
//! file extension, seed files (real, valid inputs) and a function that reads a path. Each case takes
//! a seed, applies a few mutations (bit flips, truncation, splices of another seed, huge numbers
//! where lengths are written, deep nesting, invalid UTF-8), writes the result to a file and reads it,
//! checking the properties every reader owes its users:
//!
//! - no panic;
//! - no hang: the case finishes within a time limit (a case three times over it ends the run, naming
//!   the input, since a hung reader cannot be stopped);
//! - no allocation a file merely claims: the heap's peak during the case stays within a budget of a
//!   fixed allowance plus a multiple of the input's size, measured by [`CountingAlloc`], which the
//!   test binary installs as its global allocator (an allocation beyond [`HARD_CAP`] is refused, so a
//!   claimed terabyte ends the run with the allocator's message instead of swapping the machine);
//! - an error names the file.
//!
//! Inputs that broke a property are kept under `corpus/<reader>/` and re-read first on every run (the
//! regression corpus). `HONE_FUZZ_CASES` sets the cases per reader (CI's default is small; a longer
//! search is `HONE_FUZZ_CASES=20000 cargo test --release -p hone-fuzz`). Readers added later (GGUF,
//! HTTP request bodies, feedback files) plug in as one more [`Reader`].

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// No single allocation may exceed this (a reader trusting a claimed length would ask for more).
pub const HARD_CAP: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak, and refusing single allocations over
/// [`HARD_CAP`].
pub struct CountingAlloc;

impl CountingAlloc {
    fn grow(n: usize) {
        let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's layout; the counters are side effects.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Self::grow(new_size);
        }
        p
    }
}

/// Live heap bytes now (0 unless [`CountingAlloc`] is the global allocator).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak measurement at the live size; returns it.
pub fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The peak since [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// One change to an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip bit `bit` of the byte at `at` (positions taken modulo the length).
    BitFlip { at: usize, bit: u8 },
    /// Keep the first `keep` bytes (modulo the length + 1).
    Truncate { keep: usize },
    /// Replace `len` bytes at `at` with a piece of another seed.
    Splice { at: usize, len: usize, from: usize, from_at: usize, from_len: usize },
    /// Overwrite the run of ASCII digits nearest `at` with a huge number (lengths, counts, offsets).
    HugeNumber { at: usize, digits: u8 },
    /// Insert `depth` opening brackets (JSON/TOML arrays, objects) at `at`.
    Nest { at: usize, depth: usize, brace: bool },
    /// Insert bytes that are not UTF-8 at `at`.
    InvalidUtf8 { at: usize },
    /// Duplicate the `len` bytes at `at` `times` times (long lines, long fields).
    Repeat { at: usize, len: usize, times: usize },
}

/// The strategy of one mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        4 => (pos, 0u8..8).prop_map(|(at, bit)| Mutation::BitFlip { at, bit }),
        1 => pos.prop_map(|keep| Mutation::Truncate { keep }),
        2 => (pos, 0usize..64, any::<usize>(), any::<usize>(), 0usize..256)
            .prop_map(|(at, len, from, from_at, from_len)| Mutation::Splice { at, len, from, from_at, from_len }),
        2 => (pos, 10u8..40).prop_map(|(at, digits)| Mutation::HugeNumber { at, digits }),
        1 => (pos, prop_oneof![Just(64usize), Just(1000), Just(100_000)], any::<bool>())
            .prop_map(|(at, depth, brace)| Mutation::Nest { at, depth, brace }),
        1 => pos.prop_map(|at| Mutation::InvalidUtf8 { at }),
        1 => (pos, 1usize..32, prop_oneof![Just(100usize), Just(10_000)])
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
    ]
}

/// `seed` with `muts` applied in order; `others` are the seeds a splice draws from.
pub fn apply(seed: &[u8], muts: &[Mutation], others: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        let n = b.len();
        match *m {
            Mutation::BitFlip { at, bit } => {
                if n > 0 {
                    b[at % n] ^= 1 << bit;
                }
            }
            Mutation::Truncate { keep } => b.truncate(keep % (n + 1)),
            Mutation::Splice { at, len, from, from_at, from_len } => {
                let src = &others[from % others.len().max(1)];
                let s = if src.is_empty() { 0 } else { from_at % src.len() };
                let piece = src[s..(s + from_len).min(src.len())].to_vec();
                let at = if n == 0 { 0 } else { at % n };
                let end = (at + len).min(n);
                b.splice(at..end, piece);
            }
            Mutation::HugeNumber { at, digits } => {
                if n == 0 {
                    continue;
                }
                let at = at % n;
                let start = (at..n).chain(0..at).find(|&i| b[i].is_ascii_digit());
                if let Some(s) = start {
                    let e = (s..n).find(|&i| !b[i].is_ascii_digit()).unwrap_or(n);
                    let huge: Vec<u8> =
                        std::iter::once(b'9').chain(std::iter::repeat_n(b'9', digits as usize)).collect();
                    b.splice(s..e, huge);
                }
            }
            Mutation::Nest { at, depth, brace } => {
                let at = if n == 0 { 0 } else { at % n };
                let open: &[u8] = if brace { b"{\"a\":" } else { b"[" };
                let ins: Vec<u8> = open.iter().copied().cycle().take(open.len() * depth).collect();
                b.splice(at..at, ins);
            }
            Mutation::InvalidUtf8 { at } => {
                let at = if n == 0 { 0 } else { at % n };
                b.splice(at..at, [0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
            }
            Mutation::Repeat { at, len, times } => {
                if n == 0 {
                    continue;
                }
                let at = at % n;
                let piece = b[at..(at + len).min(n)].to_vec();
                let ins: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * times).collect();
                b.splice(at..at, ins);
            }
        }
    }
    b
}

/// Reads a file; an error is returned as text, which must name the file.
pub type ReadFn = Box<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

/// A reader under test.
pub struct Reader {
    pub name: &'static str,
    /// The file name inputs are written to (its extension chooses the format).
    pub file_name: &'static str,
    /// Valid inputs the mutations start from.
    pub seeds: Vec<Vec<u8>>,
    pub read: ReadFn,
}

/// What one reader's run found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: usize,
    pub errors: usize,
    pub corpus: usize,
    /// The largest heap growth of a case, bytes.
    pub peak: usize,
}

/// Limits of a case.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Allowed heap growth: `fixed + per_input_byte * input length`.
    pub fixed: usize,
    pub per_input_byte: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { timeout: Duration::from_secs(10), fixed: 64 << 20, per_input_byte: 64 }
    }
}

/// The case in progress (its start and a description), watched by [`watchdog`].
static CURRENT: std::sync::Mutex<Option<(Instant, Duration, String)>> = std::sync::Mutex::new(None);

/// Starts (once) a thread that ends the process when a case runs past its time limit: a hung reader
/// cannot be stopped from outside, and waiting for it would hang the test run instead of failing it.
fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((at, limit, what)) = cur.as_ref()
                    && at.elapsed() > *limit * 3
                {
                    eprintln!(
                        "hone-fuzz: {what} still running after {:?}: a hang; the input is left there",
                        at.elapsed()
                    );
                    std::process::exit(101);
                }
            }
        });
    });
}

/// Reads `bytes` as `reader` once, checking every property; `Err` says which failed.
pub fn check_one(reader: &Reader, dir: &Path, bytes: &[u8], limits: Limits) -> Result<bool, String> {
    watchdog();
    let path = dir.join(reader.file_name);
    // The input stays on disk while it is read: a case that kills the process (a stack overflow
    // aborts; nothing can catch it) leaves it in the case folder, which the start of the run names.
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let base = reset_peak();
    let started = Instant::now();
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((started, limits.timeout, format!("{}: reading {}", reader.name, path.display())));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (reader.read)(&path)));
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let took = started.elapsed();
    let grew = peak_bytes().saturating_sub(base);
    let budget = limits.fixed + limits.per_input_byte * bytes.len();
    let result = match outcome {
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("panicked: {}", msg.unwrap_or_default()))
        }
        Ok(_) if took > limits.timeout => Err(format!("took {took:?} (limit {:?})", limits.timeout)),
        Ok(_) if grew > budget => {
            Err(format!("the heap grew by {grew} bytes for a {}-byte input (budget {budget})", bytes.len()))
        }
        Ok(Err(e)) if !e.contains(reader.file_name) => Err(format!("the error does not name the file: {e}")),
        Ok(r) => Ok(r.is_err()),
    };
    GREW.fetch_max(grew, Ordering::Relaxed);
    result
}

static GREW: AtomicUsize = AtomicUsize::new(0);

/// Runs the regression corpus of `reader` (files under `corpus_root/<name>/`), then `cases` mutated
/// inputs. A failing input is saved to `failures/<name>-<n>` with the property it broke.
pub fn fuzz(
    reader: &Reader,
    cases: u32,
    corpus_root: &Path,
    failures: &Path,
    limits: Limits,
) -> Result<Report, String> {
    let dir = tempfile_dir()?;
    eprintln!("{}: cases are written to {} while they run", reader.name, dir.display());
    GREW.store(0, Ordering::Relaxed);
    let mut report = Report::default();
    let corpus_dir = corpus_root.join(reader.name);
    if let Ok(rd) = std::fs::read_dir(&corpus_dir) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            if f.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            check_one(reader, &dir, &bytes, limits)
                .map_err(|e| format!("{}: corpus file {}: {e}", reader.name, f.display()))?;
            report.corpus += 1;
        }
    }
    // The seeds themselves must read cleanly, or the mutations start from nothing meaningful.
    for (i, seed) in reader.seeds.iter().enumerate() {
        match check_one(reader, &dir, seed, limits) {
            Ok(false) => {}
            Ok(true) => {
                let path = dir.join(reader.file_name);
                let why = (reader.read)(&path).err().unwrap_or_default();
                return Err(format!("{}: seed {i} is rejected, so it cannot seed mutations: {why}", reader.name));
            }
            Err(e) => return Err(format!("{}: seed {i}: {e}", reader.name)),
        }
    }
    let seeds = reader.seeds.clone();
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 1..4));
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let errors = std::cell::Cell::new(0usize);
    let outcome = runner.run(&strategy, |(s, muts)| {
        let bytes = apply(&seeds[s], &muts, &seeds);
        match check_one(reader, &dir, &bytes, limits) {
            Ok(was_err) => {
                errors.set(errors.get() + usize::from(was_err));
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(e)),
        }
    });
    report.cases = cases as usize;
    report.errors = errors.get();
    report.peak = GREW.load(Ordering::Relaxed);
    match outcome {
        Ok(()) => Ok(report),
        Err(TestError::Fail(why, (s, muts))) => {
            let bytes = apply(&seeds[s], &muts, &seeds);
            std::fs::create_dir_all(failures).ok();
            let n = std::fs::read_dir(failures).map(|r| r.count()).unwrap_or(0);
            let out = failures.join(format!("{}-{n}", reader.name));
            let _ = std::fs::write(&out, &bytes);
            Err(format!(
                "{}: {why} (seed {s}, mutations {muts:?}); the input is saved as {}: fix the reader, then move the \
                 file into crates/hone-fuzz/corpus/{}/ so it is read on every run",
                reader.name,
                out.display(),
                reader.name
            ))
        }
        Err(e) => Err(format!("{}: {e}", reader.name)),
    }
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let d = std::env::temp_dir().join(format!("hone-fuzz-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_the_input_as_described() {
        let seed = b"{\"len\": 12, \"text\": \"abc\"}".to_vec();
        let huge = apply(&seed, &[Mutation::HugeNumber { at: 0, digits: 20 }], &[]);
        assert_eq!(String::from_utf8(huge).unwrap(), "{\"len\": 999999999999999999999, \"text\": \"abc\"}");
        assert_eq!(apply(&seed, &[Mutation::Truncate { keep: 5 }], &[]), b"{\"len".to_vec());
        let nested = apply(&seed, &[Mutation::Nest { at: 0, depth: 3, brace: false }], &[]);
        assert!(nested.starts_with(b"[[[{"));
        let bad = apply(&seed, &[Mutation::InvalidUtf8 { at: 1 }], &[]);
        assert!(std::str::from_utf8(&bad).is_err());
        let flipped = apply(&seed, &[Mutation::BitFlip { at: 0, bit: 0 }], &[]);
        assert_eq!(flipped[0], b'{' ^ 1);
        let long = apply(&seed, &[Mutation::Repeat { at: 0, len: 2, times: 100 }], &[]);
        assert_eq!(long.len(), seed.len() + 200);
        let spliced =
            apply(&seed, &[Mutation::Splice { at: 0, len: 1, from: 0, from_at: 0, from_len: 3 }], &[b"XYZ".to_vec()]);
        assert!(spliced.starts_with(b"XYZ\"len"));
    }
}
