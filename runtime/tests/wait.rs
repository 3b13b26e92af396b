//! `proclife::ipc::wait` over processes, connections and queues, and `Process::interrupt`;
//! written with `#[proclife::test]` under the default harness.

use std::time::Duration;

use proclife::ipc::{Queue, SimpleQueue, Waitable, pipe, wait};
use proclife::sync::Event;
use proclife::{Error, Process, StartMethod, TargetResult};

/// Bounds every wait for something that happens soon; never reached when all is well.
const BOUND: Option<Duration> = Some(Duration::from_secs(60));

fn sleeper() -> Process {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(120)));
    p.start().expect("start");
    p
}

/// Makes SIGINT's disposition the default, which the children inherit: a shell's background
/// job starts with SIGINT ignored, and `interrupt()` must end the child. Each test body runs in
/// a process of its own, so nothing needs restoring.
fn default_sigint() {
    // SAFETY: SIG_DFL is a valid disposition; the process is single-threaded here.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

#[proclife::test]
fn the_process_that_exits_is_the_one_ready() -> proclife::Result<()> {
    default_sigint();
    let long = sleeper();
    let mut short = Process::new(|| std::process::exit(4));
    short.start()?;
    let ready = wait(&[&long as &dyn Waitable, &short], BOUND)?;
    assert_eq!(ready, vec![1]);
    short.join()?;
    assert_eq!(short.exitcode()?, Some(4));
    // Nothing else becomes ready: a zero timeout checks once, a short one expires.
    assert_eq!(
        wait(&[&long as &dyn Waitable], Some(Duration::ZERO))?,
        Vec::<usize>::new()
    );
    assert_eq!(
        wait(&[&long as &dyn Waitable], Some(Duration::from_millis(20)))?,
        Vec::<usize>::new()
    );
    long.interrupt()?;
    assert_eq!(wait(&[&long as &dyn Waitable], BOUND)?, vec![0]);
    long.join()?;
    assert_eq!(long.exitcode()?, Some(-2), "interrupt() is SIGINT");
    Ok(())
}

fn exit_with(code: i32) -> TargetResult {
    std::process::exit(code)
}
fn sleep_long((): ()) -> TargetResult {
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}
proclife::entry!(exit_with, sleep_long);

#[proclife::test]
fn sentinels_are_ready_under_every_method() -> proclife::Result<()> {
    default_sigint();
    for method in StartMethod::ALL {
        let mut long = Process::builder()
            .start_method(method)
            .entry(sleep_long, ());
        let mut short = Process::builder().start_method(method).entry(exit_with, 6);
        long.start()?;
        short.start()?;
        assert_eq!(
            wait(&[&long as &dyn Waitable, &short], BOUND)?,
            vec![1],
            "under {method}"
        );
        long.interrupt()?;
        assert_eq!(
            wait(&[&long as &dyn Waitable], BOUND)?,
            vec![0],
            "under {method}"
        );
        long.join()?;
        short.join()?;
        assert_eq!(
            (long.exitcode()?, short.exitcode()?),
            (Some(-2), Some(6)),
            "under {method}"
        );
    }
    proclife::stop_fork_server()
}

#[proclife::test]
fn connections_and_queues_are_ready_when_there_is_something_to_get() -> proclife::Result<()> {
    let (mut rx, mut tx) = pipe(false)?;
    let queue: Queue<u32> = Queue::new(0)?;
    let simple: SimpleQueue<String> = SimpleQueue::new()?;
    let go = Event::new()?;
    let child_go = Event::from_fd(
        std::os::fd::AsFd::as_fd(&go)
            .try_clone_to_owned()
            .map_err(|_| Error::HandleClosed)?,
    )?;
    let child_queue = Queue::<u32>::from_fd(
        std::os::fd::AsFd::as_fd(&queue)
            .try_clone_to_owned()
            .map_err(|_| Error::HandleClosed)?,
    )?;
    let mut p = Process::new(move || {
        child_go.wait(None).expect("wait");
        child_queue.put(&9).expect("put");
        tx.send(&1u8).expect("send");
    });
    p.start()?;
    let nothing_yet = wait(
        &[&rx as &dyn Waitable, &queue, &simple],
        Some(Duration::ZERO),
    )?;
    assert_eq!(nothing_yet, Vec::<usize>::new());
    go.set();
    let first = wait(&[&rx as &dyn Waitable, &queue, &simple], BOUND)?;
    // The child puts before it sends: the queue is ready, the pipe perhaps already too.
    assert!(first == vec![1] || first == vec![0, 1], "{first:?}");
    assert_eq!(queue.get()?, 9);
    assert_eq!(wait(&[&rx as &dyn Waitable], BOUND)?, vec![0]);
    assert_eq!(rx.recv::<u8>()?, 1);
    p.join()?;
    // The child is gone and its end closed: end of file counts as ready, as in CPython.
    assert_eq!(wait(&[&rx as &dyn Waitable, &queue], BOUND)?, vec![0]);
    simple.put(&"x".to_owned())?;
    assert_eq!(
        wait(&[&rx as &dyn Waitable, &queue, &simple], BOUND)?,
        vec![0, 2]
    );
    Ok(())
}

#[proclife::test]
fn closed_objects_give_their_own_errors() -> proclife::Result<()> {
    let (mut rx, tx) = pipe(false)?;
    rx.close()?;
    assert!(matches!(rx.recv::<u8>(), Err(Error::HandleClosed)));
    assert!(matches!(
        wait(&[&rx as &dyn Waitable], BOUND),
        Err(Error::HandleClosed)
    ));
    assert!(matches!(tx.poll(None), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        wait(&[&tx as &dyn Waitable], BOUND),
        Err(Error::InvalidArgument(_))
    ));

    let queue: Queue<u8> = Queue::new(0)?;
    queue.close();
    assert!(matches!(queue.get(), Err(Error::HandleClosed)));
    assert!(matches!(
        wait(&[&queue as &dyn Waitable], BOUND),
        Err(Error::HandleClosed)
    ));

    let mut p = Process::new(|| ());
    assert!(matches!(p.sentinel(), Err(Error::SentinelNotStarted)));
    assert!(matches!(
        wait(&[&p as &dyn Waitable], BOUND),
        Err(Error::SentinelNotStarted)
    ));
    assert!(matches!(p.interrupt(), Err(Error::KillNotStarted)));
    p.start()?;
    p.join()?;
    p.close()?;
    assert!(matches!(p.sentinel(), Err(Error::Closed)));
    assert!(matches!(
        wait(&[&p as &dyn Waitable], BOUND),
        Err(Error::Closed)
    ));
    assert!(matches!(p.interrupt(), Err(Error::Closed)));
    Ok(())
}
