//! `hone`: train a language model stage by stage and see what each stage does.

mod args;
mod cmd;
mod config;

use clap::{Parser, Subcommand};

/// A caching allocator: a training step allocates and frees the same large activation buffers every
/// step, which glibc returns to the OS and page-faults back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "hone", version, about = "Train a language model stage by stage and see what each stage does.")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train a tokenizer, or inspect how it splits text.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::TokenizerCmd),
    /// Turn text files into token shards, or inspect prepared shards.
    #[command(subcommand)]
    Data(cmd::data::DataCmd),
    /// Generate the built-in fictional world: corpus, SFT, preference pairs and probes.
    #[command(subcommand)]
    World(cmd::world::WorldCmd),
    /// Pretrain a model on prepared token shards (next-token prediction); Ctrl-C stops, rerun resumes.
    Pretrain(cmd::pretrain::PretrainArgs),
    /// Complete prompts with a trained model (text continuation, or a chat turn with --chat).
    Sample(cmd::sample::SampleArgs),
    /// Talk with a trained model in the terminal.
    Chat(cmd::chat::ChatArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HONE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Tokenizer(c) => cmd::tokenizer::run(c),
        Cmd::Data(c) => cmd::data::run(c),
        Cmd::World(c) => cmd::world::run(c),
        Cmd::Pretrain(a) => cmd::pretrain::run(a),
        Cmd::Sample(a) => cmd::sample::run(a),
        Cmd::Chat(a) => cmd::chat::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
