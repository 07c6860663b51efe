//! Plain-text reader: a file is one document, or with `split_on_blank_lines` one document per block
//! of text between blank lines. Invalid UTF-8 is reported with its byte offset in the file.

use super::counting::{ByteCounter, Counting};
use super::{Document, Documents};
use crate::error::{DataError, Location};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

pub(super) fn documents(path: &Path, split: bool, counter: ByteCounter) -> Result<Documents, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, &e))?;
    let mut reader = BufReader::with_capacity(1 << 20, Counting { inner: file, counter });
    if !split {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| DataError::io(path, &e))?;
        let doc = match String::from_utf8(bytes) {
            Ok(text) => Ok(Document { text, loc: Location::File }),
            Err(e) => {
                let off = e.utf8_error().valid_up_to() as u64;
                let line = 1 + e.as_bytes()[..off as usize].iter().filter(|&&b| b == b'\n').count() as u64;
                Err(DataError::utf8(path, Location::Line { line, offset: off }, off))
            }
        };
        return Ok(Box::new(std::iter::once(doc)));
    }
    Ok(Box::new(Blocks { path: path.to_path_buf(), reader, line: 0, offset: 0, done: false }))
}

struct Blocks<R> {
    path: PathBuf,
    reader: R,
    line: u64,
    offset: u64,
    done: bool,
}

impl<R: BufRead> Iterator for Blocks<R> {
    type Item = Result<Document, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut block: Vec<u8> = Vec::new();
        let mut start: Option<(u64, u64)> = None;
        let mut line = Vec::new();
        while !self.done {
            line.clear();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => self.done = true,
                Ok(n) => {
                    self.line += 1;
                    let at = self.offset;
                    self.offset += n as u64;
                    if line.iter().all(|b| b.is_ascii_whitespace()) {
                        if start.is_some() {
                            break;
                        }
                        continue;
                    }
                    start.get_or_insert((self.line, at));
                    block.extend_from_slice(&line);
                }
                Err(e) => return Some(Err(DataError::io(&self.path, &e))),
            }
        }
        let (line, offset) = start?;
        while block.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            block.pop();
        }
        Some(match String::from_utf8(block) {
            Ok(text) => Ok(Document { text, loc: Location::Line { line, offset } }),
            Err(e) => {
                let off = offset + e.utf8_error().valid_up_to() as u64;
                let bad_line =
                    line + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64;
                Err(DataError::utf8(&self.path, Location::Line { line: bad_line, offset: off }, off))
            }
        })
    }
}
