//! Shared helpers for the proclife benchmarks: the raw-syscall baselines live beside the
//! benchmarks that compare against them, under `benches/`.
