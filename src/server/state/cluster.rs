//! What this node knows about the other nodes of its cluster: their users, the rooms
//! those users are in and their roles there, the state of those rooms, and when each
//! node was last heard of.
//!
//! Each node tells every other, through the backplane, each change of one of its users
//! (`Wire::User`, `Wire::Gone`), each change of a room's modes or topic made by one of
//! its users (`Wire::Rooms`) and, when asked, its whole roster and rooms; this is the
//! replicated copy of all of that. It makes `/who`, NAMES, `/rooms`, roles and nick
//! lookups cluster-wide without a Redis round-trip per command: a nick held on
//! another node is refused here at once, and the first member of a room here is
//! admitted against the modes the room has elsewhere. (What makes a nick unique is
//! its claim in Redis, `backplane/claims.rs`; this copy only answers sooner.)
//!
//! Behind its own lock (not the directory's): it is written by the backplane thread
//! and read per command, never per recipient.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::protocol::names::NickKey;
use crate::protocol::{BanInfo, Member, Nick, ProtocolError, Role, RoomName, WhoisInfo};

use crate::server::backplane::wire::{RosterEntry, RosterRoom};
use crate::server::remote_users::RemoteUsers;
use crate::server::room_state::{RemoteRoom, RemoteSeat, RoomSnapshot, RoomState};

/// The cluster view of one node.
#[derive(Debug, Default)]
pub struct Cluster {
    inner: Mutex<View>,
}

#[derive(Debug, Default)]
struct View {
    /// Users of other nodes, by case-folded nick (each boxed, with no key beside
    /// it: see `remote_users.rs`).
    users: RemoteUsers,
    /// Other nodes' members of each room, by case-folded nick.
    rooms: HashMap<RoomName, HashSet<NickKey>>,
    /// The room lists of remote users (`RosterEntry::rooms`), each kept once: most
    /// users sit in the same room with no role, and share one list rather than pay
    /// an allocation each.
    room_lists: HashSet<Arc<[RosterRoom]>>,
    /// Nodes heard of, each name once, in the order first heard of. A remote user
    /// keeps its node's place in this list, not a copy of the name (4 bytes, not 16,
    /// per remote user); a node forgotten keeps its place for when it comes back.
    nodes: Vec<NodeEntry>,
    /// The latest state described of each room (by another node, or by this one when
    /// it published it), kept while the room has members here or elsewhere.
    snapshots: HashMap<RoomName, RoomSnapshot>,
    /// Rooms with members on this node (told by the backplane).
    local: HashSet<RoomName>,
    /// Rooms that lost their last remote member during the current change; their
    /// snapshots go at its end unless a member came back (a user's update is a
    /// removal and an insertion).
    emptied: Vec<RoomName>,
}

/// A node of the cluster view's list.
#[derive(Debug)]
struct NodeEntry {
    name: Arc<str>,
    /// Heard of and not forgotten since (its lease has not expired).
    present: bool,
}

/// A user of another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The node that has the user: its place in the view's list of nodes.
    pub node: u32,
    /// The user as its node last told it.
    pub entry: RosterEntry,
}

/// A room with members on other nodes, as `/rooms` and `LIST` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoomInfo {
    /// The room.
    pub room: RoomName,
    /// Its members on other nodes.
    pub members: usize,
    /// Secret (`+s`): listed only to its members.
    pub secret: bool,
    /// The topic, if known and set.
    pub topic: Option<Box<str>>,
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
        self.with_owner(nick, RemoteUser::clone)
    }

    /// What `read` takes from the remote user holding `nick`, if any, under the
    /// lock: a private message or `ISON` copies the two or three fields it needs,
    /// not the user's rooms and roles.
    pub fn with_owner<R>(&self, nick: &str, read: impl FnOnce(&RemoteUser) -> R) -> Option<R> {
        // No stored user holds a nick that does not parse, so none is found for one.
        self.lock().users.get(nick).map(read)
    }

    /// The name of the node at `index` in the view's list (a remote user's `node`;
    /// a place is never given to another name, so it may be looked up later).
    pub fn node_name(&self, index: u32) -> Option<Arc<str>> {
        let view = self.lock();
        view.nodes.get(index as usize).map(|n| Arc::clone(&n.name))
    }

    /// True if a user of another node holds `nick`.
    pub fn holds(&self, nick: &str) -> bool {
        self.with_owner(nick, |_| ()).is_some()
    }

    /// Other nodes' members of `room`, with the roles, real names and away flags
    /// their nodes told.
    pub fn members(&self, room: &RoomName) -> Vec<Member> {
        let view = self.lock();
        let Some(keys) = view.rooms.get(room) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|key| view.users.get(key.as_str()))
            .map(|user| Member {
                nick: user.entry.nick.clone(),
                role: user.entry.role_in(room),
                away: user.entry.away.is_some(),
                voiced: user.entry.seat(room).is_some_and(|seat| seat.voiced),
                realname: Arc::clone(&user.entry.realname),
            })
            .collect()
    }

    /// What this node knows of `nick`, a user of another node: its protocol, its
    /// rooms and roles there (secret ones only if the asker, in `asker_rooms`, is in
    /// them too), its real name, its away message and when it claimed the nick; not
    /// its idle time, which stays on its node.
    pub fn whois(&self, nick: &str, asker_rooms: &[RoomName]) -> Option<WhoisInfo> {
        let view = self.lock();
        let user = view.users.get(nick)?;
        let secret = |room: &RoomName| {
            view.snapshots
                .get(room)
                .is_some_and(RoomSnapshot::is_secret)
        };
        let mut rooms: Vec<(RoomName, Role)> = (user.entry.room_names())
            .filter(|room| !secret(room) || asker_rooms.contains(room))
            .map(|room| (room.clone(), user.entry.role_in(room)))
            .collect();
        rooms.sort();
        Some(WhoisInfo {
            nick: user.entry.nick.clone(),
            realname: Arc::clone(&user.entry.realname),
            away: user.entry.away.clone(),
            rooms,
            idle_secs: 0,
            signon: user.entry.claimed_ms / 1000,
            irc: user.entry.irc,
            account: None,
            node: view
                .nodes
                .get(user.node as usize)
                .map(|n| Box::from(&*n.name)),
        })
    }

    /// How many members of other nodes `room` has.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.lock().rooms.get(room).map_or(0, HashSet::len)
    }

    /// `error`, unless it says a room has no members while it has some on other
    /// nodes: then the room exists, and the asker is just not in it (`instead`,
    /// 442 or 482 for IRC) rather than asking about a room that does not exist (403).
    pub fn existing(
        &self,
        error: ProtocolError,
        instead: fn(RoomName) -> ProtocolError,
    ) -> ProtocolError {
        match error {
            ProtocolError::NoSuchRoom(room) if self.member_count(&room) > 0 => instead(room),
            other => other,
        }
    }

    /// `room` on the other nodes: how many members it has there, and its state.
    pub fn remote_room(&self, room: &RoomName) -> RemoteRoom {
        let view = self.lock();
        RemoteRoom {
            members: view.rooms.get(room).map_or(0, HashSet::len),
            snapshot: view.snapshots.get(room).cloned(),
            registered: false,
        }
    }

    /// True if `room` is known to be secret on the other nodes.
    pub fn is_secret(&self, room: &RoomName) -> bool {
        let view = self.lock();
        view.snapshots
            .get(room)
            .is_some_and(RoomSnapshot::is_secret)
    }

    /// The topic of `room` as other nodes told it; `None` if the room is secret
    /// (`Some(None)`: no topic, or not told yet).
    pub fn topic(&self, room: &RoomName) -> Option<Option<Box<str>>> {
        let view = self.lock();
        match view.snapshots.get(room) {
            Some(snapshot) if snapshot.is_secret() => None,
            snapshot => Some(snapshot.and_then(|s| s.topic.clone())),
        }
    }

    /// The modes of `room` as other nodes told them (the key hidden, as to a
    /// non-member) and its creation time, if it has members there.
    pub fn modes(&self, room: &RoomName) -> Option<(String, u64)> {
        let view = self.lock();
        view.rooms.get(room)?;
        let snapshot = view.snapshots.get(room)?;
        let modes = RoomState::seeded(snapshot).modes_string(false);
        Some((modes, snapshot.created))
    }

    /// The ban list of `room` as other nodes told it, if it has members there.
    pub fn bans(&self, room: &RoomName) -> Option<Vec<BanInfo>> {
        let view = self.lock();
        view.rooms.get(room)?;
        Some(view.snapshots.get(room)?.bans.clone())
    }

    /// The user of another node holding `nick`, as a mode change on `room` needs it.
    pub fn seat(&self, room: &RoomName, nick: &str) -> Option<RemoteSeat> {
        self.with_owner(nick, |user| {
            let seat = user.entry.seat(room);
            RemoteSeat {
                in_room: seat.is_some(),
                op: seat.is_some_and(|seat| seat.op),
                voiced: seat.is_some_and(|seat| seat.voiced),
                nick: user.entry.nick.clone(),
            }
        })
    }

    /// Every room with remote members: how many, whether it is secret, its topic.
    pub fn rooms(&self) -> Vec<RemoteRoomInfo> {
        let view = self.lock();
        view.rooms
            .iter()
            .map(|(room, keys)| {
                let snapshot = view.snapshots.get(room);
                RemoteRoomInfo {
                    room: room.clone(),
                    members: keys.len(),
                    secret: snapshot.is_some_and(RoomSnapshot::is_secret),
                    topic: snapshot.and_then(|s| s.topic.clone()),
                }
            })
            .collect()
    }

    /// The state of rooms as a node described them (the latest wins; a room is
    /// described after its member, so an unknown room has no members left).
    pub fn describe_rooms(&self, rooms: Vec<(RoomName, RoomSnapshot)>) {
        let mut view = self.lock();
        for (room, snapshot) in rooms {
            if view.rooms.contains_key(&room) || view.local.contains(&room) {
                view.snapshots.insert(room, snapshot);
            }
        }
    }

    /// Whether `room` has members on this node; its state is forgotten once it has
    /// members nowhere.
    pub fn set_local(&self, room: &RoomName, present: bool) {
        let mut view = self.lock();
        if present {
            view.local.insert(room.clone());
        } else {
            view.local.remove(room);
            view.emptied.push(room.clone());
            view.settle();
        }
    }

    /// Nodes heard of (other than this one).
    pub fn peers(&self) -> usize {
        self.lock().nodes.iter().filter(|n| n.present).count()
    }

    /// Records that `node` exists (it may have no users yet).
    pub fn saw(&self, node: &str) {
        self.lock().node_index(node);
    }

    /// A user of `node` as it is now (`was`: its nick before, if it changed).
    pub fn upsert(&self, node: &str, entry: &RosterEntry, was: Option<&Nick>) {
        let mut view = self.lock();
        if let Some(was) = was {
            view.forget(&was.key());
        }
        view.forget(&entry.nick.key());
        let index = view.node_index(node);
        view.insert(index, entry);
        view.settle();
    }

    /// A user of another node left.
    pub fn remove_user(&self, nick: &Nick) {
        let mut view = self.lock();
        view.forget(&nick.key());
        view.settle();
    }

    /// Replaces everything known about `node` by its roster.
    pub fn replace_node(&self, node: &str, users: &[RosterEntry]) {
        let mut view = self.lock();
        view.drop_node(node);
        let index = view.node_index(node);
        for entry in users {
            view.forget(&entry.nick.key());
            view.insert(index, entry);
        }
        view.settle();
    }

    /// Forgets a node (its lease expired): returns its users, whose quits the caller
    /// announces, and whose nicks are free from now on.
    pub fn remove_node(&self, node: &str) -> Vec<RemoteUser> {
        let mut view = self.lock();
        let users = view.drop_node(node);
        if let Some(entry) = view.nodes.iter_mut().find(|n| &*n.name == node) {
            entry.present = false;
        }
        view.settle();
        users
    }
}

impl View {
    /// `node`'s place in the list of nodes, added if new; it is present from now on.
    fn node_index(&mut self, node: &str) -> u32 {
        let index = match self.nodes.iter().position(|n| &*n.name == node) {
            Some(index) => index,
            None => {
                let name = Arc::from(node);
                self.nodes.push(NodeEntry {
                    name,
                    present: true,
                });
                self.nodes.len() - 1
            }
        };
        self.nodes[index].present = true;
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn insert(&mut self, node: u32, entry: &RosterEntry) {
        let key = entry.nick.key();
        for room in entry.room_names() {
            self.rooms
                .entry(room.clone())
                .or_default()
                .insert(key.clone());
        }
        let mut entry = entry.clone();
        entry.rooms = self.shared_list(&entry.rooms);
        self.users.insert(RemoteUser { node, entry });
    }

    /// The one copy of the room list `seats`, with the one copy of each room's name.
    fn shared_list(&mut self, seats: &[RosterRoom]) -> Arc<[RosterRoom]> {
        if let Some(list) = self.room_lists.get(seats) {
            return Arc::clone(list);
        }
        let name = |room: &RoomName| match self.rooms.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => room.clone(),
        };
        let list: Arc<[RosterRoom]> = (seats.iter())
            .map(|seat| RosterRoom {
                room: name(&seat.room),
                ..seat.clone()
            })
            .collect();
        self.room_lists.insert(Arc::clone(&list));
        list
    }

    fn forget(&mut self, key: &NickKey) -> Option<RemoteUser> {
        let user = self.users.remove(key.as_str())?;
        // The list is kept while another user shares it (or a copy handed out by
        // `owner` is alive; `settle` sweeps those later).
        if Arc::strong_count(&user.entry.rooms) <= 2 {
            self.room_lists.remove(&*user.entry.rooms);
        }
        for room in user.entry.room_names() {
            if let Some(members) = self.rooms.get_mut(room) {
                members.remove(key);
                if members.is_empty() {
                    self.rooms.remove(room);
                    self.emptied.push(room.clone());
                }
            }
        }
        Some(user)
    }

    /// Forgets the snapshots of the rooms the change left without members anywhere.
    /// Also drops the room lists no user holds any more, once they are many.
    fn settle(&mut self) {
        for room in std::mem::take(&mut self.emptied) {
            if !self.rooms.contains_key(&room) && !self.local.contains(&room) {
                self.snapshots.remove(&room);
            }
        }
        if self.room_lists.len() > 2 * self.users.len() + 64 {
            self.room_lists.retain(|list| Arc::strong_count(list) > 1);
        }
    }

    fn drop_node(&mut self, node: &str) -> Vec<RemoteUser> {
        let Some(index) = self.nodes.iter().position(|n| &*n.name == node) else {
            return Vec::new();
        };
        let keys: Vec<NickKey> = (self.users.iter())
            .filter(|user| user.node as usize == index)
            .map(|user| user.entry.nick.key())
            .collect();
        keys.iter().filter_map(|key| self.forget(key)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::server::backplane::wire::RosterRoom;

    fn entry(nick: &str, rooms: &[&str]) -> RosterEntry {
        // An operator in the first of its rooms.
        let rooms = (rooms.iter().enumerate())
            .map(|(i, r)| RosterRoom {
                room: RoomName::parse(r).unwrap(),
                op: i == 0,
                voiced: false,
            })
            .collect();
        RosterEntry {
            nick: Nick::parse(nick).unwrap(),
            claimed_ms: 1,
            irc: false,
            realname: Arc::from(nick),
            away: None,
            rooms,
        }
    }

    #[test]
    fn users_rooms_and_nodes_follow_changes() {
        let cluster = Cluster::new();
        cluster.upsert("b", &entry("bob", &["rust", "lobby"]), None);
        cluster.upsert("b", &entry("carol", &["rust"]), None);
        let rust = RoomName::parse("rust").unwrap();
        assert_eq!(cluster.members(&rust).len(), 2);
        let bob = cluster.whois("BOB", &[]).unwrap();
        assert_eq!(bob.node.as_deref(), Some("b"));
        let bob = Nick::parse("bob").unwrap();
        cluster.upsert("b", &entry("robert", &["lobby"]), Some(&bob));
        assert!(cluster.owner("bob").is_none(), "the old nick is free");
        assert_eq!(cluster.members(&rust).len(), 1);
        let gone = cluster.remove_node("b");
        assert_eq!(gone.len(), 2);
        assert!(cluster.rooms().is_empty());
        assert_eq!(cluster.peers(), 0);
    }

    #[test]
    fn users_in_the_same_rooms_share_one_room_list_until_the_last_leaves() {
        let cluster = Cluster::new();
        cluster.upsert("b", &entry("bob", &["rust", "lobby"]), None);
        cluster.upsert("b", &entry("carol", &["rust", "lobby"]), None);
        cluster.upsert("b", &entry("dave", &["lobby"]), None);
        let (bob, carol) = (
            cluster.owner("bob").unwrap(),
            cluster.owner("carol").unwrap(),
        );
        assert!(Arc::ptr_eq(&bob.entry.rooms, &carol.entry.rooms));
        let dave = cluster.owner("dave").unwrap();
        assert!(!Arc::ptr_eq(&bob.entry.rooms, &dave.entry.rooms));
        drop((bob, carol, dave));
        assert_eq!(cluster.lock().room_lists.len(), 2);
        cluster.remove_user(&Nick::parse("bob").unwrap());
        assert_eq!(cluster.lock().room_lists.len(), 2, "carol still holds it");
        cluster.remove_node("b");
        assert!(cluster.lock().room_lists.is_empty());
    }

    #[test]
    fn a_roster_replaces_what_was_known() {
        let cluster = Cluster::new();
        cluster.upsert("b", &entry("old", &["x"]), None);
        cluster.replace_node("b", &[entry("new", &["y"])]);
        assert!(cluster.owner("old").is_none());
        let y = RoomName::parse("y").unwrap();
        let sizes: Vec<_> = cluster
            .rooms()
            .into_iter()
            .map(|r| (r.room, r.members))
            .collect();
        assert_eq!(sizes, vec![(y, 1)]);
    }

    #[test]
    fn roles_and_room_state_follow_the_remote_members() {
        use crate::protocol::modes::{Flag, ModeChange, ModeKind};
        let cluster = Cluster::new();
        let rust = RoomName::parse("rust").unwrap();
        cluster.upsert("b", &entry("bob", &["rust", "lobby"]), None);
        cluster.upsert("b", &entry("carol", &["lobby", "rust"]), None);
        let mut members = cluster.members(&rust);
        members.sort_by(|x, y| x.nick.as_str().cmp(y.nick.as_str()));
        let roles: Vec<Role> = members.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::Operator, Role::Member]);
        let whois = cluster.whois("bob", &[]).unwrap();
        assert_eq!(whois.node.as_deref(), Some("b"));
        let seat = cluster.seat(&rust, "CAROL").unwrap();
        assert!(seat.in_room && !seat.op);
        let secret = RoomSnapshot {
            created: 1,
            changes: vec![ModeChange {
                set: true,
                kind: ModeKind::Flag(Flag::Secret),
            }],
            bans: Vec::new(),
            topic: Some("t".into()),
        };
        cluster.describe_rooms(vec![(rust.clone(), secret)]);
        assert!(cluster.is_secret(&rust));
        assert_eq!(cluster.remote_room(&rust).members, 2);
        assert!(cluster.remote_room(&rust).snapshot.is_some());
        cluster.remove_user(&Nick::parse("bob").unwrap());
        assert!(cluster.is_secret(&rust), "carol is still there");
        cluster.upsert("b", &entry("carol", &["rust"]), None);
        assert!(
            cluster.is_secret(&rust),
            "an update of its last member keeps it"
        );
        cluster.remove_user(&Nick::parse("carol").unwrap());
        assert!(
            cluster.remote_room(&rust).snapshot.is_none(),
            "forgotten with the room's last remote member"
        );
    }
}
