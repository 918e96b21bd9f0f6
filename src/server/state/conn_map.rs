//! A map keyed by connection id, laid out by shard and slab key rather than hashed.
//!
//! Several tables hold one entry per connection: the directory's profiles and
//! spelled nicks, the backplane's published users and granted nicks. As hash maps,
//! each entry also stored its 8-byte key and a control byte, and a table doubles as
//! it grows: at 19 000 connections one is 58% full, and the directory's 72-byte
//! profile entry cost 126 bytes per connection. Slab keys are dense (a slab gives out
//! the lowest free slot again), so a table indexed by them wastes nothing but the
//! rest of its last page. It grows a page at a time and never moves a page.
//!
//! Each slot keeps the generation of the connection it belongs to, so an id of a
//! closed connection whose slot was taken again finds nothing, as it would in a hash
//! map keyed by the whole id.

use crate::server::token::{self, ConnId};

/// Slots per page.
const PAGE: usize = 256;

/// One page of slots (a slot is empty or holds a connection's value).
type Page<T> = Box<[Option<Slot<T>>]>;

/// A value per connection.
#[derive(Debug)]
pub struct ConnMap<T> {
    /// Pages of slots, per shard.
    shards: Vec<Vec<Page<T>>>,
    len: usize,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: T,
}

impl<T> Default for ConnMap<T> {
    fn default() -> Self {
        ConnMap {
            shards: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ConnMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many connections have a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no connection has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, id: ConnId) -> Option<&Option<Slot<T>>> {
        let key = id.key();
        self.shards
            .get(id.shard())?
            .get(key / PAGE)?
            .get(key % PAGE)
    }

    fn slot_mut(&mut self, id: ConnId) -> Option<&mut Option<Slot<T>>> {
        let key = id.key();
        let page = self.shards.get_mut(id.shard())?.get_mut(key / PAGE)?;
        page.get_mut(key % PAGE)
    }

    /// `id`'s value.
    pub fn get(&self, id: &ConnId) -> Option<&T> {
        match self.slot(*id)? {
            Some(slot) if slot.generation == id.generation() => Some(&slot.value),
            _ => None,
        }
    }

    /// `id`'s value, to change.
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut T> {
        match self.slot_mut(*id)? {
            Some(slot) if slot.generation == id.generation() => Some(&mut slot.value),
            _ => None,
        }
    }

    /// True if `id` has a value.
    pub fn contains_key(&self, id: &ConnId) -> bool {
        self.get(id).is_some()
    }

    /// Sets `id`'s value; returns the one it had. A value left by an earlier
    /// connection of the same slot (it should have been removed) is dropped.
    pub fn insert(&mut self, id: ConnId, value: T) -> Option<T> {
        let (shard, key) = (id.shard(), id.key());
        if self.shards.len() <= shard {
            self.shards.resize_with(shard + 1, Vec::new);
        }
        let pages = &mut self.shards[shard];
        while pages.len() <= key / PAGE {
            pages.push((0..PAGE).map(|_| None).collect());
        }
        let generation = id.generation();
        let old = pages[key / PAGE][key % PAGE].replace(Slot { generation, value });
        match old {
            Some(old) if old.generation == generation => Some(old.value),
            Some(_) => None,
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// Takes `id`'s value out.
    pub fn remove(&mut self, id: &ConnId) -> Option<T> {
        let slot = self.slot_mut(*id)?;
        if slot.as_ref()?.generation != id.generation() {
            return None;
        }
        let value = slot.take().map(|slot| slot.value);
        self.len -= 1;
        value
    }

    /// Every connection with a value, and the value.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> {
        self.shards.iter().enumerate().flat_map(|(shard, pages)| {
            let slots = pages.iter().flat_map(|page| page.iter()).enumerate();
            slots.filter_map(move |(key, slot)| {
                let slot = slot.as_ref()?;
                Some((id_of(shard, key, slot.generation)?, &slot.value))
            })
        })
    }

    /// Every connection with a value.
    pub fn keys(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Every value, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let slots = self
            .shards
            .iter_mut()
            .flatten()
            .flat_map(|page| page.iter_mut());
        slots.filter_map(|slot| slot.as_mut().map(|slot| &mut slot.value))
    }
}

fn id_of(shard: usize, key: usize, generation: u32) -> Option<ConnId> {
    ConnId::new(token::encode(shard, key), generation)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(shard: usize, key: usize, generation: u32) -> ConnId {
        id_of(shard, key, generation).unwrap()
    }

    #[test]
    fn a_value_is_found_by_its_connection_only() {
        let mut map = ConnMap::new();
        assert_eq!(map.insert(id(1, 700, 3), "a"), None);
        assert_eq!(map.get(&id(1, 700, 3)), Some(&"a"));
        assert_eq!(map.get(&id(1, 700, 4)), None, "the slot's next connection");
        assert_eq!(map.get(&id(0, 700, 3)), None, "another shard");
        assert_eq!(map.insert(id(1, 700, 3), "b"), Some("a"));
        assert_eq!(map.len(), 1);
        assert_eq!(map.remove(&id(1, 700, 4)), None);
        assert_eq!(map.remove(&id(1, 700, 3)), Some("b"));
        assert!(map.is_empty());
    }

    #[test]
    fn a_stale_value_is_replaced_and_iteration_names_each_connection() {
        let mut map = ConnMap::new();
        map.insert(id(0, 5, 1), 10);
        assert_eq!(map.insert(id(0, 5, 2), 20), None, "not the same connection");
        map.insert(id(2, PAGE * 3 + 1, 9), 30);
        assert_eq!(map.len(), 3 - 1);
        let mut all: Vec<(ConnId, i32)> = map.iter().map(|(id, v)| (id, *v)).collect();
        all.sort();
        assert_eq!(all, vec![(id(0, 5, 2), 20), (id(2, PAGE * 3 + 1, 9), 30)]);
        map.values_mut().for_each(|v| *v += 1);
        assert_eq!(map.keys().count(), 2);
        assert_eq!(map.get(&id(0, 5, 2)), Some(&21));
    }
}
