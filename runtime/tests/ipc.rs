//! Tests for [`proclife::ipc`] across real processes: hostile frames (T35, T36), boundary
//! sizes (T37), closed handles (T38), peer death, and volume (T42).
//!
//! A counting global allocator records the largest single allocation, so the tests can check
//! that no announced length makes the receiver allocate more than `max_frame`.

mod ipc_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipc_support::{TestResult, close_raw, ensure, spawn};
use proclife::Error;
use proclife::ipc::{Array, Connection, RawArray, Value, pipe};
use proclife::sync::Event;

/// Tracks the largest single allocation since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LONG: Duration = Duration::from_secs(30);

fn main() {
    ipc_support::run(vec![
        ("t35_length_prefix_attacks", t35_length_prefix_attacks),
        ("t36_garbage_in_a_valid_frame", t36_garbage_in_a_valid_frame),
        ("t37_boundary_sizes", t37_boundary_sizes),
        (
            "t37_oversize_send_writes_nothing",
            t37_oversize_send_writes_nothing,
        ),
        (
            "t38_closed_handles_and_fd_reuse",
            t38_closed_handles_and_fd_reuse,
        ),
        ("peer_death_is_disconnected", peer_death_is_disconnected),
        (
            "return_value_through_a_one_way_pipe",
            return_value_through_a_one_way_pipe,
        ),
        ("t42_pipe_messages_in_order", t42_pipe_messages_in_order),
        (
            "t19_value_holder_killed_mid_update",
            t19_value_holder_killed_mid_update,
        ),
        (
            "t49_shared_segment_cannot_be_resized",
            t49_shared_segment_cannot_be_resized,
        ),
        ("shared_counter_with_its_lock", shared_counter_with_its_lock),
    ]);
}

/// How many messages the volume tests send (T42).
const VOLUME: u64 = 1_000_000;

/// Writes `raw` into a fresh duplex pair and returns the receiving end (sender closed).
fn fed(raw: &[u8], max_frame: usize) -> Result<Connection, proclife::Error> {
    let (mut tx, mut rx) = pipe(true)?;
    rx.set_max_frame(max_frame)?;
    nix::unistd::write(tx.fd()?, raw).map_err(|errno| Error::Os {
        call: "write",
        errno,
    })?;
    tx.close()?;
    Ok(rx)
}

fn t35_length_prefix_attacks() -> TestResult {
    const MAX: usize = 1 << 20;
    let mut minus_one_escape = (u32::MAX as u64).to_le_bytes()[..4].to_vec();
    minus_one_escape.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("0xFFFFFFFF", 0xFFFF_FFFFu64.to_le_bytes().to_vec()),
        ("-1 escape then 2^62", minus_one_escape),
        ("negative length", (-5i64).to_le_bytes().to_vec()),
        ("max_frame + 1", (MAX as u64 + 1).to_le_bytes().to_vec()),
        ("u64::MAX", u64::MAX.to_le_bytes().to_vec()),
    ];
    for (name, raw) in attacks {
        let mut rx = fed(&raw, MAX)?;
        LARGEST.store(0, Ordering::Relaxed);
        let outcome = rx.recv_bytes();
        let largest = LARGEST.load(Ordering::Relaxed);
        ensure(
            matches!(outcome, Err(Error::FrameTooLarge { .. })),
            format!("{name}: FrameTooLarge, got {outcome:?}"),
        )?;
        ensure(largest <= MAX, format!("{name}: allocated {largest} bytes"))?;
        let again = rx.recv_bytes();
        ensure(
            matches!(again, Err(Error::Malformed(_))),
            format!("{name}: poisoned, got {again:?}"),
        )?;
    }
    // A header followed by end of file, and a torn header.
    let mut torn = 100u64.to_le_bytes().to_vec();
    torn.extend_from_slice(&[7; 10]);
    for (name, raw) in [("header then EOF", torn), ("torn header", vec![1, 2, 3])] {
        let mut rx = fed(&raw, MAX)?;
        let outcome = rx.recv_bytes();
        ensure(
            matches!(outcome, Err(Error::Malformed(_))),
            format!("{name}: Malformed, got {outcome:?}"),
        )?;
        ensure(
            matches!(rx.recv::<u8>(), Err(Error::Malformed(_))),
            format!("{name}: poisoned"),
        )?;
    }
    Ok(())
}

fn t36_garbage_in_a_valid_frame() -> TestResult {
    let (mut tx, mut rx) = pipe(true)?;
    tx.send_bytes(&[0xFF; 12])?;
    tx.send(&(3u8, "three".to_string()))?;
    tx.send_bytes(&[])?;
    let garbage = rx.recv::<(u8, String)>();
    ensure(
        matches!(garbage, Err(Error::Decode(_))),
        format!("Decode, got {garbage:?}"),
    )?;
    ensure(
        rx.recv::<(u8, String)>()? == (3, "three".to_string()),
        "still usable",
    )?;
    ensure(
        matches!(rx.recv::<u64>(), Err(Error::Decode(_))),
        "empty frame is not a u64",
    )?;
    Ok(())
}

fn t37_boundary_sizes() -> TestResult {
    let pipe_buf = libc::PIPE_BUF;
    let sizes = [
        0,
        1,
        pipe_buf - 1,
        pipe_buf,
        pipe_buf + 1,
        (64 << 10) - 1,
        64 << 10,
        (64 << 10) + 1,
        16 << 20,
    ];
    let max_frame = 16 << 20;
    for duplex in [true, false] {
        // Parent to child on `down`, back on `up`; with `duplex` both are one socketpair.
        let (mut down_rx, mut down_tx) = if duplex { pipe(true)? } else { pipe(false)? };
        let (mut up_rx, mut up_tx) = if duplex {
            (
                down_rx.fd().map(|fd| fd.try_clone_to_owned())??,
                down_tx.fd().map(|fd| fd.try_clone_to_owned())??,
            )
                .into_conns()?
        } else {
            pipe(false)?
        };
        let mut child = spawn(|| {
            let _ = down_tx.close();
            let _ = up_rx.close();
            let _ = down_rx.set_max_frame(max_frame);
            let _ = up_tx.set_max_frame(max_frame);
            loop {
                match down_rx.recv_bytes() {
                    Ok(bytes) => {
                        if up_tx.send_bytes(&bytes).is_err() {
                            return 3;
                        }
                    }
                    Err(Error::Disconnected) => return 0,
                    Err(_) => return 2,
                }
            }
        });
        down_rx.close()?;
        up_tx.close()?;
        down_tx.set_max_frame(max_frame)?;
        up_rx.set_max_frame(max_frame)?;
        for &size in sizes.iter().chain([max_frame].iter()) {
            let msg: Vec<u8> = (0..size).map(|i| (i * 31 + size) as u8).collect();
            down_tx.send_bytes(&msg)?;
            let back = up_rx.recv_bytes()?;
            ensure(
                back == msg,
                format!("round trip of {size} bytes (duplex {duplex})"),
            )?;
        }
        down_tx.close()?;
        up_rx.close()?;
        ensure(child.wait(LONG) == Some(0), "echo child exits on EOF")?;
    }
    Ok(())
}

/// Builds a second pair of handles on the same duplex socketpair.
trait IntoConns {
    fn into_conns(self) -> Result<(Connection, Connection), proclife::Error>;
}

impl IntoConns for (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    fn into_conns(self) -> Result<(Connection, Connection), proclife::Error> {
        // The first handle receives what the child sends on the second.
        Ok((
            Connection::from_fd(self.1, true, true)?,
            Connection::from_fd(self.0, true, true)?,
        ))
    }
}

fn t37_oversize_send_writes_nothing() -> TestResult {
    let (mut tx, rx) = pipe(true)?;
    tx.set_max_frame(1000)?;
    let outcome = tx.send_bytes(&[0; 1001]);
    ensure(
        matches!(
            outcome,
            Err(Error::FrameTooLarge {
                len: 1001,
                max: 1000
            })
        ),
        format!("{outcome:?}"),
    )?;
    let outcome = tx.send(&vec![0u8; 1001]);
    ensure(
        matches!(outcome, Err(Error::FrameTooLarge { .. })),
        format!("{outcome:?}"),
    )?;
    ensure(!rx.poll(Some(Duration::ZERO))?, "the peer sees no byte")?;
    tx.send_bytes(&[0; 1000])?;
    ensure(rx.poll(Some(Duration::ZERO))?, "max_frame itself is sent")?;
    Ok(())
}

fn t38_closed_handles_and_fd_reuse() -> TestResult {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let (mut a, mut b) = pipe(true)?;
    b.send_bytes(b"pending")?;
    a.close()?;
    let files: Vec<_> = (0..64)
        .map(|_| memfd_create(c"t38", MFdFlags::MFD_CLOEXEC))
        .collect::<Result<_, _>>()?;
    ensure(matches!(a.send_bytes(b"data"), Err(Error::Closed)), "send")?;
    ensure(matches!(a.send(&1u8), Err(Error::Closed)), "send value")?;
    ensure(matches!(a.recv_bytes(), Err(Error::Closed)), "recv")?;
    ensure(
        matches!(a.poll(Some(Duration::ZERO)), Err(Error::Closed)),
        "poll",
    )?;
    ensure(matches!(a.fd(), Err(Error::Closed)), "fd")?;
    for file in &files {
        let size = nix::sys::stat::fstat(file)?.st_size;
        ensure(size == 0, "no reused fd was written")?;
        let pos = nix::unistd::lseek(file, 0, nix::unistd::Whence::SeekCur)?;
        ensure(pos == 0, "no reused fd was read")?;
    }
    drop(files);
    ensure(
        matches!(b.recv_bytes(), Err(Error::Disconnected)),
        "peer sees EOF",
    )?;
    Ok(())
}

fn peer_death_is_disconnected() -> TestResult {
    for duplex in [true, false] {
        let (mut r, mut w) = pipe(duplex)?;
        let mut child = spawn(|| {
            close_raw(r.fd().expect("open"));
            let _ = w.send(&1u32);
            std::thread::sleep(Duration::from_secs(60));
            0
        });
        w.close()?;
        ensure(r.recv::<u32>()? == 1, "first message")?;
        child.kill_and_reap();
        let outcome = r.recv::<u32>();
        ensure(
            matches!(outcome, Err(Error::Disconnected)),
            format!("Disconnected, got {outcome:?}"),
        )?;
        if duplex {
            let outcome = r.send(&2u32);
            ensure(
                matches!(outcome, Err(Error::Disconnected)),
                format!("send: {outcome:?}"),
            )?;
        }
    }
    Ok(())
}

fn return_value_through_a_one_way_pipe() -> TestResult {
    let (mut r, mut w) = pipe(false)?;
    let mut child = spawn(|| {
        let _ = r.close();
        let result: u64 = (1..=10u64).product();
        if w.send(&result).is_ok() { 0 } else { 2 }
    });
    w.close()?;
    ensure(r.poll(Some(LONG))?, "result arrives")?;
    ensure(r.recv::<u64>()? == 3_628_800, "10!")?;
    ensure(child.wait(LONG) == Some(0), "child exits")?;
    Ok(())
}

fn t42_pipe_messages_in_order() -> TestResult {
    let n = VOLUME;
    let (mut r, mut w) = pipe(false)?;
    let mut child = spawn(|| {
        let _ = r.close();
        for i in 0..n {
            if w.send(&i).is_err() {
                return 2;
            }
        }
        0
    });
    w.close()?;
    for i in 0..n {
        let got: u64 = r.recv()?;
        ensure(got == i, format!("message {i} arrived as {got}"))?;
    }
    ensure(
        matches!(r.recv::<u64>(), Err(Error::Disconnected)),
        "nothing extra",
    )?;
    ensure(child.wait(LONG) == Some(0), "sender exits")?;
    Ok(())
}

fn t19_value_holder_killed_mid_update() -> TestResult {
    // Invariant: both fields are equal. The child breaks it half-way and dies holding the lock.
    let pair = Array::from_slice(&[5u64, 5])?;
    let ready = Event::new()?;
    let mut child = spawn(|| {
        if !pair.get_lock().acquire(None).is_ok_and(|ok| ok) || pair.set(0, 6).is_err() {
            return 2;
        }
        ready.set();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    ensure(ready.wait(Some(LONG))?, "child is mid-update")?;
    child.kill_and_reap();
    let outcome = pair.get(0);
    ensure(
        matches!(outcome, Err(Error::OwnerDied)),
        format!("OwnerDied, got {outcome:?}"),
    )?;
    // The caller holds the lock now: inspect and repair through the raw view.
    let raw = pair.get_obj();
    ensure(
        raw.to_vec() == vec![6, 5],
        "the half-done update is visible",
    )?;
    raw.set(1, raw.get(0)?)?;
    pair.get_lock().mark_consistent()?;
    pair.get_lock().release()?;
    ensure(pair.to_vec()? == vec![6, 6], "repaired")?;
    Ok(())
}

fn t49_shared_segment_cannot_be_resized() -> TestResult {
    use std::os::fd::AsFd;
    let data = RawArray::from_slice(&[1u32, 2, 3, 4])?;
    let mut child = spawn(|| {
        let shrink = nix::unistd::ftruncate(data.as_fd(), 0);
        let grow = nix::unistd::ftruncate(data.as_fd(), 1 << 30);
        let eperm = Err(nix::errno::Errno::EPERM);
        if shrink == eperm && grow == eperm {
            0
        } else {
            2
        }
    });
    ensure(
        child.wait(LONG) == Some(0),
        "ftruncate is EPERM in the child",
    )?;
    ensure(
        data.to_vec() == vec![1, 2, 3, 4],
        "every element still readable",
    )?;
    Ok(())
}

fn shared_counter_with_its_lock() -> TestResult {
    const WORKERS: usize = 4;
    const INCREMENTS: u64 = 2_000;
    let counter = Value::new(0u64)?;
    let mut children: Vec<_> = (0..WORKERS)
        .map(|_| {
            spawn(|| {
                for _ in 0..INCREMENTS {
                    if counter.update(|v| v + 1).is_err() {
                        return 2;
                    }
                }
                0
            })
        })
        .collect();
    for child in &mut children {
        ensure(child.wait(LONG) == Some(0), "worker finished")?;
    }
    ensure(counter.get()? == WORKERS as u64 * INCREMENTS, "exact total")?;
    Ok(())
}
