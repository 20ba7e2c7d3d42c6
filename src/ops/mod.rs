//! Running custodyd as a service on a Pi: systemd and the devices a
//! technician configures.

pub mod devices;
pub mod systemd;
