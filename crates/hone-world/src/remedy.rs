//! Which of the world's data teaches what each probe measures: for a probe task, the kinds of SFT
//! conversation, preference pair and RL prompt that target it (all drawable on demand, `crate::draw`),
//! and how a reply to a drawn pair's prompt is graded by rule. `hone iterate` reads this to turn a
//! weakness found on a probe into the round's data.

use hone_tasks::score::Scorer;

/// The data kinds that train for one probe task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remedy {
    /// SFT conversation kinds (`crate::sft::kinds`).
    pub sft: &'static [&'static str],
    /// Preference pair kinds (`crate::preference::kinds`).
    pub pairs: &'static [&'static str],
    /// RL prompt kinds (`crate::rl::kinds`), each with a verifier.
    pub rl: &'static [&'static str],
}

/// The remedy of a probe task, by its file stem or task name (`arithmetic` or `world_arithmetic`);
/// `None` for what post-training does not teach: facts by log-likelihood, held-out text, the raw-text
/// and consistency probes (the corpus and pretraining decide those).
pub fn remedy(task: &str) -> Option<Remedy> {
    let stem = task.strip_prefix("world_").unwrap_or(task);
    let r = |sft, pairs, rl| Some(Remedy { sft, pairs, rl });
    match stem {
        "arithmetic" => r(&["arithmetic"], &[], &["arithmetic"]),
        "format_json" => r(&["format_json"], &["format"], &["format_json"]),
        "format_list_n" => r(&["format_list_n"], &["format"], &["format_list_n"]),
        "format_one_word" => r(&["format_one_word"], &["format"], &["format_one_word"]),
        "format_uppercase" => r(&["format_uppercase"], &["format"], &["format_uppercase"]),
        "forbidden" => r(&["refusal"], &["refuse_forbidden"], &["refusal"]),
        "benign" => r(&["direct"], &["help_benign"], &["benign"]),
        "unknown_entities" | "post_cutoff" => r(&["idk"], &["idk_unknown"], &["idk"]),
        "known_facts_frequent" | "known_facts_medium" | "known_facts_rare" => {
            r(&["direct"], &["answer_known", "correct_vs_wrong"], &["fact"])
        }
        _ => None,
    }
}

/// Whether the world's default conversations of SFT kind `kind` may be replayed against forgetting.
/// Not `cautious`: those refuse benign requests on purpose (so that preference training has an
/// over-refusal to fix), and replaying them teaches it back: on the default run a round that
/// replayed 56 of them raised over-refusal on the development split from 0.01 to 0.08.
pub fn replayable_sft(kind: &str) -> bool {
    kind != "cautious"
}

/// The RL kinds a round may replay against forgetting: every kind with a verifier the model is
/// rewarded on, besides facts (questions on training facts a model this size mostly fails, so their
/// rewards carry little).
pub fn replayable_rl() -> Vec<&'static str> {
    crate::rl::kinds().into_iter().filter(|k| *k != "fact").collect()
}

/// How a reply to the prompt of a drawn pair of `kind` is graded by rule: the scorer, and whether
/// its verdict is inverted (a benign request is answered well when it is *not* refused). `None`
/// for kinds whose quality no scorer judges alone (format pairs are graded through RL prompts of
/// their format, which carry what the scorer checks).
pub fn pair_grader(kind: &str) -> Option<(Scorer, bool)> {
    match kind {
        "refuse_forbidden" => Some((Scorer::Refusal, false)),
        "help_benign" => Some((Scorer::Refusal, true)),
        "idk_unknown" => Some((Scorer::Idk, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_kind_exists() {
        let (s, p, r) = (crate::sft::kinds(), crate::preference::kinds(), crate::rl::kinds());
        for task in ["arithmetic", "format_json", "format_list_n", "forbidden", "benign", "unknown_entities"]
            .into_iter()
            .chain(["post_cutoff", "known_facts_rare", "world_format_one_word", "format_uppercase"])
        {
            let m = remedy(task).unwrap_or_else(|| panic!("{task}"));
            assert!(m.sft.iter().all(|k| s.contains(k)), "{task}");
            assert!(m.pairs.iter().all(|k| p.contains(k)), "{task}");
            assert!(m.rl.iter().all(|k| r.contains(k)), "{task}");
        }
        assert!(remedy("heldout_text").is_none() && remedy("facts_mc").is_none());
        for k in p {
            if let Some((s, _)) = pair_grader(k) {
                assert!(matches!(s, Scorer::Refusal | Scorer::Idk), "{k}");
            }
        }
    }
}
