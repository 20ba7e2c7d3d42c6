//! Sinks: where committed events leave the gateway.
