//! `hone eval` as a user meets it: a tiny pretrained model evaluated on every world probe (each kind:
//! generation with scorers, multiple choice with calibration, rolling bits per byte), results where
//! the run keeps them, and `--compare` of two evaluations.

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

#[test]
fn eval_world_probes_and_compare() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&hone(p, &["world", "generate", "--seed", "1"]));
    ok(&hone(p, &["tokenizer", "train", "runs/default/world/corpus", "--vocab-size", "400"]));
    ok(&hone(p, &["data", "prepare", "runs/default/world/corpus"]));
    let tiny = [
        "--set",
        "model.preset=micro",
        "--set",
        "pretrain.steps=2",
        "--set",
        "pretrain.batch_size=2",
        "--set",
        "pretrain.seq_len=32",
        "--set",
        "pretrain.eval_every=2",
        "--set",
        "pretrain.eval_rows=2",
    ];
    ok(&hone(p, &[&["pretrain"], &tiny[..]].concat()));

    let e = String::from_utf8_lossy(&hone(p, &["eval", "-m", "runs/default/pretrain"]).stderr).into_owned();
    assert!(e.contains("no task given") && e.contains("--task"), "{e}");
    let e = String::from_utf8_lossy(&hone(p, &["eval", "-m", "runs/default/pretrain", "--task", "nope"]).stderr)
        .into_owned();
    assert!(e.contains("unknown task `nope`") && e.contains("facts_mc") && e.contains("arc_easy"), "{e}");

    let out = ok(&hone(
        p,
        &["eval", "-m", "runs/default/pretrain", "--task", "world", "--limit", "3", "--set", "sample.max_new_tokens=8"],
    ));
    let dir = p.join("runs/default/eval/pretrain");
    for task in ["world_facts_mc", "world_heldout_text", "world_consistency", "world_unknown_entities", "world_benign"]
    {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{task}.json"))).unwrap()).unwrap();
        assert_eq!(r["items_evaluated"], 3, "{task}");
        assert_eq!(r["stage"], "pretrain");
        assert!(r["items"].as_array().unwrap().len() == 3);
    }
    let mc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("world_facts_mc.json")).unwrap()).unwrap();
    let names: Vec<&str> = mc["metrics"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"ece") && names.contains(&"brier") && names.contains(&"acc_norm"), "{names:?}");
    let cons: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("world_consistency.json")).unwrap()).unwrap();
    assert_eq!(cons["items"][0]["outputs"].as_array().unwrap().len(), 5, "five samples per consistency item");
    assert!(
        out.contains("world_heldout_text") && out.contains("bits_per_byte") && out.contains("hallucination_rate"),
        "{out}"
    );

    let out = ok(&hone(p, &["eval", "--compare", "runs/default/eval/pretrain", "runs/default/eval/pretrain"]));
    assert!(out.contains("no regression") && !out.contains("REGRESSION"), "{out}");

    // A real regression: B answers every multiple-choice item wrong that A answered right.
    let mc_path = dir.join("world_facts_mc.json");
    let mut a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&mc_path).unwrap()).unwrap();
    let mut b = a.clone();
    for (r, correct) in [(&mut a, true), (&mut b, false)] {
        for it in r["items"].as_array_mut().unwrap() {
            it["correct"] = correct.into();
            it["correct_norm"] = correct.into();
        }
        for m in r["metrics"].as_array_mut().unwrap() {
            if m["name"] == "acc" || m["name"] == "acc_norm" {
                m["value"] = (if correct { 1.0 } else { 0.0 }).into();
            }
        }
    }
    for (name, r) in [("a", &a), ("b", &b)] {
        std::fs::create_dir_all(p.join(name)).unwrap();
        std::fs::write(p.join(name).join("world_facts_mc.json"), r.to_string()).unwrap();
    }
    let out = ok(&hone(p, &["eval", "--compare", "a", "b"]));
    assert!(out.contains("REGRESSION") && out.contains("world_facts_mc") && out.contains("acc"), "{out}");
    // And the other way round it is an improvement, not a regression.
    let out = ok(&hone(p, &["eval", "--compare", "b", "a"]));
    assert!(!out.contains("REGRESSION"), "{out}");
}
