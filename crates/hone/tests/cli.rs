//! The `hone` binary as a user meets it: help, config errors, and the tokenizer -> prepare -> inspect path.

use std::path::Path;
use std::process::{Command, Output};

fn hone(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone")).current_dir(dir).args(args).output().expect("runs")
}

fn ok(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed:\n{s}");
    s
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_explains_each_subcommand() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(&hone(d.path(), &["--help"]));
    assert!(out.contains("tokenizer") && out.contains("Train a tokenizer"), "{out}");
    assert!(out.contains("data") && out.contains("token shards"), "{out}");
    let out = ok(&hone(d.path(), &["data", "--help"]));
    assert!(out.contains("prepare") && out.contains("inspect"), "{out}");
}

#[test]
fn config_errors_are_precise() {
    let d = tempfile::tempdir().unwrap();
    let e = err(&hone(d.path(), &["tokenizer", "train", "x.txt", "--set", "tokenizer.vocab=3"]));
    assert!(e.contains("unknown key `tokenizer.vocab`") && e.contains("tokenizer.vocab_size"), "{e}");
    let e = err(&hone(d.path(), &["tokenizer", "train", "x.txt", "--set", "tokenizer.vocab_size=many"]));
    assert!(e.contains("expects an integer"), "{e}");
    let e = err(&hone(d.path(), &["tokenizer", "train", "missing.txt"]));
    assert!(e.contains("missing.txt") && e.contains("no such file"), "{e}");
    // `hone iterate` needs a finished run, and names its graders.
    let e = err(&hone(d.path(), &["iterate", "--preset", "quick"]));
    assert!(e.contains("built-in world") && e.contains("hone run"), "{e}");
    let e = err(&hone(d.path(), &["iterate", "--grader", "judge"]));
    assert!(e.contains("`judge`") && e.contains("reward_model"), "{e}");
}

#[test]
fn tokenizer_prepare_inspect_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let text: String = (0..400)
        .map(|i| format!("Paragraph {i}. The river Oss runs through Tesmir, capital of Varnok. 🦀 中文\n\n"))
        .collect();
    std::fs::write(d.path().join("corpus.txt"), text).unwrap();
    let out = ok(&hone(
        d.path(),
        &[
            "tokenizer",
            "train",
            "corpus.txt",
            "--vocab-size",
            "300",
            "--set",
            "data.split_on_blank_lines=true",
            "--set",
            "run.name=t",
        ],
    ));
    assert!(out.contains("300 tokens") && out.contains("400 documents"), "{out}");
    assert!(out.contains("tokenizer.vocab_size"), "the resolved config is printed: {out}");
    let saved = std::fs::read_to_string(d.path().join("runs/t/config.toml")).unwrap();
    assert!(saved.contains("vocab_size = 300") && saved.contains("# Vocabulary size"), "{saved}");

    let out = ok(&hone(d.path(), &["tokenizer", "encode", "-t", "runs/t/tokenizer.json", "--json", "Tesmir 🦀"]));
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert!(!ids.is_empty());

    let out = ok(&hone(
        d.path(),
        &[
            "data",
            "prepare",
            "corpus.txt",
            "--set",
            "data.split_on_blank_lines=true",
            "--set",
            "run.name=t",
            "--set",
            "data.val_fraction=0.1",
        ],
    ));
    assert!(out.contains("prepared 400 documents"), "{out}");
    assert!(out.contains("1 written, 0 already done"), "{out}");
    let again = ok(&hone(
        d.path(),
        &[
            "data",
            "prepare",
            "corpus.txt",
            "--set",
            "data.split_on_blank_lines=true",
            "--set",
            "run.name=t",
            "--set",
            "data.val_fraction=0.1",
        ],
    ));
    assert!(again.contains("0 written, 1 already done"), "{again}");

    let out = ok(&hone(d.path(), &["data", "inspect", "runs/t/data", "--verify"]));
    assert!(out.contains("all shards match") && out.contains("Paragraph"), "{out}");
}

#[test]
fn bad_jsonl_names_file_and_line_and_skip_invalid_counts() {
    let d = tempfile::tempdir().unwrap();
    let lines: String = (0..50).map(|i| format!("{{\"text\": \"line {i} about Tesmir\"}}\n")).collect();
    std::fs::write(d.path().join("c.jsonl"), lines + "{\"text\": 5}\n").unwrap();
    let e = err(&hone(d.path(), &["tokenizer", "train", "c.jsonl", "--vocab-size", "280"]));
    assert!(e.contains("c.jsonl:51") && e.contains("field `text` is a number"), "{e}");
    let out = ok(&hone(d.path(), &["tokenizer", "train", "c.jsonl", "--vocab-size", "280", "--skip-invalid"]));
    assert!(out.contains("1 invalid records"), "{out}");
}

#[test]
fn world_generate_is_deterministic_and_feeds_the_tokenizer() {
    let d = tempfile::tempdir().unwrap();
    ok(&hone(d.path(), &["world", "generate", "--seed", "1", "--out", "w1"]));
    ok(&hone(d.path(), &["world", "generate", "--seed", "1", "--out", "w2"]));
    ok(&hone(d.path(), &["world", "generate", "--seed", "2", "--out", "w3"]));
    let read = |p: &str| std::fs::read(d.path().join(p)).unwrap();
    for f in ["world.json", "sft.jsonl", "preference.jsonl", "corpus/news.jsonl"] {
        assert_eq!(read(&format!("w1/{f}")), read(&format!("w2/{f}")), "{f}");
    }
    assert_ne!(read("w1/world.json"), read("w3/world.json"));
    let out = ok(&hone(d.path(), &["tokenizer", "train", "w1/corpus", "--vocab-size", "1024"]));
    assert!(out.contains("1024 tokens"), "{out}");
    let out = ok(&hone(d.path(), &["data", "prepare", "w1/corpus"]));
    assert!(out.contains("prepared"), "{out}");
}

#[test]
fn world_draw_writes_new_items_of_the_kinds_asked_for() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(&hone(
        d.path(),
        &["world", "draw", "--sft", "format=40", "--pairs", "idk_unknown=20", "--rl", "fact=10", "--out", "r1"],
    ));
    assert!(out.contains("sft format: 40 of 40") && out.contains("pairs idk_unknown: 20 of 20"), "{out}");
    let lines = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap().lines().count();
    assert_eq!((lines("r1/sft.jsonl"), lines("r1/preference.jsonl"), lines("r1/rl.jsonl")), (40, 20, 10));
    // The next round, avoiding the first's prompts: other items, the same counts.
    ok(&hone(
        d.path(),
        &["world", "draw", "--round", "2", "--sft", "format=40", "--avoid", "r1/sft.jsonl", "--out", "r2"],
    ));
    let firsts: std::collections::BTreeSet<String> =
        std::fs::read_to_string(d.path().join("r1/sft.jsonl")).unwrap().lines().map(str::to_string).collect();
    let second = std::fs::read_to_string(d.path().join("r2/sft.jsonl")).unwrap();
    assert!(second.lines().all(|l| !firsts.contains(l)));
    let e = err(&hone(d.path(), &["world", "draw", "--pairs", "jokes=3", "--out", "x"]));
    assert!(e.contains("no kind `jokes`") && e.contains("idk_unknown"), "{e}");
    let e = err(&hone(d.path(), &["world", "draw", "--rl", "fact=many", "--out", "x"]));
    assert!(e.contains("not a count"), "{e}");
}
