//! Parquet reader for a string column (Hugging Face / FineWeb shards), using the column reader directly
//! so no Arrow is compiled in. Rows are read in batches within a row group, so memory is bounded by a
//! batch, not by the file or the row group.

use super::counting::ByteCounter;
use super::{Document, Documents};
use crate::error::{DataError, Location};
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

const BATCH: usize = 256;

/// Runs a call into the `parquet` crate, turning a panic into an error: a damaged file can make it
/// index out of bounds (a single flipped bit in a page header did, found by the reader fuzzer in
/// crates/hone-fuzz).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("the Parquet decoder failed on it ({})", msg.unwrap_or_else(|| "no message".into()))
    })
}

fn not_parquet(path: &Path, e: String) -> DataError {
    DataError::file(path, format!("not a readable Parquet file: {e}"), "check that the file is complete and is Parquet")
}

/// Opens `path` as Parquet (a decoder panic on a damaged footer becomes an error naming the file).
fn open(path: &Path) -> Result<SerializedFileReader<File>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, &e))?;
    guarded(|| SerializedFileReader::new(file))
        .map_err(|e| not_parquet(path, e))?
        .map_err(|e| not_parquet(path, e.to_string()))
}

pub(super) fn documents(path: &Path, column: &str, counter: ByteCounter) -> Result<Documents, DataError> {
    let reader = open(path)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
    let Some(col) = names.iter().position(|n| n == column) else {
        return Err(DataError::file(
            path,
            format!("no column `{column}` (columns: {})", names.join(", ")),
            "set the column with `--set data.text_field=<name>`",
        ));
    };
    let desc = schema.column(col);
    let is_string = desc.physical_type() == PhysicalType::BYTE_ARRAY
        && (matches!(desc.logical_type_ref(), Some(LogicalType::String) | None)
            || desc.converted_type() == ConvertedType::UTF8);
    if !is_string {
        return Err(DataError::file(
            path,
            format!(
                "column `{column}` has type {}{}, expected a string (BYTE_ARRAY / UTF8)",
                desc.physical_type(),
                desc.logical_type_ref().map(|l| format!(" ({l:?})")).unwrap_or_default()
            ),
            "point data.text_field at a string column",
        ));
    }
    let max_def = desc.max_def_level();
    Ok(Box::new(ParquetDocs {
        path: path.to_path_buf(),
        reader,
        col,
        max_def,
        group: 0,
        row_in_group: 0,
        column: None,
        pending: VecDeque::new(),
        counter,
        failed: false,
    }))
}

struct ParquetDocs {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    col: usize,
    max_def: i16,
    group: usize,
    row_in_group: u64,
    column: Option<ColumnReader>,
    pending: VecDeque<Result<Document, DataError>>,
    counter: ByteCounter,
    failed: bool,
}

impl ParquetDocs {
    fn fatal(&mut self, msg: String) -> Option<Result<Document, DataError>> {
        self.failed = true;
        Some(Err(DataError::file(&self.path, msg, "the file may be truncated or corrupted; re-download it")))
    }
}

impl Iterator for ParquetDocs {
    type Item = Result<Document, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(d) = self.pending.pop_front() {
                return Some(d);
            }
            if self.failed {
                return None;
            }
            if self.column.is_none() {
                if self.group >= self.reader.num_row_groups() {
                    return None;
                }
                let (reader, group, col) = (&self.reader, self.group, self.col);
                let opened = guarded(|| {
                    reader.get_row_group(group).and_then(|rg| {
                        let size = rg.metadata().compressed_size().max(0) as u64;
                        rg.get_column_reader(col).map(|c| (c, size))
                    })
                });
                match opened {
                    Ok(Ok((c, size))) => {
                        self.counter.add(size);
                        self.column = Some(c);
                    }
                    Ok(Err(e)) => return self.fatal(format!("row group {}: {e}", self.group)),
                    Err(e) => return self.fatal(format!("row group {}: {e}", self.group)),
                }
                self.row_in_group = 0;
            }
            let Some(ColumnReader::ByteArrayColumnReader(r)) = self.column.as_mut() else {
                unreachable!("column type checked when the file was opened")
            };
            let mut values: Vec<ByteArray> = Vec::with_capacity(BATCH);
            let mut defs: Vec<i16> = Vec::with_capacity(BATCH);
            let read = guarded(|| r.read_records(BATCH, Some(&mut defs), None, &mut values));
            let (records, _, _) = match read {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => return self.fatal(format!("row group {}: {e}", self.group)),
                Err(e) => {
                    self.column = None;
                    return self.fatal(format!("row group {}: {e}", self.group));
                }
            };
            if records == 0 {
                self.column = None;
                self.group += 1;
                continue;
            }
            let mut vals = values.into_iter();
            for i in 0..records {
                let loc = Location::Row { row: self.row_in_group + i as u64, row_group: self.group };
                let present = self.max_def == 0 || defs.get(i).is_some_and(|d| *d == self.max_def);
                let item = if !present {
                    Err(DataError::record(
                        &self.path,
                        loc,
                        "text is null",
                        "fill the row or pass --skip-invalid to drop it",
                    ))
                } else {
                    let bytes = vals.next().map(|b| b.data().to_vec()).unwrap_or_default();
                    match String::from_utf8(bytes) {
                        Ok(text) => Ok(Document { text, loc }),
                        Err(e) => Err(DataError::utf8(&self.path, loc, e.utf8_error().valid_up_to() as u64)),
                    }
                };
                self.pending.push_back(item);
            }
            self.row_in_group += records as u64;
        }
    }
}

/// Every row of a Parquet file as a JSON object (nested lists and structs included), for task
/// records in Hugging Face's Parquet exports (task sets: thousands of rows, collected); a panic of
/// the decoder on a damaged file becomes an error naming the file.
pub(super) fn json_rows(path: &Path) -> Result<Vec<(Location, serde_json::Value)>, DataError> {
    let reader = open(path)?;
    let not_parquet = |e: String| not_parquet(path, e);
    let rows = guarded(|| reader.get_row_iter(None)).map_err(not_parquet)?.map_err(|e| not_parquet(e.to_string()))?;
    let mut out = Vec::new();
    let mut it = rows;
    loop {
        let next = guarded(|| it.next()).map_err(not_parquet)?;
        let Some(row) = next else { break };
        let row = row.map_err(|e| not_parquet(e.to_string()))?;
        let loc = Location::Row { row: out.len() as u64, row_group: 0 };
        out.push((loc, row.to_json_value()));
    }
    Ok(out)
}
