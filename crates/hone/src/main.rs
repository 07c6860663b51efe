//! `hone`: train a language model stage by stage and see what each stage does.

mod args;
mod cmd;
mod config;
mod iterate;
mod pipeline;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// No progress output (bars on a terminal, timestamped lines elsewhere).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Progress lines every second instead of every 10 when stderr is not a terminal.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
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
    /// Complete prompts with a trained model (text continuation, or a chat turn with --chat).
    Sample(cmd::sample::SampleArgs),
    /// Talk with a trained model in the terminal.
    Chat(cmd::chat::ChatArgs),
    /// Write a Hugging Face folder or a GGUF file as a hone checkpoint (every command also opens
    /// them directly with -m/--model).
    Import(cmd::import::ImportArgs),
    /// Write a model as a Hugging Face folder or a GGUF file (F32, F16, Q8_0) for other tools.
    Export(cmd::export::ExportArgs),
    /// Evaluate a checkpoint on tasks (loss/bits per byte, multiple choice, generation, the world's
    /// probes), or compare two evaluations for regressions (`--compare A B`).
    Eval(cmd::eval::EvalArgs),
    /// Write the stage report of a run: what each stage changed, side by side.
    Report(cmd::report::ReportArgs),
    /// Serve a run's stages and other models over an OpenAI-compatible API, with a web app to chat
    /// with them, compare them side by side and grade their answers.
    Serve(cmd::serve::ServeArgs),
    /// Run the whole pipeline: world, tokenizer, data, the training stages of `pipeline.stages`,
    /// evaluation after every policy stage, and the report. Reruns reuse finished steps; Ctrl-C
    /// stops, rerun resumes.
    Run(cmd::run::RunArgs),
    /// Rounds of measure → diagnose → adjust → train → gate on a finished run: each finds what is weak
    /// on a development split, trains on data aimed at it (graded by rule, the reward model or
    /// people), and keeps the round only if it helped without harming anything beyond the noise.
    Iterate(cmd::iterate::IterateArgs),
}

fn main() -> std::process::ExitCode {
    hone_train::alloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HONE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // The training stages' subcommands come from the stage registry, one each, all with the same flags.
    let mut command = Cli::command();
    for stage in hone_train::REGISTRY {
        let info = stage.info();
        let sub = cmd::stage::StageArgs::augment_args(clap::Command::new(info.name));
        command = command.subcommand(sub.about(info.about).long_about(stage_help(*stage)));
    }
    let matches = command.get_matches();
    hone_data::progress::set_verbosity(if matches.get_flag("quiet") {
        hone_data::progress::Verbosity::Quiet
    } else if matches.get_flag("verbose") {
        hone_data::progress::Verbosity::Verbose
    } else {
        hone_data::progress::Verbosity::Normal
    });
    if let Some((name, sub)) = matches.subcommand()
        && let Some(stage) = hone_train::stages::find(name)
    {
        let result = cmd::stage::StageArgs::from_arg_matches(sub)
            .map_err(anyhow::Error::from)
            .and_then(|a| cmd::stage::run(stage, a));
        return exit(result);
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.cmd {
        Cmd::Tokenizer(c) => cmd::tokenizer::run(c),
        Cmd::Data(c) => cmd::data::run(c),
        Cmd::World(c) => cmd::world::run(c),
        Cmd::Sample(a) => cmd::sample::run(a),
        Cmd::Chat(a) => cmd::chat::run(a),
        Cmd::Import(a) => cmd::import::run(a),
        Cmd::Export(a) => cmd::export::run(a),
        Cmd::Eval(a) => cmd::eval::run(a),
        Cmd::Report(a) => cmd::report::run(a),
        Cmd::Run(a) => cmd::run::run(a),
        Cmd::Iterate(a) => cmd::iterate::run(a),
        Cmd::Serve(a) => cmd::serve::run(a),
    };
    exit(result)
}

fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A stage subcommand's long help: what it does, what it starts from and what it reads.
fn stage_help(stage: &dyn hone_train::Stage) -> String {
    let info = stage.info();
    let start = if info.starts_from.is_empty() {
        "from scratch".to_string()
    } else {
        format!("from the final checkpoint of the first of {} in the run folder", info.starts_from.join(", "))
    };
    format!(
        "{}\n\nStarts {start} (or --model). Settings: the [{}] section (`--set {}.KEY=VALUE`; `hone run \
         --show-preset` lists them).",
        info.about, info.name, info.name
    )
}
