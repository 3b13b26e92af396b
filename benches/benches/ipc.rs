//! IPC benchmarks: an 8-byte round trip with an echo child and one-way streaming of 64 KiB
//! messages to a sink child, measured against a raw pipe and a raw Unix socket pair in the
//! same run.
//!
//! IDs: `ipc/<channel>/<case>`; `raw_*` channels are the baselines. Cases: `rtt8` (time per
//! round trip), `tput64k` (time per 64 KiB message, throughput in bytes). Every message is
//! checked: echoes byte for byte, streamed messages by their sequence stamps and count.
//!
//! proclife channels: `pipe` is a duplex `proclife::ipc::pipe(true)` (a Unix socket pair)
//! used with `send_bytes`/`recv_bytes` at both ends; `pipe_oneway` (round trip only) is two
//! one-way `pipe(false)`s (pipes), laid out as the raw pipe baseline; `queue` is two
//! `proclife::ipc::Queue`s of the default capacity, to and from the child, carrying byte
//! strings. Their helper children are forked by the same raw helper as the baselines' (see
//! `proclife_benches::runtime`).

use proclife_benches::harness::{self, Spec, time_round_trips, time_transfers};
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
        harness::run(c, Spec::new(id), |b| {
            let mut echo = Echo::start(transport)?;
            time_round_trips(b, |seq| echo.round_trip(seq));
            echo.finish()
        });
    }
    for (id, duplex) in [("ipc/pipe/rtt8", true), ("ipc/pipe_oneway/rtt8", false)] {
        harness::run(c, Spec::new(id), |b| {
            let mut echo = ConnectionEcho::start(duplex)?;
            time_round_trips(b, |seq| echo.round_trip(seq));
            echo.finish()
        });
    }
    harness::run(c, Spec::new("ipc/queue/rtt8"), |b| {
        let mut echo = QueueEcho::start()?;
        time_round_trips(b, |seq| echo.round_trip(seq));
        echo.finish()
    });
}

/// Stream `iters` messages of 64 KiB to a sink child that checks each one and acknowledges the
/// lot; the time runs until the acknowledgement arrives. Both processes on one CPU.
fn tput64k(c: &mut criterion::Criterion) {
    for (id, transport) in [
        ("ipc/raw_socketpair/tput64k", Transport::SocketPair),
        ("ipc/raw_pipe/tput64k", Transport::Pipe),
    ] {
        harness::run(c, Spec::new(id).bytes(MSG_64K as u64), |b| {
            let mut sink = Sink::start(transport, MSG_64K)?;
            time_transfers(b, |count| sink.transfer(count));
            sink.finish()
        });
    }
    harness::run(
        c,
        Spec::new("ipc/pipe/tput64k").bytes(MSG_64K as u64),
        |b| {
            let mut sink = ConnectionSink::start(MSG_64K)?;
            time_transfers(b, |count| sink.transfer(count));
            sink.finish()
        },
    );
    harness::run(
        c,
        Spec::new("ipc/queue/tput64k").bytes(MSG_64K as u64),
        |b| {
            let mut sink = QueueSink::start(MSG_64K)?;
            time_transfers(b, |count| sink.transfer(count));
            sink.finish()
        },
    );
}
