//! custodyd's integration tests, one module per area, in one test binary so
//! the shared harness (`common`) compiles once and every helper in it is used
//! by some test.
//!
//! Run one area with `cargo test --test it spool::`, one test with
//! `cargo test --test it spool::a_full_filesystem` (a filter matches the module path).
//!
//! The tests share one process: none may set environment variables, install a
//! global subscriber or take a fixed port or path; each runs its own broker,
//! daemon and temporary directory (see `common`).

mod common;

mod commands;
mod context;
mod custody_log;
mod custody_log_vectors;
mod delivery;
mod demo;
mod faults;
mod harness;
mod health;
mod hid;
mod layers;
mod manifest;
mod memory;
mod portal;
mod power_loss;
mod release;
mod reload;
mod restarts;
mod spine;
mod spool;
mod systemd;
mod tls;
mod trust;
mod uhf;
