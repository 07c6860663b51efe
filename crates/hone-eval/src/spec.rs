//! Finding tasks: a task file path, or a name resolved to a built-in task file: the world's probes
//! (`<world dir>/eval/*.toml`, by file stem or task name; `world` = all of them) and the files shipped
//! in the repository's `tasks/` folder (ARC-Easy, ARC-Challenge, BLiMP, GSM8K).

use crate::source::{Record, read_records};
use anyhow::{Context, Result, bail};
use hone_tasks::tasks::TaskFile;
use std::path::{Path, PathBuf};

/// A task file and where it is (its `source` is relative to it).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub file: TaskFile,
    pub path: PathBuf,
}

impl TaskSpec {
    pub fn load(path: &Path) -> Result<TaskSpec> {
        Ok(TaskSpec { file: TaskFile::load(path)?, path: path.to_path_buf() })
    }

    /// A task given in code, with `source` relative to `dir`.
    pub fn new(file: TaskFile, dir: &Path) -> Result<TaskSpec> {
        file.check()?;
        Ok(TaskSpec { path: dir.join(format!("{}.toml", file.stem())), file })
    }

    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The source file: `source` as written when absolute, else relative to the task file's folder.
    pub fn source_path(&self) -> PathBuf {
        let s = Path::new(&self.file.source);
        if s.is_absolute() { s.to_path_buf() } else { self.path.parent().unwrap_or(Path::new(".")).join(s) }
    }

    /// Every record of the source.
    pub fn records(&self) -> Result<Vec<Record>> {
        read_records(&self.source_path(), self.file.members.as_deref())
            .with_context(|| format!("task `{}` ({})", self.file.name, self.path.display()))
    }
}

/// The repository's `tasks/` folder as built (the shipped task files).
pub fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every task file (`*.toml`) in `dir`, in name order: a world's `eval/` or any folder of task files.
pub fn load_dir(dir: &Path) -> Result<Vec<TaskSpec>> {
    anyhow::ensure!(dir.is_dir(), "{}: no such folder of task files", dir.display());
    toml_files(dir).iter().map(|p| TaskSpec::load(p)).collect()
}

/// Resolves a task argument to task files: a path to a `.toml`, `world` (every world probe), a world
/// probe's name (`facts_mc` or `world_facts_mc`), or a shipped task (`arc_easy`, `blimp`, …), looked
/// for in `./tasks` and in the repository's `tasks/`.
pub fn resolve(arg: &str, world_dir: Option<&Path>) -> Result<Vec<TaskSpec>> {
    let p = Path::new(arg);
    if p.is_file() || arg.ends_with(".toml") {
        return Ok(vec![TaskSpec::load(p)?]);
    }
    let world_eval = world_dir.map(|w| w.join("eval"));
    if arg == "world" {
        let Some(dir) = world_eval.as_ref().filter(|d| d.is_dir()) else {
            bail!(
                "task `world`: no world task files found{}\n  fix: run `hone world generate` first, or pass --world DIR",
                world_eval.as_ref().map(|d| format!(" in {}", d.display())).unwrap_or_default()
            );
        };
        return toml_files(dir).iter().map(|p| TaskSpec::load(p)).collect();
    }
    let stem = arg.strip_prefix("world_").unwrap_or(arg);
    let mut candidates = Vec::new();
    if let Some(dir) = &world_eval {
        candidates.push(dir.join(format!("{stem}.toml")));
    }
    candidates.push(PathBuf::from("tasks").join(format!("{arg}.toml")));
    candidates.push(builtin_dir().join(format!("{arg}.toml")));
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(vec![TaskSpec::load(found)?]);
    }
    let mut known: Vec<String> = Vec::new();
    for dir in world_eval.iter().cloned().chain([PathBuf::from("tasks"), builtin_dir()]) {
        known.extend(toml_files(&dir).iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())));
    }
    known.sort();
    known.dedup();
    bail!(
        "unknown task `{arg}` (known: world, {})\n  fix: give a task file path, or one of these names{}",
        known.join(", "),
        if world_eval.is_none() { "; world probes need --world DIR or a run with a world" } else { "" }
    )
}
