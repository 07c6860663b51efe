//! Reading a task's records: JSONL (optionally gzipped) and JSON arrays through hone-data's readers,
//! a `.txt` file as one record `{"text": …}` (held-out text for bits per byte), and `.jsonl` members of `.tar` / `.tar.xz` archives (BLiMP ships so). Every record keeps where it
//! came from, so a bad one is named by file and line.

use anyhow::{Context, Result, bail};
use hone_data::error::{DataError, Location};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A JSON record and where it is.
#[derive(Debug, Clone)]
pub struct Record {
    /// The file (for archives: `archive/member`).
    pub file: PathBuf,
    pub loc: Location,
    /// A fallback id: `<member stem>-<line>` in archives, the 0-based record number otherwise.
    pub fallback_id: String,
    pub value: Value,
}

impl Record {
    /// An error about this record's `field`, with a fix.
    pub fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> DataError {
        DataError::record(&self.file, self.loc.clone(), message, hint)
    }
}

fn is_archive(path: &Path) -> bool {
    let n = path.to_string_lossy().to_lowercase();
    n.ends_with(".tar") || n.ends_with(".tar.xz") || n.ends_with(".txz")
}

/// Every record of `path`; for an archive, of its `.jsonl` members under `members` (a path prefix).
pub fn read_records(path: &Path, members: Option<&str>) -> Result<Vec<Record>> {
    if !path.exists() {
        bail!(DataError::file(
            path,
            "no such file",
            "check the task file's `source` (relative paths are relative to the task file)"
        ));
    }
    if is_archive(path) {
        return read_archive(path, members.unwrap_or(""));
    }
    if matches!(hone_data::read::Format::resolve("auto", path), Ok(hone_data::read::Format::Txt)) {
        // A plain-text file is one record, `{"text": <the file>}`: held-out text for bits per byte.
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, &e))?;
        let value = serde_json::json!({ "text": text });
        return Ok(vec![Record { file: path.to_path_buf(), loc: Location::File, fallback_id: "0".into(), value }]);
    }
    if matches!(hone_data::read::Format::resolve("auto", path), Ok(hone_data::read::Format::Parquet)) {
        let rows = hone_data::read::parquet_rows(path)?;
        return Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, (loc, value))| Record { file: path.to_path_buf(), loc, fallback_id: i.to_string(), value })
            .collect());
    }
    let it = hone_data::read::records(path, "auto", Default::default())?;
    let mut out = Vec::new();
    for (i, r) in it.enumerate() {
        let (loc, value) = r?;
        out.push(Record { file: path.to_path_buf(), loc, fallback_id: i.to_string(), value });
    }
    Ok(out)
}

fn read_archive(path: &Path, prefix: &str) -> Result<Vec<Record>> {
    let mut raw = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut raw)).map_err(|e| DataError::io(path, &e))?;
    let lower = path.to_string_lossy().to_lowercase();
    let tar_bytes = if lower.ends_with(".tar") {
        raw
    } else {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(&raw[..]), &mut out).map_err(|e| {
            DataError::file(path, format!("not a readable .xz file: {e}"), "re-download or re-pack the archive")
        })?;
        out
    };
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut members: Vec<(String, String)> = Vec::new();
    for e in archive.entries().with_context(|| format!("{}: not a tar archive", path.display()))? {
        let mut e = e.with_context(|| format!("{}: corrupted tar entry", path.display()))?;
        let name = e.path()?.to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") || !name.starts_with(prefix) {
            continue;
        }
        let mut text = String::new();
        e.read_to_string(&mut text).with_context(|| format!("{}/{name}: not UTF-8 text", path.display()))?;
        members.push((name, text));
    }
    if members.is_empty() {
        bail!(DataError::file(
            path,
            format!("no .jsonl member under `{prefix}`"),
            "set the task file's `members` to the folder inside the archive that holds the .jsonl files"
        ));
    }
    members.sort();
    let mut out = Vec::new();
    for (name, text) in members {
        let file = path.join(&name);
        let stem = Path::new(&name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut offset = 0u64;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let loc = Location::Line { line: i as u64 + 1, offset };
            offset += line.len() as u64;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| {
                DataError::record(&file, loc.clone(), format!("not valid JSON: {e}"), "fix or remove the line")
            })?;
            out.push(Record { file: file.clone(), loc, fallback_id: format!("{stem}-{}", i + 1), value });
        }
    }
    Ok(out)
}

/// The value at a dotted path (`question.stem`; numeric parts index arrays).
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A scalar as text (strings as they are, numbers and booleans printed).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Evenly spaced indices selecting `limit` of `n` items (all when `limit` is 0 or ≥ n), so a limited
/// run still covers every part of a set that is ordered by kind (BLiMP's paradigms, the world's tiers).
pub fn spread(n: usize, limit: usize) -> Vec<usize> {
    if limit == 0 || limit >= n {
        return (0..n).collect();
    }
    (0..limit).map(|i| i * n / limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_and_spread() {
        let v = json!({"question": {"stem": "Why?", "choices": [{"text": "a"}]}});
        assert_eq!(get(&v, "question.stem"), Some(&json!("Why?")));
        assert_eq!(get(&v, "question.choices.0.text"), Some(&json!("a")));
        assert_eq!(get(&v, "question.nope"), None);
        assert_eq!(spread(10, 0).len(), 10);
        assert_eq!(spread(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(spread(3, 5), vec![0, 1, 2]);
    }

    #[test]
    fn a_text_file_is_one_record_with_its_whole_text() {
        let dir = std::env::temp_dir().join(format!("hone-eval-txt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("val.txt");
        std::fs::write(&p, "First line.\n\nSecond, after a blank line.\n").unwrap();
        let recs = read_records(&p, None).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].value["text"], json!("First line.\n\nSecond, after a blank line.\n"));
        assert!(read_records(&dir.join("missing.txt"), None).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
