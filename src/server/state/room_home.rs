//! What a room's *home shard* keeps besides the room's order: its recent lines
//! (history) and the joins and quits held back for a summary.
//!
//! Both live on the home shard because every room event already passes through it
//! in the room's one order (ET-8): recording a line there costs no lock and no
//! message, and a summary released there takes its place in that same order on
//! every shard. The directory would have needed its lock once more per room line.
//! The price is that a member on another shard asks for history with one inbox
//! message, answered with one; `/join` and `/history` are rare next to lines.
//!
//! History is per node: in a cluster, each node keeps what its home shard saw
//! (remote lines included, since they pass through it too).
//!
//! History belongs to one *incarnation* of a room (the directory's `born` number):
//! a room that empties is gone, and one made again under its name must not show
//! the last one's lines, even under `+s` or `+k` (a privacy leak otherwise). Only a
//! registered room outlives being empty, and keeps its lines. [`RoomHome::fence`] is
//! where that rule is applied, before every line kept and every read; the store
//! applies the same rule to what is on disk.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{Event, HistoryLine, Nick, RoomName, SUMMARY_NICKS, SayKind, SummaryKind};

use crate::server::token::ConnId;

/// The history line `event` makes, if it is something said in a room (a message,
/// an action or a notice), with message id `id`; `at_ms` is when it was made.
pub fn said_line(event: &Event, at_ms: u64, id: impl FnOnce() -> u64) -> Option<HistoryLine> {
    let (from, text, kind) = match event {
        Event::Message { from, text, .. } => (from, text, SayKind::Message),
        Event::Action { from, text, .. } => (from, text, SayKind::Action),
        Event::RoomNotice { from, text, .. } => (from, text, SayKind::Notice),
        _ => return None,
    };
    Some(HistoryLine {
        id: id(),
        at_ms,
        from: from.clone(),
        kind,
        text: Arc::from(&**text),
    })
}

/// A room event to release, and the local connection it is not for (a joiner does
/// not get its own join).
pub type Release = (Event, Option<ConnId>);

/// Joins (or quits) closer together than this are summed up in one line.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(1);

/// The home shard's extra state for the rooms it is home to.
#[derive(Debug)]
pub struct RoomHome {
    /// Lines kept per room (`--history`; 0 = none).
    history_len: usize,
    /// Per room.
    rooms: HashMap<RoomName, HomeRoom>,
}

/// One room's history and held joins and quits.
#[derive(Debug, Default)]
struct HomeRoom {
    /// The incarnation of the room the lines belong to.
    born: u64,
    /// The last lines, oldest first.
    lines: VecDeque<HistoryLine>,
    /// Joins held for a summary.
    joins: Held,
    /// Quits held for a summary.
    quits: Held,
}

impl HomeRoom {
    /// Adds what is due (or everything held, with `force`) to `due`.
    fn release_into(&mut self, room: &RoomName, now: Instant, force: bool, due: &mut Vec<Release>) {
        for (kind, held) in [
            (SummaryKind::Joins, &mut self.joins),
            (SummaryKind::Quits, &mut self.quits),
        ] {
            match held.release(now, force) {
                Some((_, _, Some(first))) => due.push(first),
                Some((count, nicks, None)) => {
                    let room = room.clone();
                    due.push((
                        Event::Summary {
                            room,
                            kind,
                            count,
                            nicks,
                        },
                        None,
                    ));
                }
                None => {}
            }
        }
    }
}

/// Joins or quits of one room held for a summary.
#[derive(Debug, Default)]
struct Held {
    /// When the last line about them (single or summary) went out; within
    /// [`SUMMARY_WINDOW`] of it, more are held.
    last_sent: Option<Instant>,
    /// How many are held.
    count: usize,
    /// The first few held nicks.
    nicks: Vec<Nick>,
    /// The first held event and who it was not for (the joiner): released as it is
    /// when no other followed.
    first: Option<Release>,
}

impl Held {
    /// True if this join/quit is held (line readers get it in a summary later).
    fn hold(&mut self, event: &Event, except: Option<ConnId>, nick: &Nick, now: Instant) -> bool {
        let recent = self
            .last_sent
            .is_some_and(|at| now.duration_since(at) < SUMMARY_WINDOW);
        if !recent && self.count == 0 {
            self.last_sent = Some(now);
            return false;
        }
        self.count += 1;
        if self.count == 1 {
            self.first = Some((event.clone(), except));
        }
        if self.nicks.len() < SUMMARY_NICKS {
            self.nicks.push(nick.clone());
        }
        true
    }

    /// The summary to send now, if one is held and its window has passed: the count,
    /// the first nicks, and the event itself when only one was held.
    fn release(
        &mut self,
        now: Instant,
        force: bool,
    ) -> Option<(usize, Vec<Nick>, Option<Release>)> {
        let due = force
            || self
                .last_sent
                .is_none_or(|at| now.duration_since(at) >= SUMMARY_WINDOW);
        if self.count == 0 || !due {
            return None;
        }
        self.last_sent = Some(now);
        let count = std::mem::take(&mut self.count);
        let first = self.first.take().filter(|_| count == 1);
        Some((count, std::mem::take(&mut self.nicks), first))
    }
}

impl RoomHome {
    /// Keeps `history_len` lines per room.
    pub fn new(history_len: usize) -> Self {
        RoomHome {
            history_len,
            rooms: HashMap::new(),
        }
    }

    /// A reload's `--history`: rooms trim to it as their next line arrives (with 0,
    /// what they keep stays readable until they are forgotten).
    pub fn set_history(&mut self, history_len: usize) {
        self.history_len = history_len;
    }

    /// Keeps `line` in `room`'s history (nothing with `--history 0`); `born` is the
    /// room's incarnation now (see [`Self::fence`]).
    pub fn record(
        &mut self,
        room: &RoomName,
        line: HistoryLine,
        born: u64,
        registered: impl FnOnce() -> bool,
    ) {
        if self.history_len == 0 {
            return;
        }
        self.fence(room, born, registered);
        let home = self.rooms.entry(room.clone()).or_default();
        home.born = born;
        // `while`: a reload may have shortened the history.
        while home.lines.len() >= self.history_len {
            home.lines.pop_front();
        }
        home.lines.push_back(line);
    }

    /// The incarnation rule: lines kept for another incarnation of `room` than
    /// `born` (0: the room has no members now) are dropped, unless the room is
    /// registered (asked only then: one lock, and only when they differ). Returns
    /// how many lines `room` keeps now.
    pub fn fence(
        &mut self,
        room: &RoomName,
        born: u64,
        registered: impl FnOnce() -> bool,
    ) -> usize {
        let Some(home) = self.rooms.get_mut(room) else {
            return 0;
        };
        if home.born != born && !home.lines.is_empty() && !registered() {
            home.lines.clear();
            home.lines.shrink_to_fit();
        }
        home.born = born;
        home.lines.len()
    }

    /// The last `count` lines of `room`, oldest first.
    pub fn recent(&self, room: &RoomName, count: usize) -> Vec<HistoryLine> {
        let Some(home) = self.rooms.get(room) else {
            return Vec::new();
        };
        let skip = home.lines.len().saturating_sub(count);
        home.lines.iter().skip(skip).cloned().collect()
    }

    /// True if this join or quit notice is held for a summary (line readers get
    /// nothing for it now); false for any other event.
    pub fn hold(&mut self, event: &Event, except: Option<ConnId>, now: Instant) -> bool {
        let (room, nick, kind) = match event {
            Event::Joined { room, nick } => (room, nick, SummaryKind::Joins),
            Event::Quit { room, nick, .. } => (room, nick, SummaryKind::Quits),
            _ => return false,
        };
        let home = self.rooms.entry(room.clone()).or_default();
        match kind {
            SummaryKind::Joins => home.joins.hold(event, except, nick, now),
            SummaryKind::Quits => home.quits.hold(event, except, nick, now),
        }
    }

    /// The summaries whose window has passed, as room events for line readers (a
    /// lone held join or quit is released as it was, not to the one it was not for).
    pub fn due(&mut self, now: Instant) -> Vec<Release> {
        let mut due = Vec::new();
        for (room, home) in &mut self.rooms {
            home.release_into(room, now, false, &mut due);
        }
        due
    }

    /// What is held for `room`, released now whatever the window: another event of
    /// the room is about to go out, and a held join must not arrive after it (a line
    /// reader would see `bob` speak, or be renamed, before `bob` joined).
    pub fn flush(&mut self, room: &RoomName, now: Instant) -> Vec<Release> {
        let mut due = Vec::new();
        if let Some(home) = self.rooms.get_mut(room) {
            home.release_into(room, now, true, &mut due);
        }
        due
    }

    /// The rooms this shard keeps something for (to forget the empty ones).
    pub fn rooms(&self) -> Vec<RoomName> {
        self.rooms.keys().cloned().collect()
    }

    /// Forgets `room` (it has no members left anywhere).
    pub fn forget(&mut self, room: &RoomName) {
        self.rooms.remove(room);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn joined(nick: &str) -> Event {
        Event::Joined {
            room: RoomName::lobby(),
            nick: Nick::parse(nick).unwrap(),
        }
    }

    #[test]
    fn the_first_join_goes_out_and_the_rest_of_the_second_is_summed_up() {
        let mut home = RoomHome::new(0);
        let t0 = Instant::now();
        assert!(
            !home.hold(&joined("a"), None, t0),
            "the first is sent as is"
        );
        assert!(home.hold(&joined("b"), None, t0));
        assert!(home.hold(&joined("c"), None, t0));
        assert!(home.due(t0).is_empty(), "not before the window ends");
        let due = home.due(t0 + SUMMARY_WINDOW);
        assert_eq!(due.len(), 1);
        let (Event::Summary { count, nicks, .. }, None) = &due[0] else {
            panic!("{due:?}");
        };
        assert_eq!((*count, nicks.len()), (2, 2));
        let later = t0 + SUMMARY_WINDOW * 3;
        assert!(home.due(later).is_empty());
        assert!(
            !home.hold(&joined("d"), None, later),
            "a quiet room sends at once"
        );
    }

    #[test]
    fn history_keeps_the_last_lines_only() {
        let mut home = RoomHome::new(3);
        for i in 0..5 {
            let event = Event::Message {
                room: RoomName::lobby(),
                from: Nick::parse("a").unwrap(),
                text: format!("line {i}").into(),
            };
            let line = said_line(&event, i, || i + 1).unwrap();
            home.record(&RoomName::lobby(), line, 1, || false);
        }
        let lines = home.recent(&RoomName::lobby(), 20);
        let texts: Vec<&str> = lines.iter().map(|l| &*l.text).collect();
        assert_eq!(texts, ["line 2", "line 3", "line 4"]);
        assert_eq!(home.recent(&RoomName::lobby(), 1).len(), 1);
        assert_eq!(home.fence(&RoomName::lobby(), 1, || false), 3);
        assert_eq!(home.fence(&RoomName::lobby(), 2, || true), 3, "registered");
        assert_eq!(home.fence(&RoomName::lobby(), 3, || false), 0, "made again");
        assert!(home.recent(&RoomName::lobby(), 20).is_empty());
    }

    /// The memory one kept line costs, printed for docs/BENCHMARKS.md:
    /// `cargo test --lib history_memory -- --nocapture`.
    #[test]
    fn history_memory_per_line_is_bounded() {
        let fixed = std::mem::size_of::<HistoryLine>();
        let text = 60;
        println!(
            "history: {fixed} bytes per line + its text ({text} bytes typical, at most --max-line); \
             100 lines of {text} bytes = {} KiB per room",
            (100 * (fixed + text)) / 1024
        );
        assert!(fixed <= 64, "a kept line's fixed part is {fixed} bytes");
    }
}
