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
