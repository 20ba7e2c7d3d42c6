//! Whether the system clock is known to be synchronised.
//!
//! A Raspberry Pi has no RTC: after a power cut it boots with a stale clock
//! until NTP catches up. Every event says whether its timestamp can be trusted,
//! from the kernel's own NTP state (`adjtimex`, `STA_UNSYNC`), and a
//! `clock_unsynced` alarm (from `health::clock`) tells people once per
//! spell without sync.
//!
//! Test seam: when the environment variable [`TEST_STATE_ENV`] names a file,
//! the state is read from that file instead of the kernel (`synced` means
//! synchronised; anything else, or no file, means not). A test cannot set the
//! kernel's NTP state without root and a real time daemon, so this is the
//! only way to drive the alarm and the `clock_synced` fields end to end. The
//! daemon logs a warning when it is set; it is not for production.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Names a file that overrides the kernel's clock state, for tests only.
pub const TEST_STATE_ENV: &str = "CUSTODYD_TEST_CLOCK_STATE";

/// How often the watcher looks. `adjtimex` is a cheap read-only syscall;
/// people need to hear within seconds, not milliseconds.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// True when the kernel reports the clock as NTP-synchronised (or the test
/// seam's file says `synced`).
pub fn is_synced() -> bool {
    match test_override() {
        Some(path) => read_override(path),
        None => kernel_synced(),
    }
}

/// The test seam's file, if the environment names one (looked up once: this
/// runs for every event).
pub fn test_override() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| std::env::var_os(TEST_STATE_ENV).map(PathBuf::from))
        .as_deref()
}

fn read_override(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "synced")
}

fn kernel_synced() -> bool {
    // SAFETY: `timex` is plain old data, for which all zeroes is a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusive `timex`; modes = 0 makes adjtimex read-only.
    let state = unsafe { libc::adjtimex(&mut tx) };
    state != -1 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_seam_reads_synced_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock");
        assert!(!read_override(&file), "no file: not synced");
        std::fs::write(&file, "synced\n").unwrap();
        assert!(read_override(&file));
        std::fs::write(&file, "unsynced").unwrap();
        assert!(!read_override(&file));
    }
}
