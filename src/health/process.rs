//! The daemon's own memory and CPU, from `/proc/self`: a door Pi is left
//! alone for years, and a slow leak or a busy loop must show on the health
//! topic before it shows as a dead door.

use std::time::Duration;

/// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    parse_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// CPU time used by the process so far, user plus system
/// (`utime` + `stime` of `/proc/self/stat`).
pub fn cpu_time() -> Option<Duration> {
    let ticks = parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let per_second = ticks_per_second()?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// How long ago the process started (`starttime` of `/proc/self/stat`
/// against `/proc/uptime`), to the kernel's clock tick.
pub fn age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let started: u64 = field_after_name(&stat, 22)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let started = started as f64 / ticks_per_second()? as f64;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(per_second).ok().filter(|&t| t > 0)
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `utime` and `stime` are fields 14 and 15. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let utime: u64 = field_after_name(stat, 14)?.parse().ok()?;
    let stime: u64 = field_after_name(stat, 15)?.parse().ok()?;
    Some(utime + stime)
}

/// Field `n` (1-based) of a `stat` line.
fn field_after_name(stat: &str, n: usize) -> Option<&str> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name.
    after_name.split_whitespace().nth(n.checked_sub(3)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tcustodyd\nVmHWM:\t   10240 kB\nVmRSS:\t    9216 kB\nThreads:\t5\n";
        assert_eq!(parse_rss(status), Some(9216 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis in it.
        let stat = "4242 (cus tod) yd) S 1 4242 4242 0 -1 4194560 812 0 0 0 \
                    731 129 0 0 20 0 5 0 123456 12345678 2304 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(731 + 129));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(field_after_name(stat, 22), Some("123456"));
        assert!(cpu_time().is_some());
        assert!(age().is_some_and(|a| a < Duration::from_secs(86_400)));
    }
}
