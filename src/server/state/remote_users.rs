//! The users of other nodes, found by nick, with no key stored beside each.
//!
//! Every node keeps one entry per user of every other node (`cluster.rs`), so each
//! byte of an entry is paid once per remote user: at 19 000 users per node, a
//! two-node cluster pays it 19 000 times on each. A `HashMap<NickKey, Box<_>>` slot
//! holds the 16-byte key beside the 8-byte box, and the table keeps about 1.7 slots
//! per user as it doubles: about 43 bytes per user. This table holds only the box
//! and hashes the nick the user already holds, folded to lower case as it is hashed,
//! so a slot is 8 bytes and a user costs about 16. (hashbrown's `HashTable`, the
//! table under std's `HashMap`, is what lets the hash come from the value.)

use std::hash::RandomState;

use hashbrown::HashTable;

use crate::server::state::cluster::RemoteUser;
use crate::server::state::nick_table::fold_hash;

/// Users of other nodes by case-folded nick.
#[derive(Debug, Default)]
pub struct RemoteUsers {
    table: HashTable<Box<RemoteUser>>,
    hasher: RandomState,
}

impl RemoteUsers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many users it holds.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The user holding `nick` (any case).
    pub fn get(&self, nick: &str) -> Option<&RemoteUser> {
        let hash = fold_hash(&self.hasher, nick);
        let found = self.table.find(hash, |user| same_nick(user, nick));
        found.map(|user| &**user)
    }

    /// Adds `user`, replacing (and returning) whoever held its nick.
    pub fn insert(&mut self, user: RemoteUser) -> Option<RemoteUser> {
        let was = self.remove(user.entry.nick.as_str());
        let hash = fold_hash(&self.hasher, user.entry.nick.as_str());
        let hasher = &self.hasher;
        self.table.insert_unique(hash, Box::new(user), |user| {
            fold_hash(hasher, user.entry.nick.as_str())
        });
        was
    }

    /// Removes the user holding `nick` (any case).
    pub fn remove(&mut self, nick: &str) -> Option<RemoteUser> {
        let hash = fold_hash(&self.hasher, nick);
        let entry = self.table.find_entry(hash, |user| same_nick(user, nick));
        entry.ok().map(|entry| *entry.remove().0)
    }

    /// Every user, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &RemoteUser> {
        self.table.iter().map(|user| &**user)
    }
}

fn same_nick(user: &RemoteUser, nick: &str) -> bool {
    user.entry.nick.as_str().eq_ignore_ascii_case(nick)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::Nick;
    use crate::server::backplane::wire::RosterEntry;
    use std::sync::Arc;

    fn user(nick: &str, node: u32) -> RemoteUser {
        RemoteUser {
            node,
            entry: RosterEntry {
                nick: Nick::parse(nick).unwrap(),
                claimed_ms: 1,
                irc: false,
                realname: Arc::from(nick),
                away: None,
                rooms: Arc::new([]),
            },
        }
    }

    #[test]
    fn nicks_are_found_in_any_case_and_replaced_whole() {
        let mut users = RemoteUsers::new();
        assert!(users.insert(user("Alice", 1)).is_none());
        assert!(users.insert(user("bob", 1)).is_none());
        assert_eq!(users.get("ALICE").unwrap().entry.nick.as_str(), "Alice");
        let was = users.insert(user("alice", 2)).unwrap();
        assert_eq!(was.node, 1, "the old holder is handed back");
        assert_eq!(users.len(), 2);
        assert_eq!(users.get("alice").unwrap().node, 2);
        assert!(users.remove("BOB").is_some());
        assert!(users.get("bob").is_none() && users.remove("bob").is_none());
        assert_eq!(users.iter().count(), 1);
    }

    #[test]
    fn many_users_survive_the_table_growing() {
        let mut users = RemoteUsers::new();
        for i in 0..5000 {
            users.insert(user(&format!("User{i}"), 0));
        }
        assert_eq!(users.len(), 5000);
        assert!((0..5000).all(|i| users.get(&format!("user{i}")).is_some()));
        assert!(users.get("user5000").is_none());
    }
}
