//! The shipped lm-evaluation-harness task files (`tasks/hellaswag.toml`, `piqa.toml`,
//! `lambada_openai.toml`, `winogrande.toml`, `mmlu_continuation.toml`) render every request of a
//! 20-record fixture in each dataset's Hugging Face schema exactly as the harness does: the
//! expected contexts and continuations come from the harness's own task configs run on the same
//! records (`scripts/lm_eval_fixtures.py`), 0-shot and, for MMLU, 5-shot.

use hone_eval::spec::TaskSpec;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm_eval")
}

/// The task file with its sources pointed at the fixtures.
fn task(file: &str, source: &str, fewshot: Option<(&str, usize)>) -> TaskSpec {
    let mut t = TaskSpec::load(&root().join("tasks").join(file)).unwrap();
    t.file.source = fixtures().join(source).display().to_string();
    if let Some(fs) = &mut t.file.fewshot {
        let (dev, num) = fewshot.expect("a fewshot fixture");
        fs.source = Some(fixtures().join(dev).display().to_string());
        fs.num = num;
    }
    t
}

fn expected(key: &str) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}"))
        .iter()
        .map(|r| (r["context"].as_str().unwrap().to_string(), r["continuation"].as_str().unwrap().to_string()))
        .collect()
}

fn check(t: &TaskSpec, key: &str) {
    let records = t.records().unwrap();
    assert_eq!(records.len(), 20);
    let pick: Vec<usize> = (0..records.len()).collect();
    let got: Vec<(String, String)> = if t.file.kind == "loglikelihood" {
        hone_eval::task_single_items(t, &records, &pick)
            .unwrap()
            .into_iter()
            .map(|it| (it.context, it.target))
            .collect()
    } else {
        hone_eval::mc::request_texts(&hone_eval::task_mc_items(t, &records, &pick).unwrap(), false)
    };
    let want = expected(key);
    assert_eq!(got.len(), want.len(), "{key}: number of requests");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{key}: request {i}");
    }
}

#[test]
fn hellaswag_piqa_lambada_winogrande_render_as_the_harness() {
    check(&task("hellaswag.toml", "hellaswag.jsonl", None), "hellaswag/0");
    check(&task("piqa.toml", "piqa.jsonl", None), "piqa/0");
    check(&task("lambada_openai.toml", "lambada.jsonl", None), "lambada_openai/0");
    check(&task("winogrande.toml", "winogrande.jsonl", None), "winogrande/0");
}

#[test]
fn mmlu_zero_and_five_shot_render_as_the_harness() {
    check(&task("mmlu_continuation.toml", "mmlu.jsonl", Some(("mmlu_dev.jsonl", 0))), "mmlu_continuation/0");
    check(&task("mmlu_continuation.toml", "mmlu.jsonl", Some(("mmlu_dev.jsonl", 5))), "mmlu_continuation/5");
}

/// `acc_mutual_info`: the choice whose log-likelihood gains most from the context (lls after the
/// conditional ones are the unconditional ones, as `mc::requests` orders them).
#[test]
fn mutual_info_by_hand() {
    use hone_eval::items::McItem;
    use hone_eval::loglik::LogLik;
    let item = McItem {
        id: "a".into(),
        group: None,
        context: "c".into(),
        choices: vec!["x".into(), "y".into()],
        prefix: " ".into(),
        gold: 1,
        fewshot: String::new(),
        shared_continuation: None,
    };
    let ll = |s: f64| LogLik { sum: s, tokens: 1, greedy: false };
    // Conditional -1 and -2 (acc picks 0); unconditional -0.5 and -4: gains -0.5 and +2 pick 1.
    let recs = hone_eval::mc::records(std::slice::from_ref(&item), &[ll(-1.0), ll(-2.0), ll(-0.5), ll(-4.0)]);
    assert_eq!((recs[0].pred, recs[0].correct_mi), (Some(0), Some(true)));
    let texts = hone_eval::mc::request_texts(std::slice::from_ref(&item), true);
    assert_eq!(texts[2], (String::new(), " x".to_string()), "unconditional: no context");
    // Without the unconditional half, no acc_mutual_info.
    assert_eq!(hone_eval::mc::records(&[item], &[ll(-1.0), ll(-2.0)])[0].correct_mi, None);
}

/// A Parquet source (Hugging Face's export, with a nested list column) gives the same requests.
#[test]
fn parquet_source_renders_as_jsonl() {
    check(&task("hellaswag.toml", "hellaswag.parquet", None), "hellaswag/0");
}
