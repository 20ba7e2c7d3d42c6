//! What a reload may change.
//!
//! The front (readers, monitor, presence, rules) is rebuilt from the new
//! file, so `[[locations]]`, `[[readers]]`, `[identity]`, `[station]` and
//! `[operators]` take effect. The long-lived part is not: `[gateway]` names
//! the topics, the data directory and the health interval, `[mqtt]` the
//! broker session, `[spool]` the open spool, `[gpio]` the open pins, and
//! the cage gates' `gate` tables the gate task, which holds the locks and
//! must never drop them for a reload. Neither are the pins and the manifest
//! subscription, made at start only if the configuration then needed them.
//! Rebuilding those would mean reconnecting (an offline status for
//! nothing), reopening the spool under running producers or releasing a
//! lock, which is what a restart does properly; so a file that changes them
//! is refused, whole, naming what changed, and nothing of it is applied.

use crate::config::{Config, GateConfig};

/// Why `new` cannot be applied to a daemon running `running`, or `None`.
pub fn needs_restart(running: &Config, new: &Config) -> Option<String> {
    let manifests = |c: &Config| c.locations.iter().any(|l| l.takes_manifests());
    let changed: Vec<&str> = [
        ("[gateway]", running.gateway != new.gateway),
        ("[mqtt]", running.mqtt != new.mqtt),
        ("[spool]", running.spool != new.spool),
        ("[gpio]", running.gpio != new.gpio),
        ("[trust]", running.trust != new.trust),
        ("a cage gate's gate table", gates(running) != gates(new)),
        (
            "the first use of a GPIO pin",
            new.uses_gpio() && !running.uses_gpio(),
        ),
        (
            "the first dock door with a read window (manifests)",
            manifests(new) && !manifests(running),
        ),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if changed.is_empty() {
        return None;
    }
    Some(format!(
        "{} changed, which only a restart applies (systemctl restart custodyd); \
         nothing was applied, the running configuration is kept",
        changed.join(" and ")
    ))
}

/// Every cage gate, by location.
fn gates(config: &Config) -> Vec<(&str, &GateConfig)> {
    config
        .locations
        .iter()
        .filter_map(|l| Some((l.name.as_str(), l.gate.as_ref()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        crate::config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "[gateway]\nsite = \"s\"\nname = \"g\"\n[mqtt]\nurl = \"mqtt://b:1883\"\n";

    #[test]
    fn readers_locations_and_identity_may_change_the_long_lived_sections_may_not() {
        let running = config(BASE);
        let front = format!(
            "{BASE}[identity]\ncompany_prefixes = [\"0614141\"]\n\
             [[locations]]\nname = \"door\"\nkind = \"scan_station\"\n\
             [[readers]]\nname = \"r\"\nlocation = \"door\"\npath = \"/dev/x\"\nprotocol = \"em4100\"\n"
        );
        assert_eq!(needs_restart(&running, &config(&front)), None);

        let gateway = BASE.replace("name = \"g\"", "name = \"g2\"");
        let refusal = needs_restart(&running, &config(&gateway)).unwrap();
        assert!(refusal.starts_with("[gateway] changed"), "{refusal}");
        assert!(refusal.contains("restart"), "{refusal}");

        let both = format!(
            "{}[spool]\nmax_bytes = \"1MiB\"\n",
            BASE.replace("b:1883", "c:1883")
        );
        let refusal = needs_restart(&running, &config(&both)).unwrap();
        assert!(
            refusal.starts_with("[mqtt] and [spool] changed"),
            "{refusal}"
        );

        let gpio = format!("{BASE}[gpio]\ndebounce = \"50ms\"\n");
        let refusal = needs_restart(&running, &config(&gpio)).unwrap();
        assert!(refusal.starts_with("[gpio] changed"), "{refusal}");
    }
}
