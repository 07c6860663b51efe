//! Data preparation end to end: every format into shards, the validation split's determinism,
//! resumption, skipping bad records, and reading the shards back.

mod common;

use common::*;
use hone_data::prepare::{DataConfig, prepare};
use hone_data::shards::{Dtype, Split, TokenData};
use std::path::Path;

fn inputs(dir: &Path) -> Vec<String> {
    let docs: Vec<String> =
        (0..300).map(|i| format!("Document number {i}: the city of Tesmir has {} bridges. 🦀", i * 7)).collect();
    let jsonl: String = docs[..100].iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect();
    let a = write(dir, "a.jsonl", jsonl.as_bytes());
    let gzt: String = docs[100..150].iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect();
    let b = gz(dir, "b.jsonl.gz", &gzt);
    let rows: Vec<Option<&str>> = docs[150..250].iter().map(|s| Some(s.as_str())).collect();
    let c = parquet(dir, "c.parquet", &rows, 40);
    let d = write(dir, "d.txt", docs[250..].join("\n\n").as_bytes());
    [a, b, c, d].iter().map(|p| p.display().to_string()).collect()
}

fn cfg(inputs: Vec<String>) -> DataConfig {
    // Tiny units so the corpus spans several of them.
    DataConfig { inputs, val_fraction: 0.2, split_on_blank_lines: true, ..Default::default() }
}

#[test]
fn prepares_every_format_and_reads_back_exactly() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let out = d.path().join("data");
    let r = prepare(&cfg(inputs(d.path())), &tok, "tok", &out, false).unwrap();
    let idx = &r.index;
    assert_eq!(idx.dtype, Dtype::U16);
    assert_eq!(idx.train.documents + idx.val.documents, 300);
    assert_eq!(idx.sources.iter().map(|s| s.documents).collect::<Vec<_>>(), vec![100, 50, 100, 50]);
    assert!(idx.val.documents > 30 && idx.val.documents < 95, "{}", idx.val.documents);
    assert!(idx.sources.iter().all(|s| s.sha256.len() == 64));

    let td = TokenData::open(&out).unwrap();
    td.verify().unwrap();
    let mut all = Vec::new();
    for split in [Split::Train, Split::Val] {
        let s = td.split(split);
        for i in 0..s.num_documents() {
            let doc = s.document(i).unwrap();
            assert_eq!(doc[0], tok.bos_id, "every document starts with BOS");
            assert!(!doc[1..].contains(&tok.bos_id));
            all.push(tok.decode(&doc[1..]).unwrap());
        }
        // The stream view agrees with the document view, across shard boundaries.
        let mut stream = vec![0u32; s.len() as usize];
        s.get(0, &mut stream);
        let joined: Vec<u32> = (0..s.num_documents()).flat_map(|i| s.document(i).unwrap()).collect();
        assert_eq!(stream, joined);
        let text_bytes: u64 =
            (0..s.num_documents()).map(|i| tok.decode(&s.document(i).unwrap()[1..]).unwrap().len() as u64).sum();
        assert_eq!(text_bytes, s.text_bytes());
    }
    all.sort();
    let mut want: Vec<String> =
        (0..300).map(|i| format!("Document number {i}: the city of Tesmir has {} bridges. 🦀", i * 7)).collect();
    want.sort();
    assert_eq!(all, want, "every document comes back exactly once");
}

#[test]
fn validation_split_is_deterministic_and_seeded() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let ins = inputs(d.path());
    let val_docs = |seed: u64, out: &str| -> Vec<Vec<u32>> {
        let out = d.path().join(out);
        prepare(&DataConfig { seed, ..cfg(ins.clone()) }, &tok, "tok", &out, false).unwrap();
        let td = TokenData::open(&out).unwrap();
        let v = td.split(Split::Val);
        (0..v.num_documents()).map(|i| v.document(i).unwrap()).collect()
    };
    let a = val_docs(1, "a");
    assert_eq!(a, val_docs(1, "b"));
    assert_ne!(a, val_docs(2, "c"));
}

#[test]
fn rerun_skips_finished_units_and_resumes_missing_ones() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let out = d.path().join("data");
    let c = cfg(inputs(d.path()));
    let first = prepare(&c, &tok, "tok", &out, false).unwrap();
    assert_eq!((first.units_written, first.units_reused), (4, 0));
    let index1 = std::fs::read(out.join("index.json")).unwrap();
    let again = prepare(&c, &tok, "tok", &out, false).unwrap();
    assert_eq!((again.units_written, again.units_reused), (0, 4));
    // An interruption after unit 1: its receipt was never written.
    std::fs::remove_file(out.join("unit-00002.json")).unwrap();
    std::fs::remove_file(out.join("unit-00003.json")).unwrap();
    std::fs::write(out.join("train-00002.bin"), b"torn").unwrap();
    let resumed = prepare(&c, &tok, "tok", &out, false).unwrap();
    assert_eq!((resumed.units_written, resumed.units_reused), (2, 2));
    assert_eq!(std::fs::read(out.join("index.json")).unwrap(), index1, "same result as an uninterrupted run");
    // A changed setting re-tokenizes everything.
    let changed = prepare(&DataConfig { seed: 99, ..c }, &tok, "tok", &out, false).unwrap();
    assert_eq!(changed.units_written, 4);
}

#[test]
fn units_cut_large_sources_and_stale_units_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let big: String = (0..3000).map(|i| format!("{{\"text\": \"{} {i}\"}}\n", "word ".repeat(100))).collect();
    let p = write(d.path(), "big.jsonl", big.as_bytes());
    let out = d.path().join("data");
    let c = DataConfig { inputs: vec![p.display().to_string()], unit_mb: 1, ..Default::default() };
    let r = prepare(&c, &tok, "tok", &out, false).unwrap();
    assert!(r.index.train.shards.len() >= 2, "{} units", r.index.train.shards.len());
    let small = write(d.path(), "small.jsonl", b"{\"text\": \"x\"}\n");
    prepare(&DataConfig { inputs: vec![small.display().to_string()], ..c }, &tok, "tok", &out, false).unwrap();
    let left: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.contains("00001")), "stale units removed: {left:?}");
}

#[test]
fn bad_records_stop_with_location_or_are_counted_with_skip_invalid() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let p = write(d.path(), "mixed.jsonl", b"{\"text\": \"good one\"}\n{\"text\": \"\"}\n{\"text\": \"  \\n \"}\n{oops\n{\"txt\": \"x\"}\n{\"text\": \"good two\"}\n");
    let c = DataConfig { inputs: vec![p.display().to_string()], ..Default::default() };
    let e = prepare(&c, &tok, "tok", &d.path().join("a"), false).unwrap_err().to_string();
    assert!(e.contains("mixed.jsonl:4") && e.contains("malformed JSON") && e.contains("--skip-invalid"), "{e}");
    let r = prepare(&DataConfig { skip_invalid: true, ..c }, &tok, "tok", &d.path().join("b"), false).unwrap();
    assert_eq!(r.index.train.documents + r.index.val.documents, 2);
    assert_eq!(r.index.skipped_empty, 2);
    assert_eq!(r.index.skipped_invalid, 2);
    assert!(r.skipped_examples[1].contains("mixed.jsonl:5") && r.skipped_examples[1].contains("no field `text`"));
}

#[test]
fn corrupted_shard_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let out = d.path().join("data");
    prepare(&cfg(inputs(d.path())), &tok, "tok", &out, false).unwrap();
    let f = out.join("train-00000.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    let e = TokenData::open(&out).unwrap().verify().unwrap_err().to_string();
    assert!(e.contains("train-00000.bin") && e.contains("corrupted"), "{e}");
    std::fs::write(&f, &bytes[..bytes.len() - 2]).unwrap();
    let e = TokenData::open(&out).err().unwrap().to_string();
    assert!(e.contains("train-00000.bin") && e.contains("truncated"), "{e}");
}
