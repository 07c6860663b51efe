//! Benchmark (not a test): generated tokens/s with and without the KV cache, for the `tiny` preset at
//! a few generation lengths, with the same prompt and greedy decoding through [`generate`]. Without
//! the cache every step reruns the whole sequence, so its cost grows with the length.
//!
//! `cargo run --release -p hone-model --example bench_sample [-- PRESET BATCH]`

use hone_data::tokenizer::{TokenizerConfig, train};
use hone_model::burn::tensor::Device;
use hone_model::{Llama, ModelConfig, SampleConfig, generate};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).cloned().unwrap_or_else(|| "tiny".into());
    let batch: usize = args.get(2).map(|b| b.parse()).transpose()?.unwrap_or(1);
    // Any tokenizer will do: the model is random, and `min_new_tokens` keeps every run to its full length.
    let docs = (0..50).map(|i| format!("sample text number {i} for a benchmark tokenizer"));
    let tok = train(docs, &TokenizerConfig { vocab_size: 512, ..Default::default() })?;
    let config = ModelConfig { preset: preset.clone(), vocab_size: 4096, ..Default::default() }.resolve(None)?;
    let model = Llama::init(&config, 1, &Device::flex())?;
    let prompt: Vec<Vec<u32>> = (0..batch).map(|r| (0..16).map(|i| 10 + i + r as u32).collect()).collect();
    println!("preset {preset}, {} parameters, batch {batch}, prompt 16 tokens, greedy", config.num_params());
    println!("{:>8} {:>14} {:>14} {:>8}", "new", "cache tok/s", "no-cache tok/s", "ratio");
    for new in [32, 128, 256, 512] {
        let mut rates = Vec::new();
        for use_cache in [true, false] {
            let cfg = SampleConfig {
                max_new_tokens: new,
                min_new_tokens: new,
                temperature: 0.0,
                use_cache,
                ..Default::default()
            };
            let mut times = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let g = generate(&model, &tok, &prompt, &cfg, &mut |_, _| {})?;
                let n: usize = g.iter().map(|g| g.tokens.len()).sum();
                times.push(n as f64 / t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            rates.push(times[1]);
        }
        println!("{new:>8} {:>14.1} {:>14.1} {:>7.2}x", rates[0], rates[1], rates[0] / rates[1]);
    }
    Ok(())
}
