//! Entry points: the functions a re-executed child may run, and their arguments.
//!
//! A re-executed child shares no memory with its parent, so it can only run code that both
//! processes can name. [`entry!`](crate::entry) registers a function in a linker section
//! (`linkme`'s distributed slice); its key is the function's type name and its argument
//! type's name, both fixed at compile time. The parent sends the key, never a code
//! address; the child looks the key up in its own copy of the section and refuses unknown
//! keys (T40).

use std::any::type_name;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::pass;
use crate::error::{Error, Result};
use crate::start::target::TargetResult;

/// What a registered entry point prepares from received arguments: the call, ready to run.
pub type Prepared = Box<dyn FnOnce() -> TargetResult>;

/// One registered entry point. Made by [`entry!`](crate::entry) only.
#[derive(Debug)]
pub struct EntryPoint {
    key: fn() -> String,
    prepare: fn(&[u8], Vec<OwnedFd>) -> Result<Prepared>,
}

impl EntryPoint {
    /// An entry point with its key and its argument decoder; used by [`entry!`](crate::entry).
    #[doc(hidden)]
    pub const fn new(
        key: fn() -> String,
        prepare: fn(&[u8], Vec<OwnedFd>) -> Result<Prepared>,
    ) -> EntryPoint {
        EntryPoint { key, prepare }
    }
}

/// Every entry point of the program, gathered by the linker.
// The slice is a static in its own link section, which the `unsafe_code` lint flags; linkme
// generates it and checks that every element has the slice's type.
#[allow(unsafe_code)]
#[linkme::distributed_slice]
#[doc(hidden)]
pub static ENTRIES: [EntryPoint];

/// The key of the entry point `f`: its type name and its argument type's name.
#[doc(hidden)]
pub fn key_of<F, A>(_f: &F) -> String
where
    F: FnOnce(A) -> TargetResult,
{
    format!("{}({})", type_name::<F>(), type_name::<A>())
}

/// Decodes the arguments of `f` and returns the call; used by [`entry!`](crate::entry).
///
/// # Errors
///
/// As `pass::decode`: the arguments do not decode as `A`.
#[doc(hidden)]
pub fn prepare<F, A>(bytes: &[u8], fds: Vec<OwnedFd>, f: F) -> Result<Prepared>
where
    F: FnOnce(A) -> TargetResult + 'static,
    A: DeserializeOwned + 'static,
{
    let args: A = pass::decode(bytes, fds)?;
    Ok(Box::new(move || f(args)))
}

/// The entry points by key, built by [`index_entries`] (in a fork server, before it forks
/// any child, so that its children inherit it).
static INDEX: OnceLock<HashMap<String, &'static EntryPoint>> = OnceLock::new();

/// The entry point registered under `key`, if any: from the index when this process (or the
/// fork server it was forked from) built one, else by formatting the registered keys one by
/// one until one matches.
pub(crate) fn find(key: &str) -> Option<&'static EntryPoint> {
    match INDEX.get() {
        Some(index) => index.get(key).copied(),
        None => ENTRIES.iter().find(|entry| (entry.key)() == key),
    }
}

/// Builds the index [`find`] uses, once per process. A fork server builds it at its start:
/// otherwise every child it forks would format the registered keys again, writing fresh
/// heap pages and touching code that `fork` left unmapped (page faults per child).
pub(crate) fn index_entries() {
    INDEX.get_or_init(|| {
        let mut index = HashMap::with_capacity(ENTRIES.len());
        for entry in ENTRIES.iter() {
            // Two functions with the same key cannot both be found; the first one wins, as
            // with the search without index.
            index.entry((entry.key)()).or_insert(entry);
        }
        index
    });
}

impl EntryPoint {
    /// Decodes the arguments and returns the call.
    pub(crate) fn prepare(&self, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<Prepared> {
        (self.prepare)(bytes, fds)
    }
}

/// A function target with its arguments, as a handle holds it.
pub(crate) trait EntryTarget: Send {
    /// The key under which the function must be registered.
    fn key(&self) -> String;
    /// Encodes the arguments for a re-executed child.
    fn encode(&self) -> Result<(Vec<u8>, Vec<OwnedFd>)>;
    /// Calls the function in this process (the fork method, and `Process::run`).
    fn call(self: Box<Self>) -> TargetResult;
    /// Calls the function in the caller on a copy of the arguments made the way a
    /// re-executed child receives them (IPC objects through duplicated fds), so the target
    /// and its arguments stay in the handle, as CPython's `run()` leaves them.
    fn call_on_copy(&self) -> TargetResult;
}

/// The one implementation of [`EntryTarget`].
pub(crate) struct FnTarget<F, A> {
    pub(crate) f: F,
    pub(crate) args: A,
}

impl<F, A> EntryTarget for FnTarget<F, A>
where
    F: FnOnce(A) -> TargetResult + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
{
    fn key(&self) -> String {
        key_of(&self.f)
    }

    fn encode(&self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        pass::encode(&self.args)
    }

    fn call(self: Box<Self>) -> TargetResult {
        (self.f)(self.args)
    }

    fn call_on_copy(&self) -> TargetResult {
        let (bytes, fds) = pass::encode(&self.args)?;
        let copy: A = pass::decode(&bytes, fds)?;
        (self.f)(copy)
    }
}

/// Checks that `target` can run in a re-executed child and encodes it: key and arguments.
///
/// # Errors
///
/// [`Error::UnregisteredEntry`] when the function was not registered with
/// [`entry!`](crate::entry); the arguments' encoding errors.
pub(crate) fn export(target: &dyn EntryTarget) -> Result<(String, Vec<u8>, Vec<OwnedFd>)> {
    let key = target.key();
    if find(&key).is_none() {
        return Err(Error::UnregisteredEntry { key });
    }
    let (bytes, fds) = target.encode()?;
    Ok((key, bytes, fds))
}

/// Registers functions as entry points, so that they can be the target of a process started
/// by re-execution ([`StartMethod::Spawn`](crate::StartMethod::Spawn) and
/// [`StartMethod::ForkServer`](crate::StartMethod::ForkServer)).
///
/// Each function takes one argument (use a tuple or a struct for several) that implements
/// `Serialize` and `DeserializeOwned`, and returns [`TargetResult`](crate::TargetResult).
/// IPC and synchronisation objects (`Connection`, `Queue`, `Lock`, `Event`, ...) can be
/// part of the argument: they travel as file descriptors. Write the macro next to the
/// function, at module level; a function registered twice is harmless. The registration is
/// a static in a link section, which the `unsafe_code` lint counts as unsafe: the macro
/// allows it locally, so it works under `#![deny(unsafe_code)]` but not under
/// `#![forbid(unsafe_code)]`.
///
/// # Examples
///
/// ```no_run
/// use proclife::ipc::Connection;
/// use proclife::{Process, StartMethod, TargetResult};
///
/// fn echo((mut conn, times): (Connection, u32)) -> TargetResult {
///     for _ in 0..times {
///         let word: String = conn.recv()?;
///         conn.send(&word)?;
///     }
///     Ok(())
/// }
/// proclife::entry!(echo);
///
/// # fn main() -> proclife::Result<()> {
/// let (mut here, there) = proclife::ipc::pipe(true)?;
/// let mut p = Process::builder()
///     .start_method(StartMethod::Spawn)
///     .entry(echo, (there, 1));
/// p.start()?;
/// here.send(&"hi".to_owned())?;
/// assert_eq!(here.recv::<String>()?, "hi");
/// p.join()?;
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! entry {
    ($($f:path),+ $(,)?) => {
        $crate::__register_entries!($crate::__private::key_of, $crate::__private::prepare; $($f),+);
    };
}

/// The registration shared by [`entry!`](crate::entry) and
/// [`entry_returning!`](crate::entry_returning): one `EntryPoint` per function in the
/// `linkme` slice, keyed by `$key(&f)` and prepared by `$prepare(bytes, fds, f)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __register_entries {
    ($key:path, $prepare:path; $($f:path),+) => {$(
        #[allow(unsafe_code)]
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::ENTRIES)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::EntryPoint = $crate::__private::EntryPoint::new(
                || $key(&$f),
                |bytes, fds| $prepare(bytes, fds, $f),
            );
        };
    )+};
}

/// The target of a process without one, under the re-executing methods.
pub(crate) fn no_target((): ()) -> TargetResult {
    Ok(())
}
crate::entry!(no_target);

/// Registers functions whose value comes back to the parent
/// ([`Builder::entry_returning`]), so that the re-executing start methods can run them;
/// as [`entry!`](crate::entry) for functions that return a [`TargetResult`].
///
/// Each function takes one argument (`Serialize + DeserializeOwned`, IPC objects
/// included) and returns any `Serialize + DeserializeOwned` type.
///
/// ```no_run
/// use proclife::{Process, StartMethod};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// proclife::entry_returning!(square);
///
/// # fn main() -> Result<(), proclife::result::ResultError> {
/// let mut h = Process::builder()
///     .start_method(StartMethod::Spawn)
///     .entry_returning(square, 12);
/// h.start()?;
/// assert_eq!(h.join()?, 144);
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! entry_returning {
    ($($f:path),+ $(,)?) => {
        $crate::__register_entries!($crate::result::key_of, $crate::result::prepare; $($f),+);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index finds what the search finds, for every registered key, and nothing for a
    /// key that is not registered.
    #[test]
    fn the_index_finds_what_the_search_finds() {
        let keys: Vec<String> = ENTRIES.iter().map(|entry| (entry.key)()).collect();
        assert!(
            keys.iter().any(|key| key.contains("no_target")),
            "expected the runtime's own entry among {keys:?}"
        );
        let searched: Vec<*const EntryPoint> = keys
            .iter()
            .map(|key| ENTRIES.iter().find(|entry| (entry.key)() == *key))
            .map(|found| found.map_or(std::ptr::null(), std::ptr::from_ref))
            .collect();
        index_entries();
        let indexed: Vec<*const EntryPoint> = keys
            .iter()
            .map(|key| find(key).map_or(std::ptr::null(), std::ptr::from_ref))
            .collect();
        assert_eq!(indexed, searched, "keys {keys:?}");
        assert!(find("not::registered(())").is_none());
    }
}
