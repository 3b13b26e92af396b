//! The `proclife` command: the transition graph derived from the model (`graph`).
//!
//! Every subcommand is one variant of [`Command`] with its own argument struct and handler.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use proclife_model::TransitionGraph;

/// Python's multiprocessing.Process life-cycle in Rust, checked against a formal model.
#[derive(Debug, Parser)]
#[command(name = "proclife", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print the transition graph derived from the model.
    Graph(GraphArgs),
}

/// Arguments of `proclife graph`.
#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
}

/// The formats `proclife graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT (the bytes of `docs/lifecycle.dot`).
    Dot,
    /// JSON (`GraphDoc`, with its `format_version`).
    Json,
}

fn main() -> anyhow::Result<()> {
    // On bad arguments clap prints a message and the usage, and exits with status 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Graph(args) => graph(&args),
    }
}

fn graph(args: &GraphArgs) -> anyhow::Result<()> {
    let graph = TransitionGraph::explore();
    let text = match args.format {
        GraphFormat::Dot => proclife_model::dot::render(&graph),
        GraphFormat::Json => proclife_model::export::render_json(&graph),
    };
    write_stdout(&text)
}

/// Writes `text` to standard output; a reader that went away (`proclife graph | head`) is not
/// an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to standard output"),
    }
}
