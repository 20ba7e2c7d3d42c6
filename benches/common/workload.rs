//! The simulated door traffic shared by the criterion benches
//! (`benches/pipeline.rs`) and the load harness (`examples/load`), so both
//! measure the same pattern: tags arrive at a reader, are read over and over
//! while they stay in its field, depart, and (unless it is a flood of distinct
//! tags) come back later.
//!
//! Time is the model's, in microseconds from the start, so the benches can
//! replay it as fast as they like and the harness can follow the wall clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A small, fast, seedable generator (SplitMix64): the pattern must be the
/// same on every run, and no `rand` dependency is needed for that.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// EM4100 data is 40 bits (version byte plus 32-bit id).
const TAG_BITS: u32 = 40;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// The 40-bit tag value of tag number `index`: an odd multiplier modulo 2^40
/// is a bijection, so distinct indices give distinct tags, scattered over the
/// id space as real tags are (not 0000000001, 0000000002, ...).
pub fn tag_value(index: u64) -> u64 {
    (index.wrapping_mul(0x9E37_79B9_7F4B) ^ 0x5A_5A5A_5A5A) & TAG_MASK
}

/// The tag as the reader sends it and the daemon reports it (`asset.id`).
pub fn tag_hex(value: u64) -> String {
    format!("{value:010X}")
}

/// Reads the `asset.id` of an EM4100 event back into a tag value.
pub fn parse_tag(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex, 16).ok()
}

/// The on-the-wire frame for a tag value.
pub fn frame(value: u64) -> Vec<u8> {
    custodyd::demo::em4100_frame(&tag_hex(value))
}

/// What the traffic at the readers looks like.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Readers (one door each); tags are dealt to them round-robin.
    pub readers: usize,
    /// Tags in the population. With `flood`, this many *distinct* tags pass
    /// once each, spread evenly over `span_us`; otherwise this population
    /// comes and goes for as long as the run lasts.
    pub tags: u64,
    /// Mean time a tag stays in the field (each visit 0.5x to 1.5x of it).
    pub dwell_us: u64,
    /// Mean time a tag stays away between visits (0.5x to 1.5x); it must be
    /// well over the daemon's `departure_timeout`, or visits merge.
    pub gap_us: u64,
    pub flood: bool,
    /// Flood only: the time over which the distinct tags arrive.
    pub span_us: u64,
    pub seed: u64,
}

/// A tag in a reader's field.
#[derive(Debug)]
pub struct Visit {
    pub tag: u64,
    pub until_us: u64,
    pub frame: Vec<u8>,
    /// Frames of this visit written so far, and when the last one was
    /// (model time); kept by whoever writes them.
    pub reads: u64,
    pub last_read_us: u64,
}

/// One reader's field: which tags are in it at a given model time, and which
/// one it reads next (round-robin, as an anti-collision reader cycles tags).
pub struct Door {
    dwell_us: u64,
    gap_us: u64,
    rng: Rng,
    /// (start, tag) of visits to come.
    upcoming: BinaryHeap<Reverse<(u64, u64)>>,
    /// Flood: the next distinct tag index of this door and when it arrives.
    flood: Option<Flood>,
    pub active: Vec<Visit>,
    cursor: usize,
}

#[derive(Debug)]
struct Flood {
    next_index: u64,
    /// Indices of this door are `door, door + step, ...` below `end`.
    step: u64,
    end: u64,
    next_at_us: u64,
    interval_us: f64,
    first_at_us: f64,
}

impl Door {
    /// The door `door` of `pattern`, at model time 0.
    pub fn new(pattern: &Pattern, door: usize) -> Door {
        let mut rng = Rng::new(pattern.seed ^ (door as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let step = pattern.readers as u64;
        let mut upcoming = BinaryHeap::new();
        let mut active = Vec::new();
        let flood = if pattern.flood {
            let mine = pattern.tags.saturating_sub(door as u64).div_ceil(step);
            let interval_us = pattern.span_us as f64 / mine.max(1) as f64;
            // Doors take turns, so arrivals are spread over time, not bunched.
            let first_at_us = interval_us * door as f64 / step as f64;
            Some(Flood {
                next_index: door as u64,
                step,
                end: pattern.tags,
                next_at_us: first_at_us as u64,
                interval_us,
                first_at_us,
            })
        } else {
            // Start in a steady state: each tag somewhere in its cycle, so
            // about dwell / (dwell + gap) of them are in the field at once.
            let cycle = pattern.dwell_us + pattern.gap_us;
            for index in (door as u64..pattern.tags).step_by(pattern.readers) {
                let (tag, phase) = (tag_value(index), rng.between(0, cycle));
                match phase.checked_sub(pattern.dwell_us) {
                    Some(away) => upcoming.push(Reverse((away, tag))),
                    None => active.push(Visit {
                        tag,
                        until_us: pattern.dwell_us - phase,
                        frame: frame(tag),
                        reads: 0,
                        last_read_us: 0,
                    }),
                }
            }
            None
        };
        Door {
            dwell_us: pattern.dwell_us,
            gap_us: pattern.gap_us,
            rng,
            upcoming,
            flood,
            active,
            cursor: 0,
        }
    }

    fn jitter(&mut self, mean: u64) -> u64 {
        self.rng.between(mean / 2, mean + mean / 2 + 1)
    }

    /// Moves the door to model time `now_us`: visits that are over leave the
    /// field (handed to `ended`, which schedules nothing), visits that are
    /// due enter it.
    pub fn advance(&mut self, now_us: u64, mut ended: impl FnMut(Visit)) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].until_us <= now_us {
                let visit = self.active.swap_remove(i);
                if self.flood.is_none() {
                    let back = visit.until_us + self.jitter(self.gap_us);
                    self.upcoming.push(Reverse((back, visit.tag)));
                }
                ended(visit);
            } else {
                i += 1;
            }
        }
        while let Some(&Reverse((at, tag))) = self.upcoming.peek() {
            if at > now_us {
                break;
            }
            self.upcoming.pop();
            self.enter(tag, at);
        }
        while let Some(f) = &mut self.flood {
            if f.next_index >= f.end || f.next_at_us > now_us {
                break;
            }
            let (tag, at) = (tag_value(f.next_index), f.next_at_us);
            f.next_index += f.step;
            let n = (f.next_index / f.step) as f64;
            f.next_at_us = (f.first_at_us + n * f.interval_us) as u64;
            self.enter(tag, at);
        }
    }

    fn enter(&mut self, tag: u64, at_us: u64) {
        let until_us = at_us + self.jitter(self.dwell_us);
        self.active.push(Visit {
            tag,
            until_us,
            frame: frame(tag),
            reads: 0,
            last_read_us: at_us,
        });
    }

    /// Ends every visit in the field (the run is over) and schedules none.
    pub fn end_all(&mut self, now_us: u64, ended: impl FnMut(Visit)) {
        for visit in &mut self.active {
            visit.until_us = visit.until_us.min(now_us);
        }
        self.advance(now_us, ended);
        self.upcoming.clear();
        self.flood = None;
    }

    /// The next tag read: its visit, or `None` while the field is empty.
    pub fn next_read(&mut self) -> Option<&mut Visit> {
        if self.active.is_empty() {
            return None;
        }
        self.cursor = (self.cursor + 1) % self.active.len();
        Some(&mut self.active[self.cursor])
    }

    /// Whether no tag will ever come again (a flood that is over).
    pub fn finished(&self) -> bool {
        self.active.is_empty()
            && self.upcoming.is_empty()
            && self.flood.as_ref().is_none_or(|f| f.next_index >= f.end)
    }
}
