//! custodyd: an edge daemon for the dock doors and secure-cage gates of IT asset
//! disposition warehouses.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! sources (serial readers) -> decode (frame codecs) -> identity (asset id)
//!   -> presence (dedup, arrived/departed/scanned) -> rules (zones, gates,
//!   stations: custody event drafts) -> spool (durable, assigns seq)
//!   -> sink (MQTT, deleted only after PUBACK)
//! ```
//!
//! Each stage is a task that owns its state and talks to the next over a
//! bounded channel; [`daemon::run`] wires them and shuts them down in order.

pub mod audit;
pub mod bus;
pub mod clock;
pub mod command;
pub mod config;
pub mod custody;
pub mod daemon;
pub mod decode;
pub mod demo;
#[cfg(any(test, feature = "testutil"))]
pub mod fuzzing;
pub mod gpio;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod ops;
pub mod panics;
pub mod presence;
pub mod release;
pub mod retained;
pub mod rules;
pub mod signals;
pub mod sink;
pub mod sources;
pub mod spool;
pub mod timestamp;
pub mod topic;
pub mod trust;
pub mod watchdog;
