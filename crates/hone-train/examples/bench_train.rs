//! hone side of the training-throughput benchmark (see `scripts/bench_train.sh`, which runs it next
//! to `scripts/bench_train_torch.py` on the same threads).
//!
//! Trains the given preset on random tokens through the real trainer step (forward, cross-entropy,
//! backward, global-norm clipping to 1.0, AdamW with decay on 2-D matrices) and prints one JSON line:
//! tokens/s and seconds per step (median after warmup), FLOPs per token, and the f32 matrix-multiply
//! rate burn Flex reaches on this machine.
//!
//! `cargo run --release -p hone-train --example bench_train -- --preset tiny --vocab 4096 --batch 16 --seq 128`
//! (`--hidden N --intermediate N` override the preset's widths)
//!
//! Runs with mimalloc as the global allocator, as the `hone` binary does; build with
//! `--features system-alloc` to measure glibc's malloc instead. `HONE_FUSED=0` selects burn's plain
//! ops instead of the fused kernels.

use hone_model::burn::tensor::{Device, Distribution, Tensor};
use hone_model::{Llama, ModelConfig};
use hone_train::stages::pretrain::PretrainTask;
use hone_train::{LoopSettings, OptimConfig, PretrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use std::time::Instant;

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

/// GFLOP/s of an n×n by n×n f32 matmul through burn on `device`.
fn matmul_gflops(device: &Device, n: usize, reps: usize) -> f64 {
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    for _ in 0..3 {
        let _: f32 = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_scalar();
    }
    let t = Instant::now();
    for _ in 0..reps {
        let _: f32 = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_scalar();
    }
    2.0 * (n as f64).powi(3) * reps as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// GFLOP/s of an n×n by n×n f32 product through the `gemm` crate directly into a preallocated
/// output (multithreaded, as the fused linear layer calls it): the best of `reps` single products,
/// so an allocation or a descheduled thread does not lower the peak.
fn gemm_gflops(n: usize, reps: usize) -> f64 {
    use hone_model::fused::{View, gemm_slices};
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
    let b = a.iter().rev().copied().collect::<Vec<f32>>();
    let mut c = vec![0f32; n * n];
    let mut best = f64::INFINITY;
    for i in 0..reps + 2 {
        let t = Instant::now();
        gemm_slices(&mut c, n, n, n, 0.0, View::rows(&a, n), View::rows(&b, n), 1.0);
        if i >= 2 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn main() -> anyhow::Result<()> {
    #[cfg(not(feature = "system-alloc"))]
    hone_train::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let preset: String = arg(&args, "--preset", "tiny".to_string());
    let vocab: usize = arg(&args, "--vocab", 4096);
    let batch: usize = arg(&args, "--batch", 16);
    let seq: usize = arg(&args, "--seq", 128);
    let steps: usize = arg(&args, "--steps", 10);
    let warmup: usize = arg(&args, "--warmup", 2);
    let optimizer: String = arg(&args, "--optimizer", "adamw".to_string());
    let device_name: String = arg(&args, "--device", "cpu".to_string());
    // 0 keeps the preset's width.
    let hidden: usize = arg(&args, "--hidden", 0);
    let intermediate: usize = arg(&args, "--intermediate", 0);

    let mc = ModelConfig {
        preset,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: intermediate,
        ..ModelConfig::default()
    };
    let cfg = mc.resolve(None)?;
    let device = hone_model::device::select_autodiff(&device_name)?;
    let mut pre = PretrainConfig { batch_size: batch, seq_len: seq, ..Default::default() };
    pre.run.steps = (steps + warmup) as u64;
    let optimizer = match optimizer.as_str() {
        "muon" => hone_train::config::OptimizerKind::Muon,
        "adamw" => hone_train::config::OptimizerKind::Adamw,
        other => anyhow::bail!("--optimizer {other}: use adamw or muon"),
    };
    let optim = OptimConfig { optimizer, warmup_steps: 1, ..OptimConfig::default() };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data: Vec<u32> = (0..(batch * (seq + 1) * (steps + warmup) * 4).max(100_000))
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();
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
    let model = Llama::init(&cfg, 0, &device)?;
    let stage = std::env::temp_dir().join(format!("hone-bench-{}", std::process::id()));
    let settings = LoopSettings::from_pretrain(&pre, String::new(), false);
    let mut trainer = Trainer::new(model, &optim, settings, &stage, None)?;
    let (step_s, first, last) = trainer.time_steps(&mut task, warmup, steps)?;
    let peak = matmul_gflops(&device.clone().without_autodiff(), 1024, 10);
    println!(
        "{}",
        serde_json::json!({
            "impl": "hone",
            "threads": rayon::current_num_threads(),
            "fused": hone_model::fused::enabled(),
            "cpu": hone_model::simd::cpu_model(),
            "simd": hone_model::simd::level().name(),
            "gemm_simd": hone_model::simd::gemm_level().name(),
            "allocator": if cfg!(feature = "system-alloc") { "system" } else { "mimalloc" },
            "params": cfg.num_params(),
            "flops_per_token": cfg.train_flops_per_token(seq),
            "step_s": step_s,
            "tokens_per_s": (batch * seq) as f64 / step_s,
            "matmul_gflops": peak,
            "gemm_gflops": gemm_gflops(1024, 10).max(gemm_gflops(2048, 3)),
            "first_loss": first,
            "last_loss": last,
        })
    );
    Ok(())
}
