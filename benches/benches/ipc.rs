//! IPC benchmarks: an 8-byte round trip with an echo child and one-way streaming of 64 KiB
//! messages to a sink child, measured against a raw pipe and a raw Unix socket pair in the
//! same run.
//!
//! IDs: `ipc/<channel>/<case>`; `raw_*` channels are the baselines. Cases: `rtt8` (time per
//! round trip), `tput64k` (time per 64 KiB message, throughput in bytes), `fresh64k` (the
//! same with a fresh queue for every sample). Every message is checked: echoes byte for byte,
//! streamed messages by their sequence stamps and count.
//!
//! Each benchmark but `fresh64k` starts its channel and helper child once, at its first
//! sample, and uses them for all of its samples, as CPython's rows do
//! (`benches/cpython_bench.py`): the rows measure a channel in use, not its creation.
//! `ipc/queue/fresh64k` shows what that leaves out for a queue: a fresh ring's first lap,
//! where every page is touched for the first time in each process.
//!
//! proclife channels: `pipe` is a duplex `proclife::ipc::pipe(true)` (a Unix socket pair)
//! used with `send_bytes`/`recv_bytes` at both ends; `pipe_oneway` (round trip only) is two
//! one-way `pipe(false)`s (pipes), laid out as the raw pipe baseline; `queue` is two
//! `proclife::ipc::Queue`s of the default capacity, to and from the child, carrying byte
//! strings. Their helper children are forked by the same raw helper as the baselines' (see
//! `proclife_benches::runtime`).

use proclife_benches::Result;
use proclife_benches::harness::{self, Spec, checked, time_round_trips, time_transfers};
use proclife_benches::raw::ipc::{Echo, MSG_64K, Sink, Transport};
use proclife_benches::runtime::{ConnectionEcho, ConnectionSink, QueueEcho, QueueSink};

fn main() {
    let mut c = harness::criterion();
    rtt8(&mut c);
    tput64k(&mut c);
    c.final_summary();
}

/// Write 8 bytes, read the 8-byte echo, compare; parent and echo child on one CPU.
fn rtt8(c: &mut criterion::Criterion) {
    for (id, transport) in [
        ("ipc/raw_pipe/rtt8", Transport::Pipe),
        ("ipc/raw_socketpair/rtt8", Transport::SocketPair),
    ] {
        with_fixture(
            c,
            Spec::new(id),
            || Echo::start(transport),
            |b, echo| time_round_trips(b, |seq| echo.round_trip(seq)),
            Echo::finish,
        );
    }
    for (id, duplex) in [("ipc/pipe/rtt8", true), ("ipc/pipe_oneway/rtt8", false)] {
        with_fixture(
            c,
            Spec::new(id),
            || ConnectionEcho::start(duplex),
            |b, echo| time_round_trips(b, |seq| echo.round_trip(seq)),
            ConnectionEcho::finish,
        );
    }
    with_fixture(
        c,
        Spec::new("ipc/queue/rtt8"),
        QueueEcho::start,
        |b, echo| time_round_trips(b, |seq| echo.round_trip(seq)),
        QueueEcho::finish,
    );
}

/// Stream `iters` messages of 64 KiB to a sink child that checks each one and acknowledges the
/// lot; the time runs until the acknowledgement arrives. Both processes on one CPU.
fn tput64k(c: &mut criterion::Criterion) {
    let spec = |id| Spec::new(id).bytes(MSG_64K as u64);
    for (id, transport) in [
        ("ipc/raw_socketpair/tput64k", Transport::SocketPair),
        ("ipc/raw_pipe/tput64k", Transport::Pipe),
    ] {
        with_fixture(
            c,
            spec(id),
            || Sink::start(transport, MSG_64K),
            |b, sink| time_transfers(b, |count| sink.transfer(count)),
            Sink::finish,
        );
    }
    with_fixture(
        c,
        spec("ipc/pipe/tput64k"),
        || ConnectionSink::start(MSG_64K),
        |b, sink| time_transfers(b, |count| sink.transfer(count)),
        ConnectionSink::finish,
    );
    with_fixture(
        c,
        spec("ipc/queue/tput64k"),
        || QueueSink::start(MSG_64K),
        |b, sink| time_transfers(b, |count| sink.transfer(count)),
        QueueSink::finish,
    );
    harness::run(c, spec("ipc/queue/fresh64k"), |b| {
        let mut sink = QueueSink::start(MSG_64K)?;
        time_transfers(b, |count| sink.transfer(count));
        sink.finish()
    });
}

/// Runs the benchmark `spec` with one fixture for all of its samples: `start`ed at the first
/// sample (criterion calls the body once per sample), timed by `sample` in every one, and
/// `finish`ed (its child reaped and checked) after the last.
fn with_fixture<T>(
    c: &mut criterion::Criterion,
    spec: Spec,
    start: impl Fn() -> Result<T>,
    mut sample: impl FnMut(&mut criterion::Bencher<'_>, &mut T),
    finish: impl FnOnce(T) -> Result<()>,
) {
    let mut fixture = None;
    harness::run(c, spec, |b| {
        let started = match &mut fixture {
            Some(started) => started,
            None => fixture.insert(start()?),
        };
        sample(b, started);
        Ok(())
    });
    if let Some(fixture) = fixture {
        checked(finish(fixture));
    }
}
