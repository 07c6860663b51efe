//! Benchmark (not a test): prompt processing and batch-1 decoding of a real model, as llama.cpp's
//! `llama-bench` measures them: tokens/s of one forward pass over a 512-token prompt, and of 128 new
//! tokens generated greedily after a 32-token prompt (the prefill of those 32 subtracted). Medians of
//! 3 rounds, with the CPU model, the SIMD level and peak RSS. `scripts/bench_decode.py` runs it beside
//! llama.cpp on the same file.
//!
//! `cargo run --release -p hone-model --features x86-v4 --example bench_decode -- MODEL [--q8]`
//! (the feature: the AVX-512 GEMM kernels that the `hone` binary has)

use hone_model::burn::tensor::Device;
use hone_model::llama::{KvCache, Layout, ids_tensor};
use hone_model::{SampleConfig, generate};
use std::time::Instant;

/// The allocator the `hone` binary uses, so the figures are the command's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or_else(|| anyhow::anyhow!("usage: bench_decode MODEL"))?;
    let q8 = args.iter().any(|a| a == "--q8");
    let t = Instant::now();
    let mut m = hone_model::load(std::path::Path::new(path), &Device::flex())?;
    if q8 {
        m.model.quantize_q8()?;
    }
    let load_s = t.elapsed().as_secs_f64();
    let vocab = m.model.config.vocab_size as u32;
    let prompt = |n: usize| -> Vec<u32> { (0..n as u32).map(|i| 100 + (i * 7919) % (vocab - 200)).collect() };
    let mut pp = Vec::new();
    let p512 = prompt(512);
    for _ in 0..3 {
        let t = Instant::now();
        // What generation does with a prompt: fill the KV cache, logits of the last position.
        let d = m.model.device();
        let _ = m
            .model
            .forward_last_cached(ids_tensor(&p512, 1, 512, d), &Layout::left_padded(&[0], 512, d), &mut KvCache::new())
            .into_data();
        pp.push(512.0 / t.elapsed().as_secs_f64());
    }
    let p32 = prompt(32);
    let mut prefill = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let d = m.model.device();
        let _ = m
            .model
            .forward_last_cached(ids_tensor(&p32, 1, 32, d), &Layout::left_padded(&[0], 32, d), &mut KvCache::new())
            .into_data();
        prefill.push(t.elapsed().as_secs_f64());
    }
    let prefill32 = median(prefill);
    let cfg = SampleConfig { max_new_tokens: 128, min_new_tokens: 128, temperature: 0.0, ..Default::default() };
    let mut tg = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let g = generate(&m.model, &m.tokenizer, std::slice::from_ref(&p32), &cfg, &mut |_, _| {})?;
        tg.push(g[0].tokens.len() as f64 / (t.elapsed().as_secs_f64() - prefill32).max(1e-9));
    }
    println!(
        "cpu: {}; simd: {:?}; threads: {}",
        hone_model::simd::cpu_model(),
        hone_model::simd::level(),
        rayon::current_num_threads()
    );
    println!(
        "hone{} {path}: load {load_s:.1} s, prompt 512: {:.1} tok/s, decode 128 after 32: {:.1} tok/s, peak RSS {:.0} MiB",
        if q8 { " (q8)" } else { "" },
        median(pp),
        median(tg),
        peak_rss_mib()
    );
    Ok(())
}
