//! The server end to end on a small random model, through the router (no sockets): the OpenAI
//! endpoints against hone's own sampler and forward pass, streaming against non-streaming,
//! continuous batching against decoding alone, the limits and bad requests (each a 4xx in OpenAI's
//! shape, the server still serving), the guard, and the web app's grading file.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hone_data::chat::ChatTemplate;
use hone_data::tokenizer::{Tokenizer, TokenizerConfig, train};
use hone_model::burn::tensor::Device;
use hone_model::llama::ids_tensor;
use hone_model::{Layout, Llama, LoadedModel, ModelConfig, SampleConfig};
use hone_serve::{Kind, Options, ServeConfig, Served};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use tower::ServiceExt;

fn tokenizer() -> Tokenizer {
    let docs: Vec<String> = (0..40)
        .map(|i| format!("The river Varnok {i} runs past the old mill. Who founded the city of Ostra? Number {i}."))
        .collect();
    train(docs.into_iter(), &TokenizerConfig { vocab_size: 300, ..Default::default() }).unwrap()
}

fn model(seed: u64, context: usize) -> Llama {
    let m = ModelConfig {
        preset: "micro".into(),
        max_position_embeddings: context,
        initializer_range: 0.2,
        ..Default::default()
    };
    Llama::init(&m.resolve(Some(300)).unwrap(), seed, &Device::flex()).unwrap()
}

fn loaded(seed: u64, context: usize) -> LoadedModel {
    LoadedModel {
        model: model(seed, context),
        tokenizer: tokenizer(),
        template: ChatTemplate::hone_default(),
        dir: PathBuf::new(),
    }
}

struct Server {
    router: axum::Router,
    state: hone_serve::state::Shared,
}

fn server_with(cfg: ServeConfig, run_dir: Option<PathBuf>, api_key: Option<&str>) -> Server {
    let models = vec![
        Served { id: "base".into(), kind: Kind::Base, model: loaded(1, 256) },
        Served { id: "chat".into(), kind: Kind::Chat, model: loaded(2, 256) },
    ];
    let state = hone_serve::state(models, Options { cfg, run_dir, api_key: api_key.map(String::from) }).unwrap();
    Server { router: hone_serve::router(state.clone()), state }
}

fn server() -> Server {
    server_with(ServeConfig { max_tokens: 600, ..Default::default() }, None, None)
}

fn request(method: &str, path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

impl Server {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let r = self.router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        (status, r.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b) = self.send(request("POST", path, body.to_string())).await;
        (s, serde_json::from_slice(&b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into())))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, b) = self.send(request("GET", path, Body::empty())).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// The `data:` payloads of an SSE body.
    async fn stream(&self, path: &str, body: Value) -> Vec<String> {
        let (s, b) = self.send(request("POST", path, body.to_string())).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        String::from_utf8(b).unwrap().lines().filter_map(|l| l.strip_prefix("data: ").map(String::from)).collect()
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// hone's own sampler on the same prompt: what the server must reproduce.
fn reference(m: &LoadedModel, prompt: &[u32], sample: &SampleConfig) -> String {
    hone_model::generate(&m.model, &m.tokenizer, &[prompt.to_vec()], sample, &mut |_, _| {}).unwrap()[0].text.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_matches_the_sampler_streams_the_same_text_and_reproduces_by_seed() {
    let s = server();
    let (st, models) = s.get("/v1/models").await;
    assert_eq!(st, StatusCode::OK);
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["base", "chat"]);

    let body = json!({"model": "chat", "messages": user("Who founded the city of Ostra?"), "temperature": 0.9, "seed": 5, "max_tokens": 40, "n": 2});
    let (st, r) = s.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let texts: Vec<String> = r["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 2);
    // Choice 0 is stream 0 of the seed: exactly what `hone sample` draws for the same prompt.
    let m = loaded(2, 256);
    let prompt = m
        .template
        .encode_prompt(&m.tokenizer, &[hone_data::chat::Message::new("user", "Who founded the city of Ostra?")])
        .unwrap();
    let sample = SampleConfig { temperature: 0.9, seed: 5, max_new_tokens: 40, ..Default::default() };
    assert_eq!(texts[0], reference(&m, &prompt, &sample));
    assert_eq!(r["usage"]["prompt_tokens"], prompt.len());
    // The same seed again gives the same texts; streaming gives them too.
    let (_, again) = s.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(again["choices"], r["choices"]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = s.stream("/v1/chat/completions", streamed).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let mut joined = [String::new(), String::new()];
    let mut finishes = 0;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        if let Some(c) = v["choices"].as_array().and_then(|c| c.first()) {
            let i = c["index"].as_u64().unwrap() as usize;
            joined[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
            finishes += c["finish_reason"].is_string() as usize;
        } else {
            assert_eq!(v["usage"]["completion_tokens"], r["usage"]["completion_tokens"]);
        }
    }
    assert_eq!(finishes, 2);
    assert_eq!(joined.to_vec(), texts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_logprobs_are_the_forward_pass_log_softmax() {
    let s = server();
    let m = loaded(1, 256);
    let ids: Vec<u32> = m.tokenizer.encode("The river Varnok runs past the old mill.").unwrap();
    let (st, r) = s
        .post(
            "/v1/completions",
            json!({"model": "base", "prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let lp = &r["choices"][0]["logprobs"];
    let token_lps = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(token_lps.len(), ids.len() + 1, "the prompt's tokens and the generated one");
    assert!(token_lps[0].is_null());
    // Reference: the model's logits for the whole prompt, log-softmaxed here.
    let d = Device::flex();
    let logits = m.model.forward_with(ids_tensor(&ids, 1, ids.len(), &d), &Layout::left_padded(&[0], ids.len(), &d));
    let all = logits.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let vocab = m.model.config.vocab_size;
    for i in 1..ids.len() {
        let row: Vec<f64> = all[(i - 1) * vocab..i * vocab].iter().map(|&x| x as f64).collect();
        let top = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = top + row.iter().map(|x| (x - top).exp()).sum::<f64>().ln();
        let want = row[ids[i] as usize] - lse;
        let got = token_lps[i].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "position {i}: {got} vs {want}");
        // The single top entry is the most likely token's.
        let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - lse;
        let tops: Vec<f64> = lp["top_logprobs"][i].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).collect();
        assert!((tops[0] - best).abs() < 1e-4);
    }
    // The generated token is the greedy one, so its logprob is its position's top.
    let last = token_lps.last().unwrap().as_f64().unwrap();
    let last_top = lp["top_logprobs"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_f64()
        .unwrap();
    assert_eq!(last, last_top);
    // Text prompts are tokenized with BOS first, as `hone sample` does for base models.
    let (_, t) = s
        .post(
            "/v1/completions",
            json!({"model": "base", "prompt": "The river", "max_tokens": 0, "logprobs": 0, "echo": true}),
        )
        .await;
    assert_eq!(t["choices"][0]["logprobs"]["tokens"][0], m.tokenizer.bos_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_decoded_together_match_each_decoded_alone() {
    let s = server();
    let prompts = ["The river", "Who founded", "The old mill runs", "Number 7"];
    let body = |p: &str| json!({"model": "base", "prompt": p, "max_tokens": 30, "temperature": 0.7, "seed": 3});
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(s.post("/v1/completions", body(p)).await.1["choices"][0]["text"].clone());
    }
    let together = futures_util::future::join_all(prompts.iter().map(|p| s.post("/v1/completions", body(p)))).await;
    for (a, (st, t)) in alone.iter().zip(&together) {
        assert_eq!(*st, StatusCode::OK);
        assert_eq!(&t["choices"][0]["text"], a);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_request_finishes_while_a_long_one_decodes() {
    let s = server();
    let m = s.state.model("base").unwrap();
    let long_cfg = SampleConfig { max_new_tokens: 500, min_new_tokens: 500, ..Default::default() };
    let prompt = hone_serve::generate::base_prompt(m, "The river").unwrap();
    let mut long =
        hone_serve::generate::submit(m, &prompt, &long_cfg, 1, None, true, s.state.deadline()).unwrap().pop().unwrap();
    // Wait until the long one is decoding.
    let first = long.recv().await.unwrap();
    assert!(matches!(first, hone_serve::engine::Event::Token { .. }));
    let short = SampleConfig { max_new_tokens: 5, min_new_tokens: 5, ..Default::default() };
    let done = hone_serve::generate::collect(
        hone_serve::generate::submit(m, &prompt, &short, 1, None, true, s.state.deadline()).unwrap().pop().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(done.tokens, 5);
    // The long one has not finished: no Done among what it has sent so far.
    let mut sent = 1;
    while let Ok(e) = long.try_recv() {
        assert!(!matches!(e, hone_serve::engine::Event::Done { .. }), "the long request finished first");
        sent += 1;
    }
    assert!(sent < 500, "{sent}");
    // Dropping the long request's receiver (a client that went away) frees its slot.
    drop(long);
    for _ in 0..200 {
        if m.running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(m.running(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_the_server_keeps_serving() {
    let s = server_with(ServeConfig { max_batch: 1, queue: 1, ..Default::default() }, None, None);
    let m = s.state.model("base").unwrap();
    let prompt = hone_serve::generate::base_prompt(m, "The river").unwrap();
    let long = SampleConfig { max_new_tokens: 250, min_new_tokens: 250, ..Default::default() };
    let mut first =
        hone_serve::generate::submit(m, &prompt, &long, 1, None, true, s.state.deadline()).unwrap().pop().unwrap();
    first.recv().await.unwrap(); // decoding: the only slot is taken
    let second = hone_serve::generate::submit(m, &prompt, &long, 1, None, true, s.state.deadline()).unwrap();
    let (st, r) = s.post("/v1/completions", json!({"model": "base", "prompt": "x", "max_tokens": 2})).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{r}");
    assert_eq!(r["error"]["type"], "rate_limit_error");
    // Cancelled requests leave the queue and the batch as soon as the engine looks at them.
    drop((first, second));
    for _ in 0..400 {
        if m.running() + m.waiting() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (st, _) = s.post("/v1/completions", json!({"model": "base", "prompt": "x", "max_tokens": 2})).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_4xx_in_openai_shape_and_the_server_keeps_serving() {
    let s =
        server_with(ServeConfig { max_tokens: 64, max_n: 4, max_body_bytes: 4096, ..Default::default() }, None, None);
    let chat = |extra: Value| {
        let mut b = json!({"model": "chat", "messages": user("hi"), "max_tokens": 4});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases: Vec<(&str, Request<Body>, u16, Option<&str>)> = vec![
        ("malformed JSON", request("POST", "/v1/chat/completions", "{\"model\": \"chat\", "), 400, None),
        ("invalid UTF-8", request("POST", "/v1/chat/completions", b"{\"model\": \"\xff\xfe\"}".to_vec()), 400, None),
        (
            "wrong type",
            request("POST", "/v1/chat/completions", chat(json!({"temperature": "hot"})).to_string()),
            400,
            None,
        ),
        (
            "unknown model",
            request("POST", "/v1/chat/completions", chat(json!({"model": "gpt-9"})).to_string()),
            404,
            Some("model"),
        ),
        (
            "empty messages",
            request("POST", "/v1/chat/completions", chat(json!({"messages": []})).to_string()),
            400,
            Some("messages"),
        ),
        (
            "bad role",
            request(
                "POST",
                "/v1/chat/completions",
                chat(json!({"messages": [{"role": "robot", "content": "x"}]})).to_string(),
            ),
            400,
            Some("messages[0].role"),
        ),
        (
            "n over the limit",
            request("POST", "/v1/chat/completions", chat(json!({"n": 5})).to_string()),
            400,
            Some("n"),
        ),
        (
            "max_tokens over the limit",
            request("POST", "/v1/chat/completions", chat(json!({"max_tokens": 65})).to_string()),
            400,
            Some("max_tokens"),
        ),
        (
            "temperature out of range",
            request("POST", "/v1/chat/completions", chat(json!({"temperature": 3.0})).to_string()),
            400,
            Some("temperature"),
        ),
        (
            "body over the limit",
            request("POST", "/v1/chat/completions", chat(json!({"messages": user(&"x".repeat(5000))})).to_string()),
            413,
            None,
        ),
        (
            "prompt longer than the context",
            request("POST", "/v1/completions", json!({"model": "base", "prompt": vec![5u32; 300]}).to_string()),
            400,
            Some("prompt"),
        ),
        (
            "token id outside the vocabulary",
            request("POST", "/v1/completions", json!({"model": "base", "prompt": [1, 99999]}).to_string()),
            400,
            Some("prompt"),
        ),
        ("no such endpoint", request("POST", "/v1/embeddings", "{}"), 404, None),
    ];
    for (name, req, status, param) in cases {
        let (st, body) = s.send(req).await;
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{name}: not JSON: {}", String::from_utf8_lossy(&body)));
        assert_eq!(st.as_u16(), status, "{name}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {v}");
        assert!(v["error"]["type"].is_string(), "{name}: {v}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{name}: {v}");
        }
    }
    let (st, r) = s.post("/v1/chat/completions", chat(json!({}))).await;
    assert_eq!(st, StatusCode::OK, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_foreign_hosts_origins_and_missing_keys() {
    let s = server_with(ServeConfig::default(), None, Some("sekrit"));
    let with = |headers: &[(&str, &str)]| {
        let mut b = Request::builder().method("GET").uri("/v1/models");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    };
    let key = ("authorization", "Bearer sekrit");
    assert_eq!(s.send(with(&[("host", "127.0.0.1:8080"), key])).await.0, StatusCode::OK);
    assert_eq!(s.send(with(&[("host", "127.0.0.1:8080")])).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.send(with(&[("host", "127.0.0.1:8080"), ("authorization", "Bearer nope")])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.send(with(&[("host", "attacker.example:8080"), key])).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        s.send(with(&[("host", "127.0.0.1:8080"), ("origin", "https://attacker.example"), key])).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.send(with(&[("host", "localhost:8080"), ("origin", "http://localhost:8080"), key])).await.0,
        StatusCode::OK
    );
    // The page and its info load without the key (the page then asks for it).
    let page = Request::builder().uri("/").header("host", "localhost").body(Body::empty()).unwrap();
    assert_eq!(s.send(page).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_grading_write_preference_pairs_the_trainers_read() {
    let run = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(run.path().join("report")).unwrap();
    std::fs::write(run.path().join("report").join("report.html"), "<html>report</html>").unwrap();
    std::fs::write(run.path().join("config.toml"), "secret").unwrap();
    let s = server_with(ServeConfig::default(), Some(run.path().to_path_buf()), None);
    let (st, info) = s.get("/api/info").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info["report"], "/report/report.html");
    assert_eq!(info["feedback"], true);

    let (st, c) = s.post("/api/compare", json!({"prompt": "List 3 rivers.", "seed": 4, "max_tokens": 12})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let answers = c["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["kind"], "base");
    assert!(answers[1]["verdicts"].as_array().unwrap().iter().any(|v| v["check"] == "format_list_n"));
    // The same seed reproduces the view.
    let (_, c2) = s.post("/api/compare", json!({"prompt": "List 3 rivers.", "seed": 4, "max_tokens": 12})).await;
    assert_eq!(c, c2);

    let (st, pair) = s.post("/api/grade/pair", json!({"prompt": "Who founded Ostra?", "a": "chat", "b": "chat", "seed": 9, "temperature": 1.0, "max_tokens": 8})).await;
    assert_eq!(st, StatusCode::OK, "{pair}");
    assert_eq!((pair["a"]["seed"].as_u64(), pair["b"]["seed"].as_u64()), (Some(9), Some(10)));
    let (st, base_pair) = s.post("/api/grade/pair", json!({"prompt": "x", "a": "base", "b": "chat"})).await;
    assert_eq!((st, base_pair["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("a")));
    for (verdict, edited) in [("a", None), ("tie", None), ("both_bad", None), ("b", Some("Ostra was founded by Ada."))]
    {
        let mut j = json!({"prompt": pair["prompt"], "a": pair["a"], "b": pair["b"], "verdict": verdict});
        if let Some(e) = edited {
            j["edited"] = json!(e);
        }
        let (st, r) = s.post("/api/grade", j).await;
        assert_eq!(st, StatusCode::OK, "{r}");
    }
    let file = run.path().join("feedback").join("preferences.jsonl");
    let lines: Vec<Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let labels: Vec<&str> = lines.iter().map(|l| l["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["a", "tie", "both_bad", "edited", "edited"]);
    assert_eq!(lines[0]["chosen"][0]["content"], pair["a"]["text"]);
    // The preference readers take the file as it is: ties and "both bad" are counted and set aside.
    let read = hone_data::pairs::read_pairs(&[file], "auto", false).unwrap();
    assert_eq!(read.items.len(), 3);
    assert_eq!(read.set_aside, 2);

    // The report is served; nothing outside it is.
    assert_eq!(s.send(request("GET", "/report/report.html", Body::empty())).await.0, StatusCode::OK);
    for bad in
        ["/report/../config.toml", "/report/%2e%2e/config.toml", "/report/..%2fconfig.toml", "/report//etc/passwd"]
    {
        assert_eq!(s.send(request("GET", bad, Body::empty())).await.0, StatusCode::NOT_FOUND, "{bad}");
    }
}
