//! What the harness reads about processes from /proc, and the spool's
//! commit progress from the daemon's log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

/// (VmRSS, VmHWM) of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("Threads:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Context switches of all of a process's threads so far (voluntary and
/// not): how often it went to sleep and was woken, the cost that the CPU
/// time of a mostly idle daemon is made of. Threads that have exited no
/// longer count.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // the thread exited meanwhile
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// The 1-minute load average: how busy the machine was besides this run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Follows the daemon's log for the spool's `spool committed seq A..=B (N bytes)`
/// debug lines: the highest `seq` committed so far.
pub struct CommitLog {
    path: PathBuf,
    offset: u64,
    partial: String,
    pub committed: u64,
}

impl CommitLog {
    pub fn new(path: &Path) -> Self {
        CommitLog {
            path: path.to_owned(),
            offset: 0,
            partial: String::new(),
            committed: 0,
        }
    }

    /// Reads what was appended since the last call.
    pub fn poll(&mut self) -> u64 {
        let Ok(mut file) = File::open(&self.path) else {
            return self.committed;
        };
        let mut new = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_ok() && file.read_to_end(&mut new).is_ok() {
            self.offset += new.len() as u64;
            self.partial.push_str(&String::from_utf8_lossy(&new));
        }
        let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
        for line in self.partial[..complete].lines() {
            if let Some(i) = line.find("spool committed seq ") {
                let range = &line[i + "spool committed seq ".len()..];
                if let Some(last) = range
                    .split("..=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse().ok())
                {
                    self.committed = self.committed.max(last);
                }
            }
        }
        self.partial.drain(..complete);
        self.committed
    }
}
