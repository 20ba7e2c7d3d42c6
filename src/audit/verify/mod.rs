//! `custodyd verify`: checks captures of a gateway's events and checkpoints
//! against its public key, the way central or an auditor would, and says
//! what verifies and every problem, by `seq`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::audit::key::{self, PublicKey};

mod capture;
mod check;

pub use capture::{lines, Line};
pub use check::{Findings, Place, Problem};

/// The topic kinds (`{root}/{site}/{gateway}/{kind}/...`) of spooled events.
const EVENT_KINDS: [&str; 4] = ["custody", "alarm", "context", "pass"];
const CHECKPOINT_KIND: &str = "checkpoint";

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The gateway's public key, base64 of its 32 bytes: `custodyd key show`
    /// on the gateway, or `device_key` in its status message.
    #[arg(long)]
    pub key: String,
    /// Check only this gateway (`site/gateway`), where the captures hold several.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Captures as `mosquitto_sub -v` writes them (`topic payload` per line),
    /// e.g. of `mosquitto_sub -v -t 'itad/reno-1/dock-pi-03/#'`; any order,
    /// re-deliveries allowed.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("--key {0:?} is not the base64 of a 32-byte Ed25519 public key")]
    Key(String),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the captures hold several gateways ({}); choose one with --gateway site/gateway", .0.join(", "))]
    Gateways(Vec<String>),
    #[error("no events or checkpoints{} in the captures", .0.as_ref().map_or(String::new(), |g| format!(" of {g}")))]
    Nothing(Option<String>),
}

/// What `verify` found, as printed.
#[derive(Debug)]
pub struct Report {
    /// `{root}/{site}/{gateway}`.
    pub gateway: String,
    pub files: usize,
    pub lines: usize,
    pub checkpoints_read: usize,
    pub findings: Findings,
}

impl Report {
    /// Everything read verifies.
    pub fn ok(&self) -> bool {
        self.findings.problems.is_empty()
    }
}

/// A message of a gateway: where it was read, its topic after the gateway
/// (`checkpoint`, `custody/dock-door-1`, ...), its payload.
type Message<'a> = (Place, &'a str, &'a [u8]);

/// Checks `captures` (a name and the bytes of each) for the gateway whose
/// key is `key`; `only` (`site/gateway`) picks one where there are several.
pub fn verify(
    captures: &[(String, Vec<u8>)],
    key: &PublicKey,
    only: Option<&str>,
) -> Result<Report, VerifyError> {
    let mut gateways: BTreeMap<&str, Vec<Message>> = BTreeMap::new();
    // The keys the gateways' (unsigned) status messages announce.
    let mut announced: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut total = 0;
    for (file, (_, bytes)) in captures.iter().enumerate() {
        for line in lines(bytes) {
            total += 1;
            if let Some(prefix) = line.topic.strip_suffix("/status") {
                let status = serde_json::from_slice::<serde_json::Value>(line.payload);
                if let Some(key) = status
                    .ok()
                    .and_then(|s| s["device_key"].as_str().map(str::to_owned))
                {
                    announced.entry(prefix).or_default().insert(key);
                }
                continue;
            }
            let Some((prefix, rest)) = ours(line.topic) else {
                continue;
            };
            let place = Place {
                file,
                line: line.number,
            };
            gateways
                .entry(prefix)
                .or_default()
                .push((place, rest, line.payload));
        }
    }
    if let Some(only) = only {
        gateways.retain(|prefix, _| prefix.split_once('/').is_some_and(|(_, g)| g == only));
    }
    if gateways.len() > 1 {
        let names = gateways.keys().map(|g| g.to_string()).collect();
        return Err(VerifyError::Gateways(names));
    }
    let Some((prefix, messages)) = gateways.into_iter().next() else {
        return Err(VerifyError::Nothing(only.map(str::to_owned)));
    };
    let mut levels = prefix.split('/').skip(1);
    let (site, gateway) = (levels.next().unwrap_or(""), levels.next().unwrap_or(""));
    let name = |p: Place| format!("{}:{}", captures[p.file].0, p.line);
    let mut log = check::Log::new(site, gateway, key);
    let mut checkpoints_read = 0;
    for (place, rest, payload) in messages {
        match rest.split_once('/') {
            Some((_, location)) => log.event(name(place), place, payload, location),
            None => {
                checkpoints_read += 1;
                log.checkpoint(name(place), place, payload);
            }
        }
    }
    let mut findings = log.check(name);
    for other in announced.get(prefix).into_iter().flatten() {
        if key::parse_public(other).as_ref() != Some(key) {
            findings.notes.push(format!(
                "the gateway's status announces device key {other}, not the one given: a new key \
                 (see any device_key_replaced alarm), or the wrong --key"
            ));
        }
    }
    Ok(Report {
        gateway: prefix.to_owned(),
        files: captures.len(),
        lines: total,
        checkpoints_read,
        findings,
    })
}

/// The `{root}/{site}/{gateway}` prefix and the rest of a topic that
/// carries events (`{kind}/{location}`) or checkpoints (`checkpoint`).
fn ours(topic: &str) -> Option<(&str, &str)> {
    let mut ends = topic.match_indices('/').map(|(i, _)| i);
    let (_, _, third) = (ends.next()?, ends.next()?, ends.next()?);
    let (prefix, rest) = (&topic[..third], &topic[third + 1..]);
    let kind = rest.split('/').next()?;
    let wanted = match kind {
        CHECKPOINT_KIND => rest == CHECKPOINT_KIND,
        kind => EVENT_KINDS.contains(&kind) && rest.len() > kind.len() + 1,
    };
    wanted.then_some((prefix, rest))
}

/// `custodyd verify`: prints the report; `Ok(false)` when something does
/// not verify.
pub fn run(args: &VerifyArgs) -> Result<bool, VerifyError> {
    let key = key::parse_public(&args.key).ok_or_else(|| VerifyError::Key(args.key.clone()))?;
    let mut captures = Vec::new();
    for path in &args.files {
        let bytes = std::fs::read(path).map_err(|source| VerifyError::Read {
            path: path.clone(),
            source,
        })?;
        captures.push((path.display().to_string(), bytes));
    }
    let report = verify(&captures, &key, args.gateway.as_deref())?;
    print!("{report}");
    Ok(report.ok())
}

/// `1 event`, `2 events`.
pub(super) fn counted(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn ranges(ranges: &[std::ops::RangeInclusive<u64>]) -> String {
    let shown: Vec<String> = ranges
        .iter()
        .map(|r| match r.start() == r.end() {
            true => r.start().to_string(),
            false => format!("{}..={}", r.start(), r.end()),
        })
        .collect();
    shown.join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = &self.findings;
        writeln!(f, "gateway     {}", self.gateway)?;
        writeln!(
            f,
            "read        {}, {} lines: {}, {} re-delivered, {}",
            counted(self.files as u64, "file"),
            self.lines,
            counted(x.events as u64, "event"),
            x.copies,
            counted(self.checkpoints_read as u64, "checkpoint"),
        )?;
        match x.chained.is_empty() {
            true => writeln!(f, "chain       no events")?,
            false => writeln!(f, "chain       linked over seq {}", ranges(&x.chained))?,
        }
        match x.checkpoints.as_slice() {
            [] => writeln!(
                f,
                "checkpoints none verifies: nothing shows the chain was not cut off at its end"
            )?,
            seqs => {
                let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
                writeln!(
                    f,
                    "checkpoints signed and agreeing with the events at seq {}",
                    seqs.join(", ")
                )?
            }
        }
        if let Some(tail) = &x.tail {
            writeln!(
                f,
                "tail        seq {} after the last checkpoint: chained, not yet signed",
                ranges(std::slice::from_ref(tail))
            )?;
        }
        for note in &x.notes {
            writeln!(f, "note        {note}")?;
        }
        for problem in &x.problems {
            writeln!(f, "PROBLEM     {problem}")?;
        }
        match x.problems.len() {
            0 => writeln!(f, "result      OK: everything read verifies"),
            n => writeln!(f, "result      FAILED: {}", counted(n as u64, "problem")),
        }
    }
}

#[cfg(test)]
mod tests;
