//! The built-in world's post-training files load with the post-training readers: `sft.jsonl`
//! (conversations), `preference.jsonl` and `preference_eval.jsonl` (pairs), `rl.jsonl` (prompts
//! with verifiers), with nothing skipped.

use hone_data::pairs::read_pairs;
use hone_data::sft::{SftOptions, read_conversations};
use hone_train::stages::rl::read_prompts;

#[test]
fn world_files_load() {
    let dir = tempfile::tempdir().unwrap();
    hone_world::generate(&hone_world::WorldConfig::default(), dir.path()).unwrap();
    let sft = read_conversations(&[dir.path().join("sft.jsonl")], &SftOptions::default()).unwrap();
    assert!(sft.items.len() > 100 && sft.skipped == 0);
    assert!(sft.items.iter().any(|c| c.messages.iter().filter(|m| m.role == "assistant").count() > 1), "multi-turn");
    for f in ["preference.jsonl", "preference_eval.jsonl"] {
        let p = read_pairs(&[dir.path().join(f)], "auto", false).unwrap();
        assert!(p.items.len() > 10, "{f}");
        assert!(p.items.iter().all(|x| x.prompt.last().unwrap().role == "user" && x.chosen != x.rejected));
    }
    let rl = read_prompts(&[dir.path().join("rl.jsonl")], true, &[]).unwrap();
    assert!(rl.len() > 10 && rl.iter().any(|p| p.kind == "arithmetic"));
    let arith = read_prompts(&[dir.path().join("rl.jsonl")], true, &["arithmetic".into()]).unwrap();
    assert!(!arith.is_empty() && arith.len() < rl.len());
}
