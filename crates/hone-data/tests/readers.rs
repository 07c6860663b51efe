//! Every input format, and every malformed-input error naming its file, line or row, and field.

mod common;

use common::*;
use hone_data::read::{ByteCounter, Document, TextOptions, documents, records};
use hone_data::{DataError, Location};
use std::path::Path;

fn read_all(p: &Path, opts: &TextOptions) -> Vec<Result<Document, DataError>> {
    documents(p, opts, ByteCounter::default()).unwrap().collect()
}

fn texts(v: &[Result<Document, DataError>]) -> Vec<String> {
    v.iter().map(|d| d.as_ref().unwrap().text.clone()).collect()
}

fn opts() -> TextOptions {
    TextOptions::default()
}

#[test]
fn txt_whole_file_and_blank_line_blocks() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "a.txt", "First para\nline two\n\n\n  \nSecond 🦀\n\nThird\n".as_bytes());
    assert_eq!(texts(&read_all(&p, &opts())), vec!["First para\nline two\n\n\n  \nSecond 🦀\n\nThird\n"]);
    let split = TextOptions { split_on_blank_lines: true, ..opts() };
    let docs = read_all(&p, &split);
    assert_eq!(texts(&docs), vec!["First para\nline two", "Second 🦀", "Third"]);
    assert_eq!(docs[1].as_ref().unwrap().loc, Location::Line { line: 6, offset: 25 });
}

#[test]
fn txt_invalid_utf8_reports_file_line_and_byte_offset() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "bad.txt", b"good line\nbad \xff byte\n");
    let e = read_all(&p, &opts()).pop().unwrap().unwrap_err().to_string();
    assert!(e.contains("bad.txt:2") && e.contains("invalid UTF-8 at byte offset 14"), "{e}");
    let e = read_all(&p, &TextOptions { split_on_blank_lines: true, ..opts() }).pop().unwrap().unwrap_err().to_string();
    assert!(e.contains("bad.txt:2") && e.contains("byte offset 14"), "{e}");
}

#[test]
fn jsonl_reads_text_field_and_names_bad_lines() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.jsonl",
        b"{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 2}\n{\"text\": 3}\n{\"body\": \"x\", \"title\": \"t\"}\n{\"text\": \"unterminated}\n[1]\n{\"text\": \"\xc3\x28\"}\n",
    );
    let v = read_all(&p, &opts());
    assert_eq!(texts(&v[..2]), vec!["one", "two"]);
    assert_eq!(v[1].as_ref().unwrap().loc, Location::Line { line: 3, offset: 17 });
    let errs: Vec<String> = v[2..].iter().map(|r| r.as_ref().unwrap_err().to_string()).collect();
    assert!(errs[0].contains("c.jsonl:4") && errs[0].contains("field `text` is a number"), "{}", errs[0]);
    assert!(
        errs[1].contains("c.jsonl:5") && errs[1].contains("no field `text` (fields present: body, title)"),
        "{}",
        errs[1]
    );
    assert!(errs[1].contains("data.text_field"), "the fix is named: {}", errs[1]);
    assert!(errs[2].contains("c.jsonl:6") && errs[2].contains("malformed JSON"), "{}", errs[2]);
    assert!(errs[3].contains("c.jsonl:7") && errs[3].contains("expected a JSON object"), "{}", errs[3]);
    assert!(errs[4].contains("c.jsonl:8") && errs[4].contains("invalid UTF-8"), "{}", errs[4]);
    // A different field name is configurable.
    let body = TextOptions { text_field: "body".into(), ..opts() };
    assert!(read_all(&p, &body).iter().any(|r| r.as_ref().is_ok_and(|d| d.text == "x")));
}

#[test]
fn jsonl_gz_and_json_array() {
    let d = tempfile::tempdir().unwrap();
    let p = gz(d.path(), "c.jsonl.gz", "{\"text\": \"a\"}\n{\"text\": \"b 日本\"}\n");
    let counter = ByteCounter::default();
    let v: Vec<_> = documents(&p, &opts(), counter.clone()).unwrap().collect();
    assert_eq!(texts(&v), vec!["a", "b 日本"]);
    assert_eq!(counter.get(), std::fs::metadata(&p).unwrap().len(), "progress counts compressed bytes");
    let p = write(d.path(), "c.json", br#"[{"text": "x"}, {"text": "y"}, 5]"#);
    let v = read_all(&p, &opts());
    assert_eq!(texts(&v[..2]), vec!["x", "y"]);
    assert!(v[2].as_ref().unwrap_err().to_string().contains("c.json: record 2"));
    let recs: Vec<_> = records(&p, "auto", ByteCounter::default()).unwrap().collect();
    assert_eq!(recs.len(), 3);
    let p = write(d.path(), "truncated.jsonl.gz", &std::fs::read(d.path().join("c.jsonl.gz")).unwrap()[..20]);
    let last = read_all(&p, &opts()).pop().unwrap();
    assert!(last.unwrap_err().to_string().contains("truncated.jsonl.gz"));
}

#[test]
fn parquet_reads_column_across_row_groups() {
    let d = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..700).map(|i| format!("doc {i} ✓")).collect();
    let rows: Vec<Option<&str>> = rows.iter().map(|s| Some(s.as_str())).collect();
    let p = parquet(d.path(), "d.parquet", &rows, 300);
    let v = read_all(&p, &opts());
    assert_eq!(v.len(), 700);
    assert_eq!(v[699].as_ref().unwrap().text, "doc 699 ✓");
    assert_eq!(v[650].as_ref().unwrap().loc, Location::Row { row: 50, row_group: 2 });
}

#[test]
fn parquet_errors_name_file_column_and_row() {
    let d = tempfile::tempdir().unwrap();
    let p = parquet(d.path(), "n.parquet", &[Some("a"), None, Some("c")], 10);
    let v = read_all(&p, &opts());
    assert_eq!(v[0].as_ref().unwrap().text, "a");
    let e = v[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("n.parquet: row 1 (row group 0)") && e.contains("null"), "{e}");
    assert_eq!(v[2].as_ref().unwrap().text, "c");

    let e = documents(&p, &TextOptions { text_field: "body".into(), ..opts() }, ByteCounter::default()).err().unwrap();
    assert!(e.to_string().contains("no column `body` (columns: text, n)"), "{e}");
    let e = documents(&p, &TextOptions { text_field: "n".into(), ..opts() }, ByteCounter::default()).err().unwrap();
    assert!(e.to_string().contains("column `n` has type INT64") && e.to_string().contains("n.parquet"), "{e}");
    let bad = write(d.path(), "junk.parquet", b"this is not parquet at all, just text");
    let e = documents(&bad, &opts(), ByteCounter::default()).err().unwrap().to_string();
    assert!(e.contains("junk.parquet") && e.contains("not a readable Parquet file"), "{e}");
    let bytes = std::fs::read(&p).unwrap();
    let cut = write(d.path(), "cut.parquet", &bytes[..bytes.len() / 2]);
    let e = documents(&cut, &opts(), ByteCounter::default()).err().unwrap().to_string();
    assert!(e.contains("cut.parquet"), "{e}");
}

#[test]
fn unknown_extension_and_missing_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "x.csv", b"a,b");
    let e = documents(&p, &opts(), ByteCounter::default()).err().unwrap().to_string();
    assert!(e.contains("x.csv") && e.contains("data.format"), "{e}");
    let e = hone_data::read::expand_inputs(&["/nonexistent/file.txt".into()]).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/file.txt"), "{e}");
}
