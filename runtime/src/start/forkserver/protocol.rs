//! The fork server's protocol, shared by its client and its server: the server's bootstrap
//! payload and the reply to a start request.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::start::bootstrap::wire::Build;

/// What a fork server needs besides its parent's pidfd.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ServerBoot {
    pub(super) build: Build,
    pub(super) parent: i32,
}

/// The server's answer to a start request.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Reply {
    /// The child runs; its pidfd comes with the message.
    Started { pid: i32 },
    /// The fork (or the pidfd) failed with this errno.
    Failed { call: String, errno: i32 },
}

pub(super) fn call_name(call: &str) -> &'static str {
    match call {
        "fork" => "fork",
        "pidfd_open" => "pidfd_open",
        _ => "fork server",
    }
}
