//! The instruction and preference readers on real public files (../shared/data, see its MANIFEST.md).
//! Each test skips with a message when that folder is absent (a fresh clone has none).

use hone_data::pairs::read_pairs;
use hone_data::sft::{SftOptions, read_conversations};
use std::path::PathBuf;

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel);
    hone_data::skip::require(&format!("post_formats: {rel}"), &p)
}

#[test]
fn real_sft_files_load() {
    let cases = [
        ("sft/gsm8k_train.jsonl", 7473, 2),
        ("sft/gpteacher_roleplay_instruct.json", 1923, 2),
        ("sft/fastchat_dummy_conversation.json", 500, 0),
    ];
    for (rel, n, turns) in cases {
        let Some(p) = shared(rel) else { continue };
        let got = read_conversations(&[p], &SftOptions::default()).unwrap();
        assert_eq!(got.items.len(), n, "{rel}");
        assert_eq!(got.skipped, 0);
        assert!(got.items.iter().all(|c| c.messages.iter().any(|m| m.role == "assistant")));
        if turns > 0 {
            assert!(got.items.iter().all(|c| c.messages.len() == turns), "{rel}");
        }
    }
    let Some(p) = shared("sft/fastchat_dummy_conversation.json") else { return };
    let got = read_conversations(&[p], &SftOptions::default()).unwrap();
    assert!(got.items.iter().any(|c| c.messages.len() >= 6), "multi-turn conversations are kept whole");
    assert_eq!(got.items[0].messages[0].role, "user");
    assert_eq!(got.items[0].messages[1].role, "assistant");
}

#[test]
fn real_preference_files_load() {
    // Each file is its own case: a missing one skips only itself.
    if let Some(hh) = shared("pref/hh-rlhf_harmless-base_test.jsonl.gz") {
        let got = read_pairs(&[hh], "auto", true).unwrap();
        // A few HH-RLHF records have identical chosen and rejected dialogues; they prefer nothing.
        assert_eq!(got.items.len() + got.skipped, 2312);
        assert!(got.skipped < 50, "{} skipped: {:?}", got.skipped, got.skip_examples);
        for p in &got.items {
            assert_eq!(p.prompt.last().unwrap().role, "user", "{}", p.origin());
            assert_eq!(p.chosen[0].role, "assistant", "{}", p.origin());
            assert_ne!(p.chosen, p.rejected);
        }
    }
    if let Some(lf) = shared("pref/llamafactory_dpo_en_demo.json") {
        let got = read_pairs(&[lf], "auto", false).unwrap();
        assert_eq!(got.items.len(), 300);
        assert!(got.items.iter().all(|p| p.chosen.len() == 1 && p.rejected.len() == 1));
    }
}
