//! Adjust: a round's training data, aimed at its weaknesses and never drawn from a probe item
//! (the report's or the development split's; `hone_world::draw` keeps both out):
//!
//! - SFT: new world conversations of the weak kinds, plus a replayed share of the world's own
//!   conversations of the other kinds and of the kinds behind every task not targeted, the same
//!   number of each (new ones where the world has too few: on the default run, a round that trained
//!   JSON and lists without one-word answers among its replay took those from 0.74 to 0.58), and
//!   documents of the world's corpus as plain text (`iterate.text_replay`);
//! - DPO: prompts of the weak kinds answered `iterate.samples` times by the current model, the best
//!   and worst answer by the grader making a pair when the grader tells them apart (with the rule
//!   grader, a prompt whose answers all score alike takes the world's own pair for it), plus replayed
//!   pairs of the other kinds; or, with the feedback grader, people's judgements;
//! - RL: new prompts of the weak kinds with their verifiers, plus new prompts of the other verifiable
//!   kinds (the same share as replay elsewhere), so the reward keeps what the round does not target:
//!   on the default run an RL round on arithmetic and formats alone took one-word compliance from
//!   0.74 to 1.00 and uppercase compliance from 0.98 to 0.71, refusals from 0.98 to 0.87.
//!
//! The data is written to `<round>/data/` with `parts.json` last, so a resumed round reuses it.

use super::config::{Grader, IterateConfig, Method};
use super::diagnose::Found;
use super::grade::{self, Prompt};
use hone_data::chat::Message;
use hone_report::iteration::{Agreement, DataPart};
use hone_train::reward_model::RewardModel;
use hone_world::draw::{DrawRequest, Drawn};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What a round trains on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Built {
    /// The stage's data file.
    pub file: PathBuf,
    pub parts: Vec<DataPart>,
    pub agreement: Option<Agreement>,
}

/// Everything building needs.
pub struct Inputs<'a> {
    pub world: &'a hone_world::WorldConfig,
    pub world_dir: &'a Path,
    pub it: &'a IterateConfig,
    pub round: u32,
    pub method: Method,
    pub grader: Grader,
    pub targeted: &'a [&'a Found],
    /// Every task measured (the development split's), whose kinds the round's replay protects.
    pub tasks: Vec<String>,
    /// Prompts earlier rounds trained on (drawn items avoid them).
    pub avoid: BTreeSet<String>,
    /// The SFT data of the kept rounds before this one, replayed with the world's own: the tiny
    /// world's pools of new prompts run dry after a round or two (JSON requests did in the third
    /// round of the default run), and a round that could neither draw nor replay a kind lost it
    /// (JSON compliance 0.68 → 0.35 on the development split).
    pub kept_sft: Vec<PathBuf>,
    /// The current model.
    pub model: &'a Path,
    pub reward_model: Option<&'a RewardModel>,
    /// `<run>/feedback/preferences.jsonl` snapshot (the feedback grader).
    pub feedback: Option<&'a Path>,
    pub seed: u64,
}

fn kinds(targeted: &[&Found], pick: impl Fn(&hone_world::remedy::Remedy) -> &'static [&'static str]) -> Vec<String> {
    sized(targeted, pick, 1).into_iter().map(|x| x.0).collect()
}

/// The kinds of the targeted weaknesses with how many items to draw of each: `base` for a weakness
/// at its target, up to three times that for one at zero (`base` × (1 + 2 × the distance still to
/// go)); a kind shared by several weaknesses takes the largest. A skill far from its target takes
/// more examples (SFT's 2,000 worked sums gave the default run its arithmetic); more than three
/// times runs the tiny world's pools of new prompts dry (JSON requests on training facts ran out in
/// the round after one that drew 590 of them).
fn sized(
    targeted: &[&Found],
    pick: impl Fn(&hone_world::remedy::Remedy) -> &'static [&'static str],
    base: usize,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for f in targeted {
        let n = (base as f64 * (1.0 + 2.0 * (1.0 - f.progress.clamp(0.0, 1.0)))).round() as usize;
        for k in f.remedy.as_ref().map(&pick).unwrap_or(&[]) {
            match out.iter_mut().find(|x| x.0 == *k) {
                Some(x) => x.1 = x.1.max(n),
                None => out.push((k.to_string(), n)),
            }
        }
    }
    out
}

fn messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| Message::new(m["role"].as_str().unwrap_or("user"), m["content"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

fn reply(text: &str) -> Value {
    json!([{ "role": "assistant", "content": text }])
}

/// Replayed lines, and each kind's shortfall from its share.
type Replayed = (Vec<Value>, Vec<(String, usize)>);

/// A seeded sample of about `n` lines of `path` whose `kind` is not in `skip` and passes `keep`, the
/// same number of each kind (as many as there are of the rarer ones). In proportion to the file,
/// the kinds a world keeps rare on purpose (refusals are 3% of its SFT set) all but vanish: on the
/// default run a round whose replay held 9 refusals took the refusal rate from 0.98 to 0.78.
/// Also returns each kind's shortfall from its share (for the caller to draw new items of).
/// `also`: kinds the file may lack, which take a share too (all of it a shortfall when absent).
fn replay(
    paths: &[PathBuf],
    skip: &[String],
    keep: fn(&str) -> bool,
    also: &[String],
    n: usize,
    seed: u64,
) -> anyhow::Result<Replayed> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut by_kind: std::collections::BTreeMap<String, Vec<(String, Value)>> = Default::default();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let texts = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())))
        .collect::<anyhow::Result<Vec<String>>>()?;
    for (f, (path, text)) in paths.iter().zip(&texts).enumerate() {
        for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            // An earlier round's file holds its own replay of the files before it.
            if !seen.insert(l.trim()) {
                continue;
            }
            let v: Value = serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{} line {}: not JSON: {e}", path.display(), i + 1))?;
            let kind = v["kind"].as_str().unwrap_or("").to_string();
            // Corpus documents are drawn afresh by `corpus_documents`, not replayed as a kind.
            if !skip.contains(&kind) && keep(&kind) && kind != CORPUS_KIND {
                // A seeded order: each line's place is the hash of (seed, its file and line).
                let order = hone_data::hash::sha256_hex(format!("{seed}:{f}:{i}").as_bytes());
                by_kind.entry(kind).or_default().push((order, v));
            }
        }
    }
    for k in also {
        by_kind.entry(k.clone()).or_default();
    }
    let quota = n.div_ceil(by_kind.len().max(1));
    let mut out = Vec::new();
    let mut short = Vec::new();
    for (kind, mut lines) in by_kind {
        if lines.len() < quota {
            short.push((kind, quota - lines.len()));
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(lines.into_iter().take(quota).map(|x| x.1));
    }
    Ok((out, short))
}

/// The kind of corpus documents in a round's SFT data.
const CORPUS_KIND: &str = "corpus";

/// A seeded sample of `n` documents of the corpus in `dir` (its `*.jsonl` files), as plain-text SFT
/// records (`{"text", "kind": "corpus"}`).
fn corpus_documents(dir: &Path, n: usize, seed: u64) -> anyhow::Result<Vec<Value>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut docs: Vec<(String, String)> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{} line {}: not JSON: {e}", f.display(), i + 1))?;
            let t = v["text"].as_str().ok_or_else(|| anyhow::anyhow!("{} line {}: no `text`", f.display(), i + 1))?;
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let order = hone_data::hash::sha256_hex(format!("{seed}:{name}:{i}").as_bytes());
            docs.push((order, t.to_string()));
        }
    }
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(docs.into_iter().take(n).map(|(_, t)| json!({"text": t, "kind": CORPUS_KIND})).collect())
}

/// Replayed items for `drawn` new ones at share `share` of the whole.
fn replay_count(drawn: usize, share: f64) -> usize {
    (drawn as f64 * share / (1.0 - share)).round() as usize
}

fn count_parts(family: &str, source: &str, items: &[Value]) -> Vec<DataPart> {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for v in items {
        *by.entry(v["kind"].as_str().unwrap_or("-").to_string()).or_default() += 1;
    }
    by.into_iter().map(|(kind, count)| DataPart { family: family.into(), kind, count, source: source.into() }).collect()
}

fn write_lines(path: &Path, items: &[Value]) -> anyhow::Result<()> {
    let text: String = items.iter().map(|v| v.to_string() + "\n").collect();
    hone_data::atomic::write_atomic(path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

fn values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(|x| serde_json::to_value(x).expect("items serialise")).collect()
}

/// The grading prompts of drawn pairs and RL prompts.
fn prompts(d: &Drawn) -> Vec<Prompt> {
    let mut out = Vec::new();
    for p in values(&d.pairs) {
        let kind = p["kind"].as_str().unwrap_or("").to_string();
        let content = |side: &str| p[side][0]["content"].as_str().unwrap_or("").to_string();
        out.push(Prompt {
            messages: messages(&p["prompt"]),
            rule: hone_world::remedy::pair_grader(&kind),
            world_pair: Some((content("chosen"), content("rejected"))),
            record: json!({}),
            kind,
        });
    }
    for p in values(&d.rl) {
        out.push(Prompt {
            messages: messages(&p["prompt"]),
            kind: p["kind"].as_str().unwrap_or("").to_string(),
            rule: p["scorer"].as_str().and_then(|s| hone_world::score::Scorer::from_str(s).ok()).map(|s| (s, false)),
            world_pair: None,
            record: p,
        });
    }
    out
}

fn wilson_agreement(grader: Grader, agree: usize, n: usize) -> Option<Agreement> {
    (n > 0).then(|| {
        let (lo, hi) = hone_eval::metrics::wilson(agree as f64, n);
        Agreement { grader: grader.name().into(), pairs: n, rate: agree as f64 / n as f64, lo, hi }
    })
}

/// Builds the round's data in `dir` (reusing it when `parts.json` is there).
pub fn build(inp: &Inputs, dir: &Path) -> anyhow::Result<Built> {
    let done = dir.join("parts.json");
    if done.is_file() {
        let t = std::fs::read_to_string(&done)?;
        return serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: {e}; delete it to rebuild", done.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let it = inp.it;
    let req = |sft: Vec<(String, usize)>, pairs: Vec<(String, usize)>, rl: Vec<(String, usize)>| DrawRequest {
        round: inp.round,
        sft,
        pairs,
        rl,
        avoid: inp.avoid.clone(),
    };
    let built = match inp.method {
        Method::Sft => {
            let asked = sized(inp.targeted, |r| r.sft, it.prompts);
            let ks: Vec<String> = asked.iter().map(|x| x.0.clone()).collect();
            let n = replay_count(asked.iter().map(|x| x.1).sum(), it.replay);
            // The demonstrations behind every task not targeted (one-word answers when lists are
            // trained, refusals, ...), which the world's own set may not hold as kinds of their own.
            let protect: Vec<String> = inp
                .tasks
                .iter()
                .filter(|t| !inp.targeted.iter().any(|f| &f.weakness.task == *t))
                .filter_map(|t| hone_world::remedy::remedy(t))
                .flat_map(|r| r.sft.iter().map(|k| k.to_string()))
                .filter(|k| !ks.contains(k) && hone_world::remedy::replayable_sft(k))
                .collect::<BTreeSet<String>>()
                .into_iter()
                .collect();
            let files = [vec![inp.world_dir.join("sft.jsonl")], inp.kept_sft.clone()].concat();
            let (old, short) = replay(&files, &ks, hone_world::remedy::replayable_sft, &protect, n, inp.seed)?;
            // Kinds the world's own set holds too few of for their share are topped up with new ones.
            let d = hone_world::draw::draw(inp.world, &req([asked, short].concat(), vec![], vec![]))?;
            let (drawn, topped): (Vec<Value>, Vec<Value>) =
                values(&d.sft).into_iter().partition(|v| ks.iter().any(|k| v["kind"].as_str() == Some(k)));
            let conversations = drawn.len() + old.len() + topped.len();
            let texts =
                corpus_documents(&inp.world_dir.join("corpus"), replay_count(conversations, it.text_replay), inp.seed)?;
            let file = dir.join("sft.jsonl");
            write_lines(&file, &[drawn.clone(), old.clone(), topped.clone(), texts.clone()].concat())?;
            let parts = [
                count_parts("sft", "drawn", &drawn),
                count_parts("sft", "replay", &old),
                count_parts("sft", "replay, new", &topped),
                count_parts("text", "replay", &texts),
            ]
            .concat();
            Built { file, parts, agreement: None }
        }
        Method::Rl => {
            let mut asked = sized(inp.targeted, |r| r.rl, it.prompts);
            let ks: Vec<String> = asked.iter().map(|x| x.0.clone()).collect();
            let others: Vec<String> = hone_world::remedy::replayable_rl()
                .into_iter()
                .filter(|k| !ks.iter().any(|x| x == k))
                .map(str::to_string)
                .collect();
            let each = replay_count(asked.iter().map(|x| x.1).sum(), it.replay).div_ceil(others.len().max(1));
            asked.extend(others.iter().map(|k| (k.clone(), each)));
            let d = hone_world::draw::draw(inp.world, &req(vec![], vec![], asked))?;
            let all = values(&d.rl);
            let (drawn, old): (Vec<Value>, Vec<Value>) =
                all.into_iter().partition(|v| ks.iter().any(|k| v["kind"].as_str() == Some(k)));
            let file = dir.join("rl.jsonl");
            write_lines(&file, &[drawn.clone(), old.clone()].concat())?;
            // The reward model's agreement with the rules, on answers to a share of the prompts.
            let agreement = match inp.reward_model {
                Some(rm) => {
                    let ps: Vec<Prompt> =
                        prompts(&Drawn { rl: d.rl.iter().take(96).cloned().collect(), ..Default::default() });
                    let m = hone_model::load::load(inp.model, &hone_model::device::select("cpu")?)?;
                    let answered = grade::answer(&m, &ps, it.samples, it.temperature, 96, inp.seed, Some(rm))?;
                    let (a, n) = grade::agreement(&answered);
                    wilson_agreement(Grader::RewardModel, a, n)
                }
                None => None,
            };
            Built {
                file,
                parts: [count_parts("rl", "drawn", &drawn), count_parts("rl", "replay", &old)].concat(),
                agreement,
            }
        }
        Method::Dpo => build_pairs(inp, dir)?,
        Method::Auto => unreachable!("a round's method is chosen before its data"),
    };
    hone_data::atomic::write_atomic(&done, serde_json::to_string_pretty(&built)?.as_bytes())?;
    Ok(built)
}

/// DPO data: graded pairs of the model's own answers (or people's judgements) plus replay.
fn build_pairs(inp: &Inputs, dir: &Path) -> anyhow::Result<Built> {
    let it = inp.it;
    let file = dir.join("preference.jsonl");
    let pair_kinds = kinds(inp.targeted, |r| r.pairs);
    let mut pairs: Vec<Value> = Vec::new();
    let mut parts = Vec::new();
    let mut agreement = None;
    if inp.grader == Grader::Feedback {
        let snap = inp.feedback.ok_or_else(|| anyhow::anyhow!("iterate.grader = feedback: no feedback file"))?;
        let text = std::fs::read_to_string(snap).map_err(|e| anyhow::anyhow!("{}: {e}", snap.display()))?;
        for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{} line {}: not JSON: {e}", snap.display(), i + 1))?;
            // Ties and "both bad" prefer neither answer.
            if matches!(v["label"].as_str(), Some("tie") | Some("both_bad")) {
                continue;
            }
            pairs.push(v);
        }
        anyhow::ensure!(
            !pairs.is_empty(),
            "{}: no judgement that prefers one answer (ties and \"both bad\" teach nothing); judge some answers in \
             `hone serve`'s compare view first, or set iterate.grader = rule",
            snap.display()
        );
        parts.push(DataPart {
            family: "pairs".into(),
            kind: "people's judgements".into(),
            count: pairs.len(),
            source: "feedback".into(),
        });
    } else {
        let req = DrawRequest {
            round: inp.round,
            pairs: sized(inp.targeted, |r| r.pairs, it.prompts),
            rl: sized(inp.targeted, |r| r.rl, it.prompts),
            avoid: inp.avoid.clone(),
            ..Default::default()
        };
        let d = hone_world::draw::draw(inp.world, &req)?;
        let ps = prompts(&d);
        let m = hone_model::load::load(inp.model, &hone_model::device::select("cpu")?)?;
        let answered = grade::answer(&m, &ps, it.samples, it.temperature, 96, inp.seed, inp.reward_model)?;
        let (mut on, mut world) = (Vec::new(), Vec::new());
        for (p, a) in ps.iter().zip(&answered) {
            let prompt: Vec<Value> = p.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
            let scores: Option<Vec<f64>> = match inp.grader {
                Grader::RewardModel => Some(a.model.clone()),
                _ => a.rule.iter().copied().collect(),
            };
            let line =
                |c: &str, r: &str| json!({"prompt": prompt, "chosen": reply(c), "rejected": reply(r), "kind": p.kind});
            match scores.and_then(|s| grade::pair_of(&a.answers, &s)) {
                Some((c, r)) => on.push(line(&c, &r)),
                // No world labels for the reward model's round: a prompt it cannot split adds nothing.
                None if inp.grader == Grader::Rule => {
                    if let Some((c, r)) = &p.world_pair {
                        world.push(line(c, r));
                    }
                }
                None => {}
            }
        }
        if inp.reward_model.is_some() {
            let (a, n) = grade::agreement(&answered);
            agreement = wilson_agreement(Grader::RewardModel, a, n);
        }
        parts.extend(count_parts("pairs", "on-policy", &on));
        parts.extend(count_parts("pairs", "drawn", &world));
        pairs.extend(on);
        pairs.extend(world);
    }
    anyhow::ensure!(
        !pairs.is_empty(),
        "round {}: the grader made no pairs (every prompt's answers scored alike)",
        inp.round
    );
    let n = replay_count(pairs.len(), it.replay);
    let (old, _) = replay(&[inp.world_dir.join("preference.jsonl")], &pair_kinds, |_| true, &[], n, inp.seed)?;
    parts.extend(count_parts("pairs", "replay", &old));
    pairs.extend(old);
    write_lines(&file, &pairs)?;
    Ok(Built { file, parts, agreement })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, kinds: &[(&str, usize)]) -> PathBuf {
        let mut lines = String::new();
        for (k, n) in kinds {
            for i in 0..*n {
                lines.push_str(&format!(
                    "{}\n",
                    json!({"kind": k, "messages": [{"role": "user", "content": format!("{k} {i}")}]})
                ));
            }
        }
        let p = dir.join(name);
        std::fs::write(&p, lines).unwrap();
        p
    }

    fn count(v: &[Value], kind: &str) -> usize {
        v.iter().filter(|x| x["kind"] == kind).count()
    }

    #[test]
    fn replay_balances_kinds_across_files_once_each() {
        let t = tempfile::tempdir().unwrap();
        let world = file(t.path(), "world.jsonl", &[("direct", 100), ("refusal", 3), ("cautious", 50)]);
        // An earlier round's file: its drawn JSON requests, a copy of a world line it replayed,
        // and corpus documents.
        let mut earlier = std::fs::read_to_string(file(t.path(), "r1.jsonl", &[("format_json", 40)])).unwrap();
        earlier.push_str(std::fs::read_to_string(&world).unwrap().lines().next().unwrap());
        earlier.push('\n');
        earlier.push_str(&format!("{}\n", json!({"text": "a document", "kind": CORPUS_KIND})));
        let r1 = t.path().join("r1.jsonl");
        std::fs::write(&r1, earlier).unwrap();

        let (out, short) =
            replay(&[world.clone(), r1.clone()], &[], hone_world::remedy::replayable_sft, &["idk".into()], 60, 7)
                .unwrap();
        // Four kinds (direct, refusal, format_json, idk) take 15 each, as far as they go.
        assert_eq!(count(&out, "direct"), 15);
        assert_eq!(count(&out, "refusal"), 3);
        assert_eq!(count(&out, "format_json"), 15, "the earlier round's kind is replayed");
        assert_eq!(count(&out, "cautious") + count(&out, CORPUS_KIND), 0);
        assert_eq!(short, vec![("idk".to_string(), 15), ("refusal".to_string(), 12)]);
        let mut texts: Vec<String> = out.iter().map(|v| v.to_string()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), out.len(), "a line in two files is replayed once");

        // Skipped kinds are not replayed; the same seed gives the same sample, another seed another.
        let (skipped, _) = replay(&[world.clone(), r1.clone()], &["format_json".into()], |_| true, &[], 60, 7).unwrap();
        assert_eq!(count(&skipped, "format_json"), 0);
        let again =
            replay(&[world.clone(), r1.clone()], &[], hone_world::remedy::replayable_sft, &["idk".into()], 60, 7)
                .unwrap()
                .0;
        assert_eq!(again, out);
        let other = replay(&[world, r1], &[], hone_world::remedy::replayable_sft, &["idk".into()], 60, 8).unwrap().0;
        assert_ne!(other, out);
    }
}
