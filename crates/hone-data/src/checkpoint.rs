//! The checkpoint protocol of `design.md`: a checkpoint is a folder `step-NNNNNNNN/` of files plus a
//! `MANIFEST` listing each file's sha256. It is written into a hidden temporary folder, every file is
//! fsynced, the MANIFEST is written last, the folder is renamed into place and the parent fsynced. A
//! folder without a complete MANIFEST is ignored on resume; a file whose hash does not match its
//! MANIFEST line is an error naming the file. The last `keep_last` checkpoints are kept, plus the one
//! that `final` links to (the stage's output; `final` is a folder to any tool that opens one).

use crate::atomic::{sync_dir, write_atomic};
use crate::hash::sha256_hex;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "MANIFEST";
pub const FINAL_MARKER: &str = "final";

/// Points `final` at checkpoint `name` with a relative symbolic link, so that `<stage>/final` is
/// itself a checkpoint folder other tools open (`from_pretrained(".../sft/final")`); the link is made
/// beside it and renamed over it (atomic). Where there are no links, a file holding the name.
fn mark_final(root: &Path, name: &str) -> Result<()> {
    let path = root.join(FINAL_MARKER);
    #[cfg(unix)]
    {
        let tmp = root.join(format!(".final.tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp).with_context(|| format!("linking {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming into {}", path.display()))?;
        sync_dir(root)?;
        Ok(())
    }
    #[cfg(not(unix))]
    write_atomic(&path, name.as_bytes())
}

/// The checkpoint `final` names: the link's target, or the name written in the file (runs from
/// before `final` became a link, and systems without links).
fn final_name(root: &Path) -> Option<String> {
    let path = root.join(FINAL_MARKER);
    if let Ok(target) = fs::read_link(&path) {
        return target.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    fs::read_to_string(&path).ok().map(|s| s.trim().to_string())
}

/// The checkpoints of one stage.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
    keep_last: usize,
}

/// One complete checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub step: u64,
    files: BTreeMap<String, String>,
}

impl CheckpointDir {
    pub fn new(stage_dir: &Path, keep_last: usize) -> Self {
        Self { root: stage_dir.to_path_buf(), keep_last: keep_last.max(1) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn name(step: u64) -> String {
        format!("step-{step:08}")
    }

    /// Writes a checkpoint of `files` (name, bytes) for `step`; with `is_final` it becomes the stage's output.
    pub fn save(&self, step: u64, files: Vec<(String, Vec<u8>)>, is_final: bool) -> Result<PathBuf> {
        fs::create_dir_all(&self.root).with_context(|| format!("creating {}", self.root.display()))?;
        let dest = self.root.join(Self::name(step));
        let tmp = self.root.join(format!(".{}.tmp-{}", Self::name(step), std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let mut manifest = String::new();
        for (name, bytes) in &files {
            if name.contains('/') || name == MANIFEST {
                bail!("invalid checkpoint file name `{name}`");
            }
            let path = tmp.join(name);
            // A full disk fails here, before anything is renamed: the previous checkpoint stays whole.
            let written = crate::fault::io("checkpoint-files")
                .and_then(|_| fs::File::create(&path))
                .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
            if let Err(e) = written {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e).with_context(|| {
                    format!(
                        "writing the checkpoint of step {step} ({}); the previous checkpoint is intact, free space \
                         and run the same command to resume",
                        path.display()
                    )
                });
            }
            manifest.push_str(&format!("{}  {name}\n", sha256_hex(bytes)));
        }
        crate::fault::point("checkpoint-files");
        write_atomic(&tmp.join(MANIFEST), manifest.as_bytes())?;
        sync_dir(&tmp)?;
        crate::fault::point("checkpoint-manifest");
        if dest.exists() {
            // A checkpoint of the same step from an interrupted earlier attempt: replace it.
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
        sync_dir(&self.root)?;
        crate::fault::point("checkpoint-rename");
        if is_final {
            mark_final(&self.root, &Self::name(step))?;
            crate::fault::point("checkpoint-final");
        }
        self.prune()?;
        Ok(dest)
    }

    /// All complete checkpoints, oldest first. Incomplete ones (no MANIFEST, or a listed file missing)
    /// are skipped: they are what a crash during a write leaves.
    pub fn list(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.root) else { return Ok(out) };
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok()) else { continue };
            if let Some(files) = read_manifest(&e.path()) {
                out.push(Checkpoint { dir: e.path(), step, files });
            }
        }
        out.sort_by_key(|c| c.step);
        Ok(out)
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        Ok(self.list()?.pop())
    }

    /// The checkpoint the `final` marker names, if the stage has finished.
    pub fn final_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let Some(name) = final_name(&self.root) else { return Ok(None) };
        Ok(self.list()?.into_iter().find(|c| c.dir.file_name().is_some_and(|n| *n == *name)))
    }

    fn prune(&self) -> Result<()> {
        let all = self.list()?;
        let keep_final = final_name(&self.root);
        let n = all.len();
        for c in all.into_iter().take(n.saturating_sub(self.keep_last)) {
            let name = c.dir.file_name().map(|s| s.to_string_lossy().into_owned());
            if keep_final != name {
                fs::remove_dir_all(&c.dir)?;
            }
        }
        // Temporary folders from crashed writes of this or earlier processes.
        for e in fs::read_dir(&self.root)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".step-")
                && name.contains(".tmp-")
                && !name.ends_with(&format!(".tmp-{}", std::process::id()))
            {
                let _ = fs::remove_dir_all(e.path());
            }
            // A link to `final` left by a crash before its rename.
            if name.starts_with(".final.tmp-") && !name.ends_with(&format!(".tmp-{}", std::process::id())) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

/// The file in a stage's folder holding what its data loading left out (records cut to the length
/// limit, dropped, skipped), which the report shows beside the stage.
pub const DATA_NOTES: &str = "data_notes.json";

/// Above this share of its records cut, dropped or skipped, a stage's numbers carry a warning in
/// the report: a few percent of over-long records is ordinary, a quarter means the stage trained
/// on a different distribution than the files hold.
pub const LEFT_OUT_WARN: f64 = 0.02;

/// What a stage's data loading read and left out, and the lines it printed about it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataNotes {
    /// The lines printed before training (counts, cuts, skips).
    pub lines: Vec<String>,
    /// Records read (training and held out, bad ones included).
    #[serde(default)]
    pub records: usize,
    /// Records cut to the length limit (kept, shorter).
    #[serde(default)]
    pub cut: usize,
    /// Records dropped (nothing left to train on) or skipped as bad.
    #[serde(default)]
    pub dropped: usize,
}

impl DataNotes {
    /// Notes of a stage that reads no records (or does not count them).
    pub fn lines(lines: Vec<String>) -> DataNotes {
        DataNotes { lines, ..DataNotes::default() }
    }

    /// Share of the records cut or dropped (0 when none were counted).
    pub fn left_out_share(&self) -> f64 {
        if self.records == 0 { 0.0 } else { (self.cut + self.dropped) as f64 / self.records as f64 }
    }

    /// The lines worth showing in the report: all of them when something was cut, dropped or
    /// skipped, none otherwise.
    pub fn left_out_lines(&self) -> &[String] {
        if self.cut + self.dropped > 0 { &self.lines } else { &[] }
    }

    /// The warning the report puts beside the stage's numbers, when more than [`LEFT_OUT_WARN`] of
    /// its records were cut or dropped.
    pub fn warning(&self) -> Option<String> {
        let share = self.left_out_share();
        (share > LEFT_OUT_WARN).then(|| {
            let mut parts = Vec::new();
            if self.cut > 0 {
                parts.push(format!("{} cut", self.cut));
            }
            if self.dropped > 0 {
                parts.push(format!("{} dropped or skipped", self.dropped));
            }
            format!("⚠ {:.0}% of {} records left out or cut ({})", share * 100.0, self.records, parts.join(", "))
        })
    }
}

/// Writes `notes` into `<stage_dir>/data_notes.json`, replacing earlier ones.
pub fn save_data_notes(stage_dir: &Path, notes: &DataNotes) -> Result<()> {
    fs::create_dir_all(stage_dir).with_context(|| format!("creating {}", stage_dir.display()))?;
    let path = stage_dir.join(DATA_NOTES);
    write_atomic(&path, serde_json::to_string_pretty(notes)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The notes [`save_data_notes`] wrote (empty when the file is absent; a plain list of lines, as
/// earlier versions wrote, reads as lines without counts).
pub fn read_data_notes(stage_dir: &Path) -> Result<DataNotes> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Notes(DataNotes),
        Lines(Vec<String>),
    }
    let path = stage_dir.join(DATA_NOTES);
    match fs::read_to_string(&path) {
        Ok(t) => match serde_json::from_str(&t).with_context(|| {
            format!("{}: not data notes (an object with `lines`, or a list of strings)", path.display())
        })? {
            Stored::Notes(n) => Ok(n),
            // Earlier versions kept only lines: the warnings among them count as left out (how many
            // records is not known, so the report lists them without a share).
            Stored::Lines(lines) => {
                let warnings = lines.iter().filter(|l| l.contains("warning") || l.contains("skipped")).count();
                Ok(DataNotes { lines, records: 0, cut: 0, dropped: warnings })
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DataNotes::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Checks every file a checkpoint folder's MANIFEST lists against its sha256: `Ok(true)` when all
/// match, `Ok(false)` when the folder has no MANIFEST (a folder from elsewhere, e.g. a Hugging Face
/// download), an error naming the first missing or corrupted file otherwise. Every load of a
/// checkpoint goes through it (sampling, evaluation, a stage's start), not only resume, so a damaged
/// file never seeds the next stage silently.
pub fn verify(dir: &Path) -> Result<bool> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    for (i, line) in text.lines().enumerate() {
        let Some((want, name)) = line.split_once("  ") else {
            bail!("{}, line {}: not `<sha256>  <file>`; the checkpoint is damaged", path.display(), i + 1);
        };
        let file = dir.join(name);
        let bytes = fs::read(&file).with_context(|| {
            format!("{}: listed in {} but cannot be read; the checkpoint is incomplete", file.display(), path.display())
        })?;
        let got = sha256_hex(&bytes);
        if got != want {
            bail!(
                "{}: corrupted (sha256 {got}, MANIFEST says {want}); use an earlier checkpoint of this stage or \
                 rerun the stage",
                file.display()
            );
        }
    }
    Ok(true)
}

fn read_manifest(dir: &Path) -> Option<BTreeMap<String, String>> {
    let text = fs::read_to_string(dir.join(MANIFEST)).ok()?;
    let mut files = BTreeMap::new();
    for line in text.lines() {
        let (hash, name) = line.split_once("  ")?;
        if !dir.join(name).is_file() {
            return None;
        }
        files.insert(name.to_string(), hash.to_string());
    }
    Some(files)
}

impl Checkpoint {
    /// Reads a file of the checkpoint, checking it against the MANIFEST.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.dir.join(name);
        let Some(want) = self.files.get(name) else {
            bail!("{}: not in the checkpoint's MANIFEST (files: {})", p.display(), self.file_names().join(", "));
        };
        let bytes = fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        let got = sha256_hex(&bytes);
        if &got != want {
            bail!(
                "{}: corrupted (sha256 {got}, MANIFEST says {want}); delete the folder {} to resume from the \
                 checkpoint before it",
                p.display(),
                self.dir.display()
            );
        }
        Ok(bytes)
    }

    pub fn file_names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tag: &str) -> Vec<(String, Vec<u8>)> {
        vec![("model.bin".into(), tag.as_bytes().to_vec()), ("state.json".into(), b"{}".to_vec())]
    }

    #[test]
    fn save_list_prune_and_final() {
        let d = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(d.path(), 2);
        for s in [10, 20, 30] {
            c.save(s, files(&s.to_string()), s == 20).unwrap();
        }
        c.save(40, files("40"), false).unwrap();
        let steps: Vec<u64> = c.list().unwrap().iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![20, 30, 40], "last 2 plus the final");
        assert_eq!(c.latest().unwrap().unwrap().read("model.bin").unwrap(), b"40");
        assert_eq!(c.final_checkpoint().unwrap().unwrap().step, 20);
        // `final` is itself the checkpoint folder, for tools that open a folder.
        assert_eq!(std::fs::read(d.path().join(FINAL_MARKER).join("model.bin")).unwrap(), b"20");
        c.save(50, files("50"), true).unwrap();
        assert_eq!(std::fs::read(d.path().join(FINAL_MARKER).join("model.bin")).unwrap(), b"50");
        // A run from before the link: `final` a file holding the name.
        std::fs::remove_file(d.path().join(FINAL_MARKER)).unwrap();
        std::fs::write(d.path().join(FINAL_MARKER), "step-00000040\n").unwrap();
        assert_eq!(c.final_checkpoint().unwrap().unwrap().step, 40);
    }

    #[test]
    fn verify_checks_every_listed_file() {
        let d = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(d.path(), 3);
        let dir = c.save(1, files("weights"), false).unwrap();
        assert!(verify(&dir).unwrap());
        // One flipped bit in a listed file: an error naming it.
        let mut bytes = fs::read(dir.join("model.bin")).unwrap();
        bytes[0] ^= 1;
        fs::write(dir.join("model.bin"), &bytes).unwrap();
        let err = verify(&dir).unwrap_err().to_string();
        assert!(err.contains("model.bin") && err.contains("corrupted"), "{err}");
        // A listed file gone: named too.
        fs::remove_file(dir.join("state.json")).unwrap();
        fs::write(dir.join("model.bin"), b"weights").unwrap();
        let err = format!("{:#}", verify(&dir).unwrap_err());
        assert!(err.contains("state.json"), "{err}");
        // A folder without a MANIFEST (from elsewhere) is not checked.
        let plain = d.path().join("hf");
        fs::create_dir_all(&plain).unwrap();
        assert!(!verify(&plain).unwrap());
    }

    #[test]
    fn incomplete_checkpoint_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(d.path(), 3);
        c.save(1, files("one"), false).unwrap();
        // What a crash leaves: a folder without MANIFEST, and one whose MANIFEST names a missing file.
        fs::create_dir_all(d.path().join("step-00000002")).unwrap();
        fs::write(d.path().join("step-00000002/model.bin"), b"partial").unwrap();
        let p3 = d.path().join("step-00000003");
        fs::create_dir_all(&p3).unwrap();
        fs::write(p3.join(MANIFEST), "abc  model.bin\n").unwrap();
        assert_eq!(c.latest().unwrap().unwrap().step, 1);
    }

    #[test]
    fn corrupted_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(d.path(), 3);
        let p = c.save(5, files("five"), false).unwrap();
        fs::write(p.join("model.bin"), b"fiv3").unwrap();
        let e = c.latest().unwrap().unwrap().read("model.bin").unwrap_err().to_string();
        assert!(e.contains("model.bin") && e.contains("corrupted"), "{e}");
        let e = c.latest().unwrap().unwrap().read("nope").unwrap_err().to_string();
        assert!(e.contains("not in the checkpoint"), "{e}");
    }
}
