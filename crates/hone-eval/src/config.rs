//! The `[eval]` configuration section: how tasks are run and summarised. Sampling settings for
//! generation tasks live in `[sample]` (hone-model's sampler).

hone_data::config_section! {
    /// Evaluation: which tasks, how many items, how long a context, how intervals are computed.
    pub struct EvalConfig {
        /// Tasks to run: task files (`.toml`) or built-in names (`arc_easy`, `arc_challenge`, `blimp`,
        /// `gsm8k`, `world` = every world probe, or one world probe such as `facts_mc`).
        tasks: Vec<String> = vec![],
        /// Evaluate at most this many items per task (0 = all), chosen as `limit_mode` says.
        limit: usize = 0,
        /// Tasks evaluated on every item whatever `limit` says, by name (e.g. `world_arithmetic`):
        /// a cheap task whose interval must be narrow beside costly ones that are cut.
        limit_exempt: Vec<String> = vec![],
        /// Which items `limit` keeps: `spread` (evenly spaced over the set, so a limited run covers
        /// every part of a set ordered by kind) or `first` (the first N, as lm-evaluation-harness's
        /// `--limit`, to compare item by item).
        limit_mode: LimitMode = LimitMode::Spread,
        /// Longest token sequence given to the model; 0 = the model's `max_position_embeddings`.
        max_length: usize = 0,
        /// Tokens per forward batch (rows x padded length) when scoring log-likelihoods.
        batch_tokens: usize = 4096,
        /// Requests with one context (the choices of a question) read it once into a KV cache and
        /// continue from it; `false` scores each request on its whole input, lm-evaluation-harness's
        /// way (the two agree to float rounding; `false` is the slower reference).
        share_context: bool = true,
        /// Prompts generated together in one batch (greedy tasks with one sample).
        gen_batch: usize = 16,
        /// Prompt format of generation tasks: `task` (as the task file says), `chat` (the checkpoint's
        /// chat template) or `text` (plain continuation, for base models).
        format: String = "task".to_string(),
        /// `text` format: how a question is written for a base model; `{prompt}` is replaced by the item's
        /// prompt. A base model continues documents, so a template in the style of its corpus (e.g. a
        /// forum thread ending where a reply begins) lets it answer; the default gives the prompt as is.
        text_template: String = "{prompt}".to_string(),
        /// `text` format: extra stop strings (e.g. "\n" when the template asks for a one-line reply).
        text_stop: Vec<String> = vec![],
        /// `loglikelihood_rolling`: tokens of context each window after the first re-reads from the
        /// previous one; 1 = disjoint windows, as lm-evaluation-harness.
        rolling_context: usize = 1,
        /// Bootstrap resamples for the intervals of non-proportion metrics and for comparisons.
        bootstrap: usize = 1000,
        /// Seed of the bootstrap.
        seed: u64 = 1,
        /// Device to evaluate on (`cpu`; `cuda`, `wgpu` in builds with those features).
        device: String = "cpu".to_string(),
        /// Folder of the built-in world (its `eval/` task files); empty = `<run dir>/world`.
        world_dir: String = String::new(),
    }
}

/// How `eval.limit` picks items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    Spread,
    First,
}

impl EvalConfig {
    /// The item limit of task `name`: 0 (every item) when it is in `limit_exempt`, else `limit`.
    pub fn limit_for(&self, name: &str) -> usize {
        if self.limit_exempt.iter().any(|t| t == name) { 0 } else { self.limit }
    }

    /// Every name in `limit_exempt` must be one of the tasks being run: a misspelt one would cut
    /// the task it meant without a word.
    pub fn check_limit_exempt<'a>(&self, tasks: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
        let names: Vec<&str> = tasks.into_iter().collect();
        for t in &self.limit_exempt {
            anyhow::ensure!(
                names.contains(&t.as_str()),
                "eval.limit_exempt: `{t}` is not one of the tasks evaluated ({})\n  fix: name a task from eval.tasks \
                 as its result is named (e.g. world_arithmetic)",
                names.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exempt_task_gets_every_item_and_a_misspelt_one_is_named() {
        let e = EvalConfig { limit: 50, limit_exempt: vec!["world_arithmetic".into()], ..EvalConfig::default() };
        assert_eq!(e.limit_for("world_arithmetic"), 0);
        assert_eq!(e.limit_for("world_format_json"), 50);
        e.check_limit_exempt(["world_arithmetic", "arc_easy"]).unwrap();
        let err = e.check_limit_exempt(["world_arith", "arc_easy"]).unwrap_err().to_string();
        assert!(err.contains("`world_arithmetic`") && err.contains("world_arith, arc_easy"), "{err}");
    }
}
