//! proclife-verify: checks the runtime against the model.

pub mod coverage;
pub mod reference;
pub mod trace;
