//! More data of chosen kinds, on demand: SFT conversations, preference pairs and RL prompts of one
//! kind at a time, for a round of targeted training ("fix the weakness that testing found").
//!
//! A draw regenerates the world of its config (the same entities and facts), then writes new items
//! from random streams of their own, one per (round, family, kind): the default files stay
//! byte-identical, the same request gives the same items, and another round gives other ones. Every
//! drawn item is new: no SFT conversation asks what a default (or avoided) one asks, no pair or RL
//! prompt repeats a default (or avoided) prompt, and nothing covers a probe prompt or works a probe
//! problem, the same separation the default data keeps; the development split's prompts and problems
//! ([`crate::dev`]) are kept out the same way.

use crate::config::WorldConfig;
use crate::preference::Pair;
use crate::rl::RlPrompt;
use crate::rng::{Family, draw_stream};
use crate::sft::Conversation;
use crate::{Assembled, assemble, preference, rl, sft};
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// What to draw: `(kind, count)` per family, for round `round`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrawRequest {
    /// Tells draws apart: each round draws from streams of its own.
    pub round: u32,
    pub sft: Vec<(String, usize)>,
    pub pairs: Vec<(String, usize)>,
    pub rl: Vec<(String, usize)>,
    /// Prompts (user turns) already used elsewhere, such as earlier rounds' draws: drawn items avoid
    /// them as they avoid the default data.
    pub avoid: BTreeSet<String>,
}

/// The drawn items.
#[derive(Debug, Clone, Default)]
pub struct Drawn {
    pub sft: Vec<Conversation>,
    pub pairs: Vec<Pair>,
    pub rl: Vec<RlPrompt>,
}

/// `kind` as the family's own name, or an error that lists the family's kinds.
fn known(family: &str, kinds: &[&'static str], kind: &str) -> Result<(usize, &'static str)> {
    kinds
        .iter()
        .position(|k| *k == kind)
        .map(|i| (i, kinds[i]))
        .ok_or_else(|| anyhow::anyhow!("{family} has no kind `{kind}`; its kinds are: {}", kinds.join(", ")))
}

/// Draws what `req` asks for from the world of `cfg`. Kinds are checked before any work: an unknown
/// one is an error naming the family's kinds. A kind whose pool runs dry gives fewer items than
/// asked (the caller sees the counts).
pub fn draw(cfg: &WorldConfig, req: &DrawRequest) -> Result<Drawn> {
    let (sk, pk, rk) = (sft::kinds(), preference::kinds(), rl::kinds());
    let sft_req: Vec<_> = req.sft.iter().map(|(k, n)| known("SFT", &sk, k).map(|k| (k, *n))).collect::<Result<_>>()?;
    let pair_req: Vec<_> =
        req.pairs.iter().map(|(k, n)| known("the preference data", &pk, k).map(|k| (k, *n))).collect::<Result<_>>()?;
    let rl_req: Vec<_> = req.rl.iter().map(|(k, n)| known("RL", &rk, k).map(|k| (k, *n))).collect::<Result<_>>()?;
    let a: Assembled = assemble(cfg)?;
    // The development split is a probe set too: nothing drawn may teach its items.
    let dev = crate::dev::build(&a, cfg)?;
    let withheld: BTreeSet<_> = a.withheld().union(&dev.problems).copied().collect();
    let measured: BTreeSet<_> = a.problems.union(&dev.problems).copied().collect();
    let probe_prompts: BTreeSet<String> = a.probes.prompts.union(&dev.probes.prompts).cloned().collect();
    let reserved =
        sft::Reserved { prompts: &probe_prompts, problems: &withheld, cutoff_places: &a.probes.cutoff_places };
    let mut out = Drawn::default();

    let mut used: BTreeSet<String> = a.sft.iter().map(|c| sft::key(&c.messages)).collect();
    used.extend(req.avoid.iter().cloned());
    for ((i, kind), n) in sft_req {
        let got = sft::draw(&a.world, cfg, &reserved, kind, n, draw_stream(cfg.seed, req.round, Family::Sft, i), &used);
        used.extend(got.iter().map(|c| sft::key(&c.messages)));
        out.sft.extend(got);
    }

    let mut used: BTreeSet<String> = a.pref.iter().chain(&a.pref_eval).map(|p| p.prompt[0].content.clone()).collect();
    used.extend(req.avoid.iter().cloned());
    for ((i, kind), n) in pair_req {
        let rng = draw_stream(cfg.seed, req.round, Family::Preference, i);
        let got = preference::draw(&a.world, cfg, &reserved, kind, n, rng, &used);
        used.extend(got.iter().map(|p| p.prompt[0].content.clone()));
        out.pairs.extend(got);
    }

    let mut used: BTreeSet<String> = a.rl.iter().map(|p| p.prompt[0].content.clone()).collect();
    used.extend(req.avoid.iter().cloned());
    for ((i, kind), n) in rl_req {
        let rng = draw_stream(cfg.seed, req.round, Family::Rl, i);
        let prefix = format!("r{}-{kind}", req.round);
        let got = rl::draw(&a.world, &measured, &a.practice, &probe_prompts, kind, n, rng, &used, &prefix);
        used.extend(got.iter().map(|p| p.prompt[0].content.clone()));
        out.rl.extend(got);
    }
    Ok(out)
}

/// Writes the drawn families that are not empty into `dir` as the stages read them: `sft.jsonl`
/// (conversations), `preference.jsonl` (TRL prompt/chosen/rejected) and `rl.jsonl`; returns the
/// files written.
pub fn write(d: &Drawn, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        hone_data::atomic::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
        Ok(())
    };
    if !d.sft.is_empty() {
        put("sft.jsonl", crate::jsonl(&d.sft))?;
    }
    if !d.pairs.is_empty() {
        put("preference.jsonl", crate::jsonl(&d.pairs))?;
    }
    if !d.rl.is_empty() {
        put("rl.jsonl", crate::jsonl(&d.rl))?;
    }
    Ok(files)
}

/// The prompts of the records in a drawn (or default) file, to avoid in a later draw: the user
/// turns of a `messages` conversation (as [`sft::key`] joins them), or a `prompt`'s user turns (or
/// its text, when it is a string); a plain document (`{"text"}`) adds nothing. A line that is not
/// JSON, or has none of these fields, is an error naming the file and line.
pub fn prompts_of(path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = BTreeSet::new();
    let user_turns = |turns: &[serde_json::Value]| -> Vec<String> {
        turns
            .iter()
            .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            .filter_map(|m| m.get("content").and_then(|c| c.as_str()).map(str::to_string))
            .collect()
    };
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: not JSON: {e}", path.display(), i + 1))?;
        match (v.get("messages"), v.get("prompt")) {
            (Some(serde_json::Value::Array(turns)), _) => {
                out.insert(user_turns(turns).join("\u{1}"));
            }
            (_, Some(serde_json::Value::Array(turns))) => out.extend(user_turns(turns)),
            (_, Some(serde_json::Value::String(p))) => {
                out.insert(p.clone());
            }
            // A plain document (SFT's `{"text"}`) asks nothing.
            (None, None) if v.get("text").is_some_and(|t| t.is_string()) => {}
            _ => anyhow::bail!(
                "{} line {}: no `messages` list and no `prompt` (a list of turns or a text)",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WorldConfig {
        WorldConfig { size: "tiny".into(), ..Default::default() }
    }

    fn request(round: u32) -> DrawRequest {
        DrawRequest {
            round,
            sft: vec![("format".into(), 30), ("arithmetic".into(), 30)],
            pairs: vec![("format".into(), 20), ("idk_unknown".into(), 20)],
            rl: vec![("arithmetic".into(), 20), ("format_list_n".into(), 10), ("format_json".into(), 10)],
            avoid: BTreeSet::new(),
        }
    }

    #[test]
    fn draws_are_new_reproducible_and_differ_by_round() {
        let cfg = tiny();
        let a = assemble(&cfg).unwrap();
        let d = draw(&cfg, &request(1)).unwrap();
        assert!(
            d.sft.len() >= 50 && d.pairs.len() >= 30 && d.rl.len() >= 35,
            "{} {} {}",
            d.sft.len(),
            d.pairs.len(),
            d.rl.len()
        );
        assert!(d.sft.iter().all(|c| c.kind == "format" || c.kind == "arithmetic"));
        assert!(d.pairs.iter().all(|p| p.kind == "format" || p.kind == "idk_unknown"));
        assert!(d.rl.iter().all(|p| p.kind != "arithmetic" || p.scorer == "number"));
        // Format prompts carry what their scorer checks.
        assert!(d.rl.iter().filter(|p| p.kind == "format_list_n").all(|p| p.n.is_some() && p.scorer == p.kind));
        assert!(
            d.rl.iter().filter(|p| p.kind == "format_json").all(|p| p.keys.as_ref().is_some_and(|k| !k.is_empty()))
        );
        assert_eq!(d.rl.iter().filter(|p| p.kind.starts_with("format_")).count(), 20);
        // New: no default SFT conversation's question, no default pair or RL prompt, no probe prompt.
        let sft_keys: BTreeSet<String> = a.sft.iter().map(|c| sft::key(&c.messages)).collect();
        assert!(d.sft.iter().all(|c| !sft_keys.contains(&sft::key(&c.messages))));
        let pair_prompts: BTreeSet<&str> =
            a.pref.iter().chain(&a.pref_eval).map(|p| p.prompt[0].content.as_str()).collect();
        assert!(d.pairs.iter().all(|p| !pair_prompts.contains(p.prompt[0].content.as_str())));
        let rl_prompts: BTreeSet<&str> = a.rl.iter().map(|p| p.prompt[0].content.as_str()).collect();
        assert!(d.rl.iter().all(|p| !rl_prompts.contains(p.prompt[0].content.as_str())));
        for turn in d.sft.iter().flat_map(|c| &c.messages).chain(d.pairs.iter().flat_map(|p| &p.prompt)) {
            if turn.role == "user" {
                assert!(!crate::probes::covers(&a.probes.prompts, &turn.content), "{}", turn.content);
            }
        }
        // Nor a development prompt or problem.
        let dev = crate::dev::build(&a, &cfg).unwrap();
        for p in d.rl.iter().map(|p| &p.prompt[0].content) {
            assert!(!crate::probes::covers(&dev.probes.prompts, p), "{p}");
        }
        for turn in d.sft.iter().flat_map(|c| &c.messages).filter(|m| m.role == "user") {
            assert!(!crate::probes::covers(&dev.probes.prompts, &turn.content), "{}", turn.content);
        }
        // Within a draw, no question twice.
        let keys: BTreeSet<String> = d.sft.iter().map(|c| sft::key(&c.messages)).collect();
        assert_eq!(keys.len(), d.sft.len());
        // The same request, the same items; another round, other ones.
        let again = draw(&cfg, &request(1)).unwrap();
        assert_eq!(crate::jsonl(&again.sft), crate::jsonl(&d.sft));
        assert_eq!(crate::jsonl(&again.pairs), crate::jsonl(&d.pairs));
        let other = draw(&cfg, &request(2)).unwrap();
        assert_ne!(crate::jsonl(&other.sft), crate::jsonl(&d.sft));
        // A round that avoids the first's prompts shares none of them.
        let dir = tempfile::tempdir().unwrap();
        let files = write(&d, dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let mut avoid = BTreeSet::new();
        for f in &files {
            avoid.extend(prompts_of(f).unwrap());
        }
        let third = draw(&cfg, &DrawRequest { avoid: avoid.clone(), ..request(2) }).unwrap();
        assert!(third.sft.iter().all(|c| !avoid.contains(&sft::key(&c.messages))));
        assert!(third.pairs.iter().all(|p| !avoid.contains(&p.prompt[0].content)));
        assert!(third.rl.iter().all(|p| !avoid.contains(&p.prompt[0].content)));
    }

    #[test]
    fn an_unknown_kind_is_named_with_the_kinds_there_are() {
        let req = DrawRequest { sft: vec![("jokes".into(), 3)], ..Default::default() };
        let e = draw(&tiny(), &req).unwrap_err().to_string();
        assert!(e.contains("`jokes`") && e.contains("arithmetic") && e.contains("format"), "{e}");
        let req = DrawRequest { rl: vec![("format".into(), 3)], ..Default::default() };
        let e = draw(&tiny(), &req).unwrap_err().to_string();
        assert!(e.contains("RL has no kind `format`") && e.contains("fact"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.jsonl"), "{\"messages\": []}\nnot json\n").unwrap();
        let e = prompts_of(&d.path().join("x.jsonl")).unwrap_err().to_string();
        assert!(e.contains("x.jsonl line 2"), "{e}");
        std::fs::write(
            d.path().join("y.jsonl"),
            "{\"prompt\": \"Is it?\", \"chosen\": \"Yes.\"}\n{\"text\": \"x\"}\n{\"id\": 3}\n",
        )
        .unwrap();
        let e = prompts_of(&d.path().join("y.jsonl")).unwrap_err().to_string();
        assert!(
            e.contains("y.jsonl line 3") && e.contains("`prompt`"),
            "a document is skipped, a record of neither is not: {e}"
        );
    }
}
