//! One shard's view of room membership: room → slab keys of *local* members.
//!
//! This is what fan-out iterates: a room message is delivered to these keys straight
//! into their send queues, with no lock and no lookup per recipient. Members on other
//! shards are reached by one inbox message per shard (see `relay`), whose owner then
//! iterates its own `LocalRooms`.
//!
//! A `Vec` per room keeps iteration tight (fan-out is the hot path); leaving is a
//! linear scan, paid once per leave, never per message.

use std::collections::HashMap;

use crate::protocol::RoomName;

/// The shard that puts `room`'s events in order (its *home*): every room event passes
/// through it, so all members see one order (ET-8). A fixed hash of the name, so every
/// shard computes the same home without asking anyone (FNV-1a: small and stable).
pub fn home_shard(room: &RoomName, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in room.as_str().bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

/// Local members of each room on one shard.
#[derive(Debug, Default)]
pub struct LocalRooms {
    rooms: HashMap<RoomName, Vec<usize>>,
}

impl LocalRooms {
    /// Adds `key` to `room`; false if it was already there.
    pub fn join(&mut self, room: &RoomName, key: usize) -> bool {
        let members = self.rooms.entry(room.clone()).or_default();
        if members.contains(&key) {
            return false;
        }
        members.push(key);
        true
    }

    /// Removes `key` from `room`; the entry goes with its last local member.
    pub fn leave(&mut self, room: &RoomName, key: usize) {
        if let Some(members) = self.rooms.get_mut(room) {
            if let Some(i) = members.iter().position(|&k| k == key) {
                members.swap_remove(i);
            }
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Slab keys of the local members of `room` (empty if none).
    pub fn members(&self, room: &RoomName) -> &[usize] {
        self.rooms.get(room).map_or(&[], Vec::as_slice)
    }

    /// Rooms with at least one local member.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// True when no room has a local member.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn membership_and_cleanup() {
        let mut rooms = LocalRooms::default();
        let r = RoomName::parse("r").unwrap();
        assert!(rooms.join(&r, 1));
        assert!(!rooms.join(&r, 1));
        assert!(rooms.join(&r, 2));
        assert_eq!(rooms.members(&r).len(), 2);
        rooms.leave(&r, 1);
        assert_eq!(rooms.members(&r), &[2]);
        rooms.leave(&r, 2);
        assert!(rooms.is_empty(), "no leak of empty rooms");
        rooms.leave(&r, 3);
    }
}
