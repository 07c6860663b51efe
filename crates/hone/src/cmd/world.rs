//! `hone world generate`: the built-in world written out as files (see the hone-world crate);
//! `hone world draw`: more data of chosen kinds from the same world, new and reproducible.

use crate::args::{ConfigArgs, announce};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum WorldCmd {
    /// Write the world's corpus, SFT conversations, preference pairs, probes and facts to a folder.
    Generate(GenerateArgs),
    /// Draw more SFT conversations, preference pairs or RL prompts of chosen kinds: none asks what
    /// the world's own data (or an --avoid file) asks, none is a probe; the same round gives the same
    /// items, another round other ones. For training aimed at a weakness the report shows.
    Draw(DrawArgs),
}

#[derive(Debug, Args)]
pub struct DrawArgs {
    /// Round number: each round draws from random streams of its own.
    #[arg(long, default_value_t = 1)]
    pub round: u32,
    /// SFT conversations, as KIND=COUNT (repeatable). Kinds: direct, format, arithmetic, refusal,
    /// cautious, idk, multi_turn.
    #[arg(long, value_name = "KIND=COUNT")]
    pub sft: Vec<String>,
    /// Preference pairs, as KIND=COUNT (repeatable). Kinds: correct_vs_wrong, concise_vs_rambling,
    /// refuse_forbidden, help_benign, idk_unknown, answer_known, format.
    #[arg(long, value_name = "KIND=COUNT")]
    pub pairs: Vec<String>,
    /// RL prompts with their verifiers, as KIND=COUNT (repeatable). Kinds: arithmetic, fact.
    #[arg(long, value_name = "KIND=COUNT")]
    pub rl: Vec<String>,
    /// Files of earlier draws (or other JSONL with `messages`, or a `prompt` as turns or text) whose
    /// prompts the new items avoid.
    #[arg(long, value_name = "FILE")]
    pub avoid: Vec<PathBuf>,
    /// Output folder: sft.jsonl, preference.jsonl, rl.jsonl (those asked for).
    #[arg(long, short)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `KIND=COUNT` items of `flag`.
fn counts(flag: &str, items: &[String]) -> Result<Vec<(String, usize)>> {
    items
        .iter()
        .map(|s| {
            let (k, n) = s
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--{flag} {s}: expected KIND=COUNT, e.g. --{flag} format=200"))?;
            let n: usize =
                n.trim().parse().map_err(|_| anyhow::anyhow!("--{flag} {s}: `{n}` is not a count (a whole number)"))?;
            Ok((k.trim().to_string(), n))
        })
        .collect()
}

fn draw(a: DrawArgs) -> Result<()> {
    let req = hone_world::draw::DrawRequest {
        round: a.round,
        sft: counts("sft", &a.sft)?,
        pairs: counts("pairs", &a.pairs)?,
        rl: counts("rl", &a.rl)?,
        avoid: {
            let mut avoid = std::collections::BTreeSet::new();
            for f in &a.avoid {
                avoid.extend(hone_world::draw::prompts_of(f)?);
            }
            avoid
        },
    };
    anyhow::ensure!(
        !(req.sft.is_empty() && req.pairs.is_empty() && req.rl.is_empty()),
        "nothing to draw: ask for --sft, --pairs or --rl KIND=COUNT"
    );
    let cfg = a.config.load(&[])?;
    announce(&cfg, &["run", "world"])?;
    let drawn = hone_world::draw::draw(&cfg.world, &req)?;
    let report = |family: &str, asked: &[(String, usize)], got: &mut dyn Iterator<Item = &str>| {
        let got: Vec<&str> = got.collect();
        for (kind, n) in asked {
            let have = got.iter().filter(|k| *k == kind).count();
            let short = if have < *n { " (the kind's pool of new items ran out)" } else { "" };
            println!("{family} {kind}: {have} of {n}{short}");
        }
    };
    report("sft", &req.sft, &mut drawn.sft.iter().map(|c| c.kind));
    report("pairs", &req.pairs, &mut drawn.pairs.iter().map(|p| p.kind));
    report("rl", &req.rl, &mut drawn.rl.iter().map(|p| p.kind));
    for f in hone_world::draw::write(&drawn, &a.out)? {
        println!("{}", f.display());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed of the world (sets `world.seed`): the same seed gives byte-identical files.
    #[arg(long)]
    pub seed: Option<u64>,
    /// tiny, small or medium (sets `world.size`).
    #[arg(long)]
    pub size: Option<String>,
    /// Output folder (default: `<run dir>/world`).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(cmd: WorldCmd) -> Result<()> {
    let a = match cmd {
        WorldCmd::Generate(a) => a,
        WorldCmd::Draw(a) => return draw(a),
    };
    let mut extra = Vec::new();
    if let Some(s) = a.seed {
        extra.push(format!("world.seed={s}"));
    }
    if let Some(s) = &a.size {
        extra.push(format!("world.size={s}"));
    }
    let cfg = a.config.load(&extra)?;
    announce(&cfg, &["run", "world"])?;
    let out = a.out.unwrap_or_else(|| cfg.run_dir().join("world"));
    let t = std::time::Instant::now();
    let summary = hone_world::generate(&cfg.world, &out)?;
    print!("{summary}");
    println!("written to {} in {:.2}s", out.display(), t.elapsed().as_secs_f64());
    Ok(())
}
