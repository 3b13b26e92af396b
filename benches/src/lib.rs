//! Shared helpers for the proclife benchmarks: CPU placement, the thread-count check, touched
//! parent memory, the CPU time of the benchmark and of the kernel's threads ([`background`]), the raw-syscall baselines ([`raw`]), their proclife counterparts
//! ([`runtime`]) and the criterion harness used by `benches/*.rs`.
//!
//! The benchmarks themselves live in `benches/spawn_join.rs`, `benches/ipc.rs`,
//! `benches/sync.rs`, `benches/state.rs` and `benches/scaling.rs`. Each group measures its raw baseline in the same run as the code it is
//! compared with, so that both see the same machine at the same time.
//!
//! Three rules hold for every benchmark built on this crate:
//! - A benchmark that forks first checks that the process has exactly one thread
//!   ([`cpu::ensure_single_threaded`]); [`harness::run`] does it before every sample.
//! - Every iteration checks its result (exit status 0, bytes intact, lock counts add up) and
//!   reaps every child it started; a failed check panics with the benchmark ID, so a broken
//!   benchmark can never report a time.
//! - Placement is explicit: [`cpu::Placement`] pins the process (and so its children) before
//!   the benchmark runs, the choice is printed, and it is recorded next to criterion's results
//!   for the report written by `benches/compare.py`.

pub mod background;
pub mod cpu;
pub mod crowd;
pub mod error;
pub mod harness;
pub mod memory;
pub mod raw;
pub mod runtime;
pub mod wake;

pub use error::{Error, Result};
