//! The checks of `[[readers]]`: each key only where it does something.

use std::collections::HashMap;
use std::path::Path;

use super::{Protocol, ReaderConfig, ReaderKind};
use crate::config::gate::check_release_mode;
use crate::config::names::entry_label;
use crate::config::portal::check_sides;
use crate::config::validate::{check_name, first_seen, Errors};
use crate::config::LocationConfig;
use crate::decode::ChafonVariant;

const MAX_LEN_MAX: usize = 65536;
/// R2000/E710 modules have up to 8 ports (0x74 takes 0-7).
const A0_PORTS: u8 = 8;
/// The Chafon Ant bitmask has four bits.
const CHAFON_PORTS: u8 = 4;
/// Gen2 sessions S0-S3.
const MAX_SESSION: u8 = 3;

pub(in crate::config) fn check_readers(
    errors: &mut Errors,
    readers: &[ReaderConfig],
    locations: &[LocationConfig],
) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut paths: HashMap<&Path, usize> = HashMap::new();
    for (i, reader) in readers.iter().enumerate() {
        let label = entry_label("readers", i, &reader.name);
        let key = |field: &str| format!("{label}.{field}");

        check_name(errors, &key("name"), &reader.name);
        if let Some(first) = first_seen(&mut names, reader.name.as_str(), i) {
            errors.push(
                key("name"),
                format!("duplicate name {:?} (also readers[{first}])", reader.name),
            );
        }

        if !locations.iter().any(|l| l.name == reader.location) {
            let known: Vec<&str> = locations.iter().map(|l| l.name.as_str()).collect();
            let hint = if known.is_empty() {
                "no [[locations]] are configured".to_string()
            } else {
                format!("configured: {}", known.join(", "))
            };
            errors.push(
                key("location"),
                format!("unknown location {:?} ({hint})", reader.location),
            );
        }

        if reader.path.as_os_str().is_empty() {
            errors.push(key("path"), "must not be empty");
        } else if let Some(first) = first_seen(&mut paths, reader.path.as_path(), i) {
            errors.push(
                key("path"),
                format!(
                    "{} is also read by readers[{first}]; a device can have one reader only",
                    reader.path.display()
                ),
            );
        }

        if reader.baud == Some(0) {
            errors.push(key("baud"), "must be more than 0");
        }
        if !(1..=MAX_LEN_MAX).contains(&reader.max_len) {
            errors.push(
                key("max_len"),
                format!("is {}; must be 1 to {MAX_LEN_MAX}", reader.max_len),
            );
        }
        if reader.reopen_max.is_zero() {
            errors.push(
                key("reopen_max"),
                "must be more than 0 (0 would retry a missing device in a tight loop)",
            );
        }
        if reader.protocol != Some(Protocol::AsciiLine) {
            for (field, set) in [
                ("prefix", reader.prefix.is_some()),
                ("suffix", reader.suffix.is_some()),
            ] {
                if set {
                    errors.push(key(field), "only applies to protocol = \"ascii-line\"");
                }
            }
        }
        match reader.kind {
            ReaderKind::Serial => check_serial(errors, reader, &key),
            ReaderKind::Hid => check_hid(errors, reader, &key),
        }
        check_release_mode(errors, reader, locations, &key);
        let location = locations.iter().find(|l| l.name == reader.location);
        check_sides(errors, reader, location, &key);
    }
}

/// A serial reader needs a protocol, and HID keys would do nothing on it.
fn check_serial(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    if reader.protocol.is_none() {
        errors.push(
            key("protocol"),
            "is required for serial readers: \"em4100\", \"ascii-line\", \"uhf-a0\" \
             or \"chafon\" (or set kind = \"hid\" for a USB keyboard-wedge scanner)",
        );
    }
    check_uhf(errors, reader, key);
    for (field, set) in [
        ("end_on", reader.end_on.is_some()),
        ("gs_substitute", reader.gs_substitute.is_some()),
        ("scan_timeout", reader.scan_timeout.is_some()),
    ] {
        if set {
            errors.push(key(field), "only applies to kind = \"hid\"");
        }
    }
}

/// A HID scanner is decoded by the keymap: serial framing keys would be
/// silently ignored, so they are errors, each saying what to use instead.
fn check_hid(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    for (field, set, why) in [
        (
            "protocol",
            reader.protocol.is_some(),
            "keystrokes are decoded by the US keymap; remove it",
        ),
        (
            "baud",
            reader.baud.is_some(),
            "a USB keyboard has no line speed; remove it",
        ),
        (
            "terminator",
            reader.terminator.is_some(),
            "use end_on = \"enter\", \"tab\" or \"enter_or_tab\"",
        ),
    ] {
        if set {
            errors.push(
                key(field),
                format!("does not apply to kind = \"hid\" ({why})"),
            );
        }
    }
    if reader.gs_substitute.as_deref() == Some("") {
        errors.push(
            key("gs_substitute"),
            "must not be empty (GS1 fields would run together)",
        );
    }
    if reader.scan_timeout.is_some_and(|t| t.is_zero()) {
        errors.push(key("scan_timeout"), "must be more than 0");
    }
}

/// The keys of the command/reply UHF protocols: set on any other protocol
/// they would be silently ignored, so they are errors there.
fn check_uhf(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    let chafon = reader.protocol == Some(Protocol::Chafon);
    let uhf_keys = [
        ("antennas", reader.antennas.is_some()),
        ("address", reader.address.is_some()),
        ("session", reader.session.is_some()),
        ("target", reader.target.is_some()),
        ("reply_timeout", reader.reply_timeout.is_some()),
    ];
    if !reader.protocol.is_some_and(Protocol::is_uhf) {
        for (field, set) in uhf_keys {
            if set {
                errors.push(
                    key(field),
                    "only applies to protocol = \"uhf-a0\" or \"chafon\"",
                );
            }
        }
    }
    if !chafon && reader.chafon_variant.is_some() {
        errors.push(
            key("chafon_variant"),
            "only applies to protocol = \"chafon\"",
        );
    }
    if !reader.protocol.is_some_and(Protocol::is_uhf) {
        return;
    }
    let reader18 = chafon && reader.chafon_variant() == ChafonVariant::Reader18;
    let ports = if chafon { CHAFON_PORTS } else { A0_PORTS };
    let antennas = reader.antennas();
    if antennas.is_empty() {
        errors.push(key("antennas"), "must list at least one antenna");
    }
    for (i, &antenna) in antennas.iter().enumerate() {
        if !(1..=ports).contains(&antenna) {
            errors.push(
                key("antennas"),
                format!("antenna {antenna} does not exist; ports are numbered 1 to {ports}"),
            );
        } else if antennas[..i].contains(&antenna) {
            errors.push(
                key("antennas"),
                format!("antenna {antenna} is listed twice"),
            );
        }
    }
    if reader18 && antennas != [1] {
        errors.push(
            key("antennas"),
            "a UHFReader18 (chafon_variant = \"18\") cannot be told which antenna to use",
        );
    }
    if let Some(session) = reader.session {
        if session > MAX_SESSION {
            errors.push(
                key("session"),
                format!("is {session}; must be 0 to {MAX_SESSION}"),
            );
        }
    }
    if reader18 {
        for (field, set) in [
            ("session", reader.session.is_some()),
            ("target", reader.target.is_some()),
        ] {
            if set {
                errors.push(
                    key(field),
                    "a UHFReader18 (chafon_variant = \"18\") inventory takes no session or target",
                );
            }
        }
    }
    if reader.reply_timeout.is_some_and(|t| t.is_zero()) {
        errors.push(key("reply_timeout"), "must be more than 0");
    }
}
