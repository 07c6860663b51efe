//! The `[world]` configuration section and the size presets it resolves to.
//!
//! A preset fixes how many entities the world has and how many examples each output gets; `scale`
//! stretches the example counts (not the world) so a bigger model can see more data about the same
//! facts. Everything else is a knob with a documented default.

use anyhow::{Result, bail};
use serde::Serialize;

hone_data::config_section! {
    /// The built-in fictional world: what `hone world generate` writes and the pipeline trains on.
    pub struct WorldConfig {
        /// Random seed: the same seed gives byte-identical files, a different seed a different world.
        seed: u64 = 1,
        /// Size preset: tiny (a few-million-parameter model, minutes on 2 cores), small (~3x), medium (~10x).
        size: String = "tiny".to_string(),
        /// Last year the corpus knows about. Documents dated later are withheld, so events after this year
        /// are unknown to the model by construction and serve as cutoff probes.
        cutoff_year: i32 = 2020,
        /// Earliest birth year of a person; the world's history starts here.
        first_year: i32 = 1850,
        /// Post-cutoff events fall within this many years after `cutoff_year`.
        post_cutoff_years: i32 = 4,
        /// Share of events dated after the cutoff (they exist in world.json and the probes only).
        post_cutoff_share: f64 = 0.3,
        /// Share of facts written often (between `frequent_min_mentions` and `frequent_max_mentions` times).
        frequent_share: f64 = 0.25,
        /// Share of facts written rarely (1 to `rare_max_mentions` times); the rest are in between.
        rare_share: f64 = 0.4,
        /// Fewest corpus mentions of a frequent fact; also the threshold of the frequent-facts probe.
        frequent_min_mentions: u32 = 20,
        /// Most corpus mentions of a frequent fact.
        frequent_max_mentions: u32 = 50,
        /// Most corpus mentions of a rare fact; also the threshold of the rare-facts probe.
        rare_max_mentions: u32 = 3,
        /// Share of facts held out from SFT and preference data so the probes ask about them.
        probe_share: f64 = 0.4,
        /// Multiplies the number of SFT examples, preference pairs, filler documents and probe items.
        scale: f64 = 1.0,
        /// Share of preference pairs written to preference_eval.jsonl (disjoint prompts) instead of preference.jsonl.
        preference_eval_share: f64 = 0.1,
        /// Share of SFT conversations that start with a system message.
        system_prompt_share: f64 = 0.2,
    }
}

/// Counts a size preset resolves to, after `scale`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub countries: usize,
    pub cities: usize,
    pub people: usize,
    pub inventions: usize,
    pub events: usize,
    /// Invented entities that do not exist, per kind, for training ("I don't know") and for probes.
    pub fakes_train: usize,
    pub fakes_probe: usize,
    pub arithmetic_documents: usize,
    pub filler_stories: usize,
    pub heldout_documents: usize,
    pub sft_examples: usize,
    pub preference_pairs: usize,
    /// Most items per probe task.
    pub probe_items: usize,
    pub rl_prompts: usize,
}

impl WorldConfig {
    /// Checks the knobs and resolves the size preset.
    pub fn plan(&self) -> Result<Plan> {
        let k = match self.size.as_str() {
            "tiny" => 1,
            "small" => 3,
            "medium" => 10,
            other => bail!("world.size: unknown size `{other}` (expected tiny, small or medium)"),
        };
        for (name, v) in [
            ("post_cutoff_share", self.post_cutoff_share),
            ("frequent_share", self.frequent_share),
            ("rare_share", self.rare_share),
            ("probe_share", self.probe_share),
            ("preference_eval_share", self.preference_eval_share),
            ("system_prompt_share", self.system_prompt_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("world.{name} must be between 0 and 1, got {v}");
            }
        }
        if self.frequent_share + self.rare_share > 1.0 {
            bail!("world.frequent_share + world.rare_share must not exceed 1");
        }
        if !(self.scale > 0.0 && self.scale <= 100.0) {
            bail!("world.scale must be in (0, 100], got {}", self.scale);
        }
        if self.cutoff_year < self.first_year + 100 {
            bail!("world.cutoff_year must be at least 100 years after world.first_year");
        }
        if self.post_cutoff_years < 1 {
            bail!("world.post_cutoff_years must be at least 1");
        }
        // Medium facts sit strictly between the tiers, with a gap of one on each side.
        if self.rare_max_mentions < 1 || self.frequent_min_mentions < self.rare_max_mentions + 4 {
            bail!("world: need rare_max_mentions >= 1 and frequent_min_mentions >= rare_max_mentions + 4");
        }
        if self.frequent_max_mentions < self.frequent_min_mentions {
            bail!("world.frequent_max_mentions must be >= frequent_min_mentions");
        }
        let s = |n: usize| ((n * k) as f64 * self.scale).round().max(1.0) as usize;
        Ok(Plan {
            countries: 15 * k,
            cities: 48 * k,
            people: 80 * k,
            inventions: 30 * k,
            events: 64 * k,
            fakes_train: 40 * k,
            fakes_probe: 36 * k,
            arithmetic_documents: s(3000),
            filler_stories: s(1400),
            heldout_documents: s(60),
            sft_examples: s(4500),
            preference_pairs: s(3000),
            probe_items: s(100),
            rl_prompts: s(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_scale_and_bad_values_are_rejected() {
        let tiny = WorldConfig::default().plan().unwrap();
        let small = WorldConfig { size: "small".into(), ..Default::default() }.plan().unwrap();
        assert_eq!(small.people, 3 * tiny.people);
        assert_eq!(small.sft_examples, 3 * tiny.sft_examples);
        assert!(WorldConfig { size: "huge".into(), ..Default::default() }.plan().is_err());
        assert!(WorldConfig { rare_share: 0.9, ..Default::default() }.plan().is_err());
        assert!(WorldConfig { cutoff_year: 1900, ..Default::default() }.plan().is_err());
        assert!(WorldConfig { rare_max_mentions: 10, frequent_min_mentions: 13, ..Default::default() }.plan().is_err());
        assert!(WorldConfig { rare_max_mentions: 10, frequent_min_mentions: 14, ..Default::default() }.plan().is_ok());
    }

    #[test]
    fn every_field_is_documented() {
        use hone_data::config::Documented;
        for (k, d) in WorldConfig::docs() {
            assert!(!d.is_empty(), "{k}");
        }
    }
}
