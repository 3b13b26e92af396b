//! The forkserver start method: one server process per parent, started by re-execution
//! while nothing of the parent's threads can leak into it, forks every child on request.
//!
//! The parent talks to its server over a socket pair. A start request is a child bootstrap
//! message (as for spawn), fds included; the server forks, and the child checks the message
//! and runs the entry point exactly as a spawned child does, except that the parent's pidfd
//! is not in the request: it travels once, with the server's bootstrap, and every forked
//! child takes the server's copy (one open file, shared by server and children; nobody
//! changes its flags). Nor is the status slot: the parent sends the server, with its
//! bootstrap, the memfd of a region of status cells, which the server maps once and every
//! forked child inherits, and the request names the child's cell by number (decision 0027).
//! The server opens the child's pidfd and sends it back with
//! `SCM_RIGHTS`, so the parent polls and signals the child by pidfd like any other; the
//! server reaps the child, and the parent reads the exit status with
//! `ioctl(PIDFD_GET_INFO, PIDFD_INFO_EXIT)` (Linux 6.15, checked when the server starts:
//! [`Error::Unsupported`] before).
//!
//! The server is single-threaded, so its forks are sound. It dies with its parent: it
//! watches the parent's pidfd (not `PR_SET_PDEATHSIG`, which follows the parent *thread*
//! that happened to start it), and its daemon children carry `PR_SET_PDEATHSIG` towards the
//! server, so they die with it (T27). When the parent closes the socket (at
//! [`stop_fork_server`]) the server waits for its remaining children, then exits.
//!
//! Server death (T32): a start that finds the server dead, or sees it die during the
//! request, fails with [`Error::ForkServerDied`] and forgets it; the next start launches a
//! new server. Children that outlive a dead server are orphans that the server can no
//! longer reap: their daemon ones are killed by their death signal, and a child whose exit
//! nobody reaped is reported with exit code 255, as CPython does.
//!
//! The parent's side ([`client`]) and the server's loop ([`server`]) run in two different
//! processes and share only the bootstrap wire format and the [`protocol`].

pub(crate) mod client;
mod protocol;
pub(crate) mod server;
