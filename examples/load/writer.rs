//! The simulated readers: one pseudo-terminal per reader, written at a fixed
//! frame rate from the shared door traffic model, on a thread of its own so
//! the pacing does not depend on the async runtime.
//!
//! For every visit it notes when its first frame was written (an `arrived`
//! is owed) and when its last one was (a `departed` is owed one departure
//! timeout later); the subscriber matches events against these.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custodyd::demo::SimPort;

use crate::workload::{Door, Pattern};

/// What the writer owes the subscriber, per tag value, oldest first.
#[derive(Default)]
pub struct Owed {
    /// Write time of the first frame of each visit.
    pub arrivals: HashMap<u64, VecDeque<Instant>>,
    /// Write time of the last frame of each visit that has ended.
    pub departures: HashMap<u64, VecDeque<Instant>>,
}

/// Shared between the writer thread, the subscriber and the report.
#[derive(Default)]
pub struct Progress {
    pub owed: Mutex<Owed>,
    pub frames: AtomicU64,
    /// Frame slots with no tag in the field (nothing written for them).
    pub idle_slots: AtomicU64,
    /// Visits that got at least one frame.
    pub visits: AtomicU64,
    pub done: AtomicBool,
}

pub struct Writer {
    pub ports: Vec<SimPort>,
    pub pattern: Pattern,
    /// Frames per second per reader.
    pub rate: u64,
    pub tick: Duration,
    pub duration: Duration,
    pub progress: Arc<Progress>,
}

impl Writer {
    /// Writes until `duration` has passed (or a flood has no tags left).
    /// Returns the ports, which must stay open until the daemon is stopped:
    /// closing a master hangs the reader up (the daemon would see an unplug).
    pub fn run(mut self) -> std::io::Result<Vec<SimPort>> {
        let mut doors: Vec<Door> = (0..self.ports.len())
            .map(|d| Door::new(&self.pattern, d))
            .collect();
        let mut written = vec![0u64; doors.len()];
        let mut buf = Vec::with_capacity(4096);
        let mut firsts = Vec::new();
        let start = Instant::now();
        let mut next_tick = start;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= self.duration || doors.iter().all(Door::finished) {
                break;
            }
            let t_us = elapsed.as_micros() as u64;
            let due_total = self.rate * t_us / 1_000_000;
            for (d, door) in doors.iter_mut().enumerate() {
                let progress = &self.progress;
                door.advance(t_us, |visit| {
                    if visit.reads > 0 {
                        let last = start + Duration::from_micros(visit.last_read_us);
                        let mut owed = progress.owed.lock().unwrap();
                        owed.departures
                            .entry(visit.tag)
                            .or_default()
                            .push_back(last);
                    }
                });
                buf.clear();
                firsts.clear();
                let due = due_total - written[d];
                written[d] = due_total;
                for _ in 0..due {
                    match door.next_read() {
                        Some(visit) => {
                            buf.extend_from_slice(&visit.frame);
                            visit.reads += 1;
                            visit.last_read_us = t_us;
                            if visit.reads == 1 {
                                firsts.push(visit.tag);
                            }
                        }
                        None => {
                            self.progress.idle_slots.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                let at = Instant::now();
                self.ports[d].write(&buf)?;
                self.progress
                    .frames
                    .fetch_add((buf.len() / 14) as u64, Ordering::Relaxed);
                if !firsts.is_empty() {
                    self.progress
                        .visits
                        .fetch_add(firsts.len() as u64, Ordering::Relaxed);
                    let mut owed = self.progress.owed.lock().unwrap();
                    for tag in &firsts {
                        owed.arrivals.entry(*tag).or_default().push_back(at);
                    }
                }
            }
            next_tick += self.tick;
            let now = Instant::now();
            if next_tick > now {
                std::thread::sleep(next_tick - now);
            } else {
                // Behind (a loaded machine): catch up on the next pass with
                // one bigger write per reader, as a serial buffer would.
                next_tick = now;
            }
        }
        // Visits still in the field when writing stops end now.
        let elapsed = start.elapsed().as_micros() as u64 + 1;
        for door in &mut doors {
            let progress = &self.progress;
            door.end_all(elapsed, |visit| {
                if visit.reads > 0 {
                    let last = start + Duration::from_micros(visit.last_read_us);
                    let mut owed = progress.owed.lock().unwrap();
                    owed.departures
                        .entry(visit.tag)
                        .or_default()
                        .push_back(last);
                }
            });
        }
        self.progress.done.store(true, Ordering::Release);
        Ok(self.ports)
    }
}
