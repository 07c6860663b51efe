//! The AdamW loss trace of the PyTorch fixture (`scripts/make_model_fixture.py`): ten steps on one
//! batch from the same weights, with decay on 2-D weight matrices only, must give PyTorch's losses
//! to 1e-4 relative.

use hone_model::LlamaConfig;
use hone_model::burn::tensor::Device;
use hone_model::llama::{cross_entropy, ids_tensor};
use hone_model::weights::{HostTensor, model_from_tensors, read_f32};
use hone_train::OptimConfig;
use hone_train::grads::Grads;
use hone_train::optim::Optimizer;
use std::collections::BTreeMap;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hone-model/tests/fixtures/llama_tiny.safetensors");

fn trace(variant: &str) {
    let bytes = std::fs::read(FIXTURE).expect("fixture present");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let all = read_f32(&bytes, FIXTURE).unwrap();
    let config: LlamaConfig = serde_json::from_str(&meta[&format!("config.{variant}")]).unwrap();
    let adamw: serde_json::Value = serde_json::from_str(&meta["adamw"]).unwrap();
    let prefix = format!("{variant}/param/");
    let mut params: BTreeMap<String, HostTensor> =
        all.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n.to_string(), v.clone()))).collect();
    let device = Device::flex().autodiff();
    let mut model = model_from_tensors(&mut params, &config, &device, FIXTURE).unwrap();
    let ids = |k: &str| all[k].data.iter().map(|&x| x as u32).collect::<Vec<u32>>();
    let (inputs, targets) = (ids("inputs"), ids("targets"));
    let [b, s] = [all["inputs"].shape[0], all["inputs"].shape[1]];
    let cfg = OptimConfig {
        lr: adamw["lr"].as_f64().unwrap(),
        beta1: adamw["betas"][0].as_f64().unwrap(),
        beta2: adamw["betas"][1].as_f64().unwrap(),
        eps: adamw["eps"].as_f64().unwrap(),
        weight_decay: adamw["weight_decay"].as_f64().unwrap(),
        ..OptimConfig::default()
    };
    let mut opt = Optimizer::new(&cfg, &model).unwrap();
    let want = &all[&format!("{variant}/adamw_losses")].data;
    let mut worst = 0f64;
    for (step, w) in want.iter().enumerate() {
        let loss =
            cross_entropy(model.forward(ids_tensor(&inputs, b, s, &device)), ids_tensor(&targets, b, s, &device));
        let l: f32 = loss.clone().without_autodiff().into_scalar();
        let rel = ((l - w).abs() / w.abs()) as f64;
        worst = worst.max(rel);
        assert!(rel <= 1e-4, "{variant}: step {step}: loss {l} vs PyTorch {w} ({rel:.2e} relative)");
        let g = Grads::collect(&model, &loss.backward());
        opt.apply(&mut model, &g, 1.0).unwrap();
    }
    println!("{variant}: AdamW trace {} -> {}, worst rel err {worst:.2e}", want[0], want[want.len() - 1]);
}

#[test]
fn adamw_trace_matches_pytorch_gqa() {
    trace("gqa");
}

#[test]
fn adamw_trace_matches_pytorch_tied_qk() {
    trace("tied_qk");
}
