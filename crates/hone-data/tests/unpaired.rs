//! The unpaired (KTO) reader: TRL's prompt/completion/label records in both forms, preference pairs of
//! every format split into a desirable and an undesirable example, errors that name the file, line and
//! field, and, when ../shared/data is present, a real HH-RLHF file read both ways.

mod common;

use hone_data::chat::Message;
use hone_data::pairs::read_pairs;
use hone_data::unpaired::{Unpaired, read_unpaired};
use std::path::{Path, PathBuf};

fn texts(m: &[Message]) -> Vec<String> {
    m.iter().map(|m| format!("{}:{}", m.role, m.content)).collect()
}

/// A JSONL file of `lines`, read with `skip_invalid` off.
fn read(dir: &Path, lines: &[&str]) -> Result<Vec<Unpaired>, String> {
    let p = common::write(dir, "u.jsonl", (lines.join("\n") + "\n").as_bytes());
    read_unpaired(&[p], "auto", false).map(|l| l.items).map_err(|e| e.to_string())
}

#[test]
fn trl_strings_and_message_lists() {
    let dir = tempfile::tempdir().unwrap();
    let got = read(
        dir.path(),
        &[
            r#"{"prompt": "Capital of Oss?", "completion": "Tesmir.", "label": true}"#,
            r#"{"prompt": "Capital of Oss?", "completion": "Paris.", "label": false}"#,
            r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                "completion": [{"role": "assistant", "content": "Hello."}], "label": false}"#
                .replace('\n', " ")
                .as_str(),
        ],
    )
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        (texts(&got[0].prompt), texts(&got[0].completion)),
        (vec!["user:Capital of Oss?".into()], vec!["assistant:Tesmir.".into()])
    );
    assert_eq!(got.iter().map(|u| u.label).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(texts(&got[1].completion), ["assistant:Paris."]);
    assert_eq!(texts(&got[2].prompt), ["system:Be brief.", "user:hi"]);
    assert_eq!(texts(&got[2].completion), ["assistant:Hello."]);
    assert!(got[2].origin().ends_with("u.jsonl:3"), "{}", got[2].origin());
}

#[test]
fn a_missing_or_non_boolean_label_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let e = read(
        dir.path(),
        &[r#"{"prompt": "q", "completion": "a", "label": true}"#, r#"{"prompt": "q", "completion": "a"}"#],
    )
    .unwrap_err();
    assert!(e.contains("u.jsonl:2") && e.contains("no field `label`"), "{e}");
    assert!(e.contains("true") && e.contains("false") && e.contains("fields present: completion, prompt"), "{e}");
    for (label, kind) in [("1", "a number"), ("\"true\"", "a string"), ("null", "null")] {
        let e = read(dir.path(), &[&format!(r#"{{"prompt": "q", "completion": "a", "label": {label}}}"#)]).unwrap_err();
        assert!(e.contains("u.jsonl:1") && e.contains(&format!("field `label` is {kind}")), "{e}");
        assert!(e.contains("must be true (desirable) or false (undesirable)"), "{e}");
        assert!(e.contains("a JSON boolean, not a string or number"), "the fix says how to write it: {e}");
    }
}

#[test]
fn hh_rlhf_pairs_become_two_examples() {
    let dir = tempfile::tempdir().unwrap();
    let got = read(
        dir.path(),
        &[r#"{"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: well", "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: badly"}"#],
    )
    .unwrap();
    assert_eq!(got.len(), 2);
    for u in &got {
        assert_eq!(texts(&u.prompt), ["user:hi", "assistant:hello", "user:how?"]);
        assert!(u.origin().ends_with("u.jsonl:1"), "both halves name the pair's line: {}", u.origin());
    }
    assert_eq!((texts(&got[0].completion), got[0].label), (vec!["assistant:well".into()], true));
    assert_eq!((texts(&got[1].completion), got[1].label), (vec!["assistant:badly".into()], false));
}

#[test]
fn trl_and_llamafactory_pairs_become_two_examples() {
    let dir = tempfile::tempdir().unwrap();
    let got = read(
        dir.path(),
        &[
            r#"{"prompt": "q", "chosen": "good", "rejected": "bad"}"#,
            r#"{"prompt": [{"role": "user", "content": "q2"}], "chosen": [{"role": "assistant", "content": "g2"}], "rejected": [{"role": "assistant", "content": "b2"}]}"#,
            r#"{"conversations": [{"from": "human", "value": "q3"}], "chosen": {"from": "gpt", "value": "g3"}, "rejected": {"from": "gpt", "value": "b3"}}"#,
        ],
    )
    .unwrap();
    let flat: Vec<(Vec<String>, Vec<String>, bool)> =
        got.iter().map(|u| (texts(&u.prompt), texts(&u.completion), u.label)).collect();
    let want = |p: &str, c: &str, l: bool| (vec![format!("user:{p}")], vec![format!("assistant:{c}")], l);
    assert_eq!(
        flat,
        [
            want("q", "good", true),
            want("q", "bad", false),
            want("q2", "g2", true),
            want("q2", "b2", false),
            want("q3", "g3", true),
            want("q3", "b3", false)
        ]
    );
}

#[test]
fn unknown_records_list_their_fields_and_the_accepted_formats() {
    let dir = tempfile::tempdir().unwrap();
    let e = read(dir.path(), &[r#"{"text": "x", "score": 3}"#]).unwrap_err();
    assert!(e.contains("u.jsonl:1") && e.contains("fields present: score, text"), "{e}");
    assert!(e.contains("TRL unpaired") && e.contains("HH-RLHF") && e.contains("LLaMA-Factory"), "{e}");
    let e = read(dir.path(), &[r#"{"prompt": "q", "completion": "", "label": true}"#]).unwrap_err();
    assert!(e.contains("`completion` has no assistant text"), "{e}");
}

#[test]
fn skip_invalid_counts_bad_records_and_drops_pairs_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"prompt": "q", "completion": "a", "label": true}"#,
        r#"{"prompt": "q", "completion": "a", "label": "yes"}"#,
        r#"{"prompt": "q", "chosen": "good", "rejected": "bad"}"#,
        r#"{"prompt": "q", "chosen": "same", "rejected": "same"}"#,
        r#"{"prompt": "q", "chosen": "good", "rejected": " "}"#,
        r#"{"text": "x"}"#,
        r#"not json"#,
        r#"{"prompt": "q", "completion": "b", "label": false}"#,
    ];
    let p = common::write(dir.path(), "u.jsonl", (lines.join("\n") + "\n").as_bytes());
    let got = read_unpaired(std::slice::from_ref(&p), "auto", true).unwrap();
    assert_eq!(got.items.len(), 4);
    assert_eq!(got.skipped, 5, "{:?}", got.skip_examples);
    assert_eq!(got.items.iter().filter(|u| u.label).count(), 2);
    assert!(got.skip_examples[0].contains("u.jsonl:2"), "{:?}", got.skip_examples);
    assert!(got.skip_examples[2].contains("u.jsonl:5") && got.skip_examples[2].contains("`rejected`"));
    let e = read_unpaired(&[p], "auto", false).unwrap_err().to_string();
    assert!(e.contains("u.jsonl:2"), "without skip_invalid the first bad record stops the read: {e}");
}

#[test]
fn json_array_files_name_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write(
        dir.path(),
        "u.json",
        br#"[{"prompt": "q", "completion": "a", "label": false}, {"prompt": "q", "completion": "a"}]"#,
    );
    let e = read_unpaired(&[p], "auto", false).unwrap_err().to_string();
    assert!(e.contains("u.json: record 1") && e.contains("`label`"), "{e}");
}

#[test]
fn real_hh_rlhf_file_unpairs_to_twice_its_pairs() {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pref/hh-rlhf_harmless-base_test.jsonl.gz");
    if hone_data::skip::require("real_hh_rlhf_file_unpairs_to_twice_its_pairs", &p).is_none() {
        return;
    }
    let pairs = read_pairs(std::slice::from_ref(&p), "auto", true).unwrap();
    let got = read_unpaired(std::slice::from_ref(&p), "auto", true).unwrap();
    // A few transcripts end on an empty assistant turn: a pair can still prefer the other reply over
    // silence, but an empty completion is nothing to judge, so the unpaired reader drops those pairs
    // (whole) and counts them as skipped.
    let blank = |m: &[Message]| !m.iter().any(|m| m.role == "assistant" && !m.content.trim().is_empty());
    let empty_side = pairs.items.iter().filter(|p| blank(&p.chosen) || blank(&p.rejected)).count();
    eprintln!(
        "{}: {} pairs ({} skipped, {empty_side} with an empty reply), {} unpaired examples ({} skipped)",
        p.display(),
        pairs.items.len(),
        pairs.skipped,
        got.items.len(),
        got.skipped
    );
    assert!(empty_side < 10, "{empty_side} pairs with an empty reply");
    assert_eq!(got.items.len(), 2 * (pairs.items.len() - empty_side));
    assert_eq!(got.skipped, pairs.skipped + empty_side, "{:?}", got.skip_examples);
    assert_eq!(got.items.iter().filter(|u| u.label).count() * 2, got.items.len());
    // The halves of a pair sit side by side, chosen first, with one prompt.
    for w in got.items.chunks(2) {
        assert_eq!((w[0].label, w[1].label), (true, false));
        assert_eq!(w[0].prompt, w[1].prompt);
        assert_eq!(w[0].loc, w[1].loc);
        assert_eq!(w[0].prompt.last().unwrap().role, "user", "{}", w[0].origin());
    }
    let kept: Vec<_> = pairs.items.iter().filter(|p| !blank(&p.chosen) && !blank(&p.rejected)).collect();
    for (pair, w) in kept.iter().zip(got.items.chunks(2)) {
        assert_eq!((&pair.prompt, &pair.chosen, &pair.rejected), (&w[0].prompt, &w[0].completion, &w[1].completion));
    }
}
