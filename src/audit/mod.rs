//! The custody log an auditor can verify: every spooled event carries the
//! hash of the one before it (`prev`), the device key signs the chain's head
//! in checkpoints, and `custodyd verify` checks a capture of both.
//!
//! What it proves is that what the gateway said was not changed, removed,
//! reordered or added to afterwards, at the broker, in a database or by
//! whoever holds the data. It does not prove what a reader saw.

pub mod chain;
pub mod checkpoint;
pub mod key;
pub mod note;
pub mod verify;

pub use chain::Digest;
pub use checkpoint::{Checkpoint, Checkpoints, CHECKPOINT_SCHEMA};
pub use key::DeviceKey;
