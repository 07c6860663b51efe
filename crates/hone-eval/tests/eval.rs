//! hone-eval against hand computations and direct model calls: chance accuracy of a random model,
//! acc / acc_norm / calibration by hand, rolling log-likelihood against `forward`, bits per byte, the
//! regression check, and the shipped ARC / BLiMP task files on the shared data.

use hone_data::chat::ChatTemplate;
use hone_data::tokenizer::{Tokenizer, TokenizerConfig, train};
use hone_eval::loglik::LogLik;
use hone_eval::result::ItemRecord;
use hone_eval::{EvalOptions, Subject, TaskResult, TaskSpec, compare, mc, metrics, run_task_on};
use hone_model::burn::tensor::Tensor;
use hone_model::llama::{ids_tensor, token_log_probs};
use hone_model::{Llama, ModelConfig};
use hone_tasks::tasks::TaskFile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

const WORDS: &[&str] = &[
    "ox", "sun", "tree", "river", "stone", "cloud", "ember", "harbor", "lantern", "meadow", "at", "blue", "crow",
    "dune", "fjord", "glade", "hill", "isle", "jade", "kelp", "loam", "moss", "north", "oak",
];

fn tokenizer() -> Tokenizer {
    let docs: Vec<String> = (0..200)
        .map(|i| {
            let mut s = String::from("Question: which word?\nAnswer:");
            for k in 0..12 {
                s.push(' ');
                s.push_str(WORDS[(i * 7 + k * 5) % WORDS.len()]);
            }
            s
        })
        .collect();
    train(docs.into_iter(), &TokenizerConfig { vocab_size: 500, ..Default::default() }).unwrap()
}

fn model(vocab: usize, max_pos: usize, seed: u64) -> Llama {
    let cfg = ModelConfig {
        preset: "micro".into(),
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        max_position_embeddings: max_pos,
        // Wide init: a random model with clear (but meaningless) preferences.
        initializer_range: 0.5,
        ..Default::default()
    }
    .resolve(Some(vocab))
    .unwrap();
    Llama::init(&cfg, seed, &hone_model::device::select("cpu").unwrap()).unwrap()
}

fn opts() -> EvalOptions {
    let mut o = EvalOptions::default();
    o.eval.bootstrap = 200;
    o
}

fn write_jsonl(dir: &Path, name: &str, rows: &[serde_json::Value]) {
    let text: String = rows.iter().map(|r| r.to_string() + "\n").collect();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn random_model_is_at_chance_on_multiple_choice() {
    let tok = tokenizer();
    let tpl = ChatTemplate::hone_default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let dir = tempfile::tempdir().unwrap();
    // 400 items of 4 three-word choices. The gold choice is the first in ~60% of items and the longest
    // (in bytes) in ~60%, so a scorer biased to the first or the longest choice is far from chance;
    // every choice is three single-token words, so length in bytes is invisible to the models.
    let mut rows = Vec::new();
    let (mut first, mut longest) = (0, 0);
    for i in 0..400 {
        let mut choices: Vec<String> = (0..4)
            .map(|_| (0..3).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>().join(" "))
            .collect();
        let long_i = (0..4).max_by_key(|&k| (choices[k].len(), std::cmp::Reverse(k))).unwrap();
        let gold_text =
            if rng.random_bool(0.6) { choices[long_i].clone() } else { choices[rng.random_range(0..4)].clone() };
        let gi = choices.iter().position(|c| *c == gold_text).unwrap();
        let pos = if rng.random_bool(0.6) { 0 } else { rng.random_range(0..4) };
        choices.swap(gi, pos);
        first += (pos == 0) as usize;
        let max_len = choices.iter().map(String::len).max().unwrap();
        longest += (choices[pos].len() == max_len) as usize;
        let ctx = format!("Question: which word {}?\nAnswer:", WORDS[i % WORDS.len()]);
        rows.push(serde_json::json!({"id": format!("q{i}"), "context": ctx, "choices": choices, "gold": pos}));
    }
    // The test has the power to catch a biased scorer.
    assert!(first > 200 && longest > 200, "first {first}, longest {longest}");
    // Precondition: every choice is three tokens after the context.
    for r in &rows {
        for c in r["choices"].as_array().unwrap() {
            let req =
                mc::encode_pair(&tok, r["context"].as_str().unwrap(), &format!(" {}", c.as_str().unwrap())).unwrap();
            assert_eq!(req.continuation.len(), 3, "{c}");
        }
    }
    // A random model likes some words more than others, and by chance that preference may go with
    // word length; eight models of 50 items each average that out.
    let (mut correct, mut n) = (0usize, 0usize);
    let mut by_pos = [0usize; 4];
    for (s, chunk) in rows.chunks(50).enumerate() {
        let m = model(tok.vocab_size(), 64, 100 + s as u64);
        let sub = tempfile::tempdir().unwrap();
        write_jsonl(sub.path(), "mc.jsonl", chunk);
        let mut file = TaskFile::multiple_choice("mc", "synthetic".into());
        file.multiple_choice.as_mut().unwrap().choice_prefix = Some(" ".into());
        let task = TaskSpec::new(file, sub.path()).unwrap();
        let subject = Subject { model: &m, tokenizer: &tok, template: &tpl, dir: dir.path().into() };
        let res = run_task_on(&subject, &task, &opts()).unwrap();
        let acc = res.metric("acc").unwrap();
        assert!(acc.interval == "wilson" && acc.n == 50 && acc.lo <= acc.value && acc.value <= acc.hi, "{acc:?}");
        correct += res.items.iter().filter(|r| r.correct == Some(true)).count();
        n += res.items.len();
        for it in &res.items {
            by_pos[it.pred.unwrap()] += 1;
        }
    }
    let acc = correct as f64 / n as f64;
    // Binomial(400, 0.25) at 99.9%: ±3.29 sd = ±0.071. First-choice or longest-choice scoring would
    // give about first/400 or longest/400.
    let band = 3.29 * (0.25f64 * 0.75 / n as f64).sqrt();
    assert!((acc - 0.25).abs() < band, "acc {acc} (first {first}, longest {longest})");
    assert!((first as f64 / 400.0 - 0.25) > band && (longest as f64 / 400.0 - 0.25) > band);
    // The models did prefer some choices: the predictions are spread over positions.
    assert!(by_pos.iter().all(|&k| k > 50), "{by_pos:?}");
}

#[test]
fn acc_and_acc_norm_by_hand() {
    use hone_eval::items::McItem;
    let item = |id: &str, choices: &[&str], gold: usize| McItem {
        id: id.into(),
        group: None,
        context: "c".into(),
        choices: choices.iter().map(|s| s.to_string()).collect(),
        prefix: String::new(),
        gold,
        fewshot: String::new(),
        shared_continuation: None,
    };
    // Item a: lls -2 (2 bytes) and -3 (6 bytes): acc picks 0, per byte -1 vs -0.5 picks 1; gold 1.
    // Item b: lls -1 (4 bytes), -4 (1 byte), -0.5 (10 bytes): acc picks 2 (gold), per byte picks 2.
    // Item c: lls -2.2 ("éé": 2 characters, 4 bytes) and -3 ("abc"): per character -1.1 vs -1 picks 1,
    // as lm-evaluation-harness's len(choice) (per byte would pick 0); gold 1.
    let items =
        vec![item("a", &["ab", "abcdef"], 1), item("b", &["abcd", "x", "0123456789"], 2), item("c", &["éé", "abc"], 1)];
    let ll = |s: f64| LogLik { sum: s, tokens: 1, greedy: false };
    let recs = mc::records(&items, &[ll(-2.0), ll(-3.0), ll(-1.0), ll(-4.0), ll(-0.5), ll(-2.2), ll(-3.0)]);
    assert_eq!((recs[2].pred, recs[2].pred_norm), (Some(0), Some(1)));
    assert_eq!(
        (recs[0].pred, recs[0].pred_norm, recs[0].correct, recs[0].correct_norm),
        (Some(0), Some(1), Some(false), Some(true))
    );
    assert_eq!(
        (recs[1].pred, recs[1].pred_norm, recs[1].correct, recs[1].correct_norm),
        (Some(2), Some(2), Some(true), Some(true))
    );
    // The metrics over items a and b.
    let m = metrics::compute(&metrics::defs("multiple_choice", "acc", None), &recs[..2], None, 100, 0);
    let get = |n: &str| m.iter().find(|x| x.name == n).unwrap().value;
    assert_eq!(get("acc"), 0.5);
    assert_eq!(get("acc_norm"), 1.0);
    // Probabilities: a = softmax(-2, -3) = (0.7311, 0.2689); b = softmax(-1, -4, -0.5).
    let pa = [1.0 / (1.0 + (-1.0f64).exp()), 1.0 / (1.0 + 1.0f64.exp())];
    let z: f64 = [-1.0f64, -4.0, -0.5].iter().map(|x| x.exp()).sum();
    let pb = [(-1.0f64).exp() / z, (-4.0f64).exp() / z, (-0.5f64).exp() / z];
    assert!((recs[0].probs[0] - pa[0]).abs() < 1e-12 && (recs[1].probs[2] - pb[2]).abs() < 1e-12);
    let brier = (pa[0].powi(2) + (pa[1] - 1.0).powi(2) + pb[0].powi(2) + pb[1].powi(2) + (pb[2] - 1.0).powi(2)) / 2.0;
    assert!((get("brier") - brier).abs() < 1e-12, "{} vs {brier}", get("brier"));
    // ECE: item a has confidence 0.731 (bin 7) and is wrong; item b confidence pb[2] = 0.6037 (bin 6),
    // right. ECE = 0.5 * |0 - 0.731| + 0.5 * |1 - 0.604|.
    let ece = 0.5 * pa[0] + 0.5 * (1.0 - pb[2]);
    assert!((get("ece") - ece).abs() < 1e-12, "{} vs {ece}", get("ece"));
}

/// Mean NLL per token of `ids` after BOS, straight from `forward`.
fn direct_nll(m: &Llama, bos: u32, ids: &[u32]) -> f64 {
    let mut inp = vec![bos];
    inp.extend(&ids[..ids.len() - 1]);
    let d = m.device().clone();
    let lp: Tensor<2> =
        token_log_probs(m.forward(ids_tensor(&inp, 1, inp.len(), &d)), ids_tensor(ids, 1, ids.len(), &d));
    -lp.into_data().convert::<f32>().try_into_vec::<f32>().unwrap().iter().map(|&x| x as f64).sum::<f64>()
}

#[test]
fn rolling_loglikelihood_equals_forward() {
    let tok = tokenizer();
    let tpl = ChatTemplate::hone_default();
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "Question: which word?\nAnswer: ox sun tree river stone cloud ember harbor lantern meadow at blue crow dune fjord glade hill isle jade kelp loam moss north oak.",
        "ox ox sun — ünïcode 🦀 text",
    ];
    write_jsonl(dir.path(), "t.jsonl", &texts.iter().map(|t| serde_json::json!({"text": t})).collect::<Vec<_>>());
    let task = TaskSpec::new(TaskFile::rolling("t", "d".into()), dir.path()).unwrap();
    let m = model(tok.vocab_size(), 128, 11);
    let subject = Subject { model: &m, tokenizer: &tok, template: &tpl, dir: dir.path().into() };
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    assert!(ids[0].len() > 20 && ids[0].len() < 128, "{}", ids[0].len());

    // One window: equals forward over the whole text.
    let res = run_task_on(&subject, &task, &opts()).unwrap();
    let (mut nll, mut toks, mut bytes) = (0.0, 0usize, 0usize);
    for (i, t) in texts.iter().enumerate() {
        let want = direct_nll(&m, tok.bos_id, &ids[i]);
        let got = res.items[i].nll.unwrap();
        assert!((got - want).abs() < 1e-3 * want.abs().max(1.0), "text {i}: {got} vs {want}");
        assert_eq!((res.items[i].tokens.unwrap(), res.items[i].bytes.unwrap()), (ids[i].len(), t.len()));
        nll += want;
        toks += ids[i].len();
        bytes += t.len();
    }
    let loss = res.metric("loss").unwrap().value;
    assert!((loss - nll / toks as f64).abs() < 1e-4, "{loss} vs {}", nll / toks as f64);
    let bpb = res.metric("bits_per_byte").unwrap().value;
    assert!((bpb - loss * toks as f64 / (std::f64::consts::LN_2 * bytes as f64)).abs() < 1e-9);
    let ppl = res.metric("perplexity").unwrap().value;
    assert!((ppl - loss.exp()).abs() < 1e-9 * ppl);

    // Windows of 8 tokens: first [BOS] + t[..7] predicts t[..8]; each next window reads the 8
    // tokens before its end and predicts the ones not yet predicted.
    const W: usize = 8;
    let mut o = opts();
    o.eval.max_length = W;
    let res = run_task_on(&subject, &task, &o).unwrap();
    let t = &ids[0];
    let d = m.device().clone();
    let mut want = direct_nll(&m, tok.bos_id, &t[..W]);
    let mut done = W;
    while done < t.len() {
        let end = (done + W).min(t.len());
        let inp = &t[end - W - 1..end - 1];
        let lp = token_log_probs(m.forward(ids_tensor(inp, 1, W, &d)), ids_tensor(&t[end - W..end], 1, W, &d));
        let v: Vec<f32> = lp.into_data().convert::<f32>().try_into_vec().unwrap();
        want -= v[W - (end - done)..].iter().map(|&x| x as f64).sum::<f64>();
        done = end;
    }
    let got = res.items[0].nll.unwrap();
    assert!((got - want).abs() < 1e-3 * want.abs(), "{got} vs {want}");
    assert!(res.items[0].tokens == Some(t.len()));
}

fn synthetic(task: &str, correct: &[bool]) -> TaskResult {
    let items: Vec<ItemRecord> = correct
        .iter()
        .enumerate()
        .map(|(i, &c)| ItemRecord {
            id: format!("i{i}"),
            correct: Some(c),
            correct_norm: Some(c),
            ..Default::default()
        })
        .collect();
    let defs = metrics::defs("multiple_choice", "acc", None);
    let metrics = metrics::compute(&defs[..2], &items, None, 200, 0);
    TaskResult {
        version: 1,
        task: task.into(),
        kind: "multiple_choice".into(),
        description: String::new(),
        headline: "acc".into(),
        task_file: String::new(),
        model: String::new(),
        run: None,
        stage: None,
        items_total: items.len(),
        items_evaluated: items.len(),
        settings: serde_json::json!({}),
        elapsed_s: 0.0,
        metrics,
        items,
    }
}

#[test]
fn compare_flags_a_real_drop_and_not_a_tie() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let a: Vec<bool> = (0..400).map(|_| rng.random_bool(0.7)).collect();
    // B loses 60 of A's correct items (~15 points).
    let mut b = a.clone();
    let mut lost = 0;
    for x in b.iter_mut() {
        if *x && lost < 60 {
            *x = false;
            lost += 1;
        }
    }
    let (ra, rb) = (synthetic("t", &a), synthetic("t", &b));
    let d = compare::compare(&ra, &rb);
    let acc = d.iter().find(|d| d.metric == "acc").unwrap();
    assert!(acc.regression && acc.p_worse < 0.01 && acc.change < -0.14, "{acc:?}");
    assert!(acc.method.starts_with("paired bootstrap"));
    // Same items: a tie.
    let tie = compare::compare(&ra, &synthetic("t", &a));
    assert!(tie.iter().all(|d| !d.regression && !d.improvement && d.change == 0.0), "{tie:?}");
    // One item worse: within noise.
    let mut c = a.clone();
    let k = c.iter().position(|&x| x).unwrap();
    c[k] = false;
    let small = compare::compare(&ra, &synthetic("t", &c));
    assert!(small.iter().all(|d| !d.regression), "{small:?}");
    // The other way round it is an improvement.
    let up = compare::compare(&rb, &ra);
    assert!(up.iter().all(|d| d.improvement && !d.regression));
    // Without item records: the two-proportion test still sees the drop.
    let (mut na, mut nb) = (ra.clone(), rb.clone());
    na.items.clear();
    nb.items.clear();
    let d = compare::compare(&na, &nb);
    assert!(d[0].regression && d[0].method == "two-proportion z-test", "{:?}", d[0]);
    // Lower is better: a rise in bits per byte is a regression.
    let text = |nll: f64| {
        let items: Vec<ItemRecord> = (0..50)
            .map(|i| ItemRecord {
                id: format!("d{i}"),
                nll: Some(nll + (i % 7) as f64),
                tokens: Some(10),
                bytes: Some(40),
                ..Default::default()
            })
            .collect();
        let mut r = synthetic("text", &[]);
        r.kind = "loglikelihood_rolling".into();
        r.headline = "bits_per_byte".into();
        r.metrics =
            metrics::compute(&metrics::defs("loglikelihood_rolling", "bits_per_byte", None), &items, None, 200, 0);
        r.items = items;
        r
    };
    let d = compare::compare(&text(20.0), &text(22.0));
    let bpb = d.iter().find(|d| d.metric == "bits_per_byte").unwrap();
    assert!(bpb.regression && !bpb.higher_is_better, "{bpb:?}");
    let table = hone_eval::table::comparison(&d);
    assert!(table.contains("REGRESSION: text bits_per_byte"), "{table}");
}

fn shared_eval() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/eval");
    hone_data::skip::require("hone-eval shipped tasks (the shared evaluation data)", &p)
}

#[test]
fn shipped_arc_and_blimp_tasks_load_and_evaluate() {
    if shared_eval().is_none() {
        return;
    }
    let tok = tokenizer();
    let tpl = ChatTemplate::hone_default();
    let m = model(tok.vocab_size(), 256, 1);
    let subject = Subject { model: &m, tokenizer: &tok, template: &tpl, dir: PathBuf::from("random") };
    let mut o = opts();
    o.eval.limit = 24;
    for (name, total, chance) in [("arc_easy", 2376, 0.25), ("arc_challenge", 1172, 0.25), ("blimp", 67_000, 0.5)] {
        let tasks = hone_eval::resolve(name, None).unwrap();
        let res = run_task_on(&subject, &tasks[0], &o).unwrap();
        assert_eq!((res.items_total, res.items_evaluated), (total, 24), "{name}");
        let acc = res.metric("acc").unwrap();
        assert!((0.0..=1.0).contains(&acc.value) && acc.n == 24, "{name}: {acc:?}");
        assert!(res.items.iter().all(|r| r.choices.len() >= 2 && r.gold.unwrap() < r.choices.len()));
        // A random model is at chance: the interval of its accuracy holds it.
        assert!(acc.lo <= chance && chance <= acc.hi, "{name}: a random model scores {acc:?}, chance is {chance}");
        if name == "blimp" {
            // Evenly spread over the archive: several paradigms, and per-phenomenon metrics.
            let groups: std::collections::BTreeSet<_> = res.items.iter().filter_map(|r| r.group.clone()).collect();
            assert!(groups.len() >= 5, "{groups:?}");
            assert!(res.metrics.iter().any(|m| m.group.as_deref().is_some_and(|g| g.starts_with("linguistics_term="))));
            assert!(res.items.iter().all(|r| r.prompt.is_empty() && r.gold == Some(0)));
        }
    }
    // GSM8K maps onto a generation task whose targets the `number` scorer reads after `####`.
    let gsm = &hone_eval::resolve("gsm8k", None).unwrap()[0];
    let g = gsm.file.generate.as_ref().unwrap();
    let recs = gsm.records().unwrap();
    assert_eq!(recs.len(), 1319);
    for r in &recs {
        let it = hone_eval::items::gen_item(r, g, None).unwrap();
        assert!(it.prompt.starts_with("Question: ") && it.prompt.ends_with("\nAnswer:"));
        let answer = it.targets[0].rsplit("####").next().unwrap().trim().replace(',', "");
        let s = hone_tasks::Scorer::Number.score(&format!("So the answer is {answer}."), &it.record);
        assert_eq!(s.score, 1.0, "{}: {:?}", it.id, s);
    }
}

/// The shared-context path (one pass per context, continuations through a copied KV cache) gives the
/// plain path's log-likelihoods and greedy flags: contexts of different lengths in one batch (left
/// padding of the cached part), a BOS-only context, continuations of different lengths (right
/// padding), singletons and a group too long to share (plain path), at several batch sizes.
#[test]
fn shared_contexts_score_as_separate_requests() {
    use hone_eval::loglik::{Request, Sharing, loglikelihoods_with};
    let m = model(300, 64, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut toks = |n: usize| (0..n).map(|_| rng.random_range(4..300u32)).collect::<Vec<u32>>();
    let mut reqs = Vec::new();
    for (ctx, conts) in [(9, vec![1, 3, 2, 5]), (1, vec![4, 1]), (23, vec![2, 2, 6]), (5, vec![3]), (14, vec![1, 7])] {
        let mut context = vec![1];
        context.extend(toks(ctx - 1));
        for c in conts {
            reqs.push(Request { context: context.clone(), continuation: toks(c) });
        }
    }
    // A group whose rows do not fit max_len = 40: cut from the left on the plain path.
    let long: Vec<u32> = std::iter::once(1).chain(toks(37)).collect();
    reqs.push(Request { context: long.clone(), continuation: toks(6) });
    reqs.push(Request { context: long, continuation: toks(2) });
    let want = loglikelihoods_with(&m, &reqs, 40, 4096, 0, Sharing::None, &mut |_, _| {}).unwrap();
    for batch_tokens in [1, 30, 4096] {
        let mut last = 0;
        let got = loglikelihoods_with(&m, &reqs, 40, batch_tokens, 0, Sharing::Context, &mut |d, t| {
            assert!(d > last && d <= t && t == reqs.len());
            last = d;
        })
        .unwrap();
        assert_eq!(last, reqs.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g.sum - w.sum).abs() < 1e-4, "request {i}, batch {batch_tokens}: {} vs {}", g.sum, w.sum);
            assert_eq!((g.tokens, g.greedy), (w.tokens, w.greedy), "request {i}, batch {batch_tokens}");
        }
    }
    // The reference itself against a direct forward of one request.
    let r = &reqs[2];
    let whole: Vec<u32> = r.context.iter().chain(&r.continuation).copied().collect();
    let direct = -direct_nll(&m, whole[0], &whole[1..]) + direct_nll(&m, whole[0], &r.context[1..]);
    assert!((want[2].sum - direct).abs() < 1e-3, "{} vs {direct}", want[2].sum);
}
