//! Running custodyd as a service on a Pi: systemd, the devices a technician
//! configures, and watching what the gateway publishes.

pub mod devices;
pub mod journal;
pub mod tail;
