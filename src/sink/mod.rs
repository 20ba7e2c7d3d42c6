//! Sinks: where committed events leave the gateway.

pub mod mqtt;
mod status;

pub use status::Status;
