//! The sequential specification of `Pipe()`: its two ends (`Connection`s), the items in
//! flight towards each end, and which processes hold each end.
//!
//! End of file and a broken pipe depend on every copy of an end, in every process: `recv`
//! on an end with nothing left to receive raises `EOFError` only once no process holds the
//! end that sends to it (until then it waits), and `send` raises `BrokenPipeError` once no
//! process holds the end that receives from it (Linux: `read(2)` returns 0 only when every
//! copy of the write side is closed; `write(2)` and `sendmsg(2)` fail with `EPIPE` when
//! every copy of the read side is). So the state names the holders of each end explicitly:
//! a process holds the ends the program gives it at its start (the harness closes the
//! others, under every start method), `close()` drops the caller's hold, a process that
//! ends normally drops all of its holds, and so does a killed one. Why the holders are part
//! of the state, and what that costs: decision 0024.
//!
//! `Pipe(duplex=True)` (proclife: a socket pair) sends from each end to the other.
//! `Pipe(duplex=False)` returns `(reader, writer)`: end 0 only receives, end 1 only sends,
//! as in CPython. A call through an end its caller closed (or never held) raises
//! `OSError: handle is closed` before anything else is checked, then the direction is
//! checked (`connection is read-only` / `write-only`), as CPython's `_check_closed`,
//! `_check_readable` and `_check_writable` do.
//!
//! An item is one small frame, written by one `writev(2)` or `sendmsg(2)` (under
//! `PIPE_BUF`): a sender killed in `send` leaves it whole in the pipe or absent, never
//! torn, which the judge's optional pending call expresses. Which refusal row an end of
//! file or a broken pipe is depends on how the other end's last holder went: closed (or
//! ended normally) or killed.

use std::collections::VecDeque;

use crate::objects::call::{Call, Object, Ret};
use crate::objects::refusal::Refusal;
use crate::objects::spec::Spec;

/// `Pipe(duplex=True)` or `Pipe(duplex=False)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipeSpec {
    /// `Pipe` (duplex) or `OneWayPipe`.
    pub kind: Object,
    /// The items sent and not yet received, oldest first, by the end that receives them.
    pub buffers: [VecDeque<u32>; 2],
    /// Bit `p` of `holders[e]`: process `p` holds end `e`.
    pub holders: [u32; 2],
    /// Whether the last holder of end `e` was killed (rather than closing it or ending).
    pub killed: [bool; 2],
}

fn bit(proc: usize) -> u32 {
    1 << proc.min(31)
}

impl PipeSpec {
    /// A pipe of `kind` with nothing in flight, end `e` held by the processes of the bits
    /// of `holders[e]`.
    pub fn new(kind: Object, holders: [u32; 2]) -> PipeSpec {
        PipeSpec {
            kind,
            buffers: [VecDeque::new(), VecDeque::new()],
            holders,
            killed: [false; 2],
        }
    }

    fn duplex(&self) -> bool {
        self.kind == Object::Pipe
    }

    /// The end `end` of `call`, if it is one of this pipe's.
    fn end(&self, call: Call) -> Option<usize> {
        let (obj, end) = match call {
            Call::Send { obj, end, .. }
            | Call::Recv { obj, end }
            | Call::Poll { obj, end, .. }
            | Call::CloseEnd { obj, end } => (obj, end),
            _ => return None,
        };
        (obj == self.kind && end < 2).then_some(usize::from(end))
    }

    /// Drops `proc`'s holds; a hold dropped last marks its end as lost by a kill or not.
    fn drop_holds(&self, proc: usize, by_kill: bool) -> PipeSpec {
        let mut next = self.clone();
        for e in 0..2 {
            if next.holders[e] & bit(proc) != 0 {
                next.holders[e] &= !bit(proc);
                if next.holders[e] == 0 {
                    next.killed[e] = by_kill;
                }
            }
        }
        next
    }

    /// The refusal of a `send` whose receiving end nobody holds.
    fn broken(&self, peer: usize) -> Refusal {
        match (self.duplex(), self.killed[peer]) {
            (true, true) => Refusal::CONNECTION_SEND_PEER_KILLED,
            (true, false) => Refusal::CONNECTION_SEND_DUPLEX_PEER_CLOSED,
            (false, true) => Refusal::CONNECTION_SEND_READER_KILLED,
            (false, false) => Refusal::CONNECTION_SEND_PEER_CLOSED,
        }
    }

    /// The refusal of a `recv` with nothing to receive whose sending end nobody holds.
    fn end_of_file(&self, peer: usize) -> Refusal {
        match (self.duplex(), self.killed[peer]) {
            (true, true) => Refusal::CONNECTION_RECV_PEER_KILLED,
            (true, false) => Refusal::CONNECTION_RECV_PEER_CLOSED,
            (false, true) => Refusal::CONNECTION_RECV_WRITER_KILLED,
            (false, false) => Refusal::CONNECTION_RECV_WRITER_CLOSED,
        }
    }
}

impl Spec for PipeSpec {
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, PipeSpec)> {
        let Some(e) = self.end(call) else {
            return Vec::new();
        };
        let raised = |refusal| vec![(Ret::Raised { refusal }, self.clone())];
        let peer = 1 - e;
        let holds = self.holders[e] & bit(proc) != 0;
        // A one-way pipe's end 0 only receives, its end 1 only sends.
        let receives = self.duplex() || e == 0;
        let sends = self.duplex() || e == 1;
        match call {
            Call::CloseEnd { .. } => {
                let mut next = self.clone();
                if holds {
                    next.holders[e] &= !bit(proc);
                    if next.holders[e] == 0 {
                        next.killed[e] = false;
                    }
                }
                vec![(Ret::None, next)]
            }
            Call::Send { .. } if !holds => raised(Refusal::CONNECTION_SEND_CLOSED),
            Call::Send { .. } if !sends => raised(Refusal::CONNECTION_SEND_READ_ONLY),
            Call::Send { .. } if self.holders[peer] == 0 => raised(self.broken(peer)),
            Call::Send { item, .. } => {
                let mut next = self.clone();
                next.buffers[peer].push_back(item);
                vec![(Ret::None, next)]
            }
            Call::Recv { .. } if !holds => raised(Refusal::CONNECTION_RECV_CLOSED),
            Call::Recv { .. } if !receives => raised(Refusal::CONNECTION_RECV_WRITE_ONLY),
            Call::Recv { .. } => match self.buffers[e].front() {
                Some(&item) => {
                    let mut next = self.clone();
                    next.buffers[e].pop_front();
                    vec![(
                        Ret::Int {
                            value: i64::from(item),
                        },
                        next,
                    )]
                }
                None if self.holders[peer] == 0 => raised(self.end_of_file(peer)),
                // Waits for an item or for the last sender to go.
                None => Vec::new(),
            },
            Call::Poll { .. } if !holds => raised(Refusal::CONNECTION_POLL_CLOSED),
            Call::Poll { .. } if !receives => raised(Refusal::CONNECTION_POLL_WRITE_ONLY),
            Call::Poll { timeout_ms, .. } => {
                // End of file counts as something to receive, as in CPython.
                if !self.buffers[e].is_empty() || self.holders[peer] == 0 {
                    vec![(Ret::Bool { value: true }, self.clone())]
                } else if timeout_ms.is_some() {
                    vec![(Ret::Bool { value: false }, self.clone())]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn die(&self, proc: usize) -> PipeSpec {
        self.drop_holds(proc, true)
    }

    fn exit(&self, proc: usize) -> PipeSpec {
        self.drop_holds(proc, false)
    }

    fn label(&self) -> String {
        let procs = |mask: u32| -> String {
            let names: Vec<String> = (0..32)
                .filter(|p| mask & 1 << p != 0)
                .map(|p| format!("p{p}"))
                .collect();
            if names.is_empty() {
                "nobody".to_owned()
            } else {
                names.join(" ")
            }
        };
        let items = |q: &VecDeque<u32>| -> String {
            let items: Vec<String> = q.iter().map(u32::to_string).collect();
            format!("[{}]", items.join(", "))
        };
        format!(
            "end 0 held by {}{}, to receive {}; end 1 held by {}{}, to receive {}",
            procs(self.holders[0]),
            if self.killed[0] { " (last killed)" } else { "" },
            items(&self.buffers[0]),
            procs(self.holders[1]),
            if self.killed[1] { " (last killed)" } else { "" },
            items(&self.buffers[1]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(obj: Object, end: u8, item: u32) -> Call {
        Call::Send { obj, end, item }
    }

    fn refused(refusal: Refusal) -> Ret {
        Ret::Raised { refusal }
    }

    fn after(state: &PipeSpec, proc: usize, call: Call) -> (Ret, PipeSpec) {
        let mut out = state.step(proc, call);
        assert_eq!(out.len(), 1, "{call} by p{proc} in {}", state.label());
        out.remove(0)
    }

    #[test]
    fn a_duplex_pipe_is_fifo_each_way_and_ends_when_every_holder_is_gone() {
        let obj = Object::Pipe;
        // p0 holds both ends, p1 only end 1.
        let pipe = PipeSpec::new(obj, [0b01, 0b11]);
        let (_, one) = after(&pipe, 0, send(obj, 0, 7));
        let (_, two) = after(&one, 0, send(obj, 0, 8));
        let recv = Call::Recv { obj, end: 1 };
        let (got, rest) = after(&two, 1, recv);
        assert_eq!(got, Ret::Int { value: 7 });
        let (got, empty) = after(&rest, 1, recv);
        assert_eq!(got, Ret::Int { value: 8 });
        // p0 still holds end 0: p1's receive waits, a timed poll says False.
        assert!(empty.step(1, recv).is_empty());
        let poll = Call::Poll {
            obj,
            end: 1,
            timeout_ms: Some(5),
        };
        assert_eq!(after(&empty, 1, poll).0, Ret::Bool { value: false });
        // Once p0 closed end 0, end of file; p1's own end 1 does not keep it open.
        let (_, closed) = after(&empty, 0, Call::CloseEnd { obj, end: 0 });
        assert_eq!(after(&closed, 1, poll).0, Ret::Bool { value: true });
        assert_eq!(
            after(&closed, 1, recv).0,
            refused(Refusal::CONNECTION_RECV_PEER_CLOSED)
        );
        // p0 no longer holds end 0: its own calls through it are refused.
        assert_eq!(
            after(&closed, 0, send(obj, 0, 9)).0,
            refused(Refusal::CONNECTION_SEND_CLOSED)
        );
        // Killed instead: the other row.
        let killed = empty.die(0);
        assert_eq!(
            after(&killed, 1, recv).0,
            refused(Refusal::CONNECTION_RECV_PEER_KILLED)
        );
        // And nobody holds end 0 now: sending to it is a broken pipe.
        assert_eq!(
            after(&killed, 1, send(obj, 1, 3)).0,
            refused(Refusal::CONNECTION_SEND_PEER_KILLED)
        );
    }

    #[test]
    fn sending_to_an_end_nobody_holds_is_a_broken_pipe() {
        let obj = Object::Pipe;
        let pipe = PipeSpec::new(obj, [0b01, 0b10]);
        let gone = pipe.die(1);
        assert_eq!(
            after(&gone, 0, send(obj, 0, 1)).0,
            refused(Refusal::CONNECTION_SEND_PEER_KILLED)
        );
        let left = pipe.exit(1);
        assert_eq!(
            after(&left, 0, send(obj, 0, 1)).0,
            refused(Refusal::CONNECTION_SEND_DUPLEX_PEER_CLOSED)
        );
        // Items buffered for end 1 are still received after every sender went.
        let (_, sent) = after(&pipe, 0, send(obj, 0, 4));
        let ended = sent.exit(0);
        let recv = Call::Recv { obj, end: 1 };
        let (got, drained) = after(&ended, 1, recv);
        assert_eq!(got, Ret::Int { value: 4 });
        assert_eq!(
            after(&drained, 1, recv).0,
            refused(Refusal::CONNECTION_RECV_PEER_CLOSED)
        );
    }

    #[test]
    fn a_one_way_pipe_receives_at_end_0_and_sends_at_end_1() {
        let obj = Object::OneWayPipe;
        let pipe = PipeSpec::new(obj, [0b01, 0b11]);
        assert_eq!(
            after(&pipe, 0, send(obj, 0, 1)).0,
            refused(Refusal::CONNECTION_SEND_READ_ONLY)
        );
        assert_eq!(
            after(&pipe, 1, Call::Recv { obj, end: 1 }).0,
            refused(Refusal::CONNECTION_RECV_WRITE_ONLY)
        );
        let poll = Call::Poll {
            obj,
            end: 1,
            timeout_ms: Some(0),
        };
        assert_eq!(
            after(&pipe, 1, poll).0,
            refused(Refusal::CONNECTION_POLL_WRITE_ONLY)
        );
        // Closed first, then the direction.
        assert_eq!(
            after(&pipe, 1, send(obj, 0, 1)).0,
            refused(Refusal::CONNECTION_SEND_CLOSED)
        );
        let recv = Call::Recv { obj, end: 0 };
        let writers_gone = pipe.die(0).exit(1);
        assert_eq!(
            after(&writers_gone, 0, send(obj, 1, 1)).0,
            refused(Refusal::CONNECTION_SEND_CLOSED)
        );
        let reader_only = pipe.exit(1).die(0);
        assert_eq!(reader_only.holders, [0, 0]);
        let readers = PipeSpec::new(obj, [0b10, 0b01]);
        assert_eq!(
            after(&readers.die(0), 1, recv).0,
            refused(Refusal::CONNECTION_RECV_WRITER_KILLED)
        );
        let (_, closed) = after(&readers, 0, Call::CloseEnd { obj, end: 1 });
        assert_eq!(
            after(&closed, 1, recv).0,
            refused(Refusal::CONNECTION_RECV_WRITER_CLOSED)
        );
        assert_eq!(
            after(&readers.die(1), 0, send(obj, 1, 2)).0,
            refused(Refusal::CONNECTION_SEND_READER_KILLED)
        );
        assert_eq!(
            after(&readers.exit(1), 0, send(obj, 1, 2)).0,
            refused(Refusal::CONNECTION_SEND_PEER_CLOSED)
        );
        // Closing twice, or an end never held, is allowed.
        assert_eq!(
            after(&closed, 0, Call::CloseEnd { obj, end: 1 }).0,
            Ret::None
        );
    }
}
