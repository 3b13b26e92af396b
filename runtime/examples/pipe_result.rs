//! A child returns a value to its parent through a `Pipe`, as in the Python tutorial's
//! `parent_conn, child_conn = Pipe()` example.

use std::time::Duration;

use proclife::Process;
use proclife::ipc::pipe;

/// What the child sends back: the tutorial's `[42, None, 'hello']`.
type Answer = (i32, Option<i32>, String);

/// Runs the example; returns an error if the value does not arrive intact.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut parent_conn, mut child_conn) = pipe(true)?;

    // The child's end moves into the target. The parent drops its copy when `start`
    // returns, so afterwards only the child holds that end.
    let mut p =
        Process::builder()
            .name("answerer")
            .fallible_target(move || -> proclife::Result<()> {
                let answer: Answer = (42, None, "hello".to_string());
                child_conn.send(&answer)?;
                child_conn.close()
            });
    p.start()?;

    // `recv` waits (in `poll`) until the whole value has arrived; bound the wait.
    if !parent_conn.poll(Some(Duration::from_secs(10)))? {
        return Err("no answer within 10 s".into());
    }
    let answer: Answer = parent_conn.recv()?;
    println!("parent received {answer:?}");
    if answer != (42, None, "hello".to_string()) {
        return Err(format!("unexpected answer {answer:?}").into());
    }

    p.join_timeout(Duration::from_secs(10))?;
    println!("child exitcode {:?}", p.exitcode()?);
    if p.exitcode()? != Some(0) {
        return Err(format!("child exited with {:?}", p.exitcode()?).into());
    }

    // Every copy of the child's end is closed now: the pipe reports the end of the stream.
    match parent_conn.recv::<Answer>() {
        Err(proclife::Error::Disconnected) => println!("the pipe is closed at the other end"),
        other => return Err(format!("a second recv gave {other:?}").into()),
    }
    Ok(())
}
