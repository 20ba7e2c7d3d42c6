//! The daemon's memory shape, read from /proc while it works: what a door
//! Pi pays for the process, whatever the events cost.

use std::time::Duration;

use crate::common::*;

const CARD: &str = "62E3086CED";

/// glibc's heap for a thread other than the main one: an anonymous mapping
/// aligned to, and reserved as, `HEAP_MAX_SIZE` (64 MiB on 64-bit), the part
/// in use read-write and the rest `---p` right behind it.
const THREAD_HEAP: u64 = 64 << 20;

/// The thread heaps in `/proc/<pid>/maps`, by start address.
fn thread_heaps(pid: u32) -> Vec<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let anonymous: Vec<(u64, u64, bool)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            // offset, device, inode, then a path for all but anonymous memory
            let named = fields.nth(3).is_some();
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            (!named).then_some((start, end, perms.starts_with("rw")))
        })
        .collect();
    anonymous
        .windows(2)
        .filter(|pair| {
            let ((start, end, writable), (next, next_end, next_writable)) = (pair[0], pair[1]);
            writable
                && !next_writable
                && start % THREAD_HEAP == 0
                && end == next
                && next_end - start == THREAD_HEAP
        })
        .map(|pair| pair[0].0)
        .collect()
}

/// A card arrives and departs, so the worker and the blocking pool (the
/// spool's commits) have both allocated.
async fn work(env: Option<(&str, &str)>) -> (Vec<u64>, usize) {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    if let Some((key, value)) = env {
        daemon.set_env(key, value);
    }
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(1)),
    );
    wait_reader(&sub, "door1-em", "up").await;
    for _ in 0..5 {
        door.write(&em4100_frame(CARD)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;
    let pid = daemon.pid();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    (thread_heaps(pid), threads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_threads_share_one_malloc_arena() {
    // The same daemon with glibc's default: each thread that allocated has a
    // heap of its own, which is what the count below would find.
    let (heaps, threads) = work(Some(("MALLOC_ARENA_MAX", "8"))).await;
    assert!(threads > 2, "{threads} threads");
    assert!(
        !heaps.is_empty(),
        "no thread heap found with glibc's default"
    );

    let (heaps, threads) = work(None).await;
    assert!(threads > 2, "{threads} threads");
    assert_eq!(
        heaps,
        Vec::<u64>::new(),
        "threads with malloc arenas of their own"
    );
}
