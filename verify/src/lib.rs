//! proclife-verify: checks the runtime against the model.

pub mod trace;
