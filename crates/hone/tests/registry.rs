//! Every registered training stage gets, from its one registry line, everything the rest of hone
//! gives a stage: a subcommand, a config section with checked `--set` keys, a pipeline name with the
//! predecessor check, and (for a policy) a column in the report. Walks `hone_train::REGISTRY`, so a
//! stage added later is checked too.

use hone_eval::result::{ItemRecord, Metric, TaskResult};
use hone_train::stage::Role;
use std::path::Path;
use std::process::{Command, Output};

fn hone(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone")).current_dir(dir).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn result(stage: &str, value: f64) -> TaskResult {
    TaskResult {
        version: 1,
        task: "probe".into(),
        kind: "generate".into(),
        description: "a probe".into(),
        headline: "accuracy".into(),
        task_file: "probe.toml".into(),
        model: format!("runs/r/{stage}/final"),
        run: None,
        stage: Some(stage.into()),
        items_total: 1,
        items_evaluated: 1,
        settings: serde_json::json!({}),
        elapsed_s: 0.1,
        metrics: vec![Metric {
            name: "accuracy".into(),
            group: None,
            value,
            n: 100,
            lo: value - 0.05,
            hi: value + 0.05,
            interval: "wilson".into(),
            higher_is_better: true,
        }],
        items: vec![ItemRecord { id: "q1".into(), prompt: "2 + 2?".into(), ..Default::default() }],
    }
}

#[test]
fn every_registered_stage_has_a_subcommand_keys_a_pipeline_name_and_a_report_column() {
    let names: Vec<&str> = hone_train::REGISTRY.iter().map(|s| s.info().name).collect();
    for n in ["base", "pretrain", "sft", "reward", "dpo", "rl", "orpo", "kto"] {
        assert!(names.contains(&n), "{n} is registered: {names:?}");
    }
    let report_run = tempfile::tempdir().unwrap();
    for (i, stage) in hone_train::REGISTRY.iter().enumerate() {
        let info = stage.info();
        let name = info.name;
        assert_eq!(stage.key(), name, "the registry key is the stage's name");
        assert!(!names[..i].contains(&name), "{name} registered twice");
        for p in info.starts_from {
            assert!(names[..i].contains(p), "{name} starts from {p}, which must be registered before it");
        }
        let d = tempfile::tempdir().unwrap();

        // The subcommand, with the stage's own help.
        let help = text(&hone(d.path(), &[name, "--help"]));
        assert!(help.contains(info.about.split(';').next().unwrap()) && help.contains("--model"), "{name}: {help}");

        // Its section's keys, checked like every other section's.
        let o = hone(d.path(), &[name, "--set", &format!("{name}.stepz=3")]);
        let e = text(&o);
        assert!(!o.status.success() && e.contains(&format!("unknown key `{name}.stepz`")), "{name}: {e}");
        // Every key of the section is listed; a training loop's include its steps and seed.
        let section = stage.section_toml(&Default::default());
        let keys: Vec<&str> = section.lines().filter_map(|l| l.split_once(" = ").map(|(k, _)| k)).collect();
        assert!(!keys.is_empty(), "{name}: {section}");
        for k in &keys {
            assert!(e.contains(&format!("{name}.{k}")), "{name}: {k} is not listed: {e}");
        }
        if keys.contains(&"steps") {
            assert!(e.contains(&format!("{name}.seed")), "{name}: {e}");
            let e = text(&hone(d.path(), &[name, "--set", &format!("{name}.steps=many")]));
            assert!(e.contains("expects an integer"), "{name}: {e}");
        }

        // A pipeline name; a stage that starts from a trained model with none before it fails before
        // any work, naming what it needs.
        let stages = format!("pipeline.stages=[\"world\", \"tokenizer\", \"data\", \"{name}\"]");
        if !info.starts_from.is_empty() {
            let o = hone(d.path(), &["run", "--preset", "quick", "--set", &stages]);
            let e = text(&o);
            assert!(!o.status.success(), "{name}: {e}");
            assert!(e.contains(&format!("`{name}` starts from a trained model")), "{name}: {e}");
            assert!(e.contains(info.starts_from[0]), "{name}: {e}");
            assert!(!d.path().join("runs/quick/world").exists(), "{name}: work started before the check");
        }
        let e = text(&hone(d.path(), &["run", "--set", &format!("pipeline.stages=[\"{name}x\"]")]));
        assert!(e.contains(&format!("unknown stage `{name}x`")) && e.contains(name), "{e}");

        // A report column for a policy, none for a model other stages use.
        result(name, 0.1 * (i + 1) as f64).save(&report_run.path().join("eval").join(name)).unwrap();
        let o = hone(d.path(), &["report", report_run.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let md = std::fs::read_to_string(report_run.path().join("report/report.md")).unwrap();
        let header = md.lines().find(|l| l.starts_with("| task")).unwrap_or_default().to_string();
        let has_column = header.split('|').any(|c| c.trim() == info.label);
        assert_eq!(has_column, info.role == Role::Policy, "{name} ({:?}): {header}", info.role);
    }
}

/// `iterate` is a pipeline step after the training stages: last, with a policy stage before it.
#[test]
fn iterate_comes_last_in_the_pipeline() {
    let d = tempfile::tempdir().unwrap();
    for stages in
        [r#"["world", "tokenizer", "data", "iterate", "pretrain"]"#, r#"["world", "tokenizer", "data", "iterate"]"#]
    {
        let o = hone(d.path(), &["run", "--preset", "quick", "--set", &format!("pipeline.stages={stages}")]);
        let e = text(&o);
        assert!(!o.status.success() && e.contains("`iterate` comes last"), "{stages}: {e}");
    }
    assert!(!d.path().join("runs/quick/world").exists(), "work started before the check");
    let o = hone(
        d.path(),
        &[
            "run",
            "--preset",
            "quick",
            "--set",
            r#"pipeline.stages=["world", "tokenizer", "data", "pretrain", "sft", "iterate"]"#,
            "--set",
            "iterate.rounds=0",
        ],
    );
    assert!(!o.status.success() && text(&o).contains("iterate.rounds must be at least 1"), "{}", text(&o));
    assert!(!d.path().join("runs/quick/world").exists(), "work started before the check");
}
