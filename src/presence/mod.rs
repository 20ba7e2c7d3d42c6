//! Dedup and presence: many raw reads into few custody transitions.
