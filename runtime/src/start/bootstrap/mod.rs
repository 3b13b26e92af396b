//! The bootstrap of a re-executed process (spawn children and the fork server): the wire
//! format of the message its parent sends ([`wire`]), the pre-`main` hook that receives it
//! ([`hook`]), and a child's run-time once it is accepted ([`child`]).

pub(crate) mod child;
mod hook;
pub(crate) mod wire;

pub use wire::{BOOTSTRAP_EXIT_CODE, ENV};
