//! Reading the file and the environment, and validating the result.
//! (Skeleton: filled in by the config work.)

use std::path::Path;

use super::Config;

/// One problem with the configuration, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `readers[1].location` (with the reader's name where known).
    pub key: String,
    pub message: String,
}

/// Every problem found; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let _ = path;
    todo!()
}
