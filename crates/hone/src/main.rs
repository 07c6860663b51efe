//! `hone`: train a language model stage by stage and see what each stage does.

mod args;
mod cmd;
mod config;
mod pipeline;

use clap::{Parser, Subcommand};

/// A caching allocator: a training step allocates and frees the same large activation buffers every
/// step, which glibc returns to the OS and page-faults back in (and mimalloc too, unless told to keep
/// them: see `hone_train::alloc`).
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
    /// Fine-tune on conversations (loss on the assistant's turns); Ctrl-C stops, rerun resumes.
    Sft(cmd::stage::StageArgs),
    /// Preference-tune (DPO, IPO, SimPO) against a frozen reference; Ctrl-C stops, rerun resumes.
    Dpo(cmd::stage::StageArgs),
    /// Train a reward model (trunk + scalar head) on preference pairs; Ctrl-C stops, rerun resumes.
    Reward(cmd::stage::StageArgs),
    /// Online RL (GRPO, RLOO) with verifiers or a reward model; Ctrl-C stops, rerun resumes.
    Rl(cmd::stage::StageArgs),
    /// Complete prompts with a trained model (text continuation, or a chat turn with --chat).
    Sample(cmd::sample::SampleArgs),
    /// Talk with a trained model in the terminal.
    Chat(cmd::chat::ChatArgs),
    /// Evaluate a checkpoint on tasks (loss/bits per byte, multiple choice, generation, the world's
    /// probes), or compare two evaluations for regressions (`--compare A B`).
    Eval(cmd::eval::EvalArgs),
    /// Write the stage report of a run: what each stage changed, side by side.
    Report(cmd::report::ReportArgs),
    /// Run the whole pipeline: world, tokenizer, data, pretrain, SFT, reward model, DPO, RL, evaluation
    /// after every stage, and the report. Reruns reuse finished steps; Ctrl-C stops, rerun resumes.
    Run(cmd::run::RunArgs),
}

fn main() -> std::process::ExitCode {
    hone_train::alloc::keep_freed_memory();
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
        Cmd::Sft(a) => cmd::sft::run(a),
        Cmd::Dpo(a) => cmd::dpo::run(a),
        Cmd::Reward(a) => cmd::reward::run(a),
        Cmd::Rl(a) => cmd::rl::run(a),
        Cmd::Sample(a) => cmd::sample::run(a),
        Cmd::Chat(a) => cmd::chat::run(a),
        Cmd::Eval(a) => cmd::eval::run(a),
        Cmd::Report(a) => cmd::report::run(a),
        Cmd::Run(a) => cmd::run::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
