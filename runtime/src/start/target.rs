//! What a child runs: [`Target`] and [`TargetResult`].
#![forbid(unsafe_code)]

/// What a target returns: `Ok(())` exits with 0, an error exits with 1 and is printed on the
/// child's stderr.
pub type TargetResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The Rust form of subclassing `multiprocessing.Process` and overriding `run()`.
///
/// A `Target` can run any number of times: [`Process::run`] calls it in the caller and
/// leaves it in the handle, so a later [`Process::start`] runs it again, in the child.
///
/// # Examples
///
/// ```
/// use proclife::{Process, Target, TargetResult};
///
/// struct Countdown(u32);
///
/// impl Target for Countdown {
///     fn run(&mut self) -> TargetResult {
///         while self.0 > 0 {
///             self.0 -= 1;
///         }
///         Ok(())
///     }
/// }
///
/// let mut p = Process::from_target(Countdown(3));
/// p.run().unwrap(); // in the caller, like Python's `p.run()`
/// ```
pub trait Target: Send + 'static {
    /// The process's activity; mirrors `multiprocessing.Process.run`.
    ///
    /// # Errors
    ///
    /// An error ends a child with exit code 1 after printing it on the child's stderr.
    fn run(&mut self) -> TargetResult;
}
