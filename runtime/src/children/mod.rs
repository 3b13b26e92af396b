//! The life-cycle bookkeeping below `Process`: each started child's record ([`child`]), the
//! per-process table of children and its exit policy ([`registry`]), the status slot a child
//! reports what it is blocked on through ([`status`]), and what a process knows of itself
//! and its parent ([`current`]).

pub(crate) mod child;
pub(crate) mod current;
pub(crate) mod registry;
pub(crate) mod status;
pub(crate) mod wait;
