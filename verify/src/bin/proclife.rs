//! The `proclife` command: the transition graph derived from the model (`graph`), random
//! sequences on the model and real processes (`check`), and one sequence from a file
//! (`replay`).
//!
//! Every subcommand is one variant of [`Command`] with its own argument struct and handler.
//! Exit status: 0 when everything agrees, 1 when the model and the runtime disagree (or
//! coverage is incomplete), 2 for bad arguments or a malformed replay file.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use proclife::StartMethod;
use proclife_model::{Outcome, TransitionGraph};
use proclife_verify::check::{self, Options};
use proclife_verify::objects;
use proclife_verify::reference::SettleMode;
use proclife_verify::run::{self, Outcomes};
use proclife_verify::sut::Mutant;
use proclife_verify::trace::{Trace, observation_json};

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
    /// Run random operation sequences on the model and on real processes and compare them.
    Check(CheckArgs),
    /// Run one operation sequence from a replay file on the model and on real processes.
    Replay(ReplayArgs),
}

/// Arguments of `proclife graph`.
#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
    /// Print the state graph of a shared primitive's model instead (DOT): Lock, RLock,
    /// Semaphore, Event or Barrier.
    #[arg(long, value_name = "NAME", value_parser = parse_object)]
    object: Option<proclife_model::objects::Object>,
}

fn parse_object(name: &str) -> Result<proclife_model::objects::Object, String> {
    objects::graphed(name).ok_or_else(|| {
        let names: Vec<&str> = proclife_model::objects::graph::GRAPHED
            .iter()
            .map(|o| o.name())
            .collect();
        format!("no state graph for {name}; one of {}", names.join(", "))
    })
}

/// The formats `proclife graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT (the bytes of `docs/lifecycle.dot`).
    Dot,
    /// JSON (`GraphDoc`, with its `format_version`).
    Json,
}

/// Arguments of `proclife check`.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Sequences to run.
    #[arg(long, default_value_t = Options::default().cases, value_parser = clap::value_parser!(u32).range(1..))]
    cases: u32,
    /// Random seed; the same seed and commit give the same sequences.
    #[arg(long, default_value_t = Options::default().seed)]
    seed: u64,
    /// Operations per sequence, at most.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_ops: u16,
    /// Processes per sequence, at most.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    procs: u8,
    /// Never settle after an exit-causing operation: every sequence races (by default half
    /// of them settle, so each has one correct set of observations).
    #[arg(long, conflicts_with = "settle")]
    no_settle: bool,
    /// Always settle after an exit-causing operation.
    #[arg(long)]
    settle: bool,
    /// Write the transition graph with each edge's hit count to this DOT file.
    #[arg(long, value_name = "FILE")]
    dot_coverage: Option<PathBuf>,
    /// Where a failing sequence is saved.
    #[arg(long, value_name = "DIR", default_value = "verify/regressions")]
    save_dir: PathBuf,
    /// Do not fail when an edge of the graph, or an operation x outcome of a primitive's
    /// model, was never exercised.
    #[arg(long)]
    allow_partial_coverage: bool,
    /// How the runtime starts each child: fork, forkserver or spawn.
    #[arg(long, default_value = "fork", value_parser = parse_method)]
    method: StartMethod,
    /// Plant a known bug on top of the runtime, to show that the check catches it.
    #[arg(long, value_parser = parse_mutant, hide = true)]
    mutant: Option<Mutant>,
    /// Check only the shared primitives (random multi-process programs judged by their
    /// models), not the life-cycle.
    #[arg(long, conflicts_with = "lifecycle")]
    objects: bool,
    /// Check only the life-cycle, not the shared primitives.
    #[arg(long)]
    lifecycle: bool,
    /// Random programs over the shared primitives.
    #[arg(long, default_value_t = objects::check::Options::default().cases, value_parser = clap::value_parser!(u32).range(1..))]
    objects_cases: u32,
}

fn parse_method(name: &str) -> Result<StartMethod, String> {
    name.parse::<StartMethod>()
        .map_err(|_| "unknown start method; one of fork, forkserver, spawn".to_owned())
}

fn parse_mutant(name: &str) -> Result<Mutant, String> {
    Mutant::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
        format!("unknown mutant; one of {}", names.join(", "))
    })
}

/// Arguments of `proclife replay`.
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The replay file, or `-` for standard input.
    file: String,
    /// Print `{"model":[..],"runtime":[..],"agree":bool}` instead of a table.
    #[arg(long)]
    json: bool,
    /// How the runtime starts each child: fork, forkserver or spawn.
    #[arg(long, default_value = "fork", value_parser = parse_method)]
    method: StartMethod,
    /// Plant a known bug on top of the runtime.
    #[arg(long, value_parser = parse_mutant, hide = true)]
    mutant: Option<Mutant>,
}

fn main() -> ExitCode {
    // On bad arguments clap prints a message and the usage, and exits with status 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Graph(args) => graph(&args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check(&args),
        Command::Replay(args) => replay(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("proclife: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn graph(args: &GraphArgs) -> anyhow::Result<()> {
    if let Some(obj) = args.object {
        anyhow::ensure!(
            args.format == GraphFormat::Dot,
            "the state graph of a primitive is written as DOT only"
        );
        let text = proclife_model::objects::graph::dot(obj)
            .with_context(|| format!("no state graph for {}", obj.name()))?;
        return write_stdout(&text);
    }
    let graph = TransitionGraph::explore();
    let text = match args.format {
        GraphFormat::Dot => proclife_model::dot::render(&graph),
        GraphFormat::Json => proclife_model::export::render_json(&graph),
    };
    write_stdout(&text)
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let lifecycle = if args.objects {
        ExitCode::SUCCESS
    } else {
        check_lifecycle(args)?
    };
    // The life-cycle's planted bugs are caught there; a disagreement ends the run.
    if args.lifecycle || args.mutant.is_some() || lifecycle != ExitCode::SUCCESS {
        return Ok(lifecycle);
    }
    let options = objects::check::Options {
        cases: args.objects_cases,
        seed: args.seed,
        method: args.method,
        ..objects::check::Options::default()
    };
    let agreed =
        objects::cli::check_command(&options, Some(&args.save_dir), args.allow_partial_coverage)?;
    Ok(if agreed { lifecycle } else { ExitCode::FAILURE })
}

fn check_lifecycle(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let settle = match (args.settle, args.no_settle) {
        (true, _) => SettleMode::Always,
        (_, true) => SettleMode::Never,
        _ => SettleMode::Mixed,
    };
    let options = Options {
        cases: args.cases,
        seed: args.seed,
        max_ops: usize::from(args.max_ops),
        max_procs: usize::from(args.procs),
        settle,
        mutant: args.mutant,
        method: args.method,
        save_dir: Some(args.save_dir.clone()),
    };
    let bar = indicatif::ProgressBar::new(u64::from(args.cases));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} sequences  {msg}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let summary = check::check(&options, |progress| {
        bar.set_position(u64::from(progress.cases));
        bar.set_message(format!("{} edges of {}", progress.covered, progress.edges));
    });
    bar.finish_and_clear();
    println!("{}", summary.coverage.table());
    println!(
        "seed {}, start method {}: {} sequences, {} operations, {} processes spawned, {} of {} edges covered, {:.1} s",
        options.seed,
        options.method,
        summary.cases,
        summary.ops,
        summary.spawned,
        summary.coverage.covered(),
        summary.coverage.total(),
        summary.elapsed.as_secs_f64()
    );
    if let Some(path) = &args.dot_coverage {
        let graph = TransitionGraph::explore();
        std::fs::write(path, summary.coverage.dot(&graph))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("coverage graph written to {}", path.display());
    }
    if let Some(failure) = &summary.failure {
        println!("\nDISAGREEMENT: {}", failure.reason);
        if failure.replay.failure.is_none() {
            println!(
                "(the shrunk sequence agreed in {} replays: the disagreement depends on timing; the last replay:)",
                failure.replays
            );
        } else if failure.replays > 1 {
            println!(
                "(failed again on replay {} of the shrunk sequence)",
                failure.replays
            );
        }
        println!("{}", table(&failure.replay));
        match &failure.saved {
            Some(path) => println!(
                "saved to {} (run `proclife replay {}`)",
                path.display(),
                path.display()
            ),
            None => println!(
                "the sequence could not be saved; it is:\n{}",
                failure.trace.to_json()
            ),
        }
        return Ok(ExitCode::FAILURE);
    }
    if !summary.coverage.is_complete() && !args.allow_partial_coverage {
        println!("FAILED: not every edge of the transition graph was exercised");
        return Ok(ExitCode::FAILURE);
    }
    println!("the runtime agreed with the model on every observation");
    Ok(ExitCode::SUCCESS)
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file))?
    };
    if objects::replay::is_objects(&text) {
        let program = objects::replay::parse(&text)
            .with_context(|| format!("{} is not a replay file of the primitives", args.file))?;
        let agreed = objects::cli::replay_program(&program, args.method)?;
        return Ok(if agreed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let trace =
        Trace::parse(&text).with_context(|| format!("{} is not a replay file", args.file))?;
    let outcomes = run::run(&trace.ops, trace.procs(), args.mutant, args.method);
    let agree = outcomes.failure.is_none();
    if args.json {
        let side = |pick: fn(&run::Row) -> Option<&Outcome>| -> Vec<serde_json::Value> {
            outcomes
                .rows
                .iter()
                .map(|row| match pick(row) {
                    Some(outcome) => observation_json(&row.step, outcome),
                    None => {
                        serde_json::json!({"op": row.step.op.schema_name(), "harness_failed": true})
                    }
                })
                .collect()
        };
        let json = serde_json::json!({
            "model": side(run::Row::model_outcome),
            "runtime": side(|row| row.observed.as_ref()),
            "agree": agree,
        });
        write_stdout(&format!("{json}\n"))?;
    } else {
        write_stdout(&format!("{}\n", table(&outcomes)))?;
        match &outcomes.failure {
            None => write_stdout("the runtime agreed with the model on every observation\n")?,
            Some(failure) => write_stdout(&format!("{failure}\n"))?,
        }
    }
    Ok(if agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The side-by-side table of a run: step, process, op, what the model admits, what the
/// runtime gave.
fn table(outcomes: &Outcomes) -> String {
    let mut out = format!(
        "{:>4}  {:>4}  {:<28}  {:<40}  {}\n",
        "step", "proc", "op", "model", "runtime"
    );
    for (index, row) in outcomes.rows.iter().enumerate() {
        let admitted: Vec<String> = row.admitted.iter().map(ToString::to_string).collect();
        let observed = row
            .observed
            .as_ref()
            .map_or_else(|| "(harness failed)".to_owned(), ToString::to_string);
        let mark = if row.agrees() { "" } else { "   <-- differs" };
        out.push_str(&format!(
            "{index:>4}  {:>4}  {:<28}  {:<40}  {observed}{mark}\n",
            row.step.proc,
            row.step.op.to_string(),
            admitted.join(" | "),
        ));
    }
    if let Some(failure) = &outcomes.failure
        && failure.index() >= outcomes.rows.len()
    {
        out.push_str(&format!("{failure}\n"));
    }
    out
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
