//! Whether the system clock is known to be synchronised.
//!
//! A Raspberry Pi has no RTC: after a power cut it boots with a stale clock
//! until NTP catches up. Every event says whether its timestamp can be trusted,
//! from the kernel's own NTP state (`adjtimex`, `STA_UNSYNC`).

/// True when the kernel reports the clock as NTP-synchronised.
pub fn is_synced() -> bool {
    // SAFETY: `timex` is plain old data; modes = 0 makes adjtimex read-only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    state != -1 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}
