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
    // SAFETY: sysconf only reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
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
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
        assert!(cpu_time().is_some());
    }
}
