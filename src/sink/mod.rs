//! Sinks: where committed events leave the gateway.

pub mod connect;
pub mod control;
mod delivery;
mod link;
pub mod mqtt;
mod status;

pub use status::Status;
