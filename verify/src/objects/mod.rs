//! Histories of the shared primitives from real processes, judged against their models.
//!
//! [`worker`] is a registered process target that runs a program of calls on the shared
//! objects of [`Shared`] and reports, for every call, a stamp of one shared counter before it
//! and after it with what it returned; [`scenario`] runs such programs in real processes
//! and assembles the [`History`](proclife_model::objects::History); the model's judges
//! (`proclife_model::objects`) then say whether the history is one the primitives allow.

pub mod check;
pub mod cli;
pub mod coverage;
pub mod judge;
pub mod map;
pub mod random;
pub mod replay;
pub mod scenario;
pub mod scenarios;
pub mod worker;

pub use worker::{Shared, worker};

/// The drawn primitive called `name` (case-insensitive), for `proclife graph --object`.
pub fn graphed(name: &str) -> Option<proclife_model::objects::Object> {
    proclife_model::objects::graph::GRAPHED
        .into_iter()
        .find(|o| o.name().eq_ignore_ascii_case(name))
}
