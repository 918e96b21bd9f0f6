//! What the store holds that a shard must know *at once*: which nicks are
//! registered accounts, which rooms are registered, and who has access to them.
//!
//! A shard may not read the disk, but `/nick alice` must be refused in the same turn
//! if `alice` is someone's account, and the first member of a registered room must
//! find the room's modes, bans and topic as they were. So this small index is kept in
//! memory, loaded once at start-up, and changed by the store's threads only *after*
//! their transaction has committed: what a shard reads here is always on disk.
//!
//! It holds one entry per account (its folded name) and per registered room, never
//! anything per connection. One short lock per `/nick`, `/join` or login; none per
//! message.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use crate::protocol::names::NickKey;
use crate::protocol::{Nick, RoomName};

use crate::server::room_state::{RoomSnapshot, RoomState};

pub use crate::protocol::AccessLevel as Level;

/// A registered room, as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRoom {
    /// The founder's account (operator in the room whenever logged in).
    pub founder: Nick,
    /// Granted accounts, in the order granted.
    pub access: Vec<(Nick, Level)>,
    /// Modes, bans, topic and creation time, as last committed.
    pub snapshot: RoomSnapshot,
}

impl RegisteredRoom {
    /// The level `account` has here: the founder is an operator.
    pub fn level_of(&self, account: &Nick) -> Option<Level> {
        if account.key() == self.founder.key() {
            return Some(Level::Op);
        }
        let key = account.key();
        (self.access.iter())
            .find(|(granted, _)| granted.key() == key)
            .map(|&(_, level)| level)
    }
}

/// The in-memory index of accounts and registered rooms.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    accounts: HashSet<NickKey>,
    rooms: HashMap<RoomName, RegisteredRoom>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if `nick` is a registered account.
    pub fn is_account(&self, nick: &Nick) -> bool {
        self.lock().accounts.contains(&nick.key())
    }

    /// Accounts known.
    pub fn accounts(&self) -> usize {
        self.lock().accounts.len()
    }

    /// The modes (as `324` shows them, the key hidden) and creation time of a
    /// registered room, as stored.
    pub fn modes(&self, room: &RoomName) -> Option<(String, u64)> {
        let tables = self.lock();
        let snapshot = &tables.rooms.get(room)?.snapshot;
        let modes = RoomState::seeded(snapshot).modes_string(false);
        Some((modes, snapshot.created))
    }

    /// Every registered room that is not secret, with its stored topic: `/rooms` and
    /// `LIST` show them while they are empty.
    pub fn listed(&self) -> Vec<(RoomName, Option<Box<str>>)> {
        let tables = self.lock();
        (tables.rooms.iter())
            .filter(|(_, entry)| !entry.snapshot.is_secret())
            .map(|(room, entry)| (room.clone(), entry.snapshot.topic.clone()))
            .collect()
    }

    /// Registered rooms.
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Every account is one of `names` now (a cluster node that (re)joined reads
    /// them from Redis).
    pub fn replace_accounts(&self, names: &[Nick]) {
        self.lock().accounts = names.iter().map(Nick::key).collect();
    }

    /// The registered rooms are these now (a cluster node that (re)joined reads them
    /// from Redis).
    pub fn replace_rooms(&self, rooms: Vec<(RoomName, RegisteredRoom)>) {
        self.lock().rooms = rooms.into_iter().collect();
    }

    /// Adds an account (after its row is committed).
    pub fn add_account(&self, nick: &Nick) {
        self.lock().accounts.insert(nick.key());
    }

    /// Removes an account and its grants (after its rows are deleted).
    pub fn remove_account(&self, nick: &Nick) {
        let mut tables = self.lock();
        tables.accounts.remove(&nick.key());
        for room in tables.rooms.values_mut() {
            room.access
                .retain(|(granted, _)| granted.key() != nick.key());
        }
    }

    /// A room `account` founded, if any (an account that founded rooms is not dropped
    /// before them: whoever registered the nick next would inherit them).
    pub fn founded_by(&self, account: &Nick) -> Option<RoomName> {
        let tables = self.lock();
        let mut rooms = tables.rooms.iter();
        rooms
            .find(|(_, entry)| entry.founder.key() == account.key())
            .map(|(room, _)| room.clone())
    }

    /// The registration of `room`, if it is registered.
    pub fn room(&self, room: &RoomName) -> Option<RegisteredRoom> {
        self.lock().rooms.get(room).cloned()
    }

    /// True if `room` is registered.
    pub fn is_registered(&self, room: &RoomName) -> bool {
        self.lock().rooms.contains_key(room)
    }

    /// The level `account` has in `room`, if the room is registered and grants one.
    pub fn level(&self, room: &RoomName, account: &Nick) -> Option<Level> {
        self.lock().rooms.get(room)?.level_of(account)
    }

    /// Records a committed registration (or replaces one, at start-up).
    pub fn put_room(&self, room: RoomName, registered: RegisteredRoom) {
        self.lock().rooms.insert(room, registered);
    }

    /// Records a committed change of the room's state.
    pub fn update_snapshot(&self, room: &RoomName, snapshot: RoomSnapshot) {
        if let Some(entry) = self.lock().rooms.get_mut(room) {
            entry.snapshot = snapshot;
        }
    }

    /// Records a committed grant (`Some`) or removal (`None`).
    pub fn set_access(&self, room: &RoomName, account: &Nick, level: Option<Level>) {
        let mut tables = self.lock();
        let Some(entry) = tables.rooms.get_mut(room) else {
            return;
        };
        entry
            .access
            .retain(|(granted, _)| granted.key() != account.key());
        if let Some(level) = level {
            entry.access.push((account.clone(), level));
        }
    }

    /// Records a committed drop of the registration.
    pub fn drop_room(&self, room: &RoomName) {
        self.lock().rooms.remove(room);
    }
}
