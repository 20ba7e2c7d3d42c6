//! Loading and validation, end to end through a real file.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::load::{load_with_env, serde_names};
use super::*;

mod defaults;
mod env;
mod file;
mod gates;
mod portals;
mod readers;
mod station;
mod summary;
mod tls;
mod validation;

/// A valid configuration whose last table is `readers[0]`, so appending
/// `key = value` lines sets keys of that reader.
const BASE: &str = r#"
[gateway]
site = "reno-1"
name = "dock-pi-03"

[[locations]]
name = "door1"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"

[[readers]]
name = "door1-em"
location = "door1"
path = "/dev/ttyUSB0"
protocol = "em4100"
"#;

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}\n")
}

fn load_env(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    load_with_env(file.path(), env)
}

fn load_str(toml: &str) -> Result<Config, ConfigErrors> {
    load_env(toml, &[])
}

fn ok(toml: &str) -> Config {
    load_str(toml).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(toml: &str) -> Vec<ConfigError> {
    match load_str(toml) {
        Ok(_) => panic!("expected errors for:\n{toml}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// The message of the error naming `key`; fails listing every error otherwise.
fn error_at(errors: &[ConfigError], key: &str) -> String {
    match errors.iter().find(|e| e.key == key) {
        Some(e) => e.message.clone(),
        None => panic!(
            "no error for key {key:?}; got:\n{}",
            ConfigErrors(errors.to_vec())
        ),
    }
}

fn assert_error(toml: &str, key: &str) -> String {
    error_at(&errors(toml), key)
}

fn uhf(protocol: &str, extra: &str) -> String {
    with(&format!(
        "[[readers]]\nname = \"uhf1\"\nlocation = \"door1\"\npath = \"/dev/ttyUSB1\"\n\
         protocol = \"{protocol}\"\n{extra}"
    ))
}

/// `BASE` plus a HID scanner as `readers[1]`, followed by `extra` lines of it.
fn with_hid(extra: &str) -> String {
    with(&format!(
        "[[readers]]
name = \"scan1-hid\"
location = \"door1\"
kind = \"hid\"
path = \"/dev/input/by-id/usb-Honeywell_1900-event-kbd\"
{extra}"
    ))
}
