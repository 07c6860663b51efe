//! `run_pretrain` end to end on token shards written to disk: held-out loss and bits per byte in
//! metrics.jsonl, the loss curve drawn, checkpoints with the HF config, and the same call again
//! resumes (here: finds the stage finished and trains nothing).

mod common;

use common::tokens;
use hone_data::shards::{Dtype, FORMAT, ShardIndex, SplitInfo, write_shard};
use hone_metrics::read_series;
use hone_model::ModelConfig;
use hone_train::stage::{LoopConfig, StageContext};
use hone_train::{OptimConfig, PretrainConfig, run_pretrain};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let docs = |v: Vec<u32>| -> Vec<Vec<u32>> {
        let mut out: Vec<Vec<u32>> = Vec::new();
        for t in v {
            if t == 0 || out.is_empty() {
                out.push(Vec::new());
            }
            out.last_mut().unwrap().push(t);
        }
        out
    };
    let mut train = SplitInfo::default();
    train.push(write_shard(dir, "train-00000", Dtype::U16, &docs(tokens(3000, 1)), 12_000).unwrap());
    let mut val = SplitInfo::default();
    val.push(write_shard(dir, "val-00000", Dtype::U16, &docs(tokens(600, 2)), 2_400).unwrap());
    let index = ShardIndex {
        format: FORMAT.into(),
        dtype: Dtype::U16,
        vocab_size: 96,
        bos_id: 0,
        tokenizer_sha256: String::new(),
        val_fraction: 0.1,
        seed: 0,
        sources: vec![],
        train,
        val,
        skipped_empty: 0,
        skipped_invalid: 0,
    };
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn pretrain_on_shards_logs_evals_plots_and_resumes() {
    let run = tempfile::tempdir().unwrap();
    write_data(&run.path().join("data"));
    let model = ModelConfig { preset: "micro".into(), max_position_embeddings: 64, ..ModelConfig::default() };
    let optim = OptimConfig { lr: 1e-2, warmup_steps: 2, ..OptimConfig::default() };
    let pre = PretrainConfig {
        batch_size: 4,
        seq_len: 32,
        eval_rows: 8,
        run: LoopConfig { steps: 6, eval_every: 3, checkpoint_every: 3, log_every: 1, ..LoopConfig::default() },
        ..PretrainConfig::default()
    };
    let ctx = StageContext {
        run_dir: run.path().to_path_buf(),
        optim: &optim,
        model: &model,
        progress: false,
        activation_checkpointing: false,
        stop: Some(Arc::new(AtomicBool::new(false))),
    };
    let r = run_pretrain(&pre, &ctx).unwrap();
    assert_eq!(r.summary.steps_done, 6);
    let ckpt = r.summary.checkpoint.clone().unwrap();
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(ckpt.join("config.json")).unwrap()).unwrap();
    assert_eq!(hf["vocab_size"], 96, "vocabulary taken from the shards");
    let metrics = run.path().join("metrics.jsonl");
    let val = read_series(&metrics, "pretrain", "eval", "val_loss");
    let bpb = read_series(&metrics, "pretrain", "eval", "val_bpb");
    assert_eq!(val.iter().map(|v| v.0).collect::<Vec<_>>(), vec![0, 3, 6]);
    assert!(val[2].1 < val[0].1, "held-out loss fell: {val:?}");
    // bits per byte = nats/token / ln 2 * tokens / bytes (600 tokens over 2400 bytes here)
    assert!((bpb[2].1 - val[2].1 / std::f64::consts::LN_2 * 0.25).abs() < 1e-9);
    assert_eq!(read_series(&metrics, "pretrain", "train", "loss").len(), 6);
    let svg = std::fs::read_to_string(r.stage_dir.join("loss.svg")).unwrap();
    assert!(svg.len() > 1000 && svg.contains("<polyline") && svg.contains("held-out"), "loss.svg drawn");
    assert_eq!(hf["architectures"][0], "LlamaForCausalLM");
    assert!(ckpt.join("MANIFEST").is_file());

    let again = run_pretrain(&pre, &ctx).unwrap();
    assert_eq!(again.resumed_from, Some(6));
    assert_eq!(again.summary.steps_done, 6);

    let bad = PretrainConfig { seq_len: 1000, ..pre.clone() };
    let e = run_pretrain(&bad, &ctx).unwrap_err().to_string();
    assert!(e.contains("pretrain.seq_len"), "{e}");
}
