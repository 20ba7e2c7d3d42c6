//! Sinks: where committed events leave the gateway.

pub mod connect;
mod delivery;
mod link;
pub mod mqtt;
mod status;

pub use status::Status;
