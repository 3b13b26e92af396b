#!/usr/bin/env bash
# Runs the whole benchmark suite and writes docs/benchmarks.md. From the repository root:
#
#   bash benches/run.sh
#
# It runs the criterion benchmarks (cargo bench -p proclife-benches --features procspawn; the
# feature adds the procspawn comparison), then, right after on the
# same machine, benches/compare.py, which measures CPython's multiprocessing equivalents and
# writes the report. Environment: PROCLIFE_BENCH_CPU=N pins to CPU N (default: the last allowed
# CPU); PROCLIFE_BENCH_QUICK=1 selects short smoke-run settings; PROCLIFE_BENCH_NOTE="..." puts a
# note in the report's header; CRITERION_HOME moves criterion's results (default target/criterion).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
export CRITERION_HOME="${CRITERION_HOME:-$PWD/target/criterion}"

cargo_command=(cargo bench -p proclife-benches --features procspawn)
echo "+ ${cargo_command[*]}"
"${cargo_command[@]}"

compare=(python3 benches/compare.py --since "$started" --started "$started"
         --loadavg-start "$loadavg_start" --cargo-command "${cargo_command[*]}")
echo "+ ${compare[*]}"
"${compare[@]}"
