//! JSONL (plain or gzipped) and JSON-array readers yielding one JSON object per record.
//! JSONL is streamed line by line; a JSON array is parsed whole (such files are small instruction sets).

use super::counting::{ByteCounter, Counting};
use super::{Format, Records, json_kind};
use crate::error::{DataError, Location};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

pub(super) fn records(path: &Path, format: Format, counter: ByteCounter) -> Result<Records, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, &e))?;
    let counted = Counting { inner: file, counter };
    match format {
        Format::Json => json_array(path, counted),
        Format::JsonlGz => {
            let r: Box<dyn BufRead + Send> =
                Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(counted)));
            Ok(Box::new(JsonLines { path: path.to_path_buf(), reader: r, line: 0, offset: 0, buf: Vec::new() }))
        }
        _ => {
            let r: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, counted));
            Ok(Box::new(JsonLines { path: path.to_path_buf(), reader: r, line: 0, offset: 0, buf: Vec::new() }))
        }
    }
}

struct JsonLines {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    line: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl Iterator for JsonLines {
    type Item = Result<(Location, Value), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            let start = self.offset;
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    // A broken gzip stream or an I/O error ends the file: report where and stop.
                    let err = DataError {
                        recoverable: false,
                        ..DataError::record(
                            &self.path,
                            Location::Line { line: self.line + 1, offset: start },
                            format!("read error: {e}"),
                            "the file may be truncated or corrupted; re-download or re-compress it",
                        )
                    };
                    self.buf.clear();
                    // Make the iterator finish after reporting.
                    self.reader = Box::new(std::io::empty());
                    return Some(Err(err));
                }
            };
            self.line += 1;
            self.offset += n as u64;
            let loc = Location::Line { line: self.line, offset: start };
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t,
                Err(e) => return Some(Err(DataError::utf8(&self.path, loc, start + e.valid_up_to() as u64))),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Object(_)) => Ok((loc, v)),
                Ok(other) => Err(DataError::record(
                    &self.path,
                    loc,
                    format!("expected a JSON object, found {}", json_kind(&other)),
                    "each line of a JSONL file must be one object, e.g. {\"text\": \"...\"}",
                )),
                Err(e) => Err(DataError::record(
                    &self.path,
                    loc,
                    format!("malformed JSON at column {}: {e}", e.column()),
                    "fix the line (each line must be one complete JSON object), or pass --skip-invalid to drop it",
                )),
            });
        }
    }
}

fn json_array(path: &Path, mut r: impl Read) -> Result<Records, DataError> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|e| DataError::io(path, &e))?;
    if let Err(e) = std::str::from_utf8(&bytes) {
        return Err(DataError { recoverable: false, ..DataError::utf8(path, Location::File, e.valid_up_to() as u64) });
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| DataError {
        recoverable: false,
        ..DataError::record(
            path,
            Location::Line { line: e.line() as u64, offset: 0 },
            format!("malformed JSON at column {}: {e}", e.column()),
            "fix the file; a .json input must be one array of objects (use .jsonl for one object per line)",
        )
    })?;
    let Value::Array(items) = v else {
        return Err(DataError::file(
            path,
            format!("expected a JSON array of objects, found {}", json_kind(&v)),
            "a .json input must be an array of objects; use .jsonl for one object per line",
        ));
    };
    let path = path.to_path_buf();
    Ok(Box::new(items.into_iter().enumerate().map(move |(i, v)| {
        let loc = Location::Record { index: i as u64 };
        match v {
            Value::Object(_) => Ok((loc, v)),
            other => Err(DataError::record(
                &path,
                loc,
                format!("expected an object, found {}", json_kind(&other)),
                "every element of the array must be an object",
            )),
        }
    })))
}
