//! The development split: probe items made afresh for `hone iterate` to measure, diagnose and gate
//! rounds on, so that the report's probes never choose anything and the figures the report shows
//! stay an honest test.
//!
//! The split is built like the probes (the same tasks, task names and scorers) from streams of its
//! own: its arithmetic problems are none of the probe's or RL's, its held-out documents none of the
//! corpus's or the probe's, and every generation item whose prompt is a probe prompt, and every
//! multiple-choice item on a statement the probe completes, is left out. The default training data
//! was written before the split and does not avoid it: where a kind's prompts are few (lists of N
//! days, countries, …), a development item can be a default training prompt, so a development
//! figure can be a little above the report's. Knowledge questions ask
//! probe-split facts in other words (the world has no third set of facts to ask about; no training
//! data, drawn or default, states them outside the corpus). Drawn training data avoids the split's
//! prompts and problems as it avoids the probe's ([`crate::draw`]).

use crate::arith::Problem;
use crate::config::{Plan, WorldConfig};
use crate::facts::{Split, World};
use crate::probes::{self, GenItem, Items, Probes};
use crate::requests;
use crate::rng::{Draw, Rng};
use crate::rng::{Stream, stream};
use crate::{Assembled, assemble, corpus};
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// The development probes, and what drawn training data must avoid.
#[derive(Debug, Clone)]
pub struct DevSplit {
    pub probes: Probes,
    /// The split's arithmetic problems.
    pub problems: BTreeSet<Problem>,
}

/// The development split of the world of `cfg`.
pub fn dev_split(cfg: &WorldConfig) -> Result<DevSplit> {
    build(&assemble(cfg)?, cfg)
}

/// The development split of an assembled world.
pub(crate) fn build(a: &Assembled, cfg: &WorldConfig) -> Result<DevSplit> {
    let plan = cfg.plan()?;
    let seed = cfg.seed;
    let withheld = a.withheld();
    // Problems no training text works out, as the probe's: the corpus and SFT were written before
    // the split, so the ones they work are left out here instead (a split that allowed them scored
    // the SFT model 0.62 where the probe scores it 0.42: it measured recall).
    let worked = worked_equations(a);
    let mut rng = stream(seed, Stream::DevArithmetic);
    let mut problems = BTreeSet::new();
    let mut tries = 0;
    while problems.len() < plan.probe_items && tries < plan.probe_items * 200 {
        tries += 1;
        let p = Problem::random_except(&mut rng, &withheld);
        let sym = p.symbol();
        let c = p.answer();
        if !worked.contains(&format!("{} {sym} {} = {c}", p.a, p.b))
            && !worked.contains(&format!("{} {sym} {} = {c}", p.b, p.a))
        {
            problems.insert(p);
        }
    }
    // What the report's probes hold besides generation prompts: held-out texts, statements to complete.
    let of_probes = |pick: fn(&Items) -> Vec<&str>| -> BTreeSet<&str> {
        a.probes.tasks.iter().flat_map(|t| pick(&t.items)).collect()
    };
    let report_texts = of_probes(|i| match i {
        Items::Rolling(v) => v.iter().map(|d| d.text.as_str()).collect(),
        _ => Vec::new(),
    });
    let mut heldout = corpus::heldout(
        &a.world,
        cfg,
        &plan,
        &withheld.union(&problems).copied().collect(),
        &a.corpus.documents,
        stream(seed, Stream::DevHeldout),
    );
    heldout.retain(|d| !report_texts.contains(d.text.as_str()));
    // Twice the probe's items are drawn, since many of them are the probe's own and left out below;
    // what remains is cut back to the probe's size.
    let wide = Plan { probe_items: plan.probe_items * 2, ..plan.clone() };
    // The probe asks about every invented entity of its split in every form, and about every event
    // after the cutoff: the split gets entities of its own, and questions on other places and years
    // after the cutoff.
    let mut rng = stream(seed, Stream::DevEntities);
    let mut world = a.world.clone();
    world.fakes = a.world.fresh_fakes(plan.fakes_probe, Split::Probe, &mut rng);
    let mut dev = probes::build(&world, cfg, &wide, &problems, &heldout, stream(seed, Stream::DevProbes));
    more_after_cutoff(&world, &mut dev, &a.probes.prompts, wide.probe_items, &mut rng);
    let none = BTreeSet::new();
    probes::grow_formats(&a.world, &mut dev, wide.probe_items, &none, stream(seed, Stream::DevFormats));
    let contexts = of_probes(|i| match i {
        Items::MultipleChoice(v) => v.iter().map(|x| x.context.as_str()).collect(),
        _ => Vec::new(),
    });
    for t in &mut dev.tasks {
        match &mut t.items {
            Items::Generate(v) => {
                v.retain(|i| !a.probes.prompts.contains(i.prompt.trim_end()));
                v.truncate(plan.probe_items);
            }
            Items::MultipleChoice(v) => {
                v.retain(|i| !contexts.contains(i.context.as_str()));
                v.truncate(plan.probe_items);
            }
            Items::Rolling(_) => {}
        }
    }
    dev.tasks.retain(|t| !t.items.is_empty());
    dev.prompts = probes::generation_prompts(&dev.tasks);
    Ok(DevSplit { probes: dev, problems })
}

/// Every equation step `a op b = c` that the training texts (corpus, SFT conversations, preference
/// pairs) work out: in a chain `x = a op b = c`, each `a op b` not inside a longer sum, followed by
/// `= c`.
fn worked_equations(a: &Assembled) -> BTreeSet<String> {
    let ops = ["+", "-", "*"];
    let texts = a
        .corpus
        .documents
        .iter()
        .map(|d| d.text.as_str())
        .chain(a.sft.iter().flat_map(|c| c.messages.iter().map(|m| m.content.as_str())))
        .chain(
            a.pref
                .iter()
                .chain(&a.pref_eval)
                .flat_map(|p| p.chosen.iter().chain(&p.rejected))
                .map(|m| m.content.as_str()),
        );
    let mut out = BTreeSet::new();
    for t in texts {
        for line in t.lines() {
            let parts: Vec<&str> = line.split(" = ").collect();
            for w in parts.windows(2) {
                let left: Vec<&str> = w[0].split_whitespace().collect();
                let n = left.len();
                let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if n < 3 || !num(left[n - 3]) || !ops.contains(&left[n - 2]) || !num(left[n - 1]) {
                    continue;
                }
                if n > 3 && ops.contains(&left[n - 4]) {
                    continue;
                }
                let c: String = w[1].trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
                if !c.is_empty() {
                    out.insert(format!("{} {} {} = {c}", left[n - 3], left[n - 2], left[n - 1]));
                }
            }
        }
    }
    out
}

/// Adds questions about what happened in a city in a year after the cutoff (any city, any such
/// year: the model cannot know) to the post-cutoff task, up to `n` items, none a probe prompt.
fn more_after_cutoff(w: &World, dev: &mut Probes, probe: &BTreeSet<String>, n: usize, rng: &mut Rng) {
    let Some(t) = dev.tasks.iter_mut().find(|t| t.file.stem() == "post_cutoff") else { return };
    let Items::Generate(items) = &mut t.items else { return };
    let mut seen: BTreeSet<String> = items.iter().map(|i| i.prompt.clone()).collect();
    let mut tries = 0;
    while items.iter().filter(|i| !probe.contains(i.prompt.trim_end())).count() < n / 2 && tries < n * 50 {
        tries += 1;
        let city = rng.index(w.cities.len());
        let year = w.cutoff_year + rng.int(1, 3) as i32;
        let month = rng.int(1, 12) as u8;
        let form = rng.index(4);
        let p = requests::after_cutoff(w, city, year, month, None, form, rng).prompt;
        if !probe.contains(p.trim_end()) && seen.insert(p.clone()) {
            items.push(GenItem {
                id: format!("post_cutoff-{:04}", items.len()),
                prompt: p,
                year: Some(year),
                ..Default::default()
            });
        }
    }
}

/// Writes the split's task files into `dir` (`<task>.jsonl` and `<task>.toml`, as the world's
/// `eval/`), returning the task files.
pub fn write(dev: &DevSplit, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    crate::write_tasks(&dev.probes.tasks, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_disjoint_from_the_probes_and_reproducible() {
        let cfg = WorldConfig { size: "tiny".into(), ..Default::default() };
        let a = assemble(&cfg).unwrap();
        let dev = build(&a, &cfg).unwrap();
        // The tasks that matter for iteration are there, with items to measure.
        for name in
            ["arithmetic", "format_json", "format_list_n", "forbidden", "benign", "unknown_entities", "post_cutoff"]
        {
            let t = dev.probes.tasks.iter().find(|t| t.file.stem() == name).unwrap_or_else(|| panic!("{name}"));
            // Lists of N draw on a small pool of prompts, most of it the probe's.
            let least = if name == "format_list_n" { 30 } else { 60 };
            assert!(t.items.len() >= least, "{name}: {} items", t.items.len());
        }
        assert!(dev.probes.prompts.iter().all(|p| !a.probes.prompts.contains(p)));
        assert!(dev.problems.iter().all(|p| !a.problems.contains(p) && !a.practice.contains(p)));
        // None is worked out in training text; the corpus works out many others.
        let worked = worked_equations(&a);
        assert!(worked.len() > 500, "{} worked equations", worked.len());
        for p in &dev.problems {
            let eq = format!("{} {} {} = {}", p.a, p.symbol(), p.b, p.answer());
            assert!(!worked.contains(&eq), "{eq}");
        }
        assert!(worked.contains("60 + 10 = 70") || worked.iter().any(|e| e.ends_with("= 70")));
        let again = build(&a, &cfg).unwrap();
        assert_eq!(again.probes.prompts, dev.probes.prompts);
    }
}
