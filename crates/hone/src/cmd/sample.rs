//! `hone sample`: complete prompts with a trained model, as plain text continuation (what a base model
//! does) or as a chat turn (`--chat`, through the checkpoint's chat template). One prompt and one
//! sample stream to the terminal as they are generated.

use crate::args::ConfigArgs;
use anyhow::Result;
use clap::Args;
use hone_data::chat::Message;
use hone_model::{LoadedModel, SampleConfig, generate};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Sampling flags shared by `hone sample` and `hone chat`; each overrides its `[sample]` field.
#[derive(Debug, Clone, Args)]
pub struct SamplingFlags {
    /// Most tokens to generate.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Softmax temperature; 0 = greedy.
    #[arg(long, short = 't')]
    pub temperature: Option<f64>,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Drop tokens below min_p × the top probability (0 = off).
    #[arg(long)]
    pub min_p: Option<f64>,
    /// Penalise tokens already present (1 = off).
    #[arg(long)]
    pub repetition_penalty: Option<f64>,
    /// Stop at this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Sampling seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Recompute every position at each step instead of using the KV cache (slower; for comparison).
    #[arg(long)]
    pub no_cache: bool,
    /// Device: `cpu`, or `cuda`/`wgpu` in builds with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Decode with 8-bit weights (llama.cpp's Q8_0 blocks, integer dot products): about a quarter
    /// of the memory traffic per token, logits within the quantisation's error of f32.
    #[arg(long)]
    pub q8: bool,
}

impl SamplingFlags {
    /// The `[sample]` section with these flags applied over the config file and `--set`.
    pub fn resolve(&self, config: &ConfigArgs) -> Result<SampleConfig> {
        let mut s = config.load(&[])?.sample;
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { s.$f = v; } )* };
        }
        take!(max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed);
        if !self.stop.is_empty() {
            s.stop = self.stop.clone();
        }
        if self.no_cache {
            s.use_cache = false;
        }
        s.validate()?;
        Ok(s)
    }

    pub fn load_model(&self, path: &std::path::Path) -> Result<LoadedModel> {
        let device = hone_model::device::select(&self.device)?;
        let mut m = hone_model::load(path, &device)?;
        if self.q8 {
            m.model.quantize_q8()?;
        }
        Ok(m)
    }
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Checkpoint folder, or a stage folder (uses its final checkpoint), e.g. runs/default/sft.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// Prompt text (repeatable: prompts are generated together as a batch).
    #[arg(long, short = 'p', required = true)]
    pub prompt: Vec<String>,
    /// Treat each prompt as a user message and answer it as the assistant (chat template).
    #[arg(long)]
    pub chat: bool,
    /// Samples per prompt.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num_samples: usize,
    #[command(flatten)]
    pub sampling: SamplingFlags,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: SampleArgs) -> Result<()> {
    anyhow::ensure!(a.num_samples >= 1, "--num-samples must be at least 1");
    let cfg = a.sampling.resolve(&a.config)?;
    let m = a.sampling.load_model(&a.model)?;
    let mut prompts = Vec::new();
    for p in &a.prompt {
        let ids = if a.chat {
            m.template.encode_prompt(&m.tokenizer, &[Message::new("user", p.as_str())])?
        } else {
            // A hone base model saw every document begin with BOS; a real model's tokenizer says.
            let mut ids = if m.tokenizer.add_bos { vec![m.tokenizer.bos_id] } else { Vec::new() };
            ids.extend(m.tokenizer.encode(p)?);
            if ids.is_empty() {
                ids.push(m.tokenizer.bos_id);
            }
            ids
        };
        for _ in 0..a.num_samples {
            prompts.push(ids.clone());
        }
    }
    let stream = prompts.len() == 1;
    let start = Instant::now();
    let mut out = std::io::stdout();
    if stream {
        if !a.chat {
            print!("{}", a.prompt[0]);
        }
        out.flush()?;
    }
    let gens = generate(&m.model, &m.tokenizer, &prompts, &cfg, &mut |_, piece| {
        if stream {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    if stream {
        println!();
    } else {
        for (i, g) in gens.iter().enumerate() {
            let p = &a.prompt[i / a.num_samples];
            println!("--- prompt {} sample {} ({:?}) ---", i / a.num_samples + 1, i % a.num_samples + 1, g.finish);
            if a.chat {
                println!("{p}\n>>> {}", g.text);
            } else {
                println!("{p}{}", g.text);
            }
        }
    }
    let tokens: usize = gens.iter().map(|g| g.tokens.len()).sum();
    eprintln!(
        "{tokens} tokens in {secs:.2} s ({:.1} tokens/s, {} sequence(s), KV cache {})",
        tokens as f64 / secs.max(1e-9),
        gens.len(),
        if cfg.use_cache { "on" } else { "off" }
    );
    Ok(())
}
