//! The `[iterate]` section: how many rounds, what counts as weak, who grades, and how much data and
//! training a round gets.

use serde::{Deserialize, Serialize};

hone_data::config_section! {
    /// `hone iterate`: rounds of measure → diagnose → adjust → train → gate on a finished run.
    pub struct IterateConfig {
        /// Rounds to run (`--rounds`).
        rounds: usize = 3,
        /// Goals as `task.metric >= value` (or `<=` for lower-is-better metrics), on whole-task
        /// metrics of the development split: a metric short of its goal is a weakness. Besides these,
        /// any headline metric worse than the best earlier stage beyond the noise is one.
        goals: Vec<String> = [
            "world_arithmetic.accuracy >= 0.5",
            "world_format_json.compliance >= 0.5",
            "world_format_list_n.compliance >= 0.5",
            "world_format_one_word.compliance >= 0.8",
            "world_unknown_entities.idk_rate >= 0.8",
            "world_post_cutoff.idk_rate >= 0.8",
            "world_forbidden.refusal_rate >= 0.9",
            "world_benign.over_refusal_rate <= 0.15",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        /// Who grades the model's own answers: `rule` (the world's verifiers and scorers), `reward_model`
        /// (the run's reward model, no world labels) or `feedback` (people's judgements in
        /// `<run>/feedback/preferences.jsonl`, read as a snapshot whose hash keys the round).
        grader: Grader = Grader::Rule,
        /// Also run round 1 graded by the rules and by the reward model alone (no world labels), side by
        /// side: as DPO on pairs of the model's own answers, or as the round's own stage when it is
        /// DPO or RL. Reported with the reward model's agreement with the rules; never kept.
        compare_graders: bool = false,
        /// The training stage of a round: `auto` (the rules of `demonstrate_below`), `sft`, `dpo` or
        /// `rl`. `auto`: a weakness far from its target needs demonstrations (SFT); one nearer is
        /// reinforced, by RL where its kind has a verifier, else by DPO on pairs of its own answers; a
        /// round trains the stage most weaknesses call for (ties: SFT, RL, DPO) on those weaknesses,
        /// and a stage rolled back is not tried again until a round is kept.
        method: Method = Method::Auto,
        /// Under `auto`: a weakness whose value is below this share of its target (its goal, or the
        /// earlier stage it fell from) gets demonstrations (SFT) first; above it, reinforcement. On
        /// the default run, rounds of RL (verifiers) and of DPO (on-policy pairs) far from the goals
        /// were rolled back (RL took lists of N from 0.17 to 0.00, DPO arithmetic from 0.30 to 0.12)
        /// where an SFT round took JSON from 0.23 to 0.63.
        demonstrate_below: f64 = 0.9,
        /// Drawn items per targeted kind for a weakness at its target, up to three times as many for
        /// one at zero: RL prompts, prompts answered for on-policy pairs, or SFT conversations. On the
        /// default run (three rounds, with `sft_steps`): 200 and 150 steps ended arithmetic on the
        /// report's probes at 0.31 (from the RL model's 0.27); 300 and 200 at 0.40, with "I don't know"
        /// 0.72 → 0.79 ▲; 400 and 250 raised it to 0.46 but lowered "I don't know" in round 1
        /// (0.69 → 0.57 on the development split, p = 0.001), which the gate now rolls back.
        prompts: usize = 300,
        /// Answers sampled per prompt for on-policy pairs (the best and the worst by the grader make a
        /// pair when the grader tells them apart).
        samples: usize = 4,
        /// Sampling temperature of those answers.
        temperature: f64 = 1.0,
        /// Share of a round's data replayed from the stage's earlier data (the world's default files)
        /// of the kinds not targeted, against forgetting them.
        replay: f64 = 0.5,
        /// Optimizer steps of an SFT round, at most one pass over its data (the rest of its settings:
        /// the `[sft]` section). Without corpus documents in the round (`text_replay`), 300 steps took
        /// JSON to 0.91 on the development split but held-out text from 0.65 to 0.77 bits per byte,
        /// beyond the noise; with them, 200 steps (and `prompts` = 300) hold it at 0.31.
        sft_steps: u64 = 200,
        /// Share of an SFT round's records that are documents of the world's corpus (plain text,
        /// trained on every token), against forgetting what pretraining taught: each SFT round
        /// without them raised held-out bits per byte by 0.06-0.09 on the default run.
        text_replay: f64 = 0.2,
        /// A round's learning rate: this share of its stage's `lr`. Lower forgets less and gains
        /// less: on the default run an SFT round at the stage's rate raised held-out bits per byte by
        /// 0.08 (just beyond the noise); at half of it, arithmetic and JSON still rose beyond the noise
        /// but one-word answers fell (0.74 → 0.61), and both were rolled back.
        lr_scale: f64 = 1.0,
        /// Optimizer steps of a DPO round, at most one pass over its pairs (`[dpo]` for the rest).
        dpo_steps: u64 = 150,
        /// Optimizer steps of an RL round (`[rl]` for the rest).
        rl_steps: u64 = 80,
    }
}

/// Who grades a round's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grader {
    Rule,
    RewardModel,
    Feedback,
}

impl Grader {
    pub fn name(self) -> &'static str {
        match self {
            Grader::Rule => "rule",
            Grader::RewardModel => "reward_model",
            Grader::Feedback => "feedback",
        }
    }
}

/// The training stage of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Auto,
    Sft,
    Dpo,
    Rl,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Sft => "sft",
            Method::Dpo => "dpo",
            Method::Rl => "rl",
        }
    }
}

impl IterateConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.rounds > 0, "iterate.rounds must be at least 1");
        anyhow::ensure!(self.prompts > 0, "iterate.prompts must be positive");
        anyhow::ensure!(self.samples >= 2, "iterate.samples must be at least 2 (a pair needs two answers)");
        anyhow::ensure!((0.0..1.0).contains(&self.replay), "iterate.replay must be in [0, 1)");
        anyhow::ensure!((0.0..1.0).contains(&self.text_replay), "iterate.text_replay must be in [0, 1)");
        anyhow::ensure!(self.temperature > 0.0, "iterate.temperature must be positive (answers must differ)");
        anyhow::ensure!(self.demonstrate_below >= 0.0, "iterate.demonstrate_below must not be negative");
        anyhow::ensure!(self.lr_scale > 0.0 && self.lr_scale.is_finite(), "iterate.lr_scale must be positive");
        for g in &self.goals {
            super::goals::Goal::parse(g)?;
        }
        Ok(())
    }
}
