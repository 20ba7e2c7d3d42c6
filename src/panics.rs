//! Whether the process is still whole.
//!
//! A panic anywhere (the gate task, the health task, a reader) leaves the
//! daemon half alive: up and connected, but no longer doing one of its
//! jobs. [`watch`] installs a hook that marks the process broken on any
//! panic, keeping the default report of it; a task that finds something
//! only a restart can fix (the spool found corrupt while running) says so
//! with [`broken`]. The systemd watchdog stops pinging and the daemon exits
//! with an error once the process is broken, so it is restarted.
//!
//! A panic that the code expects and handles ([`contained`]: redb on a
//! damaged file) does not count.

use std::cell::Cell;
use std::panic::{catch_unwind, UnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::error;

/// Some task of this process panicked, or found it cannot go on.
static BROKEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Inside [`contained`]: a panic here is expected and handled.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Makes every panic that is not [`contained`] mark the process broken.
pub fn watch() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CONTAINED.get() {
            BROKEN.store(true, Ordering::Relaxed);
        }
        report(info);
    }));
}

/// Marks the process broken: only a restart can help (`why` is logged).
pub fn broken(why: &str) {
    error!("{why}: custodyd must be restarted");
    BROKEN.store(true, Ordering::Relaxed);
}

/// Whether a task has panicked (outside [`contained`]) or said [`broken`].
pub fn is_broken() -> bool {
    BROKEN.load(Ordering::Relaxed)
}

/// Runs `f`, catching a panic that the caller expects and handles (a
/// library that panics on bad input rather than returning an error).
pub fn contained<T>(f: impl FnOnce() -> T + UnwindSafe) -> std::thread::Result<T> {
    let outer = CONTAINED.replace(true);
    let result = catch_unwind(f);
    CONTAINED.set(outer);
    result
}

/// Runs blocking work on the blocking pool: a redb commit waits for its
/// fsync and even a read may wait for the disk, neither of which may stall
/// the runtime's threads (one, on a door Pi). A panic there has already
/// marked the process broken; it goes on in the caller like any other.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
