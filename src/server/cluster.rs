//! What this node knows about the other nodes of its cluster: their users, the rooms
//! those users are in, and when each node was last heard of.
//!
//! Each node tells every other, through the backplane, each change of one of its users
//! (`Wire::User`, `Wire::Gone`) and, when asked, its whole roster; this is the
//! replicated copy of all of that. It makes `/who`, NAMES, `/rooms` and nick
//! uniqueness cluster-wide without a Redis round-trip per command: a nick held on
//! another node is refused here with the same error as a local one.
//!
//! Two nodes can still give out the same nick in the same instant, or while Redis is
//! down. The rule that settles it, applied the same way on both nodes so exactly one
//! side gives way: **the older claim keeps the nick** (ties go to the smaller node
//! name); the other user is renamed to a guest nick and told why.
//!
//! Behind its own lock (not the directory's): it is written by the backplane thread
//! and read per command, never per recipient.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use crate::protocol::names::NickKey;
use crate::protocol::{Nick, RoomName};

use super::backplane::wire::RosterEntry;

/// The cluster view of one node.
#[derive(Debug, Default)]
pub struct Cluster {
    inner: Mutex<View>,
}

#[derive(Debug, Default)]
struct View {
    /// Users of other nodes, by case-folded nick.
    users: HashMap<NickKey, RemoteUser>,
    /// Other nodes' members of each room, by case-folded nick.
    rooms: HashMap<RoomName, HashSet<NickKey>>,
    /// Nodes heard of, and how many users each has.
    nodes: HashMap<String, usize>,
}

/// A user of another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The nick as spelled.
    pub nick: Nick,
    /// The node that has the user.
    pub node: String,
    /// When the nick was claimed (ms since the Unix epoch).
    pub claimed_ms: u64,
    /// The rooms the user is in.
    pub rooms: Vec<RoomName>,
}

impl Cluster {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, View> {
        // A panic under this lock is a bug in a few lines of map code; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The remote user holding `nick` (case-insensitive), if any.
    pub fn owner(&self, nick: &str) -> Option<RemoteUser> {
        let key = Nick::parse(nick).ok()?.key();
        self.lock().users.get(&key).cloned()
    }

    /// Other nodes' members of `room`.
    pub fn members(&self, room: &RoomName) -> Vec<Nick> {
        let view = self.lock();
        let Some(keys) = view.rooms.get(room) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|key| view.users.get(key))
            .map(|u| u.nick.clone())
            .collect()
    }

    /// How many members of other nodes `room` has.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.lock().rooms.get(room).map_or(0, HashSet::len)
    }

    /// Every room with remote members, and how many.
    pub fn room_sizes(&self) -> Vec<(RoomName, usize)> {
        self.lock()
            .rooms
            .iter()
            .map(|(room, keys)| (room.clone(), keys.len()))
            .collect()
    }

    /// Nodes heard of (other than this one).
    pub fn peers(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Records that `node` exists (it may have no users yet).
    pub fn saw(&self, node: &str) {
        self.lock().nodes.entry(node.to_string()).or_insert(0);
    }

    /// A user of `node` as it is now (`was`: its nick before, if it changed).
    pub fn upsert(&self, node: &str, entry: &RosterEntry, was: Option<&Nick>) {
        let mut view = self.lock();
        if let Some(was) = was {
            view.forget(&was.key());
        }
        view.forget(&entry.nick.key());
        view.insert(node, entry);
    }

    /// A user of another node left.
    pub fn remove_user(&self, nick: &Nick) {
        self.lock().forget(&nick.key());
    }

    /// Replaces everything known about `node` by its roster.
    pub fn replace_node(&self, node: &str, users: &[RosterEntry]) {
        let mut view = self.lock();
        view.drop_node(node);
        view.nodes.insert(node.to_string(), 0);
        for entry in users {
            view.forget(&entry.nick.key());
            view.insert(node, entry);
        }
    }

    /// Forgets a node (its lease expired): returns its users, whose quits the caller
    /// announces, and whose nicks are free from now on.
    pub fn remove_node(&self, node: &str) -> Vec<RemoteUser> {
        let mut view = self.lock();
        view.nodes.remove(node);
        view.drop_node(node)
    }
}

impl View {
    fn insert(&mut self, node: &str, entry: &RosterEntry) {
        let key = entry.nick.key();
        for room in &entry.rooms {
            self.rooms
                .entry(room.clone())
                .or_default()
                .insert(key.clone());
        }
        *self.nodes.entry(node.to_string()).or_insert(0) += 1;
        let user = RemoteUser {
            nick: entry.nick.clone(),
            node: node.to_string(),
            claimed_ms: entry.claimed_ms,
            rooms: entry.rooms.clone(),
        };
        self.users.insert(key, user);
    }

    fn forget(&mut self, key: &NickKey) -> Option<RemoteUser> {
        let user = self.users.remove(key)?;
        for room in &user.rooms {
            if let Some(members) = self.rooms.get_mut(room) {
                members.remove(key);
                if members.is_empty() {
                    self.rooms.remove(room);
                }
            }
        }
        if let Some(count) = self.nodes.get_mut(&user.node) {
            *count = count.saturating_sub(1);
        }
        Some(user)
    }

    fn drop_node(&mut self, node: &str) -> Vec<RemoteUser> {
        let keys: Vec<NickKey> = self
            .users
            .iter()
            .filter(|(_, user)| user.node == node)
            .map(|(key, _)| key.clone())
            .collect();
        keys.iter().filter_map(|key| self.forget(key)).collect()
    }
}

/// The conflict rule: does a local claim made at `local_ms` on node `me` keep the
/// nick against a remote claim made at `remote_ms` on node `other`?
pub fn local_claim_wins(local_ms: u64, me: &str, remote_ms: u64, other: &str) -> bool {
    (local_ms, me) < (remote_ms, other)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(nick: &str, rooms: &[&str]) -> RosterEntry {
        RosterEntry {
            nick: Nick::parse(nick).unwrap(),
            claimed_ms: 1,
            rooms: rooms.iter().map(|r| RoomName::parse(r).unwrap()).collect(),
        }
    }

    #[test]
    fn users_rooms_and_nodes_follow_changes() {
        let cluster = Cluster::new();
        cluster.upsert("b", &entry("bob", &["rust", "lobby"]), None);
        cluster.upsert("b", &entry("carol", &["rust"]), None);
        let rust = RoomName::parse("rust").unwrap();
        assert_eq!(cluster.members(&rust).len(), 2);
        assert_eq!(cluster.owner("BOB").unwrap().node, "b");
        let bob = Nick::parse("bob").unwrap();
        cluster.upsert("b", &entry("robert", &["lobby"]), Some(&bob));
        assert!(cluster.owner("bob").is_none(), "the old nick is free");
        assert_eq!(cluster.members(&rust).len(), 1);
        let gone = cluster.remove_node("b");
        assert_eq!(gone.len(), 2);
        assert!(cluster.room_sizes().is_empty());
        assert_eq!(cluster.peers(), 0);
    }

    #[test]
    fn a_roster_replaces_what_was_known() {
        let cluster = Cluster::new();
        cluster.upsert("b", &entry("old", &["x"]), None);
        cluster.replace_node("b", &[entry("new", &["y"])]);
        assert!(cluster.owner("old").is_none());
        assert_eq!(
            cluster.room_sizes(),
            vec![(RoomName::parse("y").unwrap(), 1)]
        );
    }

    #[test]
    fn the_older_claim_wins_and_ties_go_to_the_smaller_node() {
        assert!(local_claim_wins(1, "b", 2, "a"));
        assert!(!local_claim_wins(2, "a", 1, "b"));
        assert!(local_claim_wins(5, "a", 5, "b"));
        assert!(!local_claim_wins(5, "b", 5, "a"));
    }
}
