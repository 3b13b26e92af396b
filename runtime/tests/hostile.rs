//! Catalogue item T48: a hostile child cannot exhaust its parent. Under every start method a
//! child (a) sends valid frames whose payload claims huge element counts, (b) floods a
//! bounded queue, (c) sends 10⁴ fds through `SCM_RIGHTS` with its frames, and (d) sends
//! frames much faster than they are consumed. The parent gets typed errors or the data, never
//! a panic or an abort; its peak resident memory grows by at most [`MEMORY_SLACK`]; it ends
//! with exactly the fds it had; backpressure blocks the child, not the parent.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::time::Duration;

use common::TestResult;
use common::process::{Started, wait_state};
use common::wait::{AT_ONCE, Progress};
use proclife::ipc::{Connection, Queue};
use proclife::{BlockedOn, Error, Process, ProcessState, StartMethod, TargetResult};

/// How much the parent's peak resident memory may grow in one scenario: far less than what
/// the child claims or sends (claims of 2⁴⁰–2⁶² elements, 48 MiB of frames).
const MEMORY_SLACK: u64 = 16 << 20;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

/// The parent's peak resident memory from now on: resets the peak (`VmHWM`) to the current
/// resident size by writing 5 to `/proc/self/clear_refs` (proc(5)), and returns that size.
fn reset_peak() -> Result<u64, String> {
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("clear_refs: {e}"))?;
    status_bytes("VmRSS")
}

/// Fails when the peak resident memory grew by more than [`MEMORY_SLACK`] since `base`.
fn peak_within(base: u64, what: &str) -> TestResult {
    let peak = status_bytes("VmHWM")?;
    ensure!(
        peak <= base + MEMORY_SLACK,
        "{what}: expected the parent's peak resident memory to stay within {} KiB of {} KiB; it reached {} KiB",
        MEMORY_SLACK >> 10,
        base >> 10,
        peak >> 10
    );
    Ok(())
}

/// postcard's varint of `n` (LEB128), the encoding of a sequence or string length.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

// ---------------------------------------------------------------------------------------
// (a) Huge element counts inside a valid frame.

/// The payloads the child sends, each a complete frame whose content claims more elements
/// than it holds; the parent decodes each as [`Claimed`].
fn claims() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Vec<u64> of 2^62 elements, three present.
    let mut p = Vec::new();
    varint(1 << 62, &mut p);
    p.extend([1, 2, 3]);
    out.push(p);
    // Vec<Vec<u64>>: 2^40 outer elements, the first claiming 2^40 inner ones.
    let mut p = Vec::new();
    varint(1 << 40, &mut p);
    varint(1 << 40, &mut p);
    p.extend([7; 16]);
    out.push(p);
    // A string of 2^50 bytes, 4 present.
    let mut p = Vec::new();
    varint(1 << 50, &mut p);
    p.extend(b"abcd");
    out.push(p);
    // The largest count there is.
    let mut p = Vec::new();
    varint(u64::MAX, &mut p);
    out.push(p);
    out
}

/// What the parent decodes every claim as, one variant per claim (postcard: the variant
/// index first).
#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
enum Claimed {
    Numbers(Vec<u64>),
    Nested(Vec<Vec<u64>>),
    Text(String),
    Bytes(Vec<u8>),
}

fn send_claims(mut conn: Connection) -> TargetResult {
    for (variant, claim) in claims().into_iter().enumerate() {
        let mut frame = vec![variant as u8];
        frame.extend(claim);
        conn.send_bytes(&frame)?;
    }
    // A valid value after them: the connection is still usable.
    conn.send(&Claimed::Numbers(vec![1, 2, 3]))?;
    Ok(())
}
proclife::entry!(send_claims);

fn huge_element_counts_are_decode_errors_t48() -> TestResult {
    for method in StartMethod::ALL {
        let (mut read, p) = Started::piped(false, |write| {
            Process::builder()
                .start_method(method)
                .entry(send_claims, write)
        })?;
        let base = reset_peak()?;
        let mut progress = Progress::new(format!("{method}: receiving the claims"));
        for claim in 0..claims().len() {
            progress.readable(&read, format_args!("claim {claim}"))?;
            match read.recv::<Claimed>() {
                Err(Error::Decode(_)) => {}
                other => {
                    return Err(format!(
                        "{method}: claim {claim}: expected Error::Decode, got {other:?}"
                    )
                    .into());
                }
            }
        }
        progress.readable(&read, "the valid value after the claims")?;
        ensure_eq!(
            (method, read.recv::<Claimed>()?),
            (method, Claimed::Numbers(vec![1, 2, 3]))
        );
        peak_within(base, &format!("{method}: decoding the claims"))?;
        ensure_eq!((method, common::join_code(&p)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (b) A flooded bounded queue.

/// One queue item.
const ITEM: usize = 1024;

/// Fills `bounded` (maxsize) and `ring` (a small ring) with `put_nowait` until each is
/// full, reports how many items went in, checks that a timed `put` ends with `Full`, then
/// blocks in `put` on `bounded` until the parent makes room.
fn flood(
    (bounded, ring, mut report): (Queue<Vec<u8>>, Queue<Vec<u8>>, Connection),
) -> TargetResult {
    let fill = |q: &Queue<Vec<u8>>| -> Result<u64, Error> {
        let mut n = 0u64;
        loop {
            match q.put_nowait(&vec![n as u8; ITEM]) {
                Ok(()) => n += 1,
                Err(Error::Full) => return Ok(n),
                Err(other) => return Err(other),
            }
        }
    };
    let counts = (fill(&bounded)?, fill(&ring)?);
    let timed = bounded.put_timeout(&vec![0; ITEM], Some(Duration::from_millis(10)));
    if !matches!(timed, Err(Error::Full)) {
        return Err(format!("a timed put on a full queue gave {timed:?}, expected Full").into());
    }
    report.send(&counts)?;
    bounded.put(&vec![0xff; ITEM])?;
    Ok(())
}
proclife::entry!(flood);

/// Another handle on the same queue, to pass to a child.
fn share(q: &Queue<Vec<u8>>) -> Result<Queue<Vec<u8>>, Box<dyn std::error::Error>> {
    use std::os::fd::AsFd;
    Ok(Queue::from_fd(q.as_fd().try_clone_to_owned()?)?)
}

fn a_flooded_queue_blocks_the_child_not_the_parent_t48() -> TestResult {
    const MAXSIZE: usize = 4;
    const RING: usize = 64 << 10;
    for method in StartMethod::ALL {
        let bounded = Queue::<Vec<u8>>::with_capacity(MAXSIZE, RING)?;
        let ring = Queue::<Vec<u8>>::with_capacity(0, RING)?;
        let base = reset_peak()?;
        let shared = (share(&bounded)?, share(&ring)?);
        let (mut report, p) = Started::piped(false, |end| {
            Process::builder()
                .start_method(method)
                .entry(flood, (shared.0, shared.1, end))
        })?;
        Progress::new(format!("{method}: flooding the queues"))
            .readable(&report, "the child's counts")?;
        let (in_bounded, in_ring): (u64, u64) = report.recv()?;
        ensure_eq!((method, in_bounded), (method, MAXSIZE as u64));
        ensure!(
            in_ring > 0 && in_ring * ITEM as u64 <= RING as u64,
            "{method}: expected the {RING}-byte ring to take between 1 and {} items of {ITEM} bytes, it took {in_ring}",
            RING / ITEM
        );
        wait_state(&p, "blocked in put on the full queue", |s| {
            s == ProcessState::Blocked(BlockedOn::Send)
        })?;
        peak_within(base, &format!("{method}: the child flooding two queues"))?;
        for n in 0..in_bounded {
            ensure_eq!(
                (method, bounded.get_timeout(Some(AT_ONCE))?),
                (method, vec![n as u8; ITEM])
            );
        }
        ensure_eq!(
            (method, bounded.get_timeout(Some(AT_ONCE))?),
            (method, vec![0xff; ITEM])
        );
        for n in 0..in_ring {
            ensure_eq!((method, ring.get_nowait()?), (method, vec![n as u8; ITEM]));
        }
        ensure_eq!((method, common::join_code(&p)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (c) 10^4 fds through SCM_RIGHTS.

/// Frames sent with fds attached, and fds per frame (the kernel's `SCM_MAX_FD` is 253).
const FD_FRAMES: u32 = 40;
const FDS_PER_FRAME: usize = 250;

/// Sends frames `0..FD_FRAMES` (postcard `u32`s), each written with one `sendmsg` that
/// carries [`FDS_PER_FRAME`] copies of an fd as `SCM_RIGHTS`: 10⁴ fds in all.
fn send_fds(conn: Connection) -> TargetResult {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    // More fds in flight than RLIMIT_NOFILE is refused (ETOOMANYREFS) unless the limit
    // allows it: take the hard limit, and wait for the parent to read when it still refuses.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)?;
    let null = std::fs::File::open("/dev/null")?;
    let fds = [null.as_raw_fd(); FDS_PER_FRAME];
    let sock = conn.fd()?.as_raw_fd();
    for n in 0..FD_FRAMES {
        let payload = postcard::to_stdvec(&n)?;
        let mut frame = (payload.len() as u64).to_le_bytes().to_vec();
        frame.extend(payload);
        let iov = [std::io::IoSlice::new(&frame)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let progress = Progress::new("sending fds");
        loop {
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            match sendmsg::<()>(sock, &iov, &cmsg, flags, None) {
                Ok(sent) if sent == frame.len() => break,
                Ok(sent) => {
                    return Err(format!("sendmsg sent {sent} of {} bytes", frame.len()).into());
                }
                Err(nix::errno::Errno::EINTR) => {}
                // The send does not block (`MSG_DONTWAIT`), and in-flight fds are limited:
                // wait for the parent to read.
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ETOOMANYREFS) => {
                    if progress.left().is_zero() {
                        return Err(progress.stuck("room to send").into());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(errno) => return Err(errno.into()),
            }
        }
    }
    Ok(())
}
proclife::entry!(send_fds);

fn fds_sent_by_a_child_are_never_installed_t48() -> TestResult {
    for method in StartMethod::ALL {
        let (mut parent_end, p) = Started::piped(true, |child_end| {
            Process::builder()
                .start_method(method)
                .entry(send_fds, child_end)
        })?;
        let fds = common::fd_snapshot();
        let mut progress = Progress::new(format!("{method}: receiving frames with fds"));
        for n in 0..FD_FRAMES {
            progress.readable(&parent_end, format_args!("frame {n}"))?;
            ensure_eq!((method, parent_end.recv::<u32>()?), (method, n));
            let now = common::fd_snapshot();
            ensure!(
                now == fds,
                "{method}: after frame {n} expected the parent's fds {fds:?}, found {now:?}"
            );
        }
        progress.readable(&parent_end, "end of file")?;
        match parent_end.recv::<u32>() {
            Err(Error::Disconnected) => {}
            other => return Err(format!("{method}: expected end of file, got {other:?}").into()),
        }
        ensure_eq!((method, common::join_code(&p)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (d) Frames faster than they are consumed.

/// Frames the child sends as fast as it can, and their size: 48 MiB in all.
const FAST_FRAMES: u32 = 48 * 1024;
const FAST_FRAME: usize = 1024;

fn send_fast(mut conn: Connection) -> TargetResult {
    let mut frame = vec![0u8; FAST_FRAME];
    for n in 0..FAST_FRAMES {
        frame[..4].copy_from_slice(&n.to_le_bytes());
        conn.send_bytes(&frame)?;
    }
    Ok(())
}
proclife::entry!(send_fast);

fn frames_faster_than_consumed_block_the_sender_t48() -> TestResult {
    for method in StartMethod::ALL {
        for duplex in [false, true] {
            let base = reset_peak()?;
            let (mut read, p) = Started::piped(duplex, |write| {
                Process::builder()
                    .start_method(method)
                    .entry(send_fast, write)
            })?;
            // The child fills the pipe or socket buffer and waits: the parent holds nothing.
            wait_state(&p, "blocked sending into a full pipe", |s| {
                s == ProcessState::Blocked(BlockedOn::Send)
            })?;
            peak_within(
                base,
                &format!("{method} (duplex {duplex}): a blocked fast sender"),
            )?;
            let mut progress = Progress::new(format!("{method}: draining the frames"));
            for n in 0..FAST_FRAMES {
                progress.readable(&read, format_args!("frame {n}"))?;
                let frame = read.recv_bytes()?;
                ensure!(
                    frame.len() == FAST_FRAME && frame[..4] == n.to_le_bytes(),
                    "{method} (duplex {duplex}): expected frame {n} of {FAST_FRAME} bytes, got {} bytes starting {:?}",
                    frame.len(),
                    &frame[..frame.len().min(4)]
                );
            }
            peak_within(
                base,
                &format!("{method} (duplex {duplex}): draining the frames"),
            )?;
            ensure_eq!((method, progress.join_code(&p)?), (method, 0));
        }
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn main() {
    common::run(vec![
        (
            "huge_element_counts_are_decode_errors_t48",
            huge_element_counts_are_decode_errors_t48,
        ),
        (
            "a_flooded_queue_blocks_the_child_not_the_parent_t48",
            a_flooded_queue_blocks_the_child_not_the_parent_t48,
        ),
        (
            "fds_sent_by_a_child_are_never_installed_t48",
            fds_sent_by_a_child_are_never_installed_t48,
        ),
        (
            "frames_faster_than_consumed_block_the_sender_t48",
            frames_faster_than_consumed_block_the_sender_t48,
        ),
    ]);
}
