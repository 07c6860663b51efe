//! Readers for the files users bring: plain text, JSONL (optionally gzipped), JSON arrays and Parquet.
//! Every reader streams (memory is bounded by one record, or one batch of Parquet rows, not the file),
//! reports how many input bytes it has consumed (for progress bars), and turns every problem into a
//! [`DataError`] naming the file, the line or row, and the field.

mod counting;
mod json;
mod parquet;
mod txt;

pub use counting::ByteCounter;

use crate::error::{DataError, Location};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A document of text and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub text: String,
    pub loc: Location,
}

/// A stream of documents from one file.
pub type Documents = Box<dyn Iterator<Item = Result<Document, DataError>> + Send>;

/// A stream of JSON records (objects) from one file.
pub type Records = Box<dyn Iterator<Item = Result<(Location, Value), DataError>> + Send>;

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A file is a document (or one per blank-line-separated block).
    Txt,
    /// One JSON object per line.
    Jsonl,
    /// Gzipped JSONL.
    JsonlGz,
    /// A JSON array of objects (small instruction sets are often shipped this way).
    Json,
    /// Apache Parquet with a string column.
    Parquet,
}

impl Format {
    /// The format named by `name` (`auto` infers it from the file name).
    pub fn resolve(name: &str, path: &Path) -> Result<Format, DataError> {
        let n = path.file_name().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
        let by_name = match name {
            "auto" => None,
            "txt" | "text" => Some(Format::Txt),
            "jsonl" if n.ends_with(".gz") => Some(Format::JsonlGz),
            "jsonl" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            other => {
                return Err(DataError::file(
                    path,
                    format!("unknown input format `{other}`"),
                    "use one of auto, txt, jsonl, json, parquet",
                ));
            }
        };
        if let Some(f) = by_name {
            return Ok(f);
        }
        if n.ends_with(".jsonl.gz") || n.ends_with(".json.gz") || n.ends_with(".ndjson.gz") {
            Ok(Format::JsonlGz)
        } else if n.ends_with(".jsonl") || n.ends_with(".ndjson") {
            Ok(Format::Jsonl)
        } else if n.ends_with(".json") {
            Ok(Format::Json)
        } else if n.ends_with(".parquet") {
            Ok(Format::Parquet)
        } else if n.ends_with(".txt") || n.ends_with(".md") || n.ends_with(".text") {
            Ok(Format::Txt)
        } else {
            Err(DataError::file(
                path,
                "cannot tell the format from the file name",
                "name it .txt, .jsonl, .jsonl.gz, .json or .parquet, or set data.format",
            ))
        }
    }
}

/// How to read text documents.
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// `auto`, `txt`, `jsonl`, `json` or `parquet`.
    pub format: String,
    /// The JSON field or Parquet column holding the text.
    pub text_field: String,
    /// For `.txt`: one document per blank-line-separated block instead of one per file.
    pub split_on_blank_lines: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self { format: "auto".into(), text_field: "text".into(), split_on_blank_lines: false }
    }
}

/// Opens `path` as a stream of text documents. `counter` is advanced by the input bytes consumed.
pub fn documents(path: &Path, opts: &TextOptions, counter: ByteCounter) -> Result<Documents, DataError> {
    match Format::resolve(&opts.format, path)? {
        Format::Txt => txt::documents(path, opts.split_on_blank_lines, counter),
        Format::Parquet => parquet::documents(path, &opts.text_field, counter),
        f @ (Format::Jsonl | Format::JsonlGz | Format::Json) => {
            let field = opts.text_field.clone();
            let p = path.to_path_buf();
            let records = json::records(path, f, counter)?;
            Ok(Box::new(records.map(move |r| r.and_then(|(loc, v)| text_field(&p, loc, &v, &field)))))
        }
    }
}

/// Every row of a Parquet file as a JSON object (task records from Hugging Face Parquet exports).
pub fn parquet_rows(path: &Path) -> Result<Vec<(Location, Value)>, DataError> {
    parquet::json_rows(path)
}

/// Opens a JSONL / JSON file as a stream of JSON objects (for instruction and preference data).
pub fn records(path: &Path, format: &str, counter: ByteCounter) -> Result<Records, DataError> {
    match Format::resolve(format, path)? {
        f @ (Format::Jsonl | Format::JsonlGz | Format::Json) => json::records(path, f, counter),
        _ => Err(DataError::file(
            path,
            "records (objects with fields) can only be read from JSONL or JSON files here",
            "convert the file to JSONL (one JSON object per line)",
        )),
    }
}

fn text_field(file: &Path, loc: Location, v: &Value, field: &str) -> Result<Document, DataError> {
    match v.get(field) {
        Some(Value::String(s)) => Ok(Document { text: s.clone(), loc }),
        Some(other) => Err(DataError::record(
            file,
            loc,
            format!("field `{field}` is {}, expected a string", json_kind(other)),
            "fix the record, or pass --skip-invalid to drop it",
        )),
        None => {
            let present: Vec<&str> = v.as_object().map(|o| o.keys().map(|k| k.as_str()).collect()).unwrap_or_default();
            Err(DataError::record(
                file,
                loc,
                format!("no field `{field}` (fields present: {})", present.join(", ")),
                format!("set the field name with `--set data.text_field=<name>`{}", suggest(&present)),
            ))
        }
    }
}

fn suggest(present: &[&str]) -> String {
    match present.iter().find(|k| ["content", "text", "document", "body", "story"].contains(k)) {
        Some(k) => format!(" (perhaps `{k}`)"),
        None => String::new(),
    }
}

/// "a number", "an object", … for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Expands inputs: files are kept, directories contribute the supported files in them (sorted, recursive).
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for i in inputs {
        let p = PathBuf::from(i);
        if p.is_dir() {
            let mut found = Vec::new();
            walk(&p, &mut found).map_err(|e| DataError::io(&p, &e))?;
            found.sort();
            if found.is_empty() {
                return Err(DataError::file(
                    &p,
                    "directory has no .txt/.jsonl/.jsonl.gz/.json/.parquet files",
                    "point at the files",
                ));
            }
            out.extend(found);
        } else if p.is_file() {
            out.push(p);
        } else {
            return Err(DataError::file(&p, "no such file or directory", "check the path"));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if Format::resolve("auto", &p).is_ok() {
            out.push(p);
        }
    }
    Ok(())
}
