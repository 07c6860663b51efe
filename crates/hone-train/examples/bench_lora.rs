//! hone side of the LoRA fine-tuning benchmark (see `scripts/bench_lora.sh`, which runs it next to
//! `scripts/bench_lora_torch.py`, PyTorch + `peft`, on the same threads).
//!
//! Opens a model (any `-m` hone opens, e.g. SmolLM2-135M-Instruct), attaches a LoRA adapter and
//! trains it on random tokens through the real trainer step (forward, cross-entropy over every
//! position, backward into the adapter only, global-norm clipping to 1.0, AdamW), and prints one
//! JSON line: tokens/s and seconds per step (median after warmup), trained parameters, and peak
//! resident memory. `--checkpointing`: activation checkpointing on (each decoder layer recomputed in
//! the backward pass).
//!
//! `cargo run --release -p hone-train --example bench_lora -- MODEL --rank 16 --batch 4 --seq 512`

use hone_model::lora::{Lora, LoraSpec, Target};
use hone_train::stages::pretrain::PretrainTask;
use hone_train::{LoopSettings, OptimConfig, PretrainConfig, Trainable, Trainer};
use rand::{Rng, SeedableRng};

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: cannot parse `{v}`")))
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    #[cfg(not(feature = "system-alloc"))]
    hone_train::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() > 1 && !args[1].starts_with("--"), "usage: bench_lora MODEL [--rank R] ...");
    let rank: usize = arg(&args, "--rank", 16);
    let alpha: f64 = arg(&args, "--alpha", 32.0);
    let batch: usize = arg(&args, "--batch", 4);
    let seq: usize = arg(&args, "--seq", 512);
    let steps: usize = arg(&args, "--steps", 5);
    let warmup: usize = arg(&args, "--warmup", 2);
    let targets: String = arg(&args, "--targets", "all".to_string());
    let checkpointing = args.iter().any(|a| a == "--checkpointing");
    let targets: Vec<Target> = if targets == "all" {
        Target::ALL.to_vec()
    } else {
        targets
            .split(',')
            .map(|t| Target::parse(t).ok_or_else(|| anyhow::anyhow!("--targets: unknown `{t}`")))
            .collect::<anyhow::Result<_>>()?
    };
    let device = hone_model::device::select_autodiff("cpu")?;
    let opened = hone_model::load(std::path::Path::new(&args[1]), &device)?;
    let mut model = opened.model;
    let vocab = model.config.vocab_size;
    let spec = LoraSpec { rank, alpha, dropout: 0.0, targets, rslora: false };
    let lora = Lora::init(spec, args[1].clone(), &model.config, 0, &device)?;
    model.attach_lora(lora)?;
    let trained: usize = Trainable::params(&model).iter().map(|(_, p)| p.numel()).sum();
    let mut pre = PretrainConfig { batch_size: batch, seq_len: seq, ..Default::default() };
    pre.run.steps = (steps + warmup) as u64;
    let optim = OptimConfig { lr: 1e-4, warmup_steps: 1, ..OptimConfig::default() };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data: Vec<u32> =
        (0..batch * (seq + 1) * (steps + warmup) * 2).map(|_| rng.random_range(0..vocab as u32)).collect();
    let mut task = PretrainTask {
        train: &data,
        val: &data,
        val_tokens_per_byte: 1.0,
        seed: 0,
        batch_size: batch,
        seq_len: seq,
        grad_accum: 1,
        eval_rows: 0,
    };
    let stage = std::env::temp_dir().join(format!("hone-bench-lora-{}", std::process::id()));
    let mut settings = LoopSettings::from_pretrain(&pre, String::new(), false);
    settings.activation_checkpointing = checkpointing;
    let mut trainer = Trainer::new(model, &optim, settings, &stage, None)?;
    let (step_s, first, last) = trainer.time_steps(&mut task, warmup, steps)?;
    println!(
        "{}",
        serde_json::json!({
            "impl": "hone",
            "threads": rayon::current_num_threads(),
            "cpu": hone_model::simd::cpu_model(),
            "simd": hone_model::simd::level().name(),
            "gemm_simd": hone_model::simd::gemm_level().name(),
            "params": trainer.model.config.num_params(),
            "trained_params": trained,
            "checkpointing": checkpointing,
            "step_s": step_s,
            "tokens_per_s": (batch * seq) as f64 / step_s,
            "peak_rss_mib": hone_data::mem::peak_rss_mib(),
            "first_loss": first,
            "last_loss": last,
        })
    );
    Ok(())
}
