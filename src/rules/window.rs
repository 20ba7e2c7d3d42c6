//! Read windows at a portal: the readers read while something passes, and
//! what they read in one window is one pass.
//!
//! A sensor (photo-eye, motion sensor, or either beam) going active opens a
//! window and switches the location's command-driven readers to inventory.
//! The window stays open while a sensor is active and closes `quiet_after`
//! after the last new tag or sensor change, or at `max_window`; the readers
//! go idle then. The window's members are the assets present when it opened
//! and those that arrive while it is open.
//!
//! A closed window is a pass waiting for its members' departures, because
//! presence hands over each asset's evidence with its `departed`: the
//! readers being idle, that comes within `departure_timeout` of the close.
//! When the last member has departed (or, at the latest, a little after
//! that timeout, for members something still reads), the pass is
//! [`Finished`]: the rules decide each member's direction with the beams'
//! order of the whole window and publish the moves and the summary together.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use ulid::Ulid;

use super::window_save::SavedPass;
use crate::config::WindowConfig;
use crate::custody::{ClosedBy, Custody, Direction};
use crate::gpio::Edge;
use crate::presence::Evidence;

/// Beyond `departure_timeout`, how long a closed window waits for its
/// members' departures: the readers' last round and the hop from presence.
const DEPARTURE_SLACK: Duration = Duration::from_secs(1);

/// The sensors that can open a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensor {
    Trigger = 0,
    Outer = 1,
    Inner = 2,
}

/// One member's presence as it ended: its `departed` and the evidence.
#[derive(Debug)]
pub struct Member {
    pub custody: Custody,
    pub evidence: Box<Evidence>,
}

/// A pass whose window has closed and whose members have departed.
#[derive(Debug)]
pub struct Finished {
    pub pass_id: Ulid,
    pub opened_at: SystemTime,
    pub closed_at: SystemTime,
    pub closed_by: ClosedBy,
    /// The beams' order in the window, if they gave one.
    pub beams: Option<Direction>,
    /// Every asset read in the window, in the order they came.
    pub assets: Vec<Arc<str>>,
    /// The members whose presence ended while the pass waited for them.
    pub members: Vec<Member>,
    /// This pass made `silent_after` windows in a row without a read.
    pub silent: Option<u32>,
}

/// A window, open or closed, and its pass.
#[derive(Debug)]
struct Pass {
    pass_id: Ulid,
    opened: Instant,
    opened_at: SystemTime,
    closed: Option<(SystemTime, ClosedBy)>,
    /// Assets in the window, in order, and as a set.
    assets: Vec<Arc<str>>,
    in_pass: HashSet<Arc<str>>,
    /// Members still present.
    waiting: HashSet<Arc<str>>,
    members: Vec<Member>,
    /// Something was read while the window was open.
    read: bool,
    /// When each beam was first broken in the window.
    outer: Option<Instant>,
    inner: Option<Instant>,
    /// Open: the last new tag or sensor change; closed: when to stop waiting.
    last_activity: Instant,
    give_up: Option<Instant>,
}

impl Pass {
    fn beams(&self) -> Option<Direction> {
        match (self.outer?, self.inner?) {
            (outer, inner) if outer < inner => Some(Direction::Inbound),
            (outer, inner) if inner < outer => Some(Direction::Outbound),
            _ => None,
        }
    }

    fn join(&mut self, asset: &Arc<str>) {
        if self.in_pass.insert(asset.clone()) {
            self.assets.push(asset.clone());
        }
        self.waiting.insert(asset.clone());
    }
}

/// The read windows of one portal.
pub struct Windows {
    config: WindowConfig,
    departure_timeout: Duration,
    /// `true` while a window is open: the location's UHF readers obey it.
    reading: watch::Sender<bool>,
    /// Assets present at the location now.
    present: HashSet<Arc<str>>,
    /// Sensors active now, by [`Sensor`].
    active: [bool; 3],
    open: Option<Pass>,
    /// Closed, waiting for departures; oldest first.
    closed: Vec<Pass>,
    /// Windows in a row that read nothing.
    empty: u32,
    /// The passes changed since [`Windows::take_saved`] last looked.
    dirty: bool,
}

impl Windows {
    pub fn new(config: WindowConfig, departure_timeout: Duration) -> Self {
        Windows {
            config,
            departure_timeout,
            reading: watch::Sender::new(false),
            present: HashSet::new(),
            active: [false; 3],
            open: None,
            closed: Vec::new(),
            empty: 0,
            dirty: false,
        }
    }

    /// What the location's readers follow: read while `true`.
    pub fn reading(&self) -> watch::Receiver<bool> {
        self.reading.subscribe()
    }

    /// A sensor's edge: active opens a window (or holds it open).
    pub fn sensor(&mut self, sensor: Sensor, edge: Edge, now: Instant, out: &mut Vec<Finished>) {
        self.active[sensor as usize] = edge.active;
        if !edge.active {
            if let Some(open) = &mut self.open {
                open.last_activity = now;
            }
            return;
        }
        if self.open.is_none() {
            self.open_window(edge, now, out);
        }
        let Some(open) = &mut self.open else {
            return;
        };
        let first_break = match sensor {
            Sensor::Trigger => None,
            Sensor::Outer => Some(&mut open.outer),
            Sensor::Inner => Some(&mut open.inner),
        };
        if let Some(first_break) = first_break {
            first_break.get_or_insert(edge.at);
        }
        open.last_activity = now;
    }

    fn open_window(&mut self, edge: Edge, now: Instant, out: &mut Vec<Finished>) {
        let mut pass = Pass {
            pass_id: Ulid::new(),
            opened: edge.at,
            opened_at: edge.wall,
            closed: None,
            assets: Vec::new(),
            in_pass: HashSet::new(),
            waiting: HashSet::new(),
            members: Vec::new(),
            read: false,
            outer: None,
            inner: None,
            last_activity: now,
            give_up: None,
        };
        // Assets still in the field from an earlier pass are read again in
        // this one, and belong to it now.
        for asset in &self.present {
            pass.join(asset);
            for closed in &mut self.closed {
                closed.waiting.remove(asset);
            }
        }
        self.finish_ready(out);
        self.reading.send_replace(true);
        self.open = Some(pass);
        self.dirty = true;
    }

    /// An asset arrived at the location: a member if a window is open.
    pub fn arrived(&mut self, asset: &Arc<str>, now: Instant) {
        self.present.insert(asset.clone());
        if let Some(open) = &mut self.open {
            open.join(asset);
            open.read = true;
            open.last_activity = now;
            self.dirty = true;
        }
    }

    /// An asset's presence ended. A member's is kept for its pass (which
    /// may now be finished); anything else comes back, to be decided alone.
    pub fn departed(
        &mut self,
        custody: Custody,
        evidence: Box<Evidence>,
        out: &mut Vec<Finished>,
    ) -> Option<Member> {
        let asset = &custody.asset.id;
        self.present.remove(asset);
        let pass = self
            .open
            .iter_mut()
            .chain(&mut self.closed)
            .find(|p| p.waiting.contains(asset));
        let member = Member { custody, evidence };
        let Some(pass) = pass else {
            return Some(member);
        };
        pass.waiting.remove(&member.custody.asset.id);
        pass.read |= member.custody.last_seen >= pass.opened_at;
        pass.members.push(member);
        self.finish_ready(out);
        None
    }

    /// When [`Windows::expire`] next has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let open = self.open.as_ref().map(|open| {
            let max = open.opened + self.config.max_window;
            if self.active.contains(&true) {
                max
            } else {
                max.min(open.last_activity + self.config.quiet_after)
            }
        });
        let closed = self.closed.iter().filter_map(|p| p.give_up).min();
        open.into_iter().chain(closed).min()
    }

    /// Closes the window if it is due, and gives up waiting for members of
    /// closed ones that something still reads.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Finished>) {
        if let Some(open) = &self.open {
            let quiet =
                !self.active.contains(&true) && now >= open.last_activity + self.config.quiet_after;
            if now >= open.opened + self.config.max_window {
                self.close(now, ClosedBy::MaxWindow);
            } else if quiet {
                self.close(now, ClosedBy::Quiet);
            }
        }
        for pass in &mut self.closed {
            if pass.give_up.is_some_and(|at| at <= now) {
                pass.waiting.clear();
            }
        }
        self.finish_ready(out);
    }

    fn close(&mut self, now: Instant, by: ClosedBy) {
        let Some(mut pass) = self.open.take() else {
            return;
        };
        self.reading.send_replace(false);
        pass.closed = Some((SystemTime::now(), by));
        pass.give_up = Some(now + self.departure_timeout + DEPARTURE_SLACK);
        self.closed.push(pass);
        self.dirty = true;
    }

    /// The daemon stops: every pass is finished with what it has.
    pub fn shut(&mut self, now: Instant, out: &mut Vec<Finished>) {
        self.close(now, ClosedBy::Shutdown);
        for pass in &mut self.closed {
            pass.waiting.clear();
        }
        self.finish_ready(out);
    }

    /// The passes to save (open and waiting for departures, `[]` when
    /// there are none), if they changed since the last call.
    pub fn take_saved(&mut self) -> Option<Vec<SavedPass>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let passes = self.closed.iter().chain(&self.open);
        Some(
            passes
                .map(|p| SavedPass::new(p.pass_id, p.opened_at, p.closed, &p.assets))
                .collect(),
        )
    }

    /// Hands out every closed pass that waits for no one, in order.
    fn finish_ready(&mut self, out: &mut Vec<Finished>) {
        let mut i = 0;
        while i < self.closed.len() {
            if !self.closed[i].waiting.is_empty() {
                i += 1;
                continue;
            }
            let pass = self.closed.remove(i);
            self.dirty = true;
            let beams = pass.beams();
            let (closed_at, closed_by) = pass.closed.expect("only closed passes wait here");
            // A window cut short by the daemon stopping says nothing about
            // the readers.
            if closed_by != ClosedBy::Shutdown {
                self.empty = if pass.read { 0 } else { self.empty + 1 };
            }
            out.push(Finished {
                pass_id: pass.pass_id,
                opened_at: pass.opened_at,
                closed_at,
                closed_by,
                beams,
                assets: pass.assets,
                members: pass.members,
                silent: (self.empty == self.config.silent_after).then_some(self.empty),
            });
        }
    }
}

#[cfg(test)]
mod tests;
