//! Passing data between processes: `Pipe`/`Connection`, `Queue`, `Value`/`Array`.
//!
//! Everything here is built from close-on-exec fds (socketpairs, pipes, sealed memfds), so
//! an object can be handed to another process by fd; nothing is ever named in the file
//! system or in `/dev/shm`.

mod connection;
mod queue;
mod shared;
mod wait;

pub(crate) use connection::set_nonblocking;
pub use connection::{Connection, DEFAULT_MAX_FRAME, HEADER_LEN, pipe};
pub use queue::{DEFAULT_CAPACITY, JoinableQueue, MAX_CAPACITY, MIN_CAPACITY, Queue, SimpleQueue};
pub use shared::{Array, RawArray, RawValue, Shareable, Value};
pub use wait::{QUEUE_SLICE, Waitable, wait};
#[doc(hidden)]
pub use wait::{QueueReady, Readiness};

#[cfg(test)]
mod tests {
    //! Every blocking wait of the sync and ipc primitives marks the status slot.
    //!
    //! The status slot is process-global, so the check runs in a fresh copy of this test
    //! binary (re-executed with `--exact`, no fork), where no other test can touch it.

    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use crate::BlockedOn;
    use crate::children::status::{Installed, StatusSlot};
    use crate::ipc::{JoinableQueue, Queue, pipe};
    use crate::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};

    const CHILD_ENV: &str = "PROCLIFE_BLOCKED_STATUS_CHILD";
    const NAME: &str = "ipc::tests::every_wait_marks_the_status_slot";

    /// Runs `wait` on a thread until the slot says `on`, then `release`s it and checks that
    /// the slot says "running" again once the wait is over.
    fn expect_blocked(
        slot: &Installed,
        on: BlockedOn,
        wait: impl FnOnce() + Send,
        release: impl FnOnce(),
    ) {
        std::thread::scope(|s| {
            let waiter = s.spawn(wait);
            let start = Instant::now();
            let mut seen = false;
            while !seen && start.elapsed() < Duration::from_secs(10) {
                seen = slot.blocked_on() == Some(on);
                std::thread::sleep(Duration::from_millis(1));
            }
            // Release in any case, so that a failure ends the test instead of hanging it.
            release();
            assert!(waiter.join().is_ok(), "waiter for {on:?} panicked");
            assert!(seen, "never blocked on {on:?}");
        });
        assert_eq!(slot.blocked_on(), None, "still marked after {on:?}");
    }

    fn checks() {
        let me = crate::os::process::getpid();
        let slot = StatusSlot::new(me)
            .expect("slot")
            .install_current_as(me, me);

        let lock = Lock::new().expect("lock");
        assert!(lock.acquire(None).expect("acquire"));
        let wait = || {
            assert!(lock.acquire(None).expect("acquire"));
            lock.release().expect("release");
        };
        expect_blocked(&slot, BlockedOn::Lock, wait, || {
            lock.release().expect("release")
        });

        let rlock = RLock::new().expect("rlock");
        assert!(rlock.acquire(None).expect("acquire"));
        let wait = || {
            assert!(rlock.acquire(None).expect("acquire"));
            rlock.release().expect("release");
        };
        expect_blocked(&slot, BlockedOn::RLock, wait, || {
            rlock.release().expect("release")
        });

        let sem = Semaphore::new(0).expect("semaphore");
        let wait = || assert!(sem.acquire(None).expect("acquire"));
        expect_blocked(&slot, BlockedOn::Semaphore, wait, || {
            sem.release().expect("release")
        });

        let event = Event::new().expect("event");
        let wait = || assert!(event.wait(None).expect("wait"));
        expect_blocked(&slot, BlockedOn::Event, wait, || event.set());

        let cond = Condition::new().expect("condition");
        let wait = || {
            assert!(cond.acquire(None).expect("acquire"));
            assert!(cond.wait(None).expect("wait"));
            cond.release().expect("release");
        };
        let notify = || {
            // The waiter released the lock inside `wait`, so this does not block.
            assert!(cond.acquire(None).expect("acquire"));
            cond.notify_all().expect("notify");
            cond.release().expect("release");
        };
        expect_blocked(&slot, BlockedOn::Condition, wait, notify);

        let barrier = Barrier::new(2, None).expect("barrier");
        let wait = || {
            barrier.wait().expect("wait");
        };
        expect_blocked(&slot, BlockedOn::Barrier, wait, || {
            barrier.wait().expect("wait");
        });

        let (mut a, mut b) = pipe(true).expect("pipe");
        let wait = || assert_eq!(a.recv::<u8>().expect("recv"), 7);
        expect_blocked(&slot, BlockedOn::Recv, wait, || b.send(&7u8).expect("send"));

        // A frame far larger than the socket buffer: the sender waits for the reader. The
        // reader drains the raw fd, so that only the sender touches the slot.
        let big = vec![5u8; 8 << 20];
        let wait = || b.send_bytes(&big).expect("send");
        expect_blocked(&slot, BlockedOn::Send, wait, || {
            let mut left = big.len() + crate::ipc::HEADER_LEN;
            let mut buf = vec![0u8; 1 << 16];
            let mut fds = [nix::poll::PollFd::new(
                a.fd().expect("open"),
                nix::poll::PollFlags::POLLIN,
            )];
            while left > 0 {
                match nix::unistd::read(a.fd().expect("open"), &mut buf) {
                    Ok(n) => left -= n,
                    Err(nix::errno::Errno::EAGAIN) => {
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8));
                    }
                    Err(errno) => panic!("read: {errno}"),
                }
            }
        });

        let queue = Queue::<u8>::with_capacity(1, 4096).expect("queue");
        let wait = || assert_eq!(queue.get().expect("get"), 1);
        expect_blocked(&slot, BlockedOn::Recv, wait, || queue.put(&1).expect("put"));
        queue.put(&2).expect("put");
        let wait = || queue.put(&3).expect("put");
        expect_blocked(&slot, BlockedOn::Send, wait, || {
            assert_eq!(queue.get().expect("get"), 2);
        });

        let tasks = JoinableQueue::<u8>::with_capacity(0, 4096).expect("queue");
        tasks.put(&1).expect("put");
        let wait = || assert!(tasks.join(None).expect("join"));
        expect_blocked(&slot, BlockedOn::Join, wait, || {
            assert_eq!(tasks.get().expect("get"), 1);
            tasks.task_done().expect("task_done");
        });
    }

    #[test]
    fn every_wait_marks_the_status_slot() {
        if std::env::var_os(CHILD_ENV).is_some() {
            checks();
            return;
        }
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-execute the test binary");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the status check did not finish");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        }
        assert!(status.success(), "status check failed:\n{out}");
        assert!(out.contains("1 passed"), "the check did not run:\n{out}");
    }
}
