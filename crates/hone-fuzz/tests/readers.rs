//! Every reader of outside bytes under mutated inputs (see the crate's header for the properties).
//! One test, run alone in its binary: the allocator's peak is process-wide, so cases must not
//! overlap. `HONE_FUZZ_CASES` sets the cases per reader (default 500: a few seconds on 2 cores;
//! 20,000 per reader take about 100 s).

use hone_data::chat::Message;
use hone_data::read::{ByteCounter, TextOptions};
use hone_data::sft::SftOptions;
use hone_fuzz::{CountingAlloc, Limits, Reader, fuzz};
use std::path::Path;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn err(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}

fn jsonl(rows: &[serde_json::Value]) -> Vec<u8> {
    rows.iter().map(|r| r.to_string() + "\n").collect::<String>().into_bytes()
}

fn texts() -> Vec<serde_json::Value> {
    (0..6)
        .map(|i| serde_json::json!({"text": format!("Document {i}: the river Oskel runs 12{i} km north. «ünïcode» 🦀"), "id": i}))
        .collect()
}

fn messages() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}]}),
        serde_json::json!({"messages": [{"role": "user", "content": "Capital of Oskel?"}, {"role": "assistant", "content": "Varn."}]}),
        serde_json::json!({"instruction": "Name a colour.", "input": "", "output": "Blue."}),
        serde_json::json!({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}),
    ]
}

fn pairs() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"prompt": "Is the sky green?", "chosen": "No.", "rejected": "Yes."}),
        serde_json::json!({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}),
        serde_json::json!({"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}),
    ]
}

fn unpaired() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"prompt": "2+2?", "completion": "4", "label": true}),
        serde_json::json!({"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "5"}], "label": false}),
    ]
}

fn rl_prompts() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"prompt": "What is 12 + 30?", "kind": "arithmetic", "scorer": "number", "targets": ["42"]}),
        serde_json::json!({"prompt": [{"role": "user", "content": "Say yes."}], "kind": "format"}),
    ]
}

/// A round record as `hone iterate` writes it.
fn round_record() -> Vec<u8> {
    let effect = serde_json::json!({
        "task": "world_format_json", "metric": "compliance", "higher_is_better": true, "before": 0.25,
        "after": 0.5, "delta": 0.25, "lo": 0.125, "hi": 0.375, "p_better": 0.001, "p_worse": 0.999, "targeted": true
    });
    serde_json::to_vec(&serde_json::json!({
        "round": 1, "start": "rl", "method": "sft", "grader": "rule", "branch": null,
        "weaknesses": [{"task": "world_format_json", "metric": "compliance", "value": 0.25, "lo": 0.2, "hi": 0.3,
            "n": 100, "why": "short of its goal", "failed": 75, "failed_groups": [["format=json", 75]], "remedy": "sft"}],
        "targeted": ["world_format_json"],
        "data": [{"family": "sft", "kind": "format_json", "count": 200, "source": "drawn"}],
        "agreement": {"grader": "reward_model", "pairs": 40, "rate": 0.5, "lo": 0.35, "hi": 0.65},
        "kept": true, "reason": "kept", "dev": [effect.clone()], "report": [effect], "seconds": 60.0
    }))
    .unwrap()
}

fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut std::io::BufReader::new(bytes), &mut out).unwrap();
    out
}

/// A small Parquet file with a `text` column (and an `id`), written with the low-level writer.
fn parquet_seed() -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message doc { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT64 id; }",
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, std::sync::Arc::new(schema), Default::default()).unwrap();
    for group in 0..2 {
        let mut rg = w.next_row_group().unwrap();
        let texts: Vec<ByteArray> =
            texts().iter().map(|t| ByteArray::from(t["text"].as_str().unwrap().as_bytes().to_vec())).collect();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>().write_batch(&texts, None, None).unwrap();
        col.close().unwrap();
        let ids: Vec<i64> = (0..texts.len() as i64).map(|i| i + 100 * group).collect();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<Int64Type>().write_batch(&ids, None, None).unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
    out
}

fn tokenizer() -> hone_data::tokenizer::Tokenizer {
    let docs = texts().iter().map(|t| t["text"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let cfg = hone_data::tokenizer::TokenizerConfig { vocab_size: 300, ..Default::default() };
    hone_data::tokenizer::train(docs.into_iter().cycle().take(60), &cfg).unwrap()
}

fn text_reader(name: &'static str, file_name: &'static str, seeds: Vec<Vec<u8>>) -> Reader {
    Reader {
        name,
        file_name,
        seeds,
        read: Box::new(|p: &Path| {
            let opts = TextOptions { format: "auto".into(), text_field: "text".into(), split_on_blank_lines: false };
            for d in hone_data::read::documents(p, &opts, ByteCounter::default()).map_err(err)? {
                d.map_err(err)?;
            }
            Ok(())
        }),
    }
}

fn readers() -> Vec<Reader> {
    let tok = tokenizer();
    let tok_dir = tempfile::tempdir().unwrap();
    tok.save(&tok_dir.path().join("tokenizer.json")).unwrap();
    let tok_json = std::fs::read(tok_dir.path().join("tokenizer.json")).unwrap();
    let device = hone_model::device::select("cpu").unwrap();
    let cfg = hone_model::ModelConfig {
        preset: "micro".into(),
        hidden_size: 16,
        intermediate_size: 32,
        ..Default::default()
    }
    .resolve(Some(64))
    .unwrap();
    let model = hone_model::Llama::init(&cfg, 1, &device).unwrap();
    let weights = hone_model::weights::model_to_safetensors(&model).unwrap();
    // A whole small model as llama.cpp's file: hyper-parameters, tokenizer metadata, chat template.
    let gguf_model = {
        let c = hone_model::LlamaConfig { vocab_size: tok.vocab_size(), ..cfg.clone() };
        let m = hone_model::Llama::init(&c, 2, &device).unwrap();
        let template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'].strip() }}<|end|>{% endfor %}";
        hone_model::export::gguf_bytes(&m, &tok, template, hone_gguf::GgmlType::F32).unwrap()
    };
    let members =
        [("blimp/a.jsonl", jsonl(&texts())), ("blimp/b.jsonl", jsonl(&texts()[..2])), ("README", b"x".to_vec())];
    let tar = tar_of(&members);
    let task_items = jsonl(&[
        serde_json::json!({"question": {"stem": "Which is a metal?", "choices": [{"text": "iron", "label": "A"}, {"text": "wood", "label": "B"}]}, "answerKey": "A"}),
        serde_json::json!({"question": {"stem": "Which is wet?", "choices": [{"text": "sand", "label": "A"}, {"text": "water", "label": "B"}]}, "answerKey": "B"}),
    ]);
    vec![
        text_reader("text_jsonl", "docs.jsonl", vec![jsonl(&texts())]),
        text_reader("text_json", "docs.json", vec![serde_json::to_vec(&texts()).unwrap()]),
        text_reader("text_txt", "docs.txt", vec![b"A plain text.\n\nWith two blocks.\n".to_vec()]),
        text_reader("text_parquet", "docs.parquet", vec![parquet_seed()]),
        Reader {
            name: "sft",
            file_name: "sft.jsonl",
            seeds: vec![jsonl(&messages())],
            read: Box::new(|p: &Path| {
                hone_data::sft::read_conversations(&[p.to_path_buf()], &SftOptions::default()).map(|_| ()).map_err(err)
            }),
        },
        Reader {
            name: "preference",
            file_name: "pairs.jsonl",
            seeds: vec![jsonl(&pairs())],
            read: Box::new(|p: &Path| hone_data::pairs::read_pairs(&[p.to_path_buf()], "auto", false).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "unpaired",
            file_name: "unpaired.jsonl",
            seeds: vec![jsonl(&unpaired())],
            read: Box::new(|p: &Path| {
                hone_data::unpaired::read_unpaired(&[p.to_path_buf()], "auto", false).map(|_| ()).map_err(err)
            }),
        },
        Reader {
            name: "rl_prompts",
            file_name: "rl.jsonl",
            seeds: vec![jsonl(&rl_prompts())],
            read: Box::new(|p: &Path| {
                hone_train::stages::rl::read_prompts(&[p.to_path_buf()], false, &[]).map(|_| ()).map_err(err)
            }),
        },
        Reader {
            name: "draw_avoid",
            file_name: "earlier-draw.jsonl",
            // The formats a draw writes: `messages` conversations, `prompt` as turns or as text.
            seeds: vec![jsonl(&messages()[..2]), jsonl(&pairs()[..2]), jsonl(&rl_prompts())],
            read: Box::new(|p: &Path| hone_world::draw::prompts_of(p).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "iterate_round",
            file_name: "round.json",
            seeds: vec![round_record()],
            // `read_rounds` reads `<run>/iterate/*/round.json`: the input is put in a run of its own.
            read: Box::new(|p: &Path| {
                let run = tempfile::tempdir().map_err(err)?;
                let dir = run.path().join("iterate").join("round-1");
                std::fs::create_dir_all(&dir).map_err(err)?;
                std::fs::copy(p, dir.join("round.json")).map_err(err)?;
                hone_report::iteration::read_rounds(run.path()).map(|_| ()).map_err(err)
            }),
        },
        Reader {
            name: "task_items",
            file_name: "items.jsonl",
            seeds: vec![task_items],
            read: Box::new(|p: &Path| hone_eval::source::read_records(p, None).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "task_tar",
            file_name: "set.tar",
            seeds: vec![tar.clone()],
            read: Box::new(|p: &Path| hone_eval::source::read_records(p, Some("blimp/")).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "task_tar_xz",
            file_name: "set.tar.xz",
            seeds: vec![xz(&tar)],
            read: Box::new(|p: &Path| hone_eval::source::read_records(p, Some("blimp/")).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "task_toml",
            file_name: "task.toml",
            seeds: vec![
                std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks/arc_easy.toml")).unwrap(),
                hone_tasks::tasks::TaskFile::rolling("t", "held-out text".into()).to_toml().into_bytes(),
            ],
            read: Box::new(|p: &Path| hone_tasks::tasks::TaskFile::load(p).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "task_templates",
            file_name: "task.toml",
            seeds: ["hellaswag.toml", "winogrande.toml", "mmlu_continuation.toml", "lambada_openai.toml"]
                .iter()
                .map(|f| lm_eval_task_seed(f))
                .collect(),
            read: Box::new(|p: &Path| {
                let t = hone_eval::spec::TaskSpec::load(p).map_err(err)?;
                let records = t.records().map_err(err)?;
                let pick: Vec<usize> = (0..records.len()).collect();
                let built = if t.file.kind == "loglikelihood" {
                    hone_eval::task_single_items(&t, &records, &pick).map(|_| ())
                } else {
                    hone_eval::task_mc_items(&t, &records, &pick).map(|_| ())
                };
                // A record that does not fit names the fixture's file; the task file's own faults name it.
                built.map_err(|e| {
                    let m = format!("{e:#}");
                    if m.contains("lm_eval/") { format!("{}: {m}", p.display()) } else { m }
                })
            }),
        },
        Reader {
            name: "config_toml",
            file_name: "config.toml",
            seeds: vec![hone_data::config::to_commented_toml(&hone_eval::EvalConfig::default()).into_bytes()],
            read: Box::new(|p: &Path| hone_data::config::load::<hone_eval::EvalConfig>(Some(p), &[]).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "tokenizer_json",
            file_name: "tokenizer.json",
            seeds: vec![tok_json],
            read: Box::new(|p: &Path| {
                let t = hone_data::tokenizer::Tokenizer::load(p).map_err(err)?;
                t.encode("The river Oskel, 12 km.").map(|_| ()).map_err(|e| format!("{}: {e:#}", p.display()))
            }),
        },
        Reader {
            name: "chat_template",
            file_name: "tokenizer_config.json",
            seeds: vec![
                serde_json::to_vec(&serde_json::json!({
                    "bos_token": "<s>", "eos_token": "</s>",
                    "chat_template": "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
                }))
                .unwrap(),
                serde_json::to_vec(&serde_json::json!({
                    "chat_template": "{{ bos_token }}{% for message in messages %}{% if loop.index0 % 2 == 0 %}{{ message.content | upper }}{% else %}{{ message.content | replace(' ', '_') }}{% endif %}{% endfor %}"
                }))
                .unwrap(),
            ],
            read: Box::new(|p: &Path| {
                let t = hone_model::load::chat_template(&p.with_file_name("tokenizer.json"), "<s>", "</s>").map_err(err)?;
                let conv = [Message::new("user", "Hello there"), Message::new("assistant", "Hi")];
                t.render(&conv, true).map(|_| ()).map_err(|e| format!("{}: {e:#}", p.display()))
            }),
        },
        Reader {
            name: "gguf",
            file_name: "model.gguf",
            seeds: vec![std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-gguf/tests/fixtures/types.gguf")).unwrap()],
            read: Box::new(|p: &Path| {
                let g = hone_gguf::Gguf::open(p).map_err(err)?;
                for t in &g.tensors {
                    g.tensor_f32(&t.name).map_err(err)?;
                }
                Ok(())
            }),
        },
        Reader {
            name: "hf-config",
            file_name: "config.json",
            seeds: vec![
                serde_json::to_vec_pretty(&cfg.to_hf_json()).unwrap(),
                serde_json::to_vec_pretty(&serde_json::json!({
                    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
                    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
                    "vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2,
                    "rope_parameters": {"rope_theta": 100000.0, "rope_type": "llama3", "factor": 8.0,
                        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 2048}
                }))
                .unwrap(),
            ],
            read: Box::new(|p: &Path| hone_model::LlamaConfig::read(p).map(|_| ()).map_err(err)),
        },
        Reader {
            name: "gguf-model",
            file_name: "llama.gguf",
            seeds: vec![gguf_model.clone()],
            read: Box::new(move |p: &Path| {
                let m = hone_model::load(p, &hone_model::burn::tensor::Device::flex()).map_err(err)?;
                m.tokenizer.encode("The capital of Varnok 42 is Tesmir.").map_err(err)?;
                m.template.render(&[Message::new("user", "hi")], true).map(|_| ()).map_err(err)
            }),
        },
        Reader {
            name: "http-chat-body",
            file_name: "chat-request.json",
            seeds: vec![
                serde_json::to_vec(&serde_json::json!({"model": "dpo", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "stop": ["\n\n"], "seed": 3, "n": 2, "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3})).unwrap(),
            ],
            // A request body is bytes from a socket: the file is only the harness's medium.
            read: Box::new(|p: &Path| {
                let body = std::fs::read(p).map_err(err)?;
                hone_serve::v1::parse_chat(&body, &hone_serve::ServeConfig::default())
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", p.display()))
            }),
        },
        Reader {
            name: "http-completion-body",
            file_name: "completion-request.json",
            seeds: vec![
                serde_json::to_vec(&serde_json::json!({"model": "base", "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": true, "seed": 1234})).unwrap(),
                serde_json::to_vec(&serde_json::json!({"model": "base", "prompt": "The capital of", "max_tokens": 8, "stop": "\n", "stream": false})).unwrap(),
            ],
            read: Box::new(|p: &Path| {
                let body = std::fs::read(p).map_err(err)?;
                hone_serve::v1::parse_completion(&body, &hone_serve::ServeConfig::default())
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", p.display()))
            }),
        },
        Reader {
            name: "http-grade-body",
            file_name: "grade-request.json",
            seeds: vec![
                serde_json::to_vec(&serde_json::json!({"prompt": "Who founded Ostra?", "system": "Be brief.", "a": {"model": "sft", "seed": 1, "text": "Ada."}, "b": {"model": "dpo", "seed": 1, "text": "I don't know."}, "verdict": "b", "edited": "Ada Varn."})).unwrap(),
            ],
            read: Box::new(|p: &Path| {
                let body = std::fs::read(p).map_err(err)?;
                let j: hone_serve::feedback::Judgement =
                    serde_json::from_slice(&body).map_err(|e| format!("{}: {e}", p.display()))?;
                hone_serve::feedback::lines(&j, "2026-01-01T00:00:00Z");
                Ok(())
            }),
        },
        Reader {
            name: "safetensors",
            file_name: "model.safetensors",
            seeds: vec![weights],
            read: Box::new(move |p: &Path| hone_model::weights::load_model(p, &cfg, &device).map(|_| ()).map_err(err)),
        },
    ]
}

/// A shipped lm-evaluation-harness task file with its sources pointed at hone-eval's fixtures.
fn lm_eval_task_seed(file: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("crates/hone-eval/tests/fixtures/lm_eval");
    let fixture = match file {
        "hellaswag.toml" => "hellaswag.jsonl",
        "winogrande.toml" => "winogrande.jsonl",
        "lambada_openai.toml" => "lambada.jsonl",
        _ => "mmlu.jsonl",
    };
    let text = std::fs::read_to_string(root.join("tasks").join(file)).unwrap();
    let mut t: toml::Table = toml::from_str(&text).unwrap();
    t.insert("source".into(), fixtures.join(fixture).display().to_string().into());
    if let Some(fs) = t.get_mut("fewshot").and_then(|f| f.as_table_mut()) {
        fs.insert("source".into(), fixtures.join("mmlu_dev.jsonl").display().to_string().into());
    }
    toml::to_string(&t).unwrap().into_bytes()
}

#[test]
fn every_reader_survives_mutated_inputs() {
    let cases: u32 = std::env::var("HONE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let mut found = Vec::new();
    // Panics are caught and reported as failures; the default hook would also print each one and,
    // with RUST_BACKTRACE set, symbolise a backtrace (a hundred megabytes of heap, counted against
    // the case).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // HONE_FUZZ_ONLY=name runs one reader (for a long search on it).
    let only = std::env::var("HONE_FUZZ_ONLY").ok();
    for r in readers() {
        if only.as_deref().is_some_and(|o| o != r.name) {
            continue;
        }
        let started = std::time::Instant::now();
        match fuzz(&r, cases, &root.join("corpus"), &failures, Limits::default()) {
            Ok(rep) => eprintln!(
                "{:16} {} corpus + {} cases, {} rejected with an error, peak heap growth {:.1} MiB, {:.1} s",
                r.name,
                rep.corpus,
                rep.cases,
                rep.errors,
                rep.peak as f64 / (1 << 20) as f64,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => found.push(e),
        }
    }
    std::panic::set_hook(hook);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
