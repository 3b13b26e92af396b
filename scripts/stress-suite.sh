#!/usr/bin/env bash
# The README's test command, RUNS times in a row (default 5), while two CPU-bound processes
# load the machine, then the benchmarks once each in criterion's test mode (with the
# procspawn comparison that `cargo test` leaves out). From the repository root:
#
#   bash scripts/stress-suite.sh [RUNS]
#
# Each run's output goes to target/stress/run-N.log; the summary gives every run's result and
# duration and the load average. Exit status: 0 when every run and the benchmarks passed, 1
# otherwise. The load is two `yes > /dev/null`; they are killed on any exit.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash scripts/stress-suite.sh [RUNS]  (RUNS a positive integer, default 5)" >&2
    exit 2
fi
mkdir -p target/stress

load_pids=()
stop_load() {
    for pid in "${load_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${load_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    load_pids=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM

# Build first, without load, so the runs measure the tests rather than the compiler.
cargo test --workspace --all-targets --no-run >target/stress/build.log 2>&1 || {
    echo "build failed: see target/stress/build.log" >&2
    exit 1
}

for _ in 1 2; do
    yes >/dev/null &
    load_pids+=("$!")
done
echo "load: two 'yes > /dev/null' (pids ${load_pids[*]}); loadavg $(cut -d' ' -f1-3 /proc/loadavg)"

passed=0
for n in $(seq 1 "$runs"); do
    log="target/stress/run-$n.log"
    begin=$(date +%s)
    if { cargo test --workspace --all-targets && cargo test --workspace --doc; } >"$log" 2>&1; then
        result=passed
        passed=$((passed + 1))
    else
        result=FAILED
    fi
    end=$(date +%s)
    echo "run $n/$runs: $result in $((end - begin)) s (loadavg $(cut -d' ' -f1-3 /proc/loadavg)), log $log"
    if [[ $result == FAILED ]]; then
        grep -E "^test .* FAILED|^    |panicked|failures:|error" "$log" | head -40
    fi
done

log=target/stress/benches-test.log
begin=$(date +%s)
if cargo bench -p proclife-benches --features procspawn -- --test >"$log" 2>&1; then
    benches=passed
else
    benches=FAILED
fi
echo "benchmarks in criterion's test mode: $benches in $(($(date +%s) - begin)) s, log $log"

stop_load
echo "summary: $passed/$runs runs passed under load; benchmarks $benches"
[[ $passed == "$runs" && $benches == passed ]]
