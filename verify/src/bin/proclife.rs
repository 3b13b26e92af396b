//! The `proclife` command: `graph`, `check`, `replay`.

fn main() {}
