//! The directory: the little state that every shard must agree on.
//!
//! - which connection owns each nick (nicks are unique server-wide);
//! - which connections are in each room, how many of them on each shard, and the
//!   room's topic.
//!
//! It is the only shared mutable state besides the stats atomics, behind one `Mutex`.
//! Every method takes the lock once, does a few map operations and lets go: it is
//! taken per *command* (join, nick, who) and once per room *message* to learn which
//! shards have members, never per recipient. Fan-out itself happens on each shard
//! from its own `rooms::LocalRooms`, without the lock.
//!
//! Membership here and in the shards' local tables changes together: the owning shard
//! updates both in the same call, so a room message sent after a join reaches the
//! new member.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use crate::protocol::names::NickKey;
use crate::protocol::{Nick, ProtocolError, RoomInfo, RoomName};

use super::token::ConnId;

/// Server-wide nick and room tables.
#[derive(Debug, Default)]
pub struct Directory {
    inner: Mutex<Tables>,
    /// Ends every guest nick: empty for a lone server, `-NODE` in a cluster, so two
    /// nodes never give out the same guest nick.
    guest_suffix: String,
}

#[derive(Debug, Default)]
struct Tables {
    /// Case-folded nick → owner.
    nicks: HashMap<NickKey, ConnId>,
    /// Owner → nick as spelled.
    nick_of: HashMap<ConnId, Nick>,
    /// Rooms with at least one member.
    rooms: HashMap<RoomName, RoomEntry>,
    /// Away messages (IRC `AWAY`), by connection.
    away: HashMap<ConnId, Box<str>>,
    /// Suffix of the next guest nick.
    next_guest: u64,
}

#[derive(Debug, Default)]
struct RoomEntry {
    members: HashSet<ConnId>,
    /// Members per shard; `shard_mask` has bit `i` set while `per_shard[i] > 0`.
    per_shard: Vec<u32>,
    shard_mask: u64,
    topic: Option<Box<str>>,
}

/// Which shards have members in a room, and how many members it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Bit `i` is set while shard `i` has at least one member.
    pub shard_mask: u64,
    /// Members on all shards.
    pub members: usize,
}

impl Reach {
    /// The shards with members, in index order.
    pub fn shards(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |shard| self.shard_mask & (1 << shard) != 0)
    }
}

/// What a joiner learns about the room.
#[derive(Debug)]
pub struct Joined {
    /// Members including the joiner.
    pub members: usize,
    /// The topic, if set.
    pub topic: Option<Box<str>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory whose guest nicks end in `suffix`.
    pub fn with_guest_suffix(suffix: String) -> Self {
        Directory {
            guest_suffix: suffix,
            ..Self::default()
        }
    }

    /// Renames `id` to a fresh guest nick; returns (old, new).
    pub fn rename_to_guest(&self, id: ConnId) -> Option<(Nick, Nick)> {
        let mut t = self.lock();
        let nick = t.fresh_guest(&self.guest_suffix);
        let old = t.nick_of.insert(id, nick.clone())?;
        t.nicks.remove(&old.key());
        t.nicks.insert(nick.key(), id);
        Some((old, nick))
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding this lock is a bug in a few lines of map code; the
        // tables are still consistent enough to keep serving, so recover the guard.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives `id` a fresh `guestN` nick and puts it in `room` (if any: IRC clients
    /// start in no room).
    pub fn register_guest(&self, id: ConnId, room: Option<&RoomName>) -> Nick {
        let mut t = self.lock();
        let nick = t.fresh_guest(&self.guest_suffix);
        t.nicks.insert(nick.key(), id);
        t.nick_of.insert(id, nick.clone());
        if let Some(room) = room {
            t.join(room, id);
        }
        nick
    }

    /// Changes `id`'s nick; returns the old one.
    pub fn rename(&self, id: ConnId, new: &Nick) -> Result<Nick, ProtocolError> {
        let mut t = self.lock();
        let key = new.key();
        if t.nicks.get(&key).is_some_and(|owner| *owner != id) {
            return Err(ProtocolError::NickTaken(new.clone()));
        }
        let old = t
            .nick_of
            .insert(id, new.clone())
            .expect("BUG: renaming a connection the directory does not know");
        t.nicks.remove(&old.key());
        t.nicks.insert(key, id);
        Ok(old)
    }

    /// Who owns `nick` (case-insensitive), if anyone.
    pub fn lookup(&self, nick: &str) -> Option<ConnId> {
        self.lookup_full(nick).map(|(id, _, _)| id)
    }

    /// Owner, nick as spelled, and away message of `nick`, if anyone has it.
    pub fn lookup_full(&self, nick: &str) -> Option<(ConnId, Nick, Option<Box<str>>)> {
        let key = Nick::parse(nick).ok()?.key();
        let t = self.lock();
        let id = *t.nicks.get(&key)?;
        let spelled = t.nick_of.get(&id)?.clone();
        Some((id, spelled, t.away.get(&id).cloned()))
    }

    /// [`Self::lookup_full`] for each of `nicks` that someone has, under one lock.
    pub fn lookup_each(&self, nicks: &[&str]) -> Vec<(ConnId, Nick, Option<Box<str>>)> {
        let t = self.lock();
        nicks
            .iter()
            .filter_map(|nick| {
                let id = *t.nicks.get(&Nick::parse(nick).ok()?.key())?;
                let spelled = t.nick_of.get(&id)?.clone();
                Some((id, spelled, t.away.get(&id).cloned()))
            })
            .collect()
    }

    /// Sets (`Some`) or clears (`None`) the away message of `id`.
    pub fn set_away(&self, id: ConnId, text: Option<&str>) {
        let mut t = self.lock();
        match text {
            Some(text) => t.away.insert(id, text.into()),
            None => t.away.remove(&id),
        };
    }

    /// Adds `id` to `room`.
    pub fn join(&self, room: &RoomName, id: ConnId) -> Joined {
        self.lock().join(room, id)
    }

    /// Removes `id` from `room`; the room disappears with its last member.
    pub fn leave(&self, room: &RoomName, id: ConnId) {
        self.lock().leave(room, id);
    }

    /// Removes `id` from every room in `rooms`, under one lock.
    pub fn leave_all(&self, id: ConnId, rooms: &[RoomName]) {
        let mut t = self.lock();
        for room in rooms {
            t.leave(room, id);
        }
    }

    /// Forgets a closed connection's nick and away message (its rooms are left with
    /// [`Self::leave_all`] first).
    pub fn remove(&self, id: ConnId) {
        let mut t = self.lock();
        if let Some(nick) = t.nick_of.remove(&id) {
            t.nicks.remove(&nick.key());
        }
        t.away.remove(&id);
    }

    /// Who a message to `room` must reach. One lock per room *message* (on the room's
    /// home shard), not per recipient.
    pub fn reach(&self, room: &RoomName) -> Reach {
        self.lock()
            .rooms
            .get(room)
            .map_or(Reach::default(), |r| Reach {
                shard_mask: r.shard_mask,
                members: r.members.len(),
            })
    }

    /// Up to `page` member nicks of `room`, sorted, and how many more there are.
    /// `None` if the room has no members.
    pub fn who(&self, room: &RoomName, page: usize) -> Option<(Vec<Nick>, usize)> {
        let t = self.lock();
        let entry = t.rooms.get(room)?;
        let mut nicks: Vec<Nick> = entry
            .members
            .iter()
            .filter_map(|id| t.nick_of.get(id).cloned())
            .collect();
        drop(t);
        // The lower-cased key is computed once per nick, not once per comparison.
        nicks.sort_by_cached_key(|n| n.as_str().to_ascii_lowercase());
        let more = nicks.len().saturating_sub(page);
        nicks.truncate(page);
        Some((nicks, more))
    }

    /// Every room and its member count, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self
            .lock()
            .rooms
            .iter()
            .map(|(room, entry)| RoomInfo {
                room: room.clone(),
                members: entry.members.len(),
                topic: entry.topic.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        list
    }

    /// The topic of `room`.
    pub fn topic(&self, room: &RoomName) -> Option<Box<str>> {
        self.lock().rooms.get(room).and_then(|r| r.topic.clone())
    }

    /// Sets the topic of `room` (which must have members).
    pub fn set_topic(&self, room: &RoomName, topic: &str) {
        if let Some(entry) = self.lock().rooms.get_mut(room) {
            entry.topic = Some(topic.into());
        }
    }
}

impl Tables {
    fn fresh_guest(&mut self, suffix: &str) -> Nick {
        loop {
            self.next_guest += 1;
            let candidate = format!("guest{}{suffix}", self.next_guest);
            let nick = Nick::parse(&candidate).expect("BUG: guest nicks are valid");
            if !self.nicks.contains_key(&nick.key()) {
                return nick;
            }
        }
    }

    fn join(&mut self, room: &RoomName, id: ConnId) -> Joined {
        let entry = self.rooms.entry(room.clone()).or_default();
        if entry.members.insert(id) {
            let shard = id.shard();
            if entry.per_shard.len() <= shard {
                entry.per_shard.resize(shard + 1, 0);
            }
            entry.per_shard[shard] += 1;
            entry.shard_mask |= 1 << shard;
        }
        Joined {
            members: entry.members.len(),
            topic: entry.topic.clone(),
        }
    }

    fn leave(&mut self, room: &RoomName, id: ConnId) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        if entry.members.remove(&id) {
            let shard = id.shard();
            entry.per_shard[shard] -= 1;
            if entry.per_shard[shard] == 0 {
                entry.shard_mask &= !(1 << shard);
            }
        }
        if entry.members.is_empty() {
            self.rooms.remove(room);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::server::token::encode;

    fn id(shard: usize, key: usize) -> ConnId {
        ConnId {
            token: encode(shard, key),
            generation: key as u64,
        }
    }

    #[test]
    fn guests_are_unique_and_nicks_case_insensitive() {
        let d = Directory::new();
        let lobby = RoomName::lobby();
        let a = d.register_guest(id(0, 1), Some(&lobby));
        let b = d.register_guest(id(1, 1), Some(&lobby));
        assert_ne!(a, b);
        let alice = Nick::parse("Alice").unwrap();
        d.rename(id(0, 1), &alice).unwrap();
        let err = d.rename(id(1, 1), &Nick::parse("alice").unwrap());
        assert_eq!(
            err,
            Err(ProtocolError::NickTaken(Nick::parse("alice").unwrap()))
        );
        assert_eq!(d.lookup("ALICE"), Some(id(0, 1)));
        assert_eq!(d.lookup(a.as_str()), None, "old nick is freed");
        // Changing only the case of one's own nick is allowed.
        assert!(d.rename(id(0, 1), &Nick::parse("ALICE").unwrap()).is_ok());
    }

    #[test]
    fn shard_mask_follows_membership_and_empty_rooms_vanish() {
        let d = Directory::new();
        let rust = RoomName::parse("rust").unwrap();
        d.join(&rust, id(0, 1));
        d.join(&rust, id(2, 1));
        d.join(&rust, id(2, 2));
        assert_eq!(d.reach(&rust).shard_mask, 0b101);
        d.leave(&rust, id(2, 1));
        assert_eq!(d.reach(&rust).shard_mask, 0b101);
        d.leave(&rust, id(2, 2));
        assert_eq!(d.reach(&rust).shard_mask, 0b001);
        d.leave_all(id(0, 1), std::slice::from_ref(&rust));
        d.remove(id(0, 1));
        assert!(d.rooms().is_empty());
        assert!(d.who(&rust, 10).is_none());
    }

    #[test]
    fn who_pages() {
        let d = Directory::new();
        let lobby = RoomName::lobby();
        for k in 0..5 {
            d.register_guest(id(0, k), Some(&lobby));
        }
        let (nicks, more) = d.who(&lobby, 3).unwrap();
        assert_eq!((nicks.len(), more), (3, 2));
    }
}
