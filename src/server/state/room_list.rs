//! The rooms one connection is in, in join order, with the first held inline.
//!
//! Most connections are in one room at a time (a line client starts in the lobby),
//! and a `Vec` of one room name is a 16-byte allocation, a 32-byte chunk once the
//! allocator has added its header and rounded up, on every idle connection. This
//! list keeps a single room in its own 24 bytes (the size of the `Vec` it replaces)
//! and allocates only for a second. It reads as a slice (`Deref`), so callers
//! iterate, search and index it as they did the `Vec`.

use std::ops::Deref;

use crate::protocol::RoomName;

/// Rooms in join order; a single one is not allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomList(Rooms);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rooms {
    /// Exactly one room.
    One(RoomName),
    /// None, or two and more.
    Many(Vec<RoomName>),
}

impl Default for RoomList {
    fn default() -> Self {
        RoomList(Rooms::Many(Vec::new()))
    }
}

impl Deref for RoomList {
    type Target = [RoomName];

    fn deref(&self) -> &[RoomName] {
        match &self.0 {
            Rooms::One(room) => std::slice::from_ref(room),
            Rooms::Many(rooms) => rooms,
        }
    }
}

impl From<Vec<RoomName>> for RoomList {
    fn from(mut rooms: Vec<RoomName>) -> Self {
        match rooms.pop() {
            Some(room) if rooms.is_empty() => RoomList(Rooms::One(room)),
            Some(room) => {
                rooms.push(room);
                RoomList(Rooms::Many(rooms))
            }
            None => RoomList::default(),
        }
    }
}

impl IntoIterator for RoomList {
    type Item = RoomName;
    type IntoIter = std::vec::IntoIter<RoomName>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a RoomList {
    type Item = &'a RoomName;
    type IntoIter = std::slice::Iter<'a, RoomName>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl RoomList {
    /// No rooms.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rooms as a `Vec`, emptying the list.
    pub fn into_vec(self) -> Vec<RoomName> {
        match self.0 {
            Rooms::One(room) => vec![room],
            Rooms::Many(rooms) => rooms,
        }
    }

    /// Appends `room` (the caller checks it is not in the list yet).
    pub fn push(&mut self, room: RoomName) {
        let mut rooms = std::mem::take(self).into_vec();
        rooms.push(room);
        *self = RoomList::from(rooms);
    }

    /// Removes and returns the room at `index`.
    ///
    /// # Panics
    /// If `index` is out of bounds, as `Vec::remove` does.
    pub fn remove(&mut self, index: usize) -> RoomName {
        let mut rooms = std::mem::take(self).into_vec();
        let room = rooms.remove(index);
        *self = RoomList::from(rooms);
        room
    }

    /// Keeps only the rooms for which `keep` is true, in order.
    pub fn retain(&mut self, keep: impl FnMut(&RoomName) -> bool) {
        let mut rooms = std::mem::take(self).into_vec();
        rooms.retain(keep);
        *self = RoomList::from(rooms);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn one_room_is_inline_and_the_list_reads_as_a_slice_in_join_order() {
        let mut list = RoomList::new();
        assert!(list.is_empty());
        list.push(room("a"));
        assert!(matches!(list.0, Rooms::One(_)), "one room: no allocation");
        list.push(room("b"));
        list.push(room("c"));
        assert_eq!(&*list, &[room("a"), room("b"), room("c")]);
        assert!(list.contains(&room("b")));
        assert_eq!(list.remove(1), room("b"));
        list.retain(|r| *r != room("a"));
        assert_eq!(&*list, &[room("c")]);
        assert!(matches!(list.0, Rooms::One(_)), "back to one: inline again");
        assert_eq!(list.clone().into_vec(), vec![room("c")]);
        list.retain(|_| false);
        assert!(list.is_empty() && list.into_vec().is_empty());
    }

    #[test]
    fn the_list_is_no_bigger_than_the_vec_it_replaces() {
        assert_eq!(
            std::mem::size_of::<RoomList>(),
            std::mem::size_of::<Vec<RoomName>>()
        );
    }
}
