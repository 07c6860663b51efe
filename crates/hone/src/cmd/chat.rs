//! `hone chat`: a terminal conversation with a trained model. Each turn is rendered with the
//! checkpoint's chat template over the whole conversation so far, and the reply streams as it is
//! generated. Commands: `/reset`, `/temp X`, `/system TEXT`, `/quit`.

use crate::args::ConfigArgs;
use crate::cmd::sample::SamplingFlags;
use anyhow::Result;
use clap::Args;
use hone_data::chat::Message;
use hone_model::generate;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Checkpoint folder, or a stage folder (uses its final checkpoint), e.g. runs/default/dpo.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// A system message to start the conversation with.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingFlags,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(a: ChatArgs) -> Result<()> {
    let mut cfg = a.sampling.resolve(&a.config)?;
    let m = a.sampling.load_model(&a.model)?;
    let fresh = |system: &Option<String>| -> Vec<Message> {
        system.iter().map(|s| Message::new("system", s.as_str())).collect()
    };
    let mut system = a.system.clone();
    let mut messages = fresh(&system);
    eprintln!(
        "chatting with {} (temperature {}; /reset, /temp X, /system TEXT, /quit)",
        m.dir.display(),
        cfg.temperature
    );
    let stdin = std::io::stdin();
    let mut turn = 0u64;
    loop {
        eprint!("you> ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, arg) = cmd.split_once(' ').map_or((cmd, ""), |(n, a)| (n, a.trim()));
            match name {
                "quit" | "exit" => break,
                "reset" => {
                    messages = fresh(&system);
                    eprintln!("(conversation cleared)");
                }
                "temp" => match arg.parse::<f64>() {
                    Ok(t) if t >= 0.0 && t.is_finite() => {
                        cfg.temperature = t;
                        eprintln!("(temperature {t})");
                    }
                    _ => eprintln!("(usage: /temp 0.8 — a number ≥ 0; 0 is greedy)"),
                },
                "system" => {
                    system = (!arg.is_empty()).then(|| arg.to_string());
                    messages = fresh(&system);
                    eprintln!("(system message set; conversation cleared)");
                }
                _ => eprintln!("(unknown command /{name}: /reset, /temp X, /system TEXT, /quit)"),
            }
            continue;
        }
        messages.push(Message::new("user", line));
        let mut prompt = m.template.encode_prompt(&m.tokenizer, &messages)?;
        // Forget the oldest turns when the conversation outgrows the context.
        let room = m.model.config.max_position_embeddings.saturating_sub(cfg.max_new_tokens.min(64));
        while prompt.len() > room && messages.len() > 1 {
            let first = usize::from(messages[0].role == "system");
            messages.remove(first);
            prompt = m.template.encode_prompt(&m.tokenizer, &messages)?;
        }
        // A new seed stream per turn, so repeated questions can get different answers at T > 0.
        let turn_cfg = hone_model::SampleConfig { seed: cfg.seed.wrapping_add(turn), ..cfg.clone() };
        turn += 1;
        print!("hone> ");
        std::io::stdout().flush()?;
        let g = generate(&m.model, &m.tokenizer, &[prompt], &turn_cfg, &mut |_, piece| {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        })?;
        println!();
        messages.push(Message::new("assistant", g[0].text.trim()));
    }
    Ok(())
}
