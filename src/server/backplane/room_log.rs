//! Each room's shared log: a Redis Stream (`miochat:log:ROOM`) that holds the room's
//! events as the nodes published them, so a node that was cut off reads back what
//! it missed instead of only counting it.
//!
//! Pub/sub alone forgets: a message published while a node's subscription is down
//! (its link dropped, or Redis cut it as a slow subscriber) is gone for that node.
//! So a node publishes its room events with one script (a run of them per call)
//! that first appends each to the room's stream (`XADD`, trimmed to about
//! `--history-max` entries) and then publishes the run as one message, a line per
//! event prefixed with its entry's stream id: an event is in the log if and only if
//! it was published, and every receiver knows where it is in the log.
//!
//! - **Recovery.** A node remembers the last stream id it received per room. When
//!   its subscription to the room is back (Redis confirmed it), it reads the log
//!   from there (`XRANGE (ID +`) and hands its members the lines they missed as
//!   history, then `EVENT ROOM recovered N`. Live events that arrive meanwhile wait
//!   until the read is answered, so nothing is delivered twice or out of order.
//! - **Exact loss.** Entries carry their origin's sequence numbers, so the lines
//!   that were trimmed away before they could be read are counted exactly and
//!   reported as a gap.
//! - **Held while away.** A node that cannot reach Redis holds its own rooms'
//!   events (up to [`HOLD_MAX`]) and publishes them, in order, when it is back.
//!
//! On a Redis Cluster the script publishes with `SPUBLISH`, and the room's log and
//! channel share the `{ROOM}` hash tag (`keys.rs`): a script may touch one slot only.

use std::fmt::Write as _;

use super::scripts::Script;
use std::collections::{HashMap, VecDeque};

use redis_protocol::resp2::types::OwnedFrame;

use crate::protocol::{Event, RoomName};

use super::wire::{BadWire, Wire};

/// Logs and publishes a run of this node's events in one room, in order. ARGV: the
/// channel, about how many entries the stream keeps (0: no limit), `PUBLISH` (or
/// `SPUBLISH` on a cluster), this node's name, its epoch, then a pair `PAYLOAD SEQ`
/// per event. Each payload is appended to the stream KEYS[1], which is trimmed once
/// at the end; then the run goes out as one message on the channel: a line `ID
/// PAYLOAD` per event logged. Returns how many were logged. Unless an event was
/// logged already: KEYS[2] holds, per node, the `EPOCH SEQ` of the last event it
/// logged in the room, and an event sent again after its link dropped, once Redis
/// had run it, is not logged twice. One call and one message per run, not per
/// event: under load a script call's own cost, the two hash commands and a message
/// per line were most of Redis's work. Within the loop the script does only what
/// each event needs (a number compared, an `XADD`, its line's parts put in a table
/// joined once): matching a pattern per event, trimming per `XADD`, one string per
/// line and a table of ids returned took about a third of it (91–110 against
/// 61–64 µs per call of 30 events, measured against a local Redis 7.0).
pub static LOG_AND_PUBLISH: Script = Script::new(
    "\
local last = redis.call('HGET', KEYS[2], ARGV[4])
local epoch, seq = ARGV[5], -1
if last then
  local e, s = string.match(last, '(%d+) (%d+)')
  if e == epoch then seq = tonumber(s) end
end
local newest, out, n = nil, {}, 0
for i = 6, #ARGV - 1, 2 do
  local s = tonumber(ARGV[i + 1])
  if not (s and s <= seq) then
    if s then seq, newest = s, ARGV[i + 1] end
    local id = redis.call('XADD', KEYS[1], '*', 'w', ARGV[i])
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, ' ', ARGV[i], '\\n'
    n = n + 4
  end
end
if n == 0 then return 0 end
if newest then redis.call('HSET', KEYS[2], ARGV[4], epoch .. ' ' .. newest) end
if ARGV[2] ~= '0' then redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2]) end
out[n] = nil
redis.call(ARGV[3], ARGV[1], table.concat(out))
return n / 4",
);

/// A room event's wire bytes as one line: a published run puts one event per line.
/// A room event never holds a line break (its texts came as lines), and a decoder
/// reads a room event's first line only, so cutting there loses nothing.
pub fn one_line(mut payload: Vec<u8>) -> Vec<u8> {
    if let Some(end) = payload.iter().position(|&b| b == b'\n') {
        payload.truncate(end);
    }
    payload
}

/// The sequence numbers of a run's events as [`LOG_AND_PUBLISH`] compares them
/// within the run's epoch, written into one buffer (not a string per event): the
/// buffer and where each number ends in it.
pub fn positions<'a>(wires: impl Iterator<Item = &'a Wire>) -> (String, Vec<usize>) {
    let (mut text, mut ends) = (String::new(), Vec::new());
    for wire in wires {
        // Only room events are logged; anything else has no number (never a copy).
        if let Wire::Room { seq, .. } = wire {
            let _ = write!(text, "{seq}");
        }
        ends.push(text.len());
    }
    (text, ends)
}

/// Events of this node held while Redis is away; past this many, the oldest wait
/// no more: they are counted as unpublished and the other nodes report the gap.
pub const HOLD_MAX: usize = 10_000;

/// Entries read back per request (a longer outage is read in several).
pub const RECOVER_MAX: usize = 10_000;

/// A published room payload, `STREAMID WIRE`: the id and the wire bytes.
pub fn split_published(payload: &[u8]) -> Option<(&str, &[u8])> {
    let space = payload.iter().position(|&b| b == b' ')?;
    let id = std::str::from_utf8(&payload[..space]).ok()?;
    let valid = id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && (ms.bytes().chain(seq.bytes())).all(|b| b.is_ascii_digit())
    });
    valid.then(|| (id, &payload[space + 1..]))
}

/// The entries of an `XRANGE` reply, oldest first: each id and its wire bytes.
pub fn entries(frame: OwnedFrame) -> Vec<(String, Vec<u8>)> {
    let OwnedFrame::Array(entries) = frame else {
        return Vec::new();
    };
    entries.into_iter().filter_map(entry).collect()
}

/// `[ID, ["w", PAYLOAD]]`.
fn entry(frame: OwnedFrame) -> Option<(String, Vec<u8>)> {
    let OwnedFrame::Array(mut parts) = frame else {
        return None;
    };
    let (Some(OwnedFrame::Array(fields)), Some(OwnedFrame::BulkString(id))) =
        (parts.pop(), parts.pop())
    else {
        return None;
    };
    let mut fields = fields.into_iter();
    match (fields.next(), fields.next()) {
        (Some(OwnedFrame::BulkString(name)), Some(OwnedFrame::BulkString(payload)))
            if name == b"w" =>
        {
            Some((String::from_utf8(id).ok()?, payload))
        }
        _ => None,
    }
}

/// A room event of another node, as the wire carried it.
#[derive(Debug)]
pub struct RemoteEvent {
    /// The node whose user caused it.
    pub origin: String,
    /// That node's epoch.
    pub epoch: u64,
    /// Its sequence number among the origin's events in the room.
    pub seq: u64,
    /// The line's id (0: not a line).
    pub msgid: u64,
    /// When the origin put it in the room's order.
    pub at_ms: u64,
    /// The event.
    pub event: Event,
}

impl RemoteEvent {
    /// A room event of `room`'s channel or log, from its wire bytes.
    pub fn decode(bytes: &[u8], room: &RoomName) -> Result<RemoteEvent, BadWire> {
        match Wire::decode(bytes, Some(room))? {
            Wire::Room {
                origin,
                epoch,
                seq,
                msgid,
                at_ms,
                event,
            } => Ok(RemoteEvent {
                origin,
                epoch,
                seq,
                msgid,
                at_ms,
                event,
            }),
            _ => Err(BadWire("not a room event")),
        }
    }
}

/// What arrived for a room while its log was being read back: handled after the
/// read, in arrival order.
#[derive(Debug)]
pub enum Deferred {
    /// A live event and its stream id.
    Event(Box<RemoteEvent>, String),
    /// A node's last sequence number in the room (`Wire::Seqs`).
    Seq {
        /// The node.
        origin: String,
        /// Its epoch.
        epoch: u64,
        /// Its last sequence number.
        seq: u64,
    },
}

/// Which part of a room's log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    /// Everything after this entry.
    After(&'a str),
    /// The newest entries.
    Tail,
}

/// How many of a room's newest log entries seed its history on a node that had
/// none of it.
pub const SEED_MAX: usize = 400;

/// A room whose log is to be read back.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The read was sent (its answer is pending).
    pub asked: bool,
    /// This node had nothing of the room: its log's tail is read to seed its
    /// history, not what came after a last entry.
    pub seed: bool,
    /// The number of the read sent for it: an answer to an older read (sent
    /// before the room was left and joined again) is not this read's.
    pub read: u64,
    /// What arrived meanwhile.
    pub deferred: Vec<Deferred>,
}

/// Where this node stands with each room's log: the last entry it has, the rooms
/// being read back, and its own events waiting for Redis.
#[derive(Debug, Default)]
pub struct RoomLogs {
    /// The last stream id received per room (while subscribed to it).
    last: HashMap<RoomName, String>,
    /// Rooms whose log is being read back.
    recovering: HashMap<RoomName, Recovery>,
    /// This node's events not yet published, oldest first.
    held: VecDeque<(RoomName, Wire)>,
    /// Numbers the reads sent.
    reads: u64,
}

impl RoomLogs {
    /// An event of `room` at stream id `id` arrived live; false if the room is
    /// being read back (the caller defers the event).
    pub fn saw(&mut self, room: &RoomName, id: String) -> bool {
        if self.recovering.contains_key(room) {
            return false;
        }
        self.last.insert(room.clone(), id);
        true
    }

    /// Sets `room`'s last id (an entry read back, or a deferred one handled).
    pub fn read_up_to(&mut self, room: &RoomName, id: String) {
        self.last.insert(room.clone(), id);
    }

    /// The subscription to `room` is being made again: its log will be read from
    /// the last id (if this node ever had one).
    pub fn start(&mut self, room: &RoomName) {
        if self.last.contains_key(room) {
            self.recovering.entry(room.clone()).or_default().asked = false;
        }
    }

    /// `room`'s subscription is confirmed and this node has nothing of its log: its
    /// tail is read to seed the room's history here.
    pub fn start_seed(&mut self, room: &RoomName) {
        if !self.last.contains_key(room) && !self.recovering.contains_key(room) {
            let seed = Recovery {
                seed: true,
                ..Recovery::default()
            };
            self.recovering.insert(room.clone(), seed);
        }
    }

    /// True if the read going on for `room` is a seed.
    pub fn seeding(&self, room: &RoomName) -> bool {
        self.recovering.get(room).is_some_and(|r| r.seed)
    }

    /// No longer subscribed to `room`: a later subscription starts afresh.
    pub fn forget(&mut self, room: &RoomName) {
        self.last.remove(room);
        self.recovering.remove(room);
    }

    /// Keeps `item` for after the read of `room`'s log, if one is going on.
    pub fn defer(&mut self, room: &RoomName, item: Deferred) -> Result<(), Deferred> {
        match self.recovering.get_mut(room) {
            Some(recovery) => {
                recovery.deferred.push(item);
                Ok(())
            }
            None => Err(item),
        }
    }

    /// The id to read `room`'s log after, if a read is due and not yet sent.
    pub fn due(&self, room: &RoomName) -> Option<Read<'_>> {
        match self.recovering.get(room) {
            Some(r) if !r.asked && r.seed => Some(Read::Tail),
            Some(r) if !r.asked => self.last.get(room).map(|id| Read::After(id)),
            _ => None,
        }
    }

    /// Marks a read of `room` sent; returns its number.
    pub fn asked(&mut self, room: &RoomName) -> u64 {
        self.reads += 1;
        if let Some(recovery) = self.recovering.get_mut(room) {
            recovery.asked = true;
            recovery.read = self.reads;
        }
        self.reads
    }

    /// Read number `read` of `room` is lost (the link dropped) or answered in part:
    /// it is to be asked again. False if it was not the current read.
    pub fn ask_again(&mut self, room: &RoomName, read: u64) -> bool {
        match self.recovering.get_mut(room) {
            Some(recovery) if recovery.read == read => {
                recovery.asked = false;
                true
            }
            _ => false,
        }
    }

    /// True if `read` is the read going on for `room` (not one made stale by
    /// leaving and joining again).
    pub fn is_current(&self, room: &RoomName, read: u64) -> bool {
        self.recovering
            .get(room)
            .is_some_and(|r| r.asked && r.read == read)
    }

    /// Rooms being read back.
    pub fn recovering(&self) -> Vec<RoomName> {
        self.recovering.keys().cloned().collect()
    }

    /// The read of `room` is answered: what arrived meanwhile.
    pub fn finish(&mut self, room: &RoomName) -> Vec<Deferred> {
        (self.recovering.remove(room)).map_or_else(Vec::new, |r| r.deferred)
    }

    /// True while events of this node wait for Redis (later ones wait behind them).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Holds an event of this node until Redis is back; false if [`HOLD_MAX`] are
    /// held already (the event is not published at all).
    pub fn hold(&mut self, room: RoomName, wire: Wire) -> bool {
        if self.held.len() >= HOLD_MAX {
            return false;
        }
        self.held.push_back((room, wire));
        true
    }

    /// The oldest held event.
    pub fn next_held(&mut self) -> Option<(RoomName, Wire)> {
        self.held.pop_front()
    }

    /// Puts back an event that could not be published after all.
    pub fn unpop(&mut self, room: RoomName, wire: Wire) {
        self.held.push_front((room, wire));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bulk(bytes: &[u8]) -> OwnedFrame {
        OwnedFrame::BulkString(bytes.to_vec())
    }

    #[test]
    fn a_runs_sequence_numbers_share_one_buffer() {
        let room = |seq| Wire::Room {
            origin: "a".into(),
            epoch: 1,
            seq,
            msgid: 0,
            at_ms: 0,
            event: Event::Joined {
                room: RoomName::lobby(),
                nick: crate::protocol::Nick::parse("al").unwrap(),
            },
        };
        let hello = Wire::Hello { origin: "a".into() };
        let wires = [room(9), room(10), hello];
        let (text, ends) = positions(wires.iter());
        assert_eq!((text.as_str(), ends), ("910", vec![1, 3, 3]));
    }

    #[test]
    fn a_published_payload_starts_with_its_stream_id() {
        let (id, rest) = split_published(b"1700-3 v1 room a 1 2 msg al hi").unwrap();
        assert_eq!((id, rest), ("1700-3", &b"v1 room a 1 2 msg al hi"[..]));
        assert!(split_published(b"v1 room a 1 2").is_none());
        assert!(split_published(b"17x-3 v1").is_none());
    }

    #[test]
    fn xrange_entries_are_read_in_order_and_odd_ones_skipped() {
        let entry = |id: &[u8], payload: &[u8]| {
            OwnedFrame::Array(vec![
                bulk(id),
                OwnedFrame::Array(vec![bulk(b"w"), bulk(payload)]),
            ])
        };
        let reply = OwnedFrame::Array(vec![
            entry(b"1-0", b"one"),
            OwnedFrame::Integer(3),
            entry(b"2-0", b"two"),
        ]);
        let read = entries(reply);
        assert_eq!(
            read,
            vec![
                ("1-0".into(), b"one".to_vec()),
                ("2-0".into(), b"two".to_vec())
            ]
        );
    }
}
