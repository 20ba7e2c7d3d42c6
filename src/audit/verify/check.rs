//! The checks `custodyd verify` runs over the events and checkpoints of one
//! gateway, and what it finds.
//!
//! The order of lines in a capture means nothing (QoS 1 re-delivers, several
//! subscribers' files may be given): an event's place is its `seq`, and the
//! chain says whether that place is true. Identical copies of an event are
//! one event; two different events with one `seq` are a problem.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use serde_json::Value;

use crate::audit::chain::{self, Digest};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::key::PublicKey;

/// Where a message was read: the file's index in the arguments, and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub file: usize,
    pub line: usize,
}

/// Something that does not verify, at the `seq` it concerns where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub seqs: Option<RangeInclusive<u64>>,
    pub what: String,
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Distinct events (re-deliveries counted once) and their extra copies.
    pub events: usize,
    pub copies: usize,
    /// Runs of consecutive events whose every link holds.
    pub chained: Vec<RangeInclusive<u64>>,
    /// `seq`s of checkpoints whose signature verifies and that agree with
    /// every event they touch.
    pub checkpoints: Vec<u64>,
    /// Events after the last good checkpoint.
    pub tail: Option<RangeInclusive<u64>>,
    /// Worth knowing, not a failure.
    pub notes: Vec<String>,
    pub problems: Vec<Problem>,
}

/// One version of the event at a `seq`.
struct Variant {
    hash: Digest,
    /// `None`: `prev` is null.
    prev: Option<Digest>,
    at: Place,
}

/// The events and checkpoints of one gateway, as read.
pub struct Log<'k> {
    site: String,
    gateway: String,
    key: &'k PublicKey,
    events: BTreeMap<u64, Vec<Variant>>,
    copies: usize,
    checkpoints: Vec<(Place, Checkpoint)>,
    problems: Vec<Problem>,
}

fn problem(seq: u64, what: String) -> Problem {
    Problem {
        seqs: Some(seq..=seq),
        what,
    }
}

impl<'k> Log<'k> {
    pub fn new(site: &str, gateway: &str, key: &'k PublicKey) -> Self {
        Log {
            site: site.to_owned(),
            gateway: gateway.to_owned(),
            key,
            events: BTreeMap::new(),
            copies: 0,
            checkpoints: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A message on one of the gateway's event topics, of `location`.
    /// `place` names it.
    pub fn event(&mut self, place: String, at: Place, payload: &[u8], location: &str) {
        let unreadable = |what: &str| Problem {
            seqs: None,
            what: format!("{place}: {what}"),
        };
        let Ok(json) = serde_json::from_slice::<Value>(payload) else {
            self.problems
                .push(unreadable("an event that is not JSON (altered?)"));
            return;
        };
        let Some(seq) = json.get("seq").and_then(Value::as_u64) else {
            self.problems.push(unreadable("an event without a seq"));
            return;
        };
        // The chain covers the payload, not the topic: an event copied to
        // another location's (or gateway's) topic shows here.
        for (field, want) in [
            ("site", self.site.as_str()),
            ("gateway", self.gateway.as_str()),
            ("location", location),
        ] {
            let said = json.get(field).and_then(Value::as_str);
            if said != Some(want) {
                let what = format!("{place}: published for {field} {want} but says {said:?}");
                self.problems.push(problem(seq, what));
            }
        }
        let prev = match json.get("prev") {
            Some(Value::Null) => None,
            Some(Value::String(hex)) => match chain::parse_hex(hex) {
                Some(d) => Some(d),
                None => {
                    let what = format!("{place}: prev is not 64 lowercase hex digits");
                    self.problems.push(problem(seq, what));
                    return;
                }
            },
            _ => {
                let what = format!("{place}: no prev (a gateway without the custody log?)");
                self.problems.push(problem(seq, what));
                return;
            }
        };
        let hash = chain::hash(payload);
        let variants = self.events.entry(seq).or_default();
        if variants.iter().any(|v| v.hash == hash) {
            self.copies += 1;
        } else {
            variants.push(Variant { hash, prev, at });
        }
    }

    /// A message on the gateway's checkpoint topic.
    pub fn checkpoint(&mut self, place: String, at: Place, payload: &[u8]) {
        let cp = match Checkpoint::parse(payload) {
            Ok(cp) => cp,
            Err(e) => {
                self.problems.push(Problem {
                    seqs: None,
                    what: format!("{place}: {e}"),
                });
                return;
            }
        };
        match cp.verify(&self.site, &self.gateway, self.key) {
            Ok(()) => self.checkpoints.push((at, cp)),
            Err(e) => self.problems.push(problem(
                cp.seq,
                format!("{place}: the checkpoint does not verify: {e}"),
            )),
        }
    }

    /// Runs every check; `name` names a place for the report.
    pub fn check(mut self, name: impl Fn(Place) -> String) -> Findings {
        let mut f = Findings {
            events: self.events.values().map(Vec::len).sum(),
            copies: self.copies,
            problems: std::mem::take(&mut self.problems),
            ..Findings::default()
        };
        self.check_events(&mut f, &name);
        self.check_checkpoints(&mut f, &name);
        f.problems
            .sort_by_key(|p| p.seqs.as_ref().map(|r| *r.start()));
        f
    }

    fn check_events(&self, f: &mut Findings, name: &impl Fn(Place) -> String) {
        let mut run: Option<RangeInclusive<u64>> = None;
        let mut before: Option<(u64, &Vec<Variant>)> = None;
        for (&seq, variants) in &self.events {
            if variants.len() > 1 {
                let places: Vec<String> = variants.iter().map(|v| name(v.at)).collect();
                f.problems.push(problem(
                    seq,
                    format!(
                        "{} different events carry this seq ({}): one was altered or forged",
                        variants.len(),
                        places.join(", ")
                    ),
                ));
            }
            let starts_chain = variants.iter().any(|v| v.prev.is_none());
            if seq == 1 && variants.iter().any(|v| v.prev.is_some()) {
                f.problems.push(problem(
                    1,
                    "seq 1 has a prev: nothing comes before seq 1".into(),
                ));
            }
            if seq > 1 && starts_chain {
                f.problems.push(problem(
                    seq,
                    "prev is null: a new chain starts here, which nothing links to the events \
                     before it (a gateway that lost its spool says so in a spool_corrupt alarm)"
                        .into(),
                ));
            }
            let linked = match before {
                Some((b, earlier)) if b + 1 == seq => {
                    let holds = earlier
                        .iter()
                        .any(|e| variants.iter().any(|v| v.prev == Some(e.hash)));
                    // A null prev is reported as such, above.
                    if !holds && !starts_chain {
                        f.problems.push(problem(
                            b,
                            format!(
                                "its bytes ({}) do not match the prev of seq {seq} ({}): one of the \
                                 two was altered, or events were removed, inserted or reordered here",
                                name(earlier[0].at),
                                name(variants[0].at)
                            ),
                        ));
                    }
                    holds
                }
                Some((b, _)) => {
                    let missing = b + 1..=seq - 1;
                    let n = seq - 1 - b;
                    f.problems.push(Problem {
                        what: format!("missing from the capture ({})", super::counted(n, "event")),
                        seqs: Some(missing),
                    });
                    false
                }
                None => false,
            };
            run = match run {
                Some(r) if linked && variants.len() == 1 => Some(*r.start()..=seq),
                Some(r) => {
                    f.chained.push(r);
                    Some(seq..=seq)
                }
                None => Some(seq..=seq),
            };
            before = Some((seq, variants));
        }
        f.chained.extend(run);
    }

    fn check_checkpoints(&self, f: &mut Findings, name: &impl Fn(Place) -> String) {
        let first = self.events.keys().next().copied();
        let last = self.events.keys().next_back().copied();
        let mut heads: BTreeMap<u64, (Digest, Place)> = BTreeMap::new();
        let mut latest_in_file: BTreeMap<usize, (u64, Place)> = BTreeMap::new();
        let mut ordered: Vec<&(Place, Checkpoint)> = self.checkpoints.iter().collect();
        ordered.sort_by_key(|(at, _)| *at);
        for (at, cp) in ordered {
            let s = cp.seq;
            let here = name(*at);
            let mut good = true;
            match heads.get(&s) {
                Some((head, other)) if *head != cp.head => {
                    good = false;
                    f.problems.push(problem(
                        s,
                        format!(
                            "fork: the checkpoints at {here} and {} both verify but sign different \
                             heads for this seq",
                            name(*other)
                        ),
                    ));
                }
                _ => {
                    heads.insert(s, (cp.head, *at));
                }
            }
            if let Some((before, other)) = latest_in_file.get(&at.file) {
                if s < *before {
                    good = false;
                    f.problems.push(problem(
                        s,
                        format!(
                            "rollback: the checkpoint at {here} signs seq {s} after the one at {} \
                             signed seq {before}",
                            name(*other)
                        ),
                    ));
                }
            }
            latest_in_file
                .entry(at.file)
                .and_modify(|e| {
                    if s > e.0 {
                        *e = (s, *at)
                    }
                })
                .or_insert((s, *at));
            let event = self.events.get(&s);
            let next = s.checked_add(1).and_then(|n| self.events.get(&n));
            if let Some(variants) = event {
                if !variants.iter().any(|v| v.hash == cp.head) {
                    good = false;
                    f.problems.push(problem(
                        s,
                        format!(
                            "the checkpoint at {here} signs another head than this event's hash: \
                             the event was altered, or the gateway signed another history (a fork)"
                        ),
                    ));
                }
            }
            if let Some(variants) = next {
                if !variants.iter().any(|v| v.prev == Some(cp.head)) {
                    good = false;
                    f.problems.push(problem(
                        s + 1,
                        format!(
                            "its prev is not the head that the checkpoint at {here} signs for seq \
                             {s}: the chain was altered here, or the gateway signed another history"
                        ),
                    ));
                }
            }
            if event.is_none() && next.is_none() {
                match (first, last) {
                    (_, Some(last)) if s > last => {
                        good = false;
                        f.problems.push(Problem {
                            seqs: Some(last + 1..=s),
                            what: format!(
                                "signed by the checkpoint at {here} but not in the capture: cut off \
                                 the end, or not delivered yet"
                            ),
                        });
                    }
                    (Some(first), _) if s.saturating_add(1) < first => f.notes.push(format!(
                        "the checkpoint at {here} (seq {s}) comes before the captured events: its \
                         signature verifies, nothing links it to them"
                    )),
                    (None, None) => f.notes.push(format!(
                        "the checkpoint at {here} (seq {s}) verifies, but the capture holds no \
                         events to hold against it"
                    )),
                    _ => {}
                }
            }
            if good && !f.checkpoints.contains(&s) {
                f.checkpoints.push(s);
            }
        }
        f.checkpoints.sort_unstable();
        let covered = f.checkpoints.last().copied();
        if let Some(last) = last {
            let from = covered.map_or(first.unwrap_or(last), |c| c + 1);
            if from <= last {
                f.tail = Some(from..=last);
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.seqs {
            Some(r) if r.start() == r.end() => write!(f, "seq {}: {}", r.start(), self.what),
            Some(r) => write!(f, "seq {}..={}: {}", r.start(), r.end(), self.what),
            None => f.write_str(&self.what),
        }
    }
}
