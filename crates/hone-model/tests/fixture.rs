//! The PyTorch correctness fixture (`scripts/make_model_fixture.py`): with the same weights and
//! inputs, hone's forward pass must give PyTorch's logits and loss to 1e-5 relative, and burn's
//! autodiff must give PyTorch's gradient of every parameter to 1e-4 relative.

use hone_model::LlamaConfig;
use hone_model::burn::tensor::{Device, Tensor};
use hone_model::llama::{cross_entropy, ids_tensor};
use hone_model::weights::{HostTensor, model_from_tensors, read_f32};
use std::collections::BTreeMap;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama_tiny.safetensors");

fn fixture() -> (BTreeMap<String, HostTensor>, std::collections::HashMap<String, String>) {
    let bytes = std::fs::read(FIXTURE).expect("fixture present");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("fixture header");
    (read_f32(&bytes, FIXTURE).expect("fixture reads"), meta.metadata().clone().expect("fixture metadata"))
}

/// max |a - b| / max |b|: the error relative to the reference tensor's scale.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn check_variant(variant: &str) {
    let (mut all, meta) = fixture();
    let config: LlamaConfig = serde_json::from_str(&meta[&format!("config.{variant}")]).unwrap();
    let ids = |k: &str| all[k].data.iter().map(|&x| x as u32).collect::<Vec<u32>>();
    let (inputs, targets) = (ids("inputs"), ids("targets"));
    let [b, s] = [all["inputs"].shape[0], all["inputs"].shape[1]];
    let prefix = format!("{variant}/param/");
    let mut params: BTreeMap<String, HostTensor> =
        all.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n.to_string(), v.clone()))).collect();
    let device = Device::flex().autodiff();
    let model = model_from_tensors(&mut params, &config, &device, FIXTURE).unwrap();
    assert!(params.is_empty(), "unused fixture tensors: {:?}", params.keys());

    let logits = model.forward(ids_tensor(&inputs, b, s, &device));
    let loss = cross_entropy(logits.clone(), ids_tensor(&targets, b, s, &device));
    let e_logits = rel_err(&to_vec(logits.clone().without_autodiff()), &all[&format!("{variant}/logits")].data);
    let e_loss = rel_err(&to_vec(loss.clone().without_autodiff()), &all[&format!("{variant}/loss")].data);
    println!("{variant}: logits rel err {e_logits:.2e}, loss rel err {e_loss:.2e}");
    assert!(e_logits <= 1e-5, "{variant}: logits differ by {e_logits:.3e} relative");
    assert!(e_loss <= 1e-5, "{variant}: loss differs by {e_loss:.3e} relative");

    let grads = loss.backward();
    let mut worst = (0f64, String::new());
    for (spec, p) in model.params() {
        let g = p.grad(&grads).unwrap_or_else(|| panic!("{}: no gradient", spec.name));
        let want = all.remove(&format!("{variant}/grad/{}", spec.name)).expect("gradient in fixture");
        assert_eq!(g.shape(), want.shape, "{}", spec.name);
        let e = rel_err(&g.to_vec(), &want.data);
        assert!(e <= 1e-4, "{variant}: gradient of {} differs by {e:.3e} relative", spec.name);
        if e > worst.0 {
            worst = (e, spec.name.clone());
        }
    }
    println!("{variant}: worst gradient rel err {:.2e} ({})", worst.0, worst.1);
}

#[test]
fn gqa_untied_matches_pytorch() {
    check_variant("gqa");
}

#[test]
fn tied_qk_norm_matches_pytorch() {
    check_variant("tied_qk");
}

#[test]
fn safetensors_round_trip_keeps_hf_names_and_values() {
    let (all, meta) = fixture();
    let config: LlamaConfig = serde_json::from_str(&meta["config.gqa"]).unwrap();
    let device = Device::flex();
    let mut params: BTreeMap<String, HostTensor> =
        all.iter().filter_map(|(k, v)| k.strip_prefix("gqa/param/").map(|n| (n.to_string(), v.clone()))).collect();
    let expected = params.clone();
    let model = model_from_tensors(&mut params, &config, &device, FIXTURE).unwrap();
    let bytes = hone_model::weights::model_to_safetensors(&model).unwrap();
    let back = read_f32(&bytes, "round trip").unwrap();
    assert_eq!(back, expected);
    assert!(back.contains_key("model.layers.1.self_attn.q_proj.weight") && back.contains_key("lm_head.weight"));
    assert_eq!(back["model.layers.0.mlp.down_proj.weight"].shape, vec![32, 64], "Linear weights are [out, in]");

    // A missing or misshapen tensor is an error naming the file and the tensor.
    let mut broken = expected.clone();
    broken.remove("model.norm.weight");
    let e = model_from_tensors(&mut broken, &config, &device, "w.safetensors").unwrap_err().to_string();
    assert!(e.contains("w.safetensors") && e.contains("model.norm.weight"), "{e}");
    let mut broken = expected.clone();
    broken.get_mut("lm_head.weight").unwrap().shape = vec![32, 64];
    let e = model_from_tensors(&mut broken, &config, &device, "w.safetensors").unwrap_err().to_string();
    assert!(e.contains("lm_head.weight") && e.contains("[64, 32]"), "{e}");
}
