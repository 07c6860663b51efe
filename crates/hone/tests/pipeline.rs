//! `hone run --preset quick` end to end: the whole pipeline completes, every stage writes a final
//! checkpoint, the report lists every stage, a rerun reuses everything, and runs interrupted with
//! SIGINT or killed with SIGKILL, then rerun, end with the same weights and metrics as an
//! uninterrupted run of the same seed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const STAGES: &[&str] = &["pretrain", "sft", "reward", "dpo", "rl"];

fn cmd(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hone"));
    c.current_dir(root).args(["run", "--preset", "quick", "--set", "run.progress=false"]);
    c
}

fn run(root: &Path) -> Output {
    cmd(root).output().expect("hone runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn run_dir(root: &Path) -> PathBuf {
    root.join("runs/quick")
}

/// Metric values of every evaluation result, by stage and task (timings left out).
fn metrics(root: &Path) -> Vec<(String, String, String, f64)> {
    let mut v = Vec::new();
    for stage in ["pretrain", "sft", "dpo", "rl"] {
        let dir = run_dir(root).join("eval").join(stage);
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            for m in j["metrics"].as_array().unwrap() {
                let name = format!("{}{}", m["name"].as_str().unwrap(), m["group"].as_str().unwrap_or(""));
                v.push((
                    stage.to_string(),
                    j["task"].as_str().unwrap().to_string(),
                    name,
                    m["value"].as_f64().unwrap_or(f64::NAN),
                ));
            }
        }
    }
    v
}

/// The final checkpoint of a stage (the folder the stage's `final` link points to).
fn final_dir(root: &Path, stage: &str) -> PathBuf {
    let stage_dir = run_dir(root).join(stage);
    let name = std::fs::read_link(stage_dir.join("final")).unwrap_or_else(|_| panic!("{stage} has a final link"));
    stage_dir.join(name)
}

fn final_weights(root: &Path, stage: &str) -> Vec<u8> {
    std::fs::read(final_dir(root, stage).join("model.safetensors")).unwrap()
}

/// Starts a run and waits until `ready` holds for the run directory (or the child exits).
fn start_until(root: &Path, ready: impl Fn(&Path) -> bool) -> Child {
    let mut child = cmd(root).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("hone starts");
    let t = Instant::now();
    while !ready(&run_dir(root)) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before the point of interruption");
        assert!(t.elapsed() < Duration::from_secs(600), "the run never reached the point of interruption");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn has_checkpoint(stage: &Path) -> bool {
    std::fs::read_dir(stage)
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("step-")))
        .unwrap_or(false)
}

#[test]
fn quick_pipeline_completes_resumes_and_is_reproducible() {
    // Uninterrupted.
    let a = tempfile::tempdir().unwrap();
    let out = run(a.path());
    assert!(out.status.success(), "hone run failed:\n{}", text(&out));
    for s in STAGES {
        assert!(final_dir(a.path(), s).join("model.safetensors").is_file(), "{s} has a final checkpoint");
    }
    let report = std::fs::read_to_string(run_dir(a.path()).join("report/report.md")).unwrap();
    for s in STAGES {
        assert!(report.contains(&format!("| {s} |")), "the report's stage table lists {s}");
    }
    for label in ["base", "sft", "dpo", "rl"] {
        assert!(report.contains(&format!(" {label} |")), "the report's metric table has a {label} column");
    }
    assert!(run_dir(a.path()).join("report/report.html").is_file());
    self_contained_stages_and_export(a.path());
    lora_stages(a.path());
    // A rerun reuses every step, also with activation checkpointing switched on (it changes no
    // result, so it is no part of a step's key).
    let again = text(&cmd(a.path()).args(["--set", "run.activation_checkpointing=true"]).output().unwrap());
    assert!(!again.contains("] pretrain ━━") && again.contains("pretrain (up to date, reused)"), "{again}");
    for s in &STAGES[1..] {
        assert!(again.contains(&format!("{s} (up to date, reused)")), "{s}: {again}");
    }
    let reference = metrics(a.path());
    assert!(!reference.is_empty());

    // SIGINT during pretraining: the run stops with a checkpoint; the same command finishes it.
    let b = tempfile::tempdir().unwrap();
    let child = start_until(b.path(), |r| has_checkpoint(&r.join("pretrain")));
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "an interrupted run exits with 130");
    assert!(!run_dir(b.path()).join("sft").exists(), "nothing after the interrupted stage ran");
    let out = run(b.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(resuming)"), "{}", text(&out));

    // SIGKILL during SFT.
    let c = tempfile::tempdir().unwrap();
    let mut child = start_until(c.path(), |r| has_checkpoint(&r.join("sft")));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run(c.path());
    assert!(out.status.success(), "{}", text(&out));
    // The rerun continued: pretraining was reused whole and SFT resumed from its checkpoint (a
    // restart from scratch would print neither, and would still end equal, so the weights alone
    // could not tell).
    let t = text(&out);
    assert!(t.contains("pretrain (up to date, reused)"), "{t}");
    assert!(t.contains("sft: resuming from") && t.contains("(resuming)"), "{t}");

    for (dir, what) in [(b.path(), "SIGINT"), (c.path(), "SIGKILL")] {
        for s in STAGES {
            assert!(
                final_weights(dir, s) == final_weights(a.path(), s),
                "{what}: {s} weights equal the uninterrupted run's"
            );
        }
        assert_eq!(metrics(dir), reference, "{what}: every metric equals the uninterrupted run's");
    }
    iterate_rounds(a.path(), b.path(), c.path());
}

/// `hone serve` on the LoRA run: its adapter stages are listed, and the RL adapter (opened as its base
/// chain with every adapter merged) scores a text as the merged export of it does, and otherwise than
/// the SFT adapter it was trained from.
fn served_adapters(root: &Path, merged: &Path) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_hone"))
        .current_dir(root)
        .args(["serve", "runs/quick", "--port", "0", "-m"])
        .arg(format!("merged={}", merged.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server says where it listens").unwrap();
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let http = |method: &str, path: &str, body: &str| -> (String, serde_json::Value) {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), serde_json::from_str(body).unwrap_or_default())
    };
    let (status, models) = http("GET", "/v1/models", "");
    assert!(status.contains("200"), "{status}");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["sft", "dpo", "rl", "merged"] {
        assert!(ids.contains(&id), "{id} not served: {ids:?}");
    }
    // The log-probabilities of a text's tokens under each model (the quick run's models answer little
    // more than blank lines, so their answers would not tell the models apart).
    let scores = |model: &str| -> Vec<f64> {
        let body = serde_json::json!({
            "model": model,
            "prompt": "The capital of the first country is a city by the river.",
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": 1,
            "echo": true,
        });
        let (status, v) = http("POST", "/v1/completions", &body.to_string());
        assert!(status.contains("200"), "{model}: {status} {v}");
        v["choices"][0]["logprobs"]["token_logprobs"].as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect()
    };
    let (adapter, export, sft) = (scores("rl"), scores("merged"), scores("sft"));
    assert!(adapter.len() > 5 && adapter.len() == export.len() && adapter.len() == sft.len());
    let gap = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f64, f64::max);
    assert!(gap(&adapter, &export) < 1e-4, "served adapter vs merged export: {}", gap(&adapter, &export));
    assert!(gap(&adapter, &sft) > 1e-3, "the RL adapter changes nothing: {}", gap(&adapter, &sft));
    child.kill().unwrap();
    child.wait().unwrap();
}

fn iterate(root: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hone"));
    c.current_dir(root).args(["iterate", "--preset", "quick", "--set", "run.progress=false"]).args(extra);
    c
}

/// The weights of every checkpoint file under the rounds' stage folders, by path.
fn round_weights(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let dir = run_dir(root).join("iterate");
    for r in ["round-1", "round-2"] {
        for stage in ["sft", "dpo", "rl"] {
            let d = dir.join(r).join(stage);
            if let Ok(f) = std::fs::read_link(d.join("final")) {
                out.push((format!("{r}/{stage}"), std::fs::read(d.join(f).join("model.safetensors")).unwrap()));
            }
        }
    }
    out
}

/// `hone iterate` on the finished quick runs: rounds run and land in the report, a rerun reuses them,
/// an interrupted round resumes to the same weights, and bad settings are refused before any work.
fn iterate_rounds(a: &Path, b: &Path, c: &Path) {
    let out = iterate(a, &[]).output().unwrap();
    assert!(out.status.success(), "hone iterate failed:\n{}", text(&out));
    let rounds = run_dir(a).join("iterate");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rounds.join("round-1/round.json")).unwrap()).unwrap();
    assert!(record["reason"].as_str().is_some_and(|r| !r.is_empty()), "{record}");
    assert!(!record["weaknesses"].as_array().unwrap().is_empty(), "{record}");
    assert!(rounds.join("dev").join("arithmetic.toml").is_file(), "the development split is written");
    let report = std::fs::read_to_string(run_dir(a).join("report/report.md")).unwrap();
    assert!(report.contains("## Iteration rounds") && report.contains("### Round 1"), "{report}");
    let again = text(&iterate(a, &[]).output().unwrap());
    assert!(again.contains("round 1: done earlier") && again.contains("round 2: done earlier"), "{again}");

    // SIGINT inside round 1's training; the same command finishes with the same weights.
    let mut child = iterate(b, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    let started = |r: &Path| ["sft", "dpo", "rl"].iter().any(|s| has_checkpoint(&r.join("iterate/round-1").join(s)));
    while !started(&run_dir(b)) {
        assert!(child.try_wait().unwrap().is_none(), "iterate ended before round 1 trained");
        assert!(t.elapsed() < Duration::from_secs(300), "round 1 never trained");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "an interrupted round exits with 130");
    let out = iterate(b, &[]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success() && t.contains("round 1 (resuming)") && t.contains("resuming from"), "{t}");
    let (wa, wb) = (round_weights(a), round_weights(b));
    assert!(!wa.is_empty() && wa == wb, "interrupted and resumed rounds end with the same weights");

    // Bad settings: refused with the reason, before any round.
    let err = |extra: &[&str]| {
        let o = iterate(c, extra).output().unwrap();
        assert!(!o.status.success(), "{extra:?} was accepted");
        text(&o)
    };
    let e = err(&["--set", "iterate.goals=[\"world_arithmetic.acuracy >= 0.5\"]"]);
    assert!(e.contains("`acuracy`") && e.contains("accuracy"), "{e}");
    let e = err(&["--set", "iterate.goals=[\"world_arithmetic.accuracy = 0.5\"]"]);
    assert!(e.contains("no `>=`"), "{e}");
    let e = err(&["--grader", "feedback"]);
    assert!(e.contains("feedback/preferences.jsonl") && e.contains("hone serve"), "{e}");
    std::fs::create_dir_all(run_dir(c).join("feedback")).unwrap();
    std::fs::write(run_dir(c).join("feedback/preferences.jsonl"), "\n").unwrap();
    assert!(err(&["--grader", "feedback"]).contains("is empty"));
    std::fs::rename(run_dir(c).join("reward"), c.join("reward-aside")).unwrap();
    let e = err(&["--grader", "reward_model"]);
    assert!(e.contains("no trained reward model") && e.contains("grader = rule"), "{e}");
    assert!(!run_dir(c).join("iterate/round-1").exists(), "no round ran on bad settings");
}

/// Each stage's `final` is a model folder that opens on its own (the config carrying the tokenizer's
/// ids, a generation config, the tokenizer files with the chat template), and `hone export` refuses
/// to write over a folder or file without `--force`.
fn self_contained_stages_and_export(root: &Path) {
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
    };
    for s in STAGES {
        let f = run_dir(root).join(s).join("final");
        for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
            assert!(f.join(name).is_file(), "{s}/final/{name}");
        }
        let (cfg, tok, tok_cfg) =
            (json(f.join("config.json")), json(f.join("tokenizer.json")), json(f.join("tokenizer_config.json")));
        let id_of = |key: &str| -> u64 {
            let text = tok_cfg[key].as_str().unwrap_or_else(|| panic!("{s}: tokenizer_config.json {key}"));
            tok["added_tokens"].as_array().unwrap().iter().find(|t| t["content"] == text).unwrap()["id"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(cfg["bos_token_id"].as_u64(), Some(id_of("bos_token")), "{s}: bos_token_id");
        assert_eq!(cfg["eos_token_id"].as_u64(), Some(id_of("eos_token")), "{s}: eos_token_id");
        assert_eq!(cfg["pad_token_id"].as_u64(), Some(id_of("pad_token")), "{s}: pad_token_id");
        assert!(tok_cfg["chat_template"].as_str().is_some_and(|t| t.contains("add_generation_prompt")), "{s}");
    }
    let hone = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hone")).current_dir(root).args(args).output().unwrap();
    let out = root.join("export-hf");
    let dpo = run_dir(root).join("dpo").display().to_string();
    let (o, g) = (out.display().to_string(), root.join("dpo.gguf").display().to_string());
    assert!(hone(&["export", &dpo, "--format", "hf", "--out", &o]).status.success());
    assert!(out.join("model.safetensors").is_file() && out.join("generation_config.json").is_file());
    let again = hone(&["export", &dpo, "--format", "hf", "--out", &o]);
    assert!(
        !again.status.success() && text(&again).contains("not empty") && text(&again).contains("--force"),
        "{}",
        text(&again)
    );
    assert!(hone(&["export", &dpo, "--format", "hf", "--out", &o, "--force"]).status.success());
    // bf16 weights: half the bytes, the config says so.
    let b = root.join("export-bf16").display().to_string();
    assert!(hone(&["export", &dpo, "--format", "hf", "--type", "bf16", "--out", &b]).status.success());
    let (f32_len, bf16_len) = (
        std::fs::metadata(out.join("model.safetensors")).unwrap().len(),
        std::fs::metadata(root.join("export-bf16/model.safetensors")).unwrap().len(),
    );
    assert!(bf16_len * 2 < f32_len + 4096, "{bf16_len} vs {f32_len}");
    assert_eq!(json(root.join("export-bf16/config.json"))["torch_dtype"], "bfloat16");
    let wrong = hone(&["export", &dpo, "--format", "gguf", "--type", "bf16", "--out", &g]);
    assert!(!wrong.status.success() && text(&wrong).contains("f32, f16 or q8_0"), "{}", text(&wrong));
    assert!(hone(&["export", &dpo, "--format", "gguf", "--out", &g]).status.success());
    let again = hone(&["export", &dpo, "--format", "gguf", "--out", &g]);
    assert!(!again.status.success() && text(&again).contains("--force"), "{}", text(&again));
}

/// The post-training stages again with LoRA adapters, on a copy of a finished quick run: each stage
/// saves PEFT's files on the model before it, later stages and `hone export` open them merged, and
/// bad LoRA settings or an adapter whose base cannot be found are named.
fn lora_stages(root: &Path) {
    let l = tempfile::tempdir().unwrap();
    let ok =
        Command::new("cp").args(["-a", &run_dir(root).display().to_string(), &l.path().display().to_string()]).status();
    assert!(ok.unwrap().success());
    std::fs::create_dir_all(l.path().join("runs")).unwrap();
    std::fs::rename(l.path().join("quick"), run_dir(l.path())).unwrap();
    let lora: Vec<String> =
        ["sft", "reward", "dpo", "rl"].iter().flat_map(|s| ["--set".to_string(), format!("{s}.lora_rank=4")]).collect();
    // With activation checkpointing: every task's backward runs through the recomputed layers.
    let out = cmd(l.path()).args(&lora).args(["--set", "run.activation_checkpointing=true"]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("pretrain (up to date, reused)") && t.contains("LoRA: rank 4"), "{t}");
    let json =
        |p: PathBuf| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap() };
    for (s, base) in [("sft", "pretrain"), ("reward", "sft"), ("dpo", "sft"), ("rl", "dpo")] {
        let f = final_dir(l.path(), s);
        assert!(f.join("adapter_model.safetensors").is_file() && f.join("tokenizer.json").is_file(), "{s}");
        // No config.json: transformers then loads the adapter onto its base.
        assert!(!f.join("model.safetensors").exists() && !f.join("config.json").exists(), "{s}");
        let cfg = json(f.join("adapter_config.json"));
        let want = std::fs::canonicalize(final_dir(l.path(), base)).unwrap();
        assert_eq!(cfg["base_model_name_or_path"].as_str(), Some(want.to_str().unwrap()), "{s}");
        assert_eq!(cfg["r"], 4);
    }
    assert_eq!(json(final_dir(l.path(), "reward").join("adapter_config.json"))["task_type"], "SEQ_CLS");
    // Evaluated like any stage; exported merged.
    assert!(run_dir(l.path()).join("eval/rl").read_dir().unwrap().count() > 0);
    let hone =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hone")).current_dir(l.path()).args(args).output().unwrap();
    let rl = run_dir(l.path()).join("rl").display().to_string();
    let out_dir = l.path().join("rl-hf");
    let o = hone(&["export", &rl, "--format", "hf", "--out", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out_dir.join("model.safetensors").is_file() && out_dir.join("config.json").is_file());
    served_adapters(l.path(), &out_dir);
    // Bad settings are named before any work.
    let o = cmd(l.path())
        .args(["--set", "sft.lora_rank=4", "--set", r#"sft.lora_targets=["q_proj", "qkv_proj"]"#])
        .output()
        .unwrap();
    let e = text(&o);
    assert!(!o.status.success() && e.contains("qkv_proj") && e.contains("gate_proj"), "{e}");
    let o = cmd(l.path()).args(["--set", "dpo.lora_rank=4", "--set", "dpo.lora_dropout=1.5"]).output().unwrap();
    let e = text(&o);
    assert!(!o.status.success() && e.contains("lora_dropout"), "{e}");
    // An adapter whose base is not on this machine (a hub name): refused, saying what to do.
    let moved = l.path().join("adapter");
    let ok = Command::new("cp")
        .args(["-rL", &final_dir(l.path(), "sft").display().to_string(), moved.to_str().unwrap()])
        .status();
    assert!(ok.unwrap().success());
    let mut cfg = json(moved.join("adapter_config.json"));
    cfg["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct".into();
    std::fs::write(moved.join("adapter_config.json"), cfg.to_string()).unwrap();
    std::fs::remove_file(moved.join("MANIFEST")).unwrap();
    let o = hone(&["sample", "-m", moved.to_str().unwrap(), "-p", "hi", "--max-new-tokens", "2"]);
    let e = text(&o);
    assert!(!o.status.success() && e.contains("not a local folder") && e.contains("base_model_name_or_path"), "{e}");

    // A run that post-trains a model it imports (the `base` stage), as `--preset smollm2` does.
    let b = tempfile::tempdir().unwrap();
    let pretrained = final_dir(root, "pretrain").display().to_string();
    let run_b = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hone"));
        c.current_dir(b.path()).args(["run", "--preset", "quick", "--set", "run.progress=false"]);
        c.args(["--set", r#"pipeline.stages=["world", "base", "sft"]"#, "--set", "sft.lora_rank=4"]).args(extra);
        c.output().unwrap()
    };
    let o = run_b(&[]);
    assert!(!o.status.success() && text(&o).contains("base.model is empty"), "{}", text(&o));
    let o = run_b(&["--set", &format!("base.model={pretrained}")]);
    assert!(o.status.success(), "{}", text(&o));
    let base = final_dir(b.path(), "base");
    assert!(
        std::fs::read(base.join("model.safetensors")).unwrap() == final_weights(root, "pretrain"),
        "the imported base holds the model's weights"
    );
    let cfg = json(final_dir(b.path(), "sft").join("adapter_config.json"));
    assert_eq!(cfg["base_model_name_or_path"].as_str(), Some(std::fs::canonicalize(&base).unwrap().to_str().unwrap()));
    let md = std::fs::read_to_string(run_dir(b.path()).join("report/report.md")).unwrap();
    let header = md.lines().find(|l| l.starts_with("| task")).unwrap_or_default();
    assert!(header.contains(" base |") && header.contains(" sft |"), "{header}");
}
