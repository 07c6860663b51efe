//! Errors about input data, worded for the person who owns the file: every error names the file, the
//! line or row, and the field, and says what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in an input a record sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A whole file (a `.txt` document).
    File,
    /// A 1-based line of a text or JSONL file, and the byte offset of its start (of the decompressed
    /// stream for `.gz`).
    Line { line: u64, offset: u64 },
    /// A 0-based row of a Parquet file, in its row group.
    Row { row: u64, row_group: usize },
    /// A 0-based record of a JSON array file.
    Record { index: u64 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Line { line, .. } => write!(f, ":{line}"),
            Location::Row { row, row_group } => write!(f, ": row {row} (row group {row_group})"),
            Location::Record { index } => write!(f, ": record {index}"),
        }
    }
}

/// A problem with one record or one file of input.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{loc}: {message}{}", hint.as_ref().map(|h| format!("\n  fix: {h}")).unwrap_or_default())]
pub struct DataError {
    pub file: PathBuf,
    pub loc: Location,
    pub message: String,
    pub hint: Option<String>,
    /// True when the problem is with one record and the rest of the file can still be read, so
    /// `--skip-invalid` may count it and go on; false when the whole file is unreadable.
    pub recoverable: bool,
}

impl DataError {
    pub fn record(file: &Path, loc: Location, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), loc, message: message.into(), hint: Some(hint.into()), recoverable: true }
    }

    pub fn file(file: &Path, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            loc: Location::File,
            message: message.into(),
            hint: Some(hint.into()),
            recoverable: false,
        }
    }

    pub fn io(file: &Path, err: &std::io::Error) -> Self {
        Self::file(file, format!("cannot read: {err}"), "check that the file exists and is readable")
    }

    /// Invalid UTF-8 at `offset` bytes into the file (or decompressed stream).
    pub fn utf8(file: &Path, loc: Location, offset: u64) -> Self {
        Self::record(
            file,
            loc,
            format!("invalid UTF-8 at byte offset {offset}"),
            "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or pass --skip-invalid to drop the record",
        )
    }
}
