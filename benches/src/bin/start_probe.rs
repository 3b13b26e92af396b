//! Starts and joins N children one after the other, for counting what one start costs with
//! outside tools (`strace -f -c`, `perf stat -e page-faults,instructions`), which criterion's
//! timings do not show.
//!
//! ```sh
//! cargo build --release -p proclife-benches --bin start_probe
//! strace -f -c target/release/start_probe fork 1000
//! perf stat -e page-faults,instructions target/release/start_probe fork 1000
//! ```
//!
//! Methods: `fork`, `forkserver`, `spawn` (proclife, as the `spawn_join` benchmark starts
//! them), `raw-fork` and `raw-clone3` (the benchmark's raw baselines). Every child is checked
//! to exit with 0 and reaped. Exit status 0 on success, 1 at the first failure, 2 for bad
//! arguments.

use proclife::StartMethod;
use proclife_benches::harness::exit_if_reexec_child;
use proclife_benches::raw::spawn::{clone3_pidfd_wait, fork_exit_wait};
use proclife_benches::runtime::{fork_start_join, method_start_join};

fn main() {
    exit_if_reexec_child();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(method), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u32>())) else {
        eprintln!("usage: start_probe fork|forkserver|spawn|raw-fork|raw-clone3 N");
        std::process::exit(2);
    };
    let once: fn() -> proclife_benches::Result<()> = match method.as_str() {
        "fork" => fork_start_join,
        "forkserver" => || method_start_join(StartMethod::ForkServer),
        "spawn" => || method_start_join(StartMethod::Spawn),
        "raw-fork" => fork_exit_wait,
        "raw-clone3" => clone3_pidfd_wait,
        other => {
            eprintln!("start_probe: unknown method {other:?}");
            std::process::exit(2);
        }
    };
    for i in 0..n {
        if let Err(error) = once() {
            eprintln!("start_probe: start {i} of {n}: {error}");
            std::process::exit(1);
        }
    }
}
