//! Wiring: starts every stage of the pipeline and stops them in order.
