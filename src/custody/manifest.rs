//! A pass summary reconciled against the pickup manifest open at its door
//! (the `manifest` object of `custodyd.pass.v1`).

use serde::Serialize;

/// Where a pickup stands after a pass: what the manifest expects and what
/// the pickup's passes so far have read, as canonical asset ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub pickup_id: String,
    /// The manifest's assets, in its order.
    pub expected: Vec<String>,
    /// Expected assets read in this pickup's passes, in manifest order.
    pub received: Vec<String>,
    /// Expected assets no pass of the pickup has read yet.
    pub missing: Vec<String>,
    /// Assets read in the pickup's passes that the manifest does not list,
    /// in the order they came.
    pub unexpected: Vec<String>,
    /// Passes reconciled for this pickup, this one included.
    pub passes: u32,
}
