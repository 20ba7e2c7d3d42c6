//! Checks that need the whole deserialized configuration: each section's
//! checks live beside its types, and this runs them in the order their
//! errors are listed. Every problem is collected, so one run of
//! `custodyd check-config` lists all of them.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;

use super::audit::check_audit;
use super::gateway::check_gateway;
use super::gpio::check_gpio;
use super::identity::check_identity;
use super::load::ConfigError;
use super::location::check_locations;
use super::mqtt::check_mqtt;
use super::names::name_problem;
use super::reader::check_readers;
use super::spool::check_spool;
use super::station::{check_badge_readers, check_context_locations, check_stations};
use super::trust::check_trust;
use super::Config;

/// Every problem in `config`; empty when it is usable.
pub(super) fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = Errors::default();
    check_gateway(&mut errors, &config.gateway);
    check_audit(&mut errors, &config.audit);
    check_mqtt(&mut errors, &config.mqtt);
    check_spool(&mut errors, &config.spool);
    check_identity(&mut errors, &config.identity);
    check_locations(&mut errors, &config.locations);
    check_readers(&mut errors, &config.readers, &config.locations);
    check_stations(&mut errors, config);
    check_context_locations(&mut errors, config);
    check_badge_readers(&mut errors, config);
    check_gpio(&mut errors, &config.gpio, &config.locations);
    check_trust(&mut errors, config);
    errors.0
}

/// The problems found so far, each naming its key.
#[derive(Default)]
pub(super) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn extend(&mut self, errors: impl IntoIterator<Item = ConfigError>) {
        self.0.extend(errors);
    }
}

pub(super) fn check_name(errors: &mut Errors, key: &str, name: &str) {
    if let Some(problem) = name_problem(name) {
        errors.push(key, problem);
    }
}

/// The index `key` was first seen at, or `None` (remembering `index`) when
/// this is its first appearance.
pub(super) fn first_seen<'a, K: Eq + Hash + ?Sized>(
    seen: &mut HashMap<&'a K, usize>,
    key: &'a K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(index);
            None
        }
    }
}
