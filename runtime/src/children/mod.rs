//! The life-cycle bookkeeping below `Process`: each started child's record ([`child`]), the
//! per-process table of children and its exit policy ([`registry`]), the status slot a child
//! reports what it is blocked on through ([`status`]), what a process knows of itself
//! and its parent ([`current`]), and the untimed waits that end when the parent dies
//! ([`parent_watch`]).

pub(crate) mod child;
pub(crate) mod current;
pub(crate) mod parent_watch;
pub(crate) mod registry;
pub(crate) mod status;
pub(crate) mod wait;
