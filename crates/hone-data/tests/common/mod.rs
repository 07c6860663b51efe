//! Helpers shared by the integration tests: small input files in every format.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn gz(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
    p
}

/// A Parquet file with a string column `text` (optional, may hold nulls) and an int64 column `n`,
/// in row groups of `group` rows.
pub fn parquet(dir: &Path, name: &str, rows: &[Option<&str>], group: usize) -> PathBuf {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema =
        Arc::new(parse_message_type("message doc { optional binary text (UTF8); required int64 n; }").unwrap());
    let p = dir.join(name);
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(std::fs::File::create(&p).unwrap(), schema, props).unwrap();
    for (gi, chunk) in rows.chunks(group.max(1)).enumerate() {
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let vals: Vec<ByteArray> = chunk.iter().flatten().map(|s| ByteArray::from(*s)).collect();
        let defs: Vec<i16> = chunk.iter().map(|r| r.is_some() as i16).collect();
        col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None).unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let ns: Vec<i64> = (0..chunk.len() as i64).map(|i| i + (gi * group) as i64).collect();
        col.typed::<Int64Type>().write_batch(&ns, None, None).unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
    p
}

pub fn tokenizer() -> hone_data::tokenizer::Tokenizer {
    let docs: Vec<String> =
        (0..50).map(|i| format!("The city of Tesmir {i} lies on the river Oss. Émile 🦀 日本")).collect();
    hone_data::tokenizer::train(
        docs.into_iter(),
        &hone_data::tokenizer::TokenizerConfig { vocab_size: 400, ..Default::default() },
    )
    .unwrap()
}
