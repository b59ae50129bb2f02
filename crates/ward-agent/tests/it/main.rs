//! End-to-end tests of `ward agent` and `ward run` against a real `ward serve` process (built
//! by `cargo build -p ward`; a missing binary fails the tests), with the real `kubectl`. One test
//! binary: link time matters on 2 cores.
//!
//! Targets live under /dev/shm (a tmpfs), as they would in production.

mod binary;
mod delivery;
mod harness;
mod help;
mod lifecycle;
mod manifest;
mod outage;
mod run;
mod security;
