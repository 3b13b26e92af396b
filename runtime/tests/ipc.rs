//! Tests for [`proclife::ipc`] across real processes.

mod ipc_support;

fn main() {
    ipc_support::run(vec![]);
}
