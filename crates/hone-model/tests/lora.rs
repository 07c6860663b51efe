//! LoRA against the arithmetic it stands for: a model with an adapter computes what the merged
//! weights `W + scale · B · A` compute, its gradients are the chain rule through the merged weights
//! (`dA = scale · Bᵀ · dW`, `dB = scale · dW · Aᵀ`) and match central finite differences, the frozen
//! base records no gradient, dropout masks are a pure function of their seed, and adapter files
//! round-trip and refuse another base model's.

use hone_model::burn::tensor::{Device, Tensor};
use hone_model::llama::{ids_tensor, token_log_probs};
use hone_model::lora::{Lora, LoraSpec, Target};
use hone_model::{Llama, LlamaConfig, Param, ParamKind};
use rand::{Rng, SeedableRng};

mod common;

fn config(layers: usize, hidden: usize) -> LlamaConfig {
    common::tiny_config(61, hidden, 40, layers, false)
}

fn spec(dropout: f64) -> LoraSpec {
    LoraSpec {
        rank: 3,
        alpha: 6.0,
        dropout,
        targets: vec![Target::QProj, Target::VProj, Target::OProj, Target::UpProj, Target::DownProj],
        rslora: false,
    }
}

fn ad() -> Device {
    Device::flex().autodiff()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.without_autodiff().into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// A model with an adapter whose `B` is random too (a fresh adapter's `B` is zero, which would hide
/// a wrong `A` path).
fn adapted(dropout: f64, device: &Device) -> Llama {
    let c = config(2, 32);
    let mut m = Llama::init(&c, 3, device).unwrap();
    let mut lora = Lora::init(spec(dropout), "base".into(), &c, 5, device).unwrap();
    common::random_b(&mut lora, device, 7);
    m.attach_lora(lora).unwrap();
    m
}

/// Mean negative log-likelihood of `tg` after `ids`, `[b, s]` each.
fn loss(m: &Llama, ids: &[u32], tg: &[u32], b: usize, s: usize) -> Tensor<1> {
    let d = m.device().clone();
    token_log_probs(m.forward(ids_tensor(ids, b, s, &d)), ids_tensor(tg, b, s, &d)).mean().neg()
}

fn batch() -> (Vec<u32>, Vec<u32>, usize, usize) {
    let (b, s) = (2, 11);
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let ids = (0..b * s).map(|_| r.random_range(0..61)).collect();
    let tg = (0..b * s).map(|_| r.random_range(0..61)).collect();
    (ids, tg, b, s)
}

/// `x [m, k] · y [k, n]` on the host.
fn matmul(x: &[f32], y: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| x[i * k + t] * y[t * n + j]).sum();
        }
    }
    out
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows).map(|i| x[(i % rows) * cols + i / rows]).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w} (scale {scale})");
    }
}

#[test]
fn an_adapter_computes_what_its_merged_weights_compute() {
    let d = ad();
    let m = adapted(0.0, &d);
    let (ids, _, b, s) = batch();
    let mut merged = m.clone();
    merged.merge_lora().unwrap();
    let a = host(m.forward(ids_tensor(&ids, b, s, &d)));
    let want = host(merged.forward(ids_tensor(&ids, b, s, &d)));
    assert_close("logits", &a, &want, 1e-5);
    // The base alone, and a fresh adapter (B = 0), give the base's logits exactly.
    let base = host(m.without_lora().forward(ids_tensor(&ids, b, s, &d)));
    let c = config(2, 32);
    let mut fresh = m.without_lora();
    fresh.attach_lora(Lora::init(spec(0.0), "base".into(), &c, 9, &d).unwrap()).unwrap();
    assert_eq!(host(fresh.forward(ids_tensor(&ids, b, s, &d))), base);
    assert!(a.iter().zip(&base).any(|(x, y)| (x - y).abs() > 1e-3), "the adapter changes the logits");
}

#[test]
fn gradients_are_the_chain_rule_through_the_merged_weights_and_the_base_gets_none() {
    let d = ad();
    let m = adapted(0.0, &d);
    let (ids, tg, b, s) = batch();
    let g = loss(&m, &ids, &tg, b, s).backward();
    // Frozen: no base tensor is in the gradients.
    for (spec, p) in m.params() {
        assert!(p.grad(&g).is_none(), "{} has a gradient", spec.name);
    }
    let lora = m.lora().unwrap();
    let grads: Vec<(String, Vec<f32>, Vec<usize>)> = lora
        .params()
        .into_iter()
        .map(|(s, p)| {
            assert_eq!(s.kind, ParamKind::Adapter);
            (s.name.clone(), p.grad(&g).expect("adapter gradient").to_vec(), s.shape)
        })
        .collect();
    let values: Vec<Vec<f32>> = lora.params().iter().map(|(_, p)| p.to_vec()).collect();
    // dW of the merged model.
    let mut merged = m.clone();
    merged.merge_lora().unwrap();
    let gm = loss(&merged, &ids, &tg, b, s).backward();
    let dw: std::collections::BTreeMap<String, Vec<f32>> =
        merged.params().into_iter().map(|(s, p)| (s.name, p.grad(&gm).unwrap().to_vec())).collect();
    let scale = spec(0.0).scale() as f32;
    for pair in 0..grads.len() / 2 {
        let (an, ga, ashape) = &grads[2 * pair];
        let (_, gb, bshape) = &grads[2 * pair + 1];
        let (av, bv) = (&values[2 * pair], &values[2 * pair + 1]);
        let (r, inp, out) = (ashape[0], ashape[1], bshape[0]);
        let module = an.trim_start_matches("base_model.model.").replace(".lora_A.weight", ".weight");
        let w = &dw[&module];
        // dA = s · Bᵀ [r, out] · dW [out, in]; dB = s · dW [out, in] · Aᵀ [in, r].
        let want_a: Vec<f32> = matmul(&transpose(bv, out, r), w, r, out, inp).iter().map(|x| x * scale).collect();
        let want_b: Vec<f32> = matmul(w, &transpose(av, r, inp), out, inp, r).iter().map(|x| x * scale).collect();
        assert_close(&format!("{module} dA"), ga, &want_a, 1e-4);
        assert_close(&format!("{module} dB"), gb, &want_b, 1e-4);
    }
}

#[test]
fn adapter_gradients_match_finite_differences() {
    let d = ad();
    let m = adapted(0.0, &d);
    let (ids, tg, b, s) = batch();
    let g = loss(&m, &ids, &tg, b, s).backward();
    let params = m.lora().unwrap().params();
    let plain = Device::flex();
    let mut checked = 0;
    // A few entries of the first and last layers' matrices, A and B both.
    for (k, (spec, p)) in params.iter().enumerate().filter(|(k, _)| *k < 2 || *k + 2 >= params.len()) {
        let grad = p.grad(&g).unwrap().to_vec();
        let base = p.to_vec();
        for i in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-2f32;
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let mut mm = m.clone();
                let mut n = 0;
                mm.lora_mut()
                    .unwrap()
                    .update(&d, &mut |_, q| {
                        let out = if n == k { q.like(Tensor::<1>::from_floats(v.as_slice(), &plain)) } else { q };
                        n += 1;
                        Ok(out)
                    })
                    .unwrap();
                host(loss(&mm.to_inference(), &ids, &tg, b, s))[0] as f64
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let err = (fd - grad[i] as f64).abs();
            assert!(
                err <= 2e-3 + 2e-2 * fd.abs(),
                "{}[{i}]: backward {} vs finite differences {fd}",
                spec.name,
                grad[i]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn dropout_masks_follow_their_seed_and_stay_off_outside_training() {
    let d = ad();
    let m = adapted(0.3, &d);
    let (ids, tg, b, s) = batch();
    let with = |seed: Option<u64>| {
        let mut mm = m.clone();
        if let Some(seed) = seed {
            let l = mm.lora().unwrap().with_dropout_seed(seed);
            *mm.lora_mut().unwrap() = l;
        }
        host(loss(&mm, &ids, &tg, b, s))[0]
    };
    assert_eq!(with(Some(4)), with(Some(4)));
    assert_ne!(with(Some(4)), with(Some(5)));
    let off = with(None);
    assert_ne!(with(Some(4)), off);
    // Inference copies drop the seed: no dropout there.
    let mut seeded = m.clone();
    let l = seeded.lora().unwrap().with_dropout_seed(4);
    *seeded.lora_mut().unwrap() = l;
    assert_eq!(host(loss(&seeded.to_inference(), &ids, &tg, b, s))[0], off);
}

#[test]
fn adapter_files_round_trip_and_another_bases_are_refused() {
    let d = Device::flex();
    let m = adapted(0.0, &d);
    let lora = m.lora().unwrap();
    let bytes = lora.to_safetensors().unwrap();
    let c = config(2, 32);
    let back = Lora::from_safetensors(spec(0.0), "base".into(), &bytes, &c, &d, "a.safetensors").unwrap();
    let flat = |l: &Lora| l.params().iter().flat_map(|(_, p)| p.to_vec()).collect::<Vec<f32>>();
    assert_eq!(flat(&back), flat(lora));
    let names: Vec<String> = lora.params().into_iter().map(|(s, _)| s.name).collect();
    assert!(names.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".to_string()), "{names:?}");
    let err = |c: &LlamaConfig| {
        format!("{:#}", Lora::from_safetensors(spec(0.0), "base".into(), &bytes, c, &d, "a.safetensors").unwrap_err())
    };
    // Wider: every matrix's shape differs; the first is named with both shapes.
    let e = err(&config(2, 48));
    assert!(
        e.contains("a.safetensors") && e.contains("layers.0.self_attn.q_proj.lora_A") && e.contains("another base"),
        "{e}"
    );
    // Fewer layers: the layer the base lacks is named.
    let e = err(&config(1, 32));
    assert!(e.contains("layer 1") && e.contains("1 layers"), "{e}");
    // A spec that lists fewer targets than the file holds.
    let narrow = LoraSpec { targets: vec![Target::QProj], ..spec(0.0) };
    let e = format!("{:#}", Lora::from_safetensors(narrow, "b".into(), &bytes, &c, &d, "a.safetensors").unwrap_err());
    assert!(e.contains("not a LoRA matrix of a projection listed"), "{e}");
    // A rank other than the file's.
    let e = format!(
        "{:#}",
        Lora::from_safetensors(LoraSpec { rank: 4, ..spec(0.0) }, "b".into(), &bytes, &c, &d, "a.safetensors")
            .unwrap_err()
    );
    assert!(e.contains("r = 4"), "{e}");
}

#[test]
fn training_only_the_adapter_leaves_the_base_bit_identical() {
    // One plain SGD step through update(): the base tensors are the same values afterwards.
    let d = ad();
    let m = adapted(0.0, &d);
    let before: Vec<Vec<f32>> = m.params().iter().map(|(_, p)| p.to_vec()).collect();
    let (ids, tg, b, s) = batch();
    let g = loss(&m, &ids, &tg, b, s).backward();
    let mut m2 = m.clone();
    let grads: Vec<Param> = m.lora().unwrap().params().iter().map(|(_, p)| p.grad(&g).unwrap()).collect();
    let mut i = 0;
    m2.lora_mut()
        .unwrap()
        .update(&d, &mut |_, p| {
            let step = p.flat().without_autodiff() - grads[i].flat().mul_scalar(0.1);
            i += 1;
            Ok(p.like(step))
        })
        .unwrap();
    let after: Vec<Vec<f32>> = m2.params().iter().map(|(_, p)| p.to_vec()).collect();
    assert_eq!(before, after);
    assert!(host(loss(&m2, &ids, &tg, b, s))[0] < host(loss(&m, &ids, &tg, b, s))[0]);
}
