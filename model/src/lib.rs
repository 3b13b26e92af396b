//! proclife-model: the life-cycle of Python's `multiprocessing.Process` as a pure, total
//! transition function, and the transition graph derived from it.
#![forbid(unsafe_code)]
