//! Passing data between processes: `Pipe`/`Connection`, `Queue`, `Value`/`Array`.
