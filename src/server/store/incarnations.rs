//! Which incarnation of each room the store's history lines belong to, so that an
//! unregistered room's lines die with the room.
//!
//! A room with no members is gone; a room made again under its name is another
//! room (the directory gives each a new `born` number), and showing it the last
//! one's lines would leak them to whoever re-creates the name, `+s` and `+k` rooms
//! included. Only a registered room outlives being empty. The shards know a room's
//! incarnation when they sequence its lines (each [`super::StoredLine`] carries it)
//! but never touch the disk, so the rule is applied here, on the store thread, in
//! the order of its queue: before a line of a new incarnation is kept, before every
//! read, and every few seconds for rooms that emptied and were not made again, the
//! lines of an incarnation that is over are deleted (`writer.rs`). Unregistered
//! rooms do not outlive a restart either: their lines are deleted at start-up.
//!
//! This file is the bookkeeping alone (no SQL, no locks), so it can be tested as a
//! table: per room, the incarnation whose lines are held and the newest id among
//! them; and, for a deletion the disk refused, a *floor*: ids up to it are not the
//! room's, and reads leave them out until a later deletion succeeds.

use std::collections::HashMap;

use crate::protocol::RoomName;

/// The incarnations of the rooms whose lines the store holds (written in this run,
/// or read while the room was alive), and the floors of failed deletions.
#[derive(Debug, Default)]
pub struct Incarnations {
    /// Per room: its incarnation, and the newest line id held for it.
    rooms: HashMap<RoomName, Held>,
    /// Per room: lines with ids up to this are another incarnation's, still on disk
    /// because their deletion failed.
    floors: HashMap<RoomName, u64>,
    /// Unregistered rooms' lines up to this id are from before a restart whose
    /// deletion failed (0: none).
    restart_floor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    born: u64,
    newest: u64,
}

impl Incarnations {
    /// A line with id `id` of `room`'s incarnation `born` is about to be kept: the
    /// newest id of another incarnation's lines if they are held (they must go
    /// first, unless the room is registered).
    pub fn line(&mut self, room: &RoomName, born: u64, id: u64) -> Option<u64> {
        match self.rooms.get_mut(room) {
            Some(held) if held.born == born => {
                held.newest = held.newest.max(id);
                None
            }
            Some(held) => {
                let ended = held.newest;
                *held = Held { born, newest: id };
                Some(ended)
            }
            None => {
                self.rooms.insert(room.clone(), Held { born, newest: id });
                None
            }
        }
    }

    /// `room` is incarnation `born` now (0: it has no members): the newest id of
    /// another incarnation's lines if they are held. Lines of a room not known here
    /// are taken for the current incarnation's, up to the id `newest_now` gives (a
    /// room alive since before they were known, or registered until now).
    pub fn now(
        &mut self,
        room: &RoomName,
        born: u64,
        newest_now: impl FnOnce() -> u64,
    ) -> Option<u64> {
        let ended = match self.rooms.get(room) {
            Some(held) if held.born == born => return None,
            Some(held) => Some(held.newest),
            None => None,
        };
        if born == 0 {
            self.rooms.remove(room);
        } else {
            let newest = match ended {
                Some(_) => 0,
                None => newest_now(),
            };
            self.rooms.insert(room.clone(), Held { born, newest });
        }
        ended
    }

    /// The rooms held and their incarnations (to see which have ended).
    pub fn held(&self) -> Vec<(RoomName, u64)> {
        let rooms = self.rooms.iter();
        rooms
            .map(|(room, held)| (room.clone(), held.born))
            .collect()
    }

    /// A deletion of `room`'s lines up to `newest` failed: they are hidden until
    /// one succeeds.
    pub fn deletion_failed(&mut self, room: &RoomName, newest: u64) {
        let floor = self.floors.entry(room.clone()).or_default();
        *floor = (*floor).max(newest);
    }

    /// `room`'s lines of ended incarnations are deleted.
    pub fn deleted(&mut self, room: &RoomName) {
        self.floors.remove(room);
    }

    /// Rooms whose deletion must be tried again.
    pub fn failed(&self) -> Vec<(RoomName, u64)> {
        let floors = self.floors.iter();
        floors.map(|(room, floor)| (room.clone(), *floor)).collect()
    }

    /// The start-up deletion of unregistered rooms' lines failed: lines up to
    /// `newest` are hidden for unregistered rooms.
    pub fn restart_deletion_failed(&mut self, newest: u64) {
        self.restart_floor = newest;
    }

    /// The start-up deletion succeeded (after all).
    pub fn restart_deleted(&mut self) {
        self.restart_floor = 0;
    }

    /// True while the start-up deletion has still to be tried again.
    pub fn restart_pending(&self) -> bool {
        self.restart_floor > 0
    }

    /// Lines of `room` with ids up to this are not the room's (0: all are).
    pub fn floor(&self, room: &RoomName, registered: bool) -> u64 {
        let restart = if registered { 0 } else { self.restart_floor };
        self.floors.get(room).copied().unwrap_or(0).max(restart)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_incarnation_ends_the_last_ones_lines() {
        let mut rooms = Incarnations::default();
        let room = RoomName::parse("secret").unwrap();
        assert_eq!(rooms.line(&room, 1, 10), None);
        assert_eq!(rooms.line(&room, 1, 11), None);
        assert_eq!(rooms.now(&room, 1, || 99), None, "still the same room");
        assert_eq!(
            rooms.now(&room, 2, || 99),
            Some(11),
            "made again: 10 and 11 go"
        );
        assert_eq!(rooms.line(&room, 2, 12), None, "its own lines stay");
        assert_eq!(rooms.now(&room, 0, || 99), Some(12), "emptied");
        assert!(rooms.held().is_empty());
        assert_eq!(rooms.line(&room, 3, 13), None);
        assert_eq!(rooms.line(&room, 4, 14), Some(13));
        rooms.deletion_failed(&room, 13);
        assert_eq!(rooms.floor(&room, false), 13);
        assert_eq!(rooms.failed(), [(room.clone(), 13)]);
        rooms.deleted(&room);
        assert_eq!(rooms.floor(&room, false), 0);
        rooms.restart_deletion_failed(9);
        assert_eq!(
            (rooms.floor(&room, false), rooms.floor(&room, true)),
            (9, 0)
        );
    }

    #[test]
    fn lines_known_only_from_a_read_are_the_living_rooms() {
        let mut rooms = Incarnations::default();
        let room = RoomName::parse("club").unwrap();
        assert_eq!(rooms.now(&room, 5, || 40), None);
        assert_eq!(
            rooms.now(&room, 6, || 50),
            Some(40),
            "up to the id at the read"
        );
    }
}
