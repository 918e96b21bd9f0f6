//! The directory's nicks, both ways: each connection's nick as spelled, and the
//! owner of a nick in any case, with no folded copy of the nick stored as a key.
//!
//! Every connection has one entry, so its bytes are paid once per connection. A
//! `HashMap<NickKey, ConnId>` beside the per-connection nicks held a 16-byte key and
//! an 8-byte id per slot, about 1.7 slots per nick as it doubles: about 43 bytes per
//! connection. Here a slot holds the id alone, and the hash comes from the nick that
//! id holds, folded to lower case as it is hashed: about 16 bytes per connection.
//!
//! The one rule that keeps this right: a slot's id must hold, in `by_id`, the nick
//! its slot was hashed by whenever the table may grow (growing re-hashes every id
//! through `by_id`). So [`NickTable::set`] takes the id's old slot out before its
//! nick changes, and puts the new one in after; nothing else touches either side.

use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;

use crate::protocol::Nick;
use crate::server::conn_map::ConnMap;
use crate::server::token::ConnId;

/// Nick of each connection, and owner of each nick (case-insensitive).
#[derive(Debug, Default)]
pub struct NickTable {
    by_id: ConnMap<Nick>,
    by_nick: HashTable<ConnId>,
    hasher: RandomState,
}

impl NickTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Who holds `nick` (any case), if anyone.
    pub fn owner(&self, nick: &str) -> Option<ConnId> {
        let hash = fold_hash(&self.hasher, nick);
        let holds = |id: &ConnId| {
            let held = self.by_id.get(id);
            held.is_some_and(|held| held.as_str().eq_ignore_ascii_case(nick))
        };
        self.by_nick.find(hash, holds).copied()
    }

    /// True if anyone holds `nick` (any case).
    pub fn is_taken(&self, nick: &str) -> bool {
        self.owner(nick).is_some()
    }

    /// `id`'s nick as spelled.
    pub fn nick(&self, id: &ConnId) -> Option<&Nick> {
        self.by_id.get(id)
    }

    /// True if `id` has a nick (it is a live connection of this node).
    pub fn has(&self, id: &ConnId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Gives `id` the nick `nick`; returns the one it had. Whoever else held `nick`
    /// no longer owns it (callers rename them first; this keeps the table whole if
    /// one does not).
    pub fn set(&mut self, id: ConnId, nick: Nick) -> Option<Nick> {
        let old = self.remove(&id);
        if let Some(holder) = self.owner(nick.as_str()) {
            self.unlink(holder, nick.as_str());
        }
        let hash = fold_hash(&self.hasher, nick.as_str());
        self.by_id.insert(id, nick);
        let (by_id, hasher) = (&self.by_id, &self.hasher);
        self.by_nick.insert_unique(hash, id, |id| {
            let held = by_id.get(id).map_or("", |nick| nick.as_str());
            fold_hash(hasher, held)
        });
        old
    }

    /// Forgets `id` and its nick; returns the nick.
    pub fn remove(&mut self, id: &ConnId) -> Option<Nick> {
        let nick = self.by_id.remove(id)?;
        self.unlink(*id, nick.as_str());
        Some(nick)
    }

    /// Takes `id`'s slot, hashed by `nick`, out of the owner side only.
    fn unlink(&mut self, id: ConnId, nick: &str) {
        let hash = fold_hash(&self.hasher, nick);
        if let Ok(slot) = self.by_nick.find_entry(hash, |&held| held == id) {
            slot.remove();
        }
    }
}

/// The hash of `nick` folded to lower case, without building the folded text (the
/// nick tables of this node's users and of other nodes' share it).
pub fn fold_hash(hasher: &RandomState, nick: &str) -> u64 {
    let mut state = hasher.build_hasher();
    for byte in nick.bytes() {
        state.write_u8(byte.to_ascii_lowercase());
    }
    state.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(key: usize) -> ConnId {
        ConnId::new(crate::server::token::encode(0, key), 1).unwrap()
    }

    fn nick(text: &str) -> Nick {
        Nick::parse(text).unwrap()
    }

    #[test]
    fn nicks_are_found_in_any_case_and_renames_move_the_owner() {
        let mut table = NickTable::new();
        assert!(table.set(id(1), nick("Alice")).is_none());
        assert!(table.set(id(2), nick("bob")).is_none());
        assert_eq!(table.owner("ALICE"), Some(id(1)));
        let old = table.set(id(1), nick("Carol")).unwrap();
        assert_eq!(old.as_str(), "Alice");
        assert_eq!(
            (table.owner("alice"), table.owner("carol")),
            (None, Some(id(1)))
        );
        assert_eq!(table.nick(&id(1)).unwrap().as_str(), "Carol");
        assert_eq!(table.remove(&id(2)).unwrap().as_str(), "bob");
        assert!(!table.is_taken("bob") && !table.has(&id(2)));
    }

    #[test]
    fn a_nick_given_to_another_leaves_its_old_holder_without_it() {
        let mut table = NickTable::new();
        table.set(id(1), nick("alice"));
        table.set(id(2), nick("ALICE"));
        assert_eq!(table.owner("alice"), Some(id(2)));
        // The old holder still has its spelled nick, but removing it does not take
        // the new holder's slot.
        assert!(table.remove(&id(1)).is_some());
        assert_eq!(table.owner("Alice"), Some(id(2)));
    }

    #[test]
    fn the_table_grows_without_losing_a_nick() {
        let mut table = NickTable::new();
        for key in 0..5000 {
            table.set(id(key), nick(&format!("User{key}")));
        }
        for key in (0..5000).step_by(2) {
            table.set(id(key), nick(&format!("renamed{key}")));
        }
        for key in 0..5000 {
            let spelled = if key % 2 == 0 { "RENAMED" } else { "user" };
            assert_eq!(table.owner(&format!("{spelled}{key}")), Some(id(key)));
        }
    }
}
