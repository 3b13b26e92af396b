//! Bugs planted on purpose in the runtime, so that the checkers can be shown to catch them.
//!
//! With the `planted-bugs` feature, the environment variable [`ENV`] names at most one bug
//! (read once per process, inherited by every child); code paths that carry a planted bug
//! ask [`active`] and misbehave only when it names them. Without the feature, [`active`] is
//! the constant `false` and every planted branch compiles away.
#![forbid(unsafe_code)]

/// The environment variable that names the planted bug to switch on (feature `planted-bugs`).
pub const ENV: &str = "PROCLIFE_PLANTED_BUG";

/// Whether the planted bug `name` is switched on in this process.
///
/// Always `false` without the `planted-bugs` feature.
#[cfg(feature = "planted-bugs")]
pub fn active(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| std::env::var(ENV).ok())
        .as_deref()
        .is_some_and(|chosen| chosen == name)
}

/// Whether the planted bug `name` is switched on in this process.
///
/// Always `false` without the `planted-bugs` feature.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub const fn active(_name: &str) -> bool {
    false
}
