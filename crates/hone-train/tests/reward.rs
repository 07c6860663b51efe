//! Reward model: the head reads the last real token (padding changes nothing), the Bradley–Terry loss
//! matches a hand computation, the weight file has Hugging Face's sequence-classification names and
//! loads back with the same scores, and training separates chosen from rejected (and the trained
//! checkpoint loads back with the trained scores).

mod post;

use hone_data::Location;
use hone_data::chat::{ChatTemplate, Message};
use hone_data::pairs::Pair;
use hone_model::burn::tensor::{Device, Tensor};
use hone_model::llama::{Layout, ids_tensor};
use hone_train::pairdata::{EncodedPair, encode_pairs};
use hone_train::stages::reward::{RewardModel, RewardTask, bradley_terry, pair_rewards};
use hone_train::{LoopSettings, Trainable, Trainer};
use post::*;
use std::sync::atomic::AtomicBool;

fn pairs() -> Vec<Pair> {
    CITIES
        .iter()
        .enumerate()
        .flat_map(|(i, (c, k))| {
            (0..2).map(move |j| {
                let wrong = CITIES[(i + 1 + j) % CITIES.len()].1;
                Pair {
                    prompt: vec![Message::new("user", format!("What is the capital of {c}?"))],
                    chosen: vec![Message::new("assistant", format!("The capital of {c} is {k}."))],
                    rejected: vec![Message::new("assistant", format!("The capital of {c} is {wrong}."))],
                    file: "mem.jsonl".into(),
                    loc: Location::Line { line: (2 * i + j) as u64 + 1, offset: 0 },
                }
            })
        })
        .collect()
}

#[test]
fn head_reads_the_last_real_token() {
    let tok = tokenizer();
    let d = Device::flex();
    let rm = RewardModel::new(model(&tok, 3, &d), 9);
    let short = tok.encode("<|user|>\nhi<|end|>\n<|assistant|>\nTesmir.<|end|>\n").unwrap();
    let long = tok
        .encode("<|user|>\nWhat is the capital of Varnok?<|end|>\n<|assistant|>\nThe capital is Tesmir.<|end|>\n")
        .unwrap();
    let alone = rm.score(&short);
    // The same sequence right-padded in a batch with a longer one.
    let seq = long.len();
    let mut ids = long.clone();
    ids.extend(short.iter().copied().chain(std::iter::repeat(tok.pad_id)).take(seq));
    let both: Vec<f32> =
        rm.forward(ids_tensor(&ids, 2, seq, &d), &[long.len() - 1, short.len() - 1]).to_data().try_into_vec().unwrap();
    assert!((both[1] - alone).abs() < 1e-5, "padding changed the reward: {} vs {alone}", both[1]);
    assert!((both[0] - rm.score(&long)).abs() < 1e-5);
    // By hand: hidden state of the last token · score weights.
    let h = rm.trunk.hidden(ids_tensor(&short, 1, short.len(), &d), &Layout::causal(1, short.len(), &d));
    let hv: Vec<f32> = h.to_data().try_into_vec().unwrap();
    let w: Vec<f32> = rm.score.to_data().try_into_vec().unwrap();
    let hd = w.len();
    let last = &hv[(short.len() - 1) * hd..short.len() * hd];
    let want: f32 = last.iter().zip(&w).map(|(a, b)| a * b).sum();
    assert!((want - alone).abs() < 1e-5, "{want} vs {alone}");
}

#[test]
fn bradley_terry_matches_hand_computation() {
    let d = Device::flex();
    let (rc, rr) = ([1.5f32, -0.5, 0.25], [0.5f32, 0.5, 0.25]);
    let l: f32 = bradley_terry(Tensor::<1>::from_floats(rc, &d), Tensor::<1>::from_floats(rr, &d)).into_scalar();
    let want: f64 = rc.iter().zip(&rr).map(|(c, r)| (1.0 + (-(c - r) as f64).exp()).ln()).sum::<f64>() / 3.0;
    assert!((l as f64 - want).abs() < 1e-6, "{l} vs {want}");
}

#[test]
fn weights_use_sequence_classification_names_and_load_back() {
    let tok = tokenizer();
    let d = Device::flex();
    let rm = RewardModel::new(model(&tok, 3, &d), 9);
    let bytes = rm.to_safetensors().unwrap();
    let names: Vec<String> = hone_model::weights::read_f32(&bytes, "x").unwrap().into_keys().collect();
    assert!(names.contains(&"score.weight".to_string()) && names.contains(&"model.norm.weight".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("lm_head")), "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&rm.hf_config(tok.pad_id)).unwrap()).unwrap();
    let back = RewardModel::load(dir.path(), &d).unwrap();
    let ids = tok.encode("<|user|>\nWhat is the capital of Oskel?<|end|>\n").unwrap();
    assert_eq!(back.score(&ids), rm.score(&ids));
    std::fs::write(dir.path().join("model.safetensors"), hone_model::weights::model_to_safetensors(&rm.trunk).unwrap())
        .unwrap();
    let e = format!("{:#}", RewardModel::load(dir.path(), &d).unwrap_err());
    assert!(e.contains("score.weight") && e.contains("model.safetensors"), "{e}");
}

#[test]
fn training_separates_chosen_from_rejected() {
    let tok = tokenizer();
    let all = pairs();
    let data = encode_pairs(&all, &[], &tok, &ChatTemplate::hone_default(), 128, 0.0, 1).unwrap();
    let mut held = data.clone();
    held.val = data.train.clone();
    let device = Device::flex().autodiff();
    let rm = RewardModel::new(model(&tok, 4, &device), 5);
    let dir = tempfile::tempdir().unwrap();
    let settings = LoopSettings {
        stage: "reward".into(),
        steps: 80,
        grad_accum: 1,
        eval_every: 0,
        checkpoint_every: 0,
        keep_last: 1,
        log_every: 1,
        seed: 1,
        config_hash: "t".into(),
        progress: false,
        // What the reward stage writes beside the weights, so the checkpoint opens on its own.
        extra_files: vec![("config.json".into(), serde_json::to_vec(&rm.hf_config(tok.pad_id)).unwrap())],
        activation_checkpointing: false,
    };
    let mut t = Trainer::new(rm, &optim(), settings, &dir.path().join("reward"), None).unwrap();
    let mut task = RewardTask::new(held, tok.pad_id, 1, 8, 1);
    let s = t.run(&mut task, &AtomicBool::new(false)).unwrap();
    let acc = hone_train::stage::metric(&s.last_eval, "val_accuracy");
    assert!(acc >= 0.9, "pairwise accuracy on the training pairs after 80 steps: {acc} ({:?})", s.last_eval);
    let refs: Vec<&EncodedPair> = data.train.iter().take(2).collect();
    let (rc, rr) = pair_rewards(&t.model, &refs, tok.pad_id, data.longest());
    let (c, r): (Vec<f32>, Vec<f32>) = (rc.to_data().try_into_vec().unwrap(), rr.to_data().try_into_vec().unwrap());
    assert!(c[0] > r[0] && c[1] > r[1], "{c:?} {r:?}");
    // The final checkpoint opens as a reward model (MANIFEST checked) with the trained scores.
    let loaded = RewardModel::load(&dir.path().join("reward"), &Device::flex()).unwrap();
    let (lc, lr) = pair_rewards(&loaded, &refs, tok.pad_id, data.longest());
    let (lc, lr): (Vec<f32>, Vec<f32>) = (lc.to_data().try_into_vec().unwrap(), lr.to_data().try_into_vec().unwrap());
    for (x, y) in lc.iter().chain(&lr).zip(c.iter().chain(&r)) {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "loaded {lc:?} {lr:?} vs trained {c:?} {r:?}");
    }
}
