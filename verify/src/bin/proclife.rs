//! The `proclife` command: the transition graph derived from the model (`graph`), random
//! sequences on the model and real processes (`check`), and one sequence from a file
//! (`replay`).
//!
//! Every subcommand is one variant of [`Command`] with its own argument struct and handler;
//! adding one is a variant, an argument struct and a line in `main`.
//! What `check` and `replay` print is composed in `proclife_verify::report`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use proclife::StartMethod;
use proclife_model::{Outcome, TransitionGraph};
use proclife_verify::check::{self, Options};
use proclife_verify::conform;
use proclife_verify::objects;
use proclife_verify::reference::SettleMode;
use proclife_verify::report;
use proclife_verify::run;
use proclife_verify::trace::{Trace, observation_json};

/// Where `check` saves a failing sequence unless told otherwise: the regression corpus of the
/// workspace the command was built from, which `cargo test` replays.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions");

/// The exit statuses and the replay format, for `--help`.
const AFTER_HELP: &str = r#"Exit status:
  0  the runtime agreed with the model (for `check`: with full coverage)
  1  a disagreement, or (for `check`) coverage was partial
  2  bad arguments, or a replay file that is not valid (nothing is started then)

Replay file: one JSON object with the operations in order, one per line, e.g.
  {"ops":[
    {"op":"start"},
    {"op":"child_exit","code":3},
    {"op":"settle"},
    {"op":"join_timeout","secs":0.005},
    {"op":"exitcode","proc":1}
  ]}
"proc" picks one of up to 8 processes (default 0). Operations: start, run, is_alive, join,
join_timeout (secs), exitcode, pid_is_set, sentinel_ready, terminate, kill, close, daemon,
set_daemon (value), child_exit (code), child_panic, child_return, child_block (on: lock,
rlock, semaphore, event, condition, barrier, recv, join, read, sleep), release, sigstop,
sigcont, settle."#;

/// Python's multiprocessing.Process life-cycle in Rust, checked against a formal model.
#[derive(Debug, Parser)]
#[command(name = "proclife", version, after_help = AFTER_HELP)]
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
    /// Run random settled sequences on the model and on CPython and compare them.
    Conform(ConformArgs),
}

/// Arguments of `proclife graph`.
#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
    /// Which picture: every edge the model can take, or only those that change state.
    #[arg(long, value_enum, default_value_t = GraphView::Full)]
    view: GraphView,
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

/// The views `proclife graph` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphView {
    /// Every edge, the graph that coverage counts (`docs/lifecycle.dot`).
    Full,
    /// Only the edges that change state, exit codes grouped, with a legend
    /// (`docs/lifecycle-story.dot`; DOT only).
    Story,
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
#[command(after_help = AFTER_HELP)]
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
    /// Where a failing sequence is saved [default: the workspace's verify/regressions]
    #[arg(long, value_name = "DIR")]
    save_dir: Option<PathBuf>,
    /// Do not fail when coverage is partial (an edge of the graph, or an operation x outcome of
    /// a primitive's model, never exercised).
    #[arg(long)]
    allow_partial_coverage: bool,
    /// Start every child with this method: fork, forkserver or spawn [default: the
    /// sequences take the three in turn]
    #[arg(long, value_parser = parse_method)]
    method: Option<StartMethod>,
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

/// Arguments of `proclife replay`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
struct ReplayArgs {
    /// The replay file, or `-` for standard input.
    file: String,
    /// Print `{"model":[..],"runtime":[..],"agree":bool}` instead of a table.
    #[arg(long)]
    json: bool,
    /// How the runtime starts each child: fork, forkserver or spawn.
    #[arg(long, default_value = "fork", value_parser = parse_method)]
    method: StartMethod,
    /// Also run the sequence on CPython with this interpreter and show it beside the others.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
}

/// Arguments of `proclife conform`.
#[derive(Debug, clap::Args)]
struct ConformArgs {
    /// The Python interpreter (CPython 3.9 or newer).
    #[arg(long, value_name = "PATH", default_value = "python3")]
    python: PathBuf,
    /// Sequences to run.
    #[arg(long, default_value_t = conform::Options::default().cases, value_parser = clap::value_parser!(u32).range(1..))]
    cases: u32,
    /// Random seed; the same seed and commit give the same sequences.
    #[arg(long, default_value_t = conform::Options::default().seed)]
    seed: u64,
    /// Operations per sequence, at most.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_ops: u16,
    /// Processes per sequence, at most.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    procs: u8,
    /// CPython's start method: fork, forkserver or spawn.
    #[arg(long, default_value = "fork", value_parser = parse_method)]
    method: StartMethod,
    /// Where a disagreement is saved.
    #[arg(long, value_name = "DIR", default_value = "target/conform")]
    save_dir: PathBuf,
    /// Plant a deviation in the model's predictions, to show that it is caught.
    #[arg(long, value_parser = parse_plant, hide = true)]
    plant: Option<conform::Plant>,
}

fn parse_plant(name: &str) -> Result<conform::Plant, String> {
    conform::Plant::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = conform::Plant::ALL.iter().map(|p| p.name()).collect();
        format!("unknown plant; one of {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    // On bad arguments clap prints a message and the usage, and exits with status 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Graph(args) => graph(&args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check(&args),
        Command::Replay(args) => replay(&args),
        Command::Conform(args) => run_conform(&args),
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
    let text = match (args.view, args.format) {
        (GraphView::Full, GraphFormat::Dot) => proclife_model::dot::render(&graph),
        (GraphView::Full, GraphFormat::Json) => proclife_model::export::render_json(&graph),
        (GraphView::Story, GraphFormat::Dot) => proclife_model::dot::render_story(&graph),
        (GraphView::Story, GraphFormat::Json) => {
            anyhow::bail!("the story view is drawn as DOT only; use --format dot or --view full")
        }
    };
    write_stdout(&text)
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let lifecycle = if args.objects {
        ExitCode::SUCCESS
    } else {
        check_lifecycle(args)?
    };
    // A life-cycle disagreement ends the run.
    if args.lifecycle || lifecycle != ExitCode::SUCCESS {
        return Ok(lifecycle);
    }
    let options = objects::check::Options {
        cases: args.objects_cases,
        seed: args.seed,
        method: args.method,
        ..objects::check::Options::default()
    };
    let save_dir = args
        .save_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(REGRESSIONS));
    let agreed =
        objects::cli::check_command(&options, Some(&save_dir), args.allow_partial_coverage)?;
    Ok(if agreed { lifecycle } else { ExitCode::FAILURE })
}

fn check_lifecycle(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = check_options(args);
    let bar = progress_bar(args.cases)?;
    let summary = check::check(&options, |progress| {
        bar.set_position(u64::from(progress.cases));
        bar.set_message(format!(
            "{} of {} transitions",
            progress.covered, progress.edges
        ));
    });
    bar.finish_and_clear();
    if let Some(failure) = &summary.failure {
        println!("{}", report::counterexample(failure));
    }
    println!("{}", summary.coverage.table());
    print!("{}", report::summary(&summary));
    if let Some(path) = &args.dot_coverage {
        let graph = TransitionGraph::explore();
        std::fs::write(path, summary.coverage.dot(&graph))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("Coverage graph written to {}.", path.display());
    }
    print!("{}", report::verdict(&summary, args.allow_partial_coverage));
    let passed =
        summary.failure.is_none() && (summary.is_complete() || args.allow_partial_coverage);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_options(args: &CheckArgs) -> Options {
    let settle = match (args.settle, args.no_settle) {
        (true, _) => SettleMode::Always,
        (_, true) => SettleMode::Never,
        _ => SettleMode::Mixed,
    };
    Options {
        cases: args.cases,
        seed: args.seed,
        max_ops: usize::from(args.max_ops),
        max_procs: usize::from(args.procs),
        settle,
        method: args.method,
        save_dir: Some(
            args.save_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(REGRESSIONS)),
        ),
        // A counterexample is replayed alone by this very program.
        replayer: std::env::current_exe().ok(),
    }
}

fn progress_bar(cases: u32) -> anyhow::Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new(u64::from(cases));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} sequences, about {eta} left  {msg}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    Ok(bar)
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
    let outcomes = run::run(&trace.ops, trace.procs(), args.method);
    if let Some(python) = &args.python {
        let (text, cpython_agrees) =
            conform::replay_with_cpython(&trace, &outcomes, python, args.method)?;
        write_stdout(&text)?;
        if let Some(failure) = &outcomes.failure {
            write_stdout(&format!(
                "the runtime disagrees with the model: {failure}\n"
            ))?;
        }
        let agree = cpython_agrees && outcomes.failure.is_none();
        return Ok(if agree {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
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
        write_stdout(&report::table(&outcomes))?;
        if agree {
            write_stdout("The runtime agreed with the model on every observation.\n")?;
        }
    }
    Ok(if agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_conform(args: &ConformArgs) -> anyhow::Result<ExitCode> {
    let options = conform::Options {
        python: args.python.clone(),
        cases: args.cases,
        seed: args.seed,
        max_ops: usize::from(args.max_ops),
        max_procs: usize::from(args.procs),
        method: args.method,
        save_dir: Some(args.save_dir.clone()),
        plant: args.plant,
    };
    let bar = indicatif::ProgressBar::new(u64::from(args.cases));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} sequences",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let summary = conform::conform(&options, |cases| bar.set_position(u64::from(cases)));
    bar.finish_and_clear();
    let summary = summary?;
    write_stdout(&conform::report(&summary, &options))?;
    Ok(if summary.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
