//! Which of the world's files holds each kind of training data, so a pipeline can point a stage that
//! reads that kind at the world without the stage knowing the world.

use hone_data::DataKind;

/// The world's training file of `kind` and its held-out file, relative to the world folder; `None`
/// when the world writes no such data (token shards are prepared from `corpus/` instead).
pub fn for_kind(kind: DataKind) -> Option<(&'static str, Option<&'static str>)> {
    match kind {
        DataKind::Text => None,
        DataKind::Conversations => Some(("sft.jsonl", None)),
        DataKind::Pairs => Some(("preference.jsonl", Some("preference_eval.jsonl"))),
        DataKind::Unpaired => Some(("unpaired.jsonl", Some("unpaired_eval.jsonl"))),
        DataKind::Prompts => Some(("rl.jsonl", None)),
    }
}
