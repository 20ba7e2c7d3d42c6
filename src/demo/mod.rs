//! `custodyd demo`: the whole pipeline with no hardware and no setup.
