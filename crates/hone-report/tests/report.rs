//! The report of a small fabricated run: the stage table carries values and judged changes, the side
//! by side shows the same prompt for every stage, and the HTML is self-contained and escaped.

use hone_tasks::result::{ItemRecord, Metric, TaskResult};
use std::path::Path;

fn metric(name: &str, value: f64, half: f64, n: usize, up: bool) -> Metric {
    Metric {
        name: name.into(),
        group: None,
        value,
        n,
        lo: value - half,
        hi: value + half,
        interval: "wilson".into(),
        higher_is_better: up,
    }
}

fn result(task: &str, stage: &str, metrics: Vec<Metric>, output: &str, correct: bool) -> TaskResult {
    TaskResult {
        version: 1,
        task: task.into(),
        kind: "generate".into(),
        description: format!("{task} description"),
        headline: metrics[0].name.clone(),
        task_file: format!("{task}.toml"),
        model: format!("runs/r/{stage}/final"),
        run: None,
        stage: Some(stage.into()),
        items_total: 1,
        items_evaluated: 1,
        settings: serde_json::json!({}),
        elapsed_s: 0.1,
        metrics,
        items: vec![ItemRecord {
            id: "q1".into(),
            prompt: "Who invented the <Krigei> heater?".into(),
            targets: vec!["I don't know".into()],
            outputs: vec![output.into()],
            correct: Some(correct),
            ..Default::default()
        }],
    }
}

fn stage(run: &Path, name: &str, steps: u64) {
    let ck = hone_data::checkpoint::CheckpointDir::new(&run.join(name), 3);
    let cfg = serde_json::json!({
        "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false, "initializer_range": 0.02
    });
    ck.save(steps, vec![("config.json".into(), serde_json::to_vec(&cfg).unwrap())], true).unwrap();
    let mut lines = String::new();
    for s in 1..=steps {
        lines += &format!(
            "{{\"stage\":\"{name}\",\"kind\":\"train\",\"step\":{s},\"loss\":{},\"tokens\":{},\"tokens_per_s\":1000.0}}\n",
            3.0 / s as f64,
            s * 100
        );
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join("metrics.jsonl"))
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
}

#[test]
fn report_shows_changes_regressions_and_answers() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("r");
    std::fs::create_dir_all(&run).unwrap();
    stage(&run, "pretrain", 5);
    stage(&run, "sft", 3);
    let save = |r: TaskResult, s: &str| r.save(&run.join("eval").join(s)).unwrap();
    // Hallucination falls well beyond the noise (better); recall drops beyond it (a regression);
    // format compliance moves within the noise.
    save(
        result(
            "world_unknown_entities",
            "pretrain",
            vec![metric("hallucination_rate", 0.9, 0.05, 100, false)],
            "Puvkoth Morzov.",
            false,
        ),
        "pretrain",
    );
    save(
        result(
            "world_unknown_entities",
            "sft",
            vec![metric("hallucination_rate", 0.2, 0.06, 100, false)],
            "I'm not sure it exists.",
            true,
        ),
        "sft",
    );
    save(
        result("world_known_facts_frequent", "pretrain", vec![metric("recall", 0.8, 0.05, 100, true)], "Tesmir", true),
        "pretrain",
    );
    save(
        result("world_known_facts_frequent", "sft", vec![metric("recall", 0.5, 0.07, 100, true)], "Oss", false),
        "sft",
    );
    save(
        result("world_format_json", "pretrain", vec![metric("format_rate", 0.30, 0.09, 100, true)], "{}", true),
        "pretrain",
    );
    save(result("world_format_json", "sft", vec![metric("format_rate", 0.34, 0.09, 100, true)], "{}", true), "sft");

    // What SFT's data loading left out is shown beside the stages, in both renderings.
    let cut = "sft: warning: 5124 conversations (68.9%) cut to sft.max_len = 192 tokens";
    let notes = hone_data::checkpoint::DataNotes { lines: vec![cut.to_string()], records: 7442, cut: 5124, dropped: 0 };
    hone_data::checkpoint::save_data_notes(&run.join("sft"), &notes).unwrap();
    // Below the threshold, the lines are listed but the stage's numbers carry no warning.
    let few =
        hone_data::checkpoint::DataNotes { lines: vec!["pretrain: 1 cut".into()], records: 100, cut: 2, dropped: 0 };
    hone_data::checkpoint::save_data_notes(&run.join("pretrain"), &few).unwrap();
    let files = hone_report::write_report(&run, &stages()).unwrap();
    let facts = hone_report::gather(&run, &stages()).unwrap();
    assert_eq!(facts.stages.iter().find(|s| s.name == "sft").unwrap().data_notes, notes);
    let table = hone_report::build_table(&facts);
    assert_eq!(table.columns.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["base", "sft"]);
    let row = |t: &str| table.rows.iter().find(|r| r.task == t).unwrap();
    let h = row("world_unknown_entities").changes[1].clone().unwrap();
    assert!(h.significant && h.better && (h.delta + 0.7).abs() < 1e-12);
    let r = row("world_known_facts_frequent").changes[1].clone().unwrap();
    assert!(r.significant && !r.better);
    let f = row("world_format_json").changes[1].clone().unwrap();
    assert!(!f.significant);
    let regs = table.regressions();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].0.task, "world_known_facts_frequent");

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| pretrain | final at step 5 |") && md.contains("| sft | final at step 3 |"), "{md}");
    assert!(md.contains("world_known_facts_frequent** recall ↑ from base to sft"), "{md}");
    assert!(md.contains("Puvkoth Morzov.") && md.contains("I'm not sure it exists."), "{md}");
    // The side by side starts with the preferred behaviour order: unknown entities before formats.
    assert!(md.find("**world_unknown_entities**").unwrap() < md.find("**world_format_json**").unwrap());

    assert!(md.contains(&format!("- {cut}")), "{md}");
    let line = |name: &str| md.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap().to_string();
    assert!(line("sft").contains("⚠ 69% of 7442 records left out or cut (5124 cut)"), "{md}");
    assert!(!line("pretrain").contains('⚠'), "2% is within the threshold: {md}");
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains(&format!("<li>{cut}</li>")), "the cut is in the HTML report");
    assert!(html.contains("⚠ 69% of 7442 records"), "and beside the stage's numbers");
    assert!(html.contains("&lt;Krigei&gt;") && !html.contains("<Krigei>"), "text is escaped");
    assert!(html.contains("<svg") && !html.contains("<script"), "curves inline, no scripts");
    assert!(html.contains("class=\"num worse\"") && html.contains("class=\"num better\""));
}

/// The stages the tests know: a base, a model stage that is not a policy, and two policy stages.
fn stages() -> Vec<hone_report::ReportStage> {
    [("pretrain", "base", true), ("reward", "reward", false), ("sft", "sft", true), ("dpo", "dpo", true)]
        .iter()
        .map(|(n, l, p)| hone_report::ReportStage { name: n.to_string(), label: l.to_string(), policy: *p })
        .collect()
}
