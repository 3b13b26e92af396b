//! proclife-verify: checks the runtime against the model.
//!
//! Random operation sequences ([`reference`](mod@reference)) run on real processes ([`sut`], through the
//! puppet target of [`puppet`]) and every observation is checked against what the model
//! admits ([`run`]); [`check`] drives thousands of them with shrinking, coverage and saved
//! regressions, and [`trace`] reads and writes the replay files.

pub mod check;
pub mod conform;
pub mod coverage;
pub mod cpython;
pub mod deviations;
pub mod leaks;
pub mod map;
pub mod objects;
pub mod puppet;
pub mod reference;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod sut;
pub mod timing;
pub mod trace;

/// The README's Rust examples as doc tests (`cargo test --workspace --doc`): each is
/// compiled, and those with a `main` are run (not the `no_run` one), so that what a newcomer
/// copies from it builds.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
