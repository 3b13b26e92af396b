//! The fork server's protocol, shared by its client and its server: the server's bootstrap
//! payload and the reply to a start request.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::pid::Pid;
use crate::start::bootstrap::wire::{Build, raw_pid};

/// What a fork server needs besides its parent's pidfd.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ServerBoot {
    pub(super) build: Build,
    #[serde(with = "raw_pid")]
    pub(super) parent: Pid,
}

/// The server's answer to a start request.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Reply {
    /// The child runs; its pidfd comes with the message.
    Started {
        #[serde(with = "raw_pid")]
        pid: Pid,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply as it was encoded before pids were typed: the bytes must not change.
    #[derive(Debug, Serialize)]
    enum RawReply {
        Started { pid: i32 },
    }

    #[test]
    fn a_started_reply_keeps_its_bytes_and_refuses_a_non_positive_pid() {
        let pid = Pid::from_raw(4242).expect("positive");
        let typed = postcard::to_allocvec(&Reply::Started { pid }).expect("encode");
        let raw = postcard::to_allocvec(&RawReply::Started { pid: 4242 }).expect("encode");
        assert_eq!(typed, raw);
        match postcard::from_bytes::<Reply>(&raw) {
            Ok(Reply::Started { pid: back }) => assert_eq!(back, pid),
            other => panic!("expected Started {{ pid: 4242 }}, got {other:?}"),
        }
        for bad in [0, -1, i32::MIN] {
            let bytes = postcard::to_allocvec(&RawReply::Started { pid: bad }).expect("encode");
            let decoded = postcard::from_bytes::<Reply>(&bytes);
            assert!(
                matches!(decoded, Err(postcard::Error::SerdeDeCustom)),
                "pid {bad}: expected the pid check's error, got {decoded:?}"
            );
        }
    }
}
