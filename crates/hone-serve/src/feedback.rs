//! A person's judgements, appended to `<run>/feedback/preferences.jsonl` in TRL's conversational
//! preference format (`prompt` / `chosen` / `rejected` message lists) with a `label` and where each
//! answer came from. A preferred answer becomes one pair; an answer the person wrote becomes the
//! chosen one against each of the two shown (two pairs); a tie or "both bad" is kept with its label
//! (`chosen` is then answer A only by position) and the preference readers count and skip it.
//!
//! Each judgement is one `write` of whole lines, under an exclusive lock on the file (other
//! processes appending, e.g. a second server) and fsynced before the reply; a line torn by a crash
//! mid-write is cut off before the next append, so the file is always whole JSON lines.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The person's verdict on answers A and B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    A,
    B,
    Tie,
    BothBad,
}

/// One answer shown to the person, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub model: String,
    pub seed: u64,
    pub text: String,
}

/// A judgement as the page sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Judgement {
    pub prompt: String,
    #[serde(default)]
    pub system: Option<String>,
    pub a: Shown,
    pub b: Shown,
    pub verdict: Verdict,
    /// A better answer the person wrote.
    #[serde(default)]
    pub edited: Option<String>,
}

/// The file judgements of a run go to.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join("feedback").join("preferences.jsonl")
}

fn turn(role: &str, content: &str) -> Value {
    json!([{"role": role, "content": content}])
}

/// The lines a judgement becomes, at `time` (RFC 3339).
pub fn lines(j: &Judgement, time: &str) -> Vec<Value> {
    let mut prompt = Vec::new();
    if let Some(s) = j.system.as_deref().filter(|s| !s.trim().is_empty()) {
        prompt.push(json!({"role": "system", "content": s}));
    }
    prompt.push(json!({"role": "user", "content": j.prompt}));
    let source = |s: &Shown| json!({"model": s.model, "seed": s.seed});
    let line = |chosen: Value, rejected: Value, label: &str, chosen_src: Value, rejected_src: Value| {
        json!({
            "prompt": prompt, "chosen": chosen, "rejected": rejected, "label": label,
            "grader": "human", "chosen_source": chosen_src, "rejected_source": rejected_src, "time": time,
        })
    };
    let (a, b) = (turn("assistant", &j.a.text), turn("assistant", &j.b.text));
    if let Some(e) = j.edited.as_deref().filter(|e| !e.trim().is_empty()) {
        let mine = turn("assistant", e);
        return vec![
            line(mine.clone(), a, "edited", json!({"human": true}), source(&j.a)),
            line(mine, b, "edited", json!({"human": true}), source(&j.b)),
        ];
    }
    vec![match j.verdict {
        Verdict::A => line(a, b, "a", source(&j.a), source(&j.b)),
        Verdict::B => line(b, a, "b", source(&j.b), source(&j.a)),
        Verdict::Tie => line(a, b, "tie", source(&j.a), source(&j.b)),
        Verdict::BothBad => line(a, b, "both_bad", source(&j.a), source(&j.b)),
    }]
}

/// Appends `lines` to `file` (created with its folder); returns the number of lines now in it.
pub fn append(file: &Path, lines: &[Value]) -> anyhow::Result<usize> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)
        .map_err(|e| anyhow::anyhow!("{}: cannot open for appending: {e}", file.display()))?;
    f.lock().map_err(|e| anyhow::anyhow!("{}: cannot lock: {e}", file.display()))?;
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    // A torn last line (a crash mid-write): cut it off so every line stays whole JSON.
    let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < text.len() {
        f.set_len(whole as u64)?;
        text.truncate(whole);
    }
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l)?;
        out.push(b'\n');
    }
    f.seek(SeekFrom::End(0))?;
    f.write_all(&out).map_err(|e| anyhow::anyhow!("{}: write failed: {e}", file.display()))?;
    f.sync_data()?;
    let total = text.iter().filter(|&&b| b == b'\n').count() + lines.len();
    f.unlock()?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judgement(verdict: Verdict, edited: Option<&str>) -> Judgement {
        Judgement {
            prompt: "Who founded Varnok?".into(),
            system: Some("Be brief.".into()),
            a: Shown { model: "sft".into(), seed: 1, text: "Ada.".into() },
            b: Shown { model: "dpo".into(), seed: 2, text: "I don't know.".into() },
            verdict,
            edited: edited.map(String::from),
        }
    }

    #[test]
    fn verdicts_become_pairs_and_appends_keep_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = path(dir.path());
        let b = lines(&judgement(Verdict::B, None), "t");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0]["chosen"][0]["content"], "I don't know.");
        assert_eq!(b[0]["rejected"][0]["content"], "Ada.");
        assert_eq!(b[0]["prompt"][0]["role"], "system");
        assert_eq!(b[0]["chosen_source"]["model"], "dpo");
        let e = lines(&judgement(Verdict::A, Some("Ada Varn, in 1204.")), "t");
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|l| l["label"] == "edited" && l["chosen"][0]["content"] == "Ada Varn, in 1204."));
        assert_eq!(
            (e[0]["rejected"][0]["content"].as_str(), e[1]["rejected"][0]["content"].as_str()),
            (Some("Ada."), Some("I don't know."))
        );
        assert_eq!(lines(&judgement(Verdict::Tie, None), "t")[0]["label"], "tie");
        assert_eq!(append(&f, &b).unwrap(), 1);
        // A torn line from a crash is cut off before the next append.
        std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"{\"prompt\": [").unwrap();
        assert_eq!(append(&f, &e).unwrap(), 3);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{text}");
        assert_eq!(text.lines().count(), 3);
        // The preference reader takes the file as it is.
        let read = hone_data::pairs::read_pairs(std::slice::from_ref(&f), "auto", false).unwrap();
        assert_eq!(read.items.len(), 3);
        assert_eq!(read.items[0].chosen[0].content, "I don't know.");
    }
}
