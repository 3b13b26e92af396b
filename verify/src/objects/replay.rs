//! Replay files of primitive programs: one JSON object per line.
//!
//! ```text
//! {"kind":"objects","procs":2,"setup":{"semaphore":1,"bounded":1,"parties":2,"maxsize":2}}
//! {"proc":0,"call":{"acquire":{"obj":"lock","timeout_ms":10}}}
//! {"proc":1,"call":{"release":{"obj":"lock"}}}
//! {"parent":{"kill":{"proc":0,"after":1}}}
//! ```
//!
//! The first line names the kind and the number of worker processes; every other line is a
//! call of one worker (in order) or a step of the parent (in order). A malformed file is
//! rejected with the line and what was expected there, before any process is started.

use std::fmt;

use proclife_model::objects::{Call, Object};
use serde::{Deserialize, Serialize};

use crate::objects::scenario::{Program, Step};
use crate::objects::worker::Setup;

/// The `kind` of the first line.
pub const KIND: &str = "objects";

/// Most worker processes a replay file may ask for.
pub const MAX_PROCS: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kind: String,
    procs: usize,
    setup: Setup,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallLine {
    proc: usize,
    call: Call,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentLine {
    parent: Step,
}

/// Why a replay file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected there, and what was found.
    pub message: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ReplayError {}

/// Whether `text` looks like a replay file of this kind (its first line names it), so that
/// `proclife replay` can tell it from a life-cycle replay file.
pub fn is_objects(text: &str) -> bool {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(first)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
        .is_some_and(|k| k == KIND)
}

/// The file's text for `program`.
pub fn to_text(program: &Program) -> String {
    let header = Header {
        kind: KIND.to_owned(),
        procs: program.procs.len(),
        setup: program.setup,
    };
    let mut out = String::new();
    let mut line = |v: serde_json::Result<String>| {
        // These types always serialise.
        out.push_str(&v.unwrap_or_default());
        out.push('\n');
    };
    line(serde_json::to_string(&header));
    for (proc, calls) in program.procs.iter().enumerate() {
        for &call in calls {
            line(serde_json::to_string(&CallLine { proc, call }));
        }
    }
    for step in &program.parent {
        line(serde_json::to_string(&ParentLine {
            parent: step.clone(),
        }));
    }
    out
}

/// Parses a replay file.
///
/// # Errors
///
/// [`ReplayError`] naming the first bad line and what was expected there.
pub fn parse(text: &str) -> Result<Program, ReplayError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((n, first)) = lines.next() else {
        return Err(ReplayError {
            line: 1,
            message: "expected the header {\"kind\":\"objects\",\"procs\":N,\"setup\":{..}}, found an empty file".to_owned(),
        });
    };
    let header: Header = serde_json::from_str(first).map_err(|e| ReplayError {
        line: n,
        message: format!(
            "expected the header {{\"kind\":\"objects\",\"procs\":N,\"setup\":{{\"semaphore\":..,\"bounded\":..,\"parties\":..,\"maxsize\":..}}}}: {e}"
        ),
    })?;
    if header.kind != KIND {
        return Err(ReplayError {
            line: n,
            message: format!("expected \"kind\":\"{KIND}\", found \"{}\"", header.kind),
        });
    }
    if header.procs == 0 || header.procs > MAX_PROCS {
        return Err(ReplayError {
            line: n,
            message: format!("expected 1 to {MAX_PROCS} procs, found {}", header.procs),
        });
    }
    if header.setup.parties < 1 || header.setup.parties > proclife::sync::MAX_PARTIES {
        return Err(ReplayError {
            line: n,
            message: format!(
                "expected parties from 1 to {}, found {}",
                proclife::sync::MAX_PARTIES,
                header.setup.parties
            ),
        });
    }
    let mut program = Program {
        setup: header.setup,
        procs: vec![Vec::new(); header.procs],
        parent: Vec::new(),
    };
    for (n, line) in lines {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ReplayError {
            line: n,
            message: format!("expected one JSON object: {e}"),
        })?;
        if value.get("parent").is_some() {
            let ParentLine { parent } = serde_json::from_value(value).map_err(|e| ReplayError {
                line: n,
                message: format!(
                    "expected a parent step {{\"parent\":{{\"await_blocked\"|\"call\"|\"kill\":..}}}}: {e}"
                ),
            })?;
            if let Step::Call { call } = &parent {
                pipe_call_ok(*call).map_err(|message| ReplayError { line: n, message })?;
            }
            let named: Vec<usize> = match &parent {
                Step::AwaitBlocked { procs, .. } => procs.clone(),
                Step::Kill { proc, .. } => vec![*proc],
                Step::Call { .. } => Vec::new(),
            };
            if let Some(p) = named.into_iter().find(|&p| p >= header.procs) {
                return Err(ReplayError {
                    line: n,
                    message: format!("expected a worker below {}, found {p}", header.procs),
                });
            }
            program.parent.push(parent);
        } else {
            let CallLine { proc, call } = serde_json::from_value(value).map_err(|e| ReplayError {
                line: n,
                message: format!(
                    "expected a call {{\"proc\":N,\"call\":{{\"acquire\"|\"release\"|..:..}}}}: {e}"
                ),
            })?;
            pipe_call_ok(call).map_err(|message| ReplayError { line: n, message })?;
            let Some(calls) = program.procs.get_mut(proc) else {
                return Err(ReplayError {
                    line: n,
                    message: format!("expected a proc below {}, found {proc}", header.procs),
                });
            };
            calls.push(call);
        }
    }
    if !crate::objects::check::pipe_waits_end(&program) {
        return Err(ReplayError {
            line: 1,
            message: "expected every untimed recv of a pipe to end: each through one end of \
                      its pipe, in a process that no longer holds the sending end, the parent \
                      holding no end at its end, and a worker killed at the latest in its \
                      first recv"
                .to_owned(),
        });
    }
    Ok(program)
}

/// Whether `call`, if it is a pipe's, names a pipe and one of its two ends.
fn pipe_call_ok(call: Call) -> Result<(), String> {
    let (obj, end) = match call {
        Call::Send { obj, end, .. }
        | Call::Recv { obj, end }
        | Call::Poll { obj, end, .. }
        | Call::CloseEnd { obj, end } => (obj, end),
        _ => return Ok(()),
    };
    if !matches!(obj, Object::Pipe | Object::OneWayPipe) {
        return Err(format!(
            "expected \"obj\":\"pipe\" or \"one_way_pipe\" in {call:?}"
        ));
    }
    if end > 1 {
        return Err(format!("expected end 0 or 1, found {end}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::random;

    #[test]
    fn programs_round_trip() {
        for seed in 0..50 {
            let program = random::program(seed);
            assert_eq!(parse(&to_text(&program)), Ok(program));
        }
    }

    #[test]
    fn files_without_a_queue_name_still_read() {
        let text = "{\"kind\":\"objects\",\"procs\":1,\"setup\":{\"semaphore\":1,\"bounded\":1,\"parties\":2,\"maxsize\":2}}\n\
            {\"proc\":0,\"call\":{\"put\":{\"item\":4,\"timeout_ms\":200}}}\n\
            {\"parent\":{\"call\":{\"call\":{\"get\":{\"timeout_ms\":25}}}}}\n";
        let program = parse(text).map_err(|e| e.to_string());
        let put = Call::Put {
            obj: proclife_model::objects::Object::Queue,
            item: 4,
            timeout_ms: Some(200),
        };
        assert_eq!(program.map(|p| p.procs[0].clone()), Ok(vec![put]));
    }

    #[test]
    fn bad_lines_are_named() {
        let header = "{\"kind\":\"objects\",\"procs\":1,\"setup\":{\"semaphore\":1,\"bounded\":1,\"parties\":2,\"maxsize\":1}}";
        let cases = [
            ("", 1),
            ("{\"kind\":\"other\"}", 1),
            (&format!("{header}\n{{\"proc\":3,\"call\":\"set\"}}"), 2),
            (
                &format!("{header}\n\n{{\"proc\":0,\"call\":{{\"jump\":1}}}}"),
                3,
            ),
            (
                &format!("{header}\n{{\"parent\":{{\"kill\":{{\"proc\":1,\"after\":0}}}}}}"),
                2,
            ),
            (&format!("{header}\nnot json"), 2),
            // A pipe's end is 0 or 1, of a pipe.
            (
                &format!(
                    "{header}\n{{\"proc\":0,\"call\":{{\"recv\":{{\"obj\":\"pipe\",\"end\":2}}}}}}"
                ),
                2,
            ),
            (
                &format!(
                    "{header}\n{{\"proc\":0,\"call\":{{\"close_end\":{{\"obj\":\"lock\",\"end\":0}}}}}}"
                ),
                2,
            ),
            // The parent would wait for end of file while it holds the sending end itself.
            (
                "{\"kind\":\"objects\",\"procs\":1,\"setup\":{\"semaphore\":1,\"bounded\":1,\"parties\":2,\"maxsize\":1,\"ends\":[2,2]}}\n\
                 {\"parent\":{\"call\":{\"call\":{\"recv\":{\"obj\":\"one_way_pipe\",\"end\":0}}}}}",
                1,
            ),
        ];
        for (text, line) in cases {
            let err = parse(text).err();
            assert_eq!(
                err.as_ref().map(|e| e.line),
                Some(line),
                "{text:?}: {err:?}"
            );
        }
        assert!(is_objects(header));
    }
}
