//! The directory: the little state that every shard must agree on.
//!
//! - which connection owns each nick (nicks are unique server-wide);
//! - which connections are in each room, how many of them on each shard, and the
//!   room's topic;
//! - each room's moderation state (modes, operators and voiced members, bans,
//!   invitations: a `RoomState` in the room's entry, so that both protocols and every
//!   shard share one state), and each connection's profile (real name, sign-on time)
//!   and a bounded history of recent nicks for `WHOWAS`.
//!
//! It is the busiest piece of shared mutable state, behind one `Mutex` (the others,
//! atomics and a few rarely taken locks, are listed in docs/DESIGN.md).
//! Every method takes the lock once, does a few map operations and lets go: it is
//! taken per *command* (join, nick, who) and once per room *message* to learn which
//! shards have members, never per recipient. Fan-out itself happens on each shard
//! from its own `rooms::LocalRooms`, without the lock.
//!
//! Membership here and in the shards' local tables changes together: the owning shard
//! updates both in the same call, so a room message sent after a join reaches the
//! new member.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::protocol::identity::UserHost;
use crate::protocol::mask::{Identity, glob_matches};
use crate::protocol::modes::{Flag, ModeKind};
use crate::protocol::{
    BanInfo, LusersReport, Member, ModeChange, Nick, ProtocolError, Role, RoomInfo, RoomName,
    TopicSetter, WhoRow, WhoisInfo, WhowasEntry,
};

use crate::server::backplane::wire::{RosterEntry, RosterRoom};
use crate::server::conn_map::ConnMap;
use crate::server::nick_table::NickTable;
use crate::server::room_state::{
    JoinRefusal, RemoteRoom, RemoteSeat, RoomSnapshot, RoomState, unix_now,
};
use crate::server::token::ConnId;

/// Entries `WHOWAS` remembers, server-wide (oldest dropped first).
pub const WHOWAS_HISTORY: usize = 256;

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
    /// Owner → nick as spelled, and nick (any case) → owner.
    names: NickTable,
    /// Rooms with at least one member.
    rooms: HashMap<RoomName, RoomEntry>,
    /// Away messages (IRC `AWAY`), by connection.
    away: HashMap<ConnId, Box<str>>,
    /// Suffix of the next guest nick.
    next_guest: u64,
    /// Real name, sign-on time and activity of each connection.
    profiles: ConnMap<Profile>,
    /// Connections that finished registering (line connections at once).
    registered: usize,
    /// The most registered connections there have been at once.
    max_registered: usize,
    /// Recent nicks, newest last, for `WHOWAS`.
    whowas: VecDeque<WhowasEntry>,
    /// Invitations from other nodes of a cluster to rooms with no members here yet:
    /// they are used when the invited connection joins.
    invited_elsewhere: HashMap<RoomName, HashSet<ConnId>>,
    /// The last incarnation number given to a room (see `RoomEntry::born`).
    last_born: u64,
}

#[derive(Debug, Default)]
struct RoomEntry {
    members: HashSet<ConnId>,
    /// Members per shard; `shard_mask` has bit `i` set while `per_shard[i] > 0`.
    per_shard: Vec<u32>,
    shard_mask: u64,
    topic: Option<Box<str>>,
    /// Who set the topic and when (IRC `333`), once its `TOPIC` went through here.
    topic_by: Option<TopicSetter>,
    /// Modes, roles, bans, invitations.
    state: RoomState,
    /// Which incarnation of the room this is: a number never given before, taken
    /// when its first member joins. A room that empties is gone; one made again
    /// under the same name is another room, and must not show the lines of the
    /// last one (unless it is registered): history is fenced by this number.
    born: u64,
}

/// What the directory knows about a connection beyond its nick.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The real name (IRC `USER`; the nick for line connections).
    pub realname: Arc<str>,
    /// When it connected (Unix seconds, as [`profile_time`] keeps them).
    pub signon: u32,
    /// When it last sent a message (Unix seconds; 0: never), for `WHOIS` idle
    /// times: stamped under the lock a room line takes anyway to ask whether its
    /// sender may speak (`may_speak`), and by `spoke` for a private message. Not a
    /// shared atomic the shard writes without the lock: that cost an allocation per
    /// connection.
    pub spoke_at: u32,
    /// Registration is complete (always for line connections).
    pub registered: bool,
    /// The connection speaks IRC.
    pub irc: bool,
    /// The account it is logged in to, if any.
    pub account: Option<Nick>,
    /// Its `user@host` (the session holds the same).
    pub userhost: UserHost,
}

/// Unix seconds as a profile keeps them: 32 bits, good until 2106, so its two times
/// take the room of one (a profile is kept per connection).
pub fn profile_time(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The result of a mode change: what changed, and what was refused.
#[derive(Debug, Default)]
pub struct ModeOutcome {
    /// Changes that changed something, in order.
    pub applied: Vec<ModeChange>,
    /// Changes refused (unknown nicks, nicks not in the room, a full ban list).
    pub refused: Vec<ProtocolError>,
}

/// Which shards have members in a room, and how many members it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Bit `i` is set while shard `i` has at least one member.
    pub shard_mask: u64,
    /// Members on all shards.
    pub members: usize,
    /// The room's incarnation (`RoomEntry::born`; 0: no members here).
    pub born: u64,
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
    /// The room's name as the directory holds it: members keep this one, so a
    /// room's name is stored once, not once per member.
    pub room: RoomName,
    /// Members including the joiner.
    pub members: usize,
    /// The topic, if set.
    pub topic: Option<Box<str>>,
    /// Who set it and when, if known here.
    pub topic_by: Option<TopicSetter>,
    /// The joiner's away message, if any (IRC `away-notify` tells it after the
    /// `JOIN`).
    pub away: Option<Box<str>>,
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

    /// `id`'s role in `room`, if it is a member.
    pub fn role_of(&self, room: &RoomName, id: ConnId) -> Option<Role> {
        let tables = self.lock();
        let entry = tables.rooms.get(room).filter(|e| e.members.contains(&id))?;
        Some(entry.state.role(id))
    }

    /// The account `id` is logged in to, if any (kept here, not in the session, so
    /// that a connection that never logs in pays nothing for it).
    pub fn account_of(&self, id: ConnId) -> Option<Nick> {
        self.lock().profiles.get(&id)?.account.clone()
    }

    /// True if `id` is logged in to the account `nick`.
    pub fn owns(&self, id: ConnId, nick: &Nick) -> bool {
        self.account_of(id).is_some_and(|a| a.key() == nick.key())
    }

    /// A dropped account: every session logged in to it is logged out (the next to
    /// register the name must not find them logged in to it).
    pub fn forget_account(&self, account: &Nick) {
        let mut tables = self.lock();
        for profile in tables.profiles.values_mut() {
            if profile
                .account
                .as_ref()
                .is_some_and(|a| a.key() == account.key())
            {
                profile.account = None;
            }
        }
    }

    /// Records the account `id` is logged in to (`None`: logged out).
    pub fn set_account(&self, id: ConnId, account: Option<Nick>) {
        if let Some(profile) = self.lock().profiles.get_mut(&id) {
            profile.account = account;
        }
    }

    /// Gives `nick` to `id`, its account's owner, in one lock: whoever else holds it
    /// is renamed to a fresh guest nick first. Returns `id`'s old nick and, if
    /// someone was renamed, who and to what.
    pub fn reclaim(&self, id: ConnId, nick: &Nick) -> Option<(Nick, Option<(ConnId, Nick)>)> {
        let mut tables = self.lock();
        if !tables.names.has(&id) {
            return None;
        }
        let holder = tables.names.owner(nick.as_str()).filter(|&h| h != id);
        // Another session of the same account keeps it: the owner is not its own
        // impostor.
        let owner = |h: &ConnId| {
            let account = tables.profiles.get(h).and_then(|p| p.account.as_ref());
            account.is_some_and(|a| a.key() == nick.key())
        };
        if holder.as_ref().is_some_and(owner) {
            return None;
        }
        let renamed = holder.map(|holder| {
            let guest = tables.fresh_guest(&self.guest_suffix);
            tables.names.set(holder, guest.clone());
            tables.follow_nick(holder, &guest);
            (holder, guest)
        });
        let old = tables.names.set(id, nick.clone())?;
        tables.follow_nick(id, nick);
        Some((old, renamed))
    }

    /// Gives `id` operator status or voice in `room` (an access grant); false if it is
    /// not a member or had it already.
    pub fn grant(&self, room: &RoomName, id: ConnId, op: bool) -> bool {
        let mut tables = self.lock();
        let Some(entry) = tables
            .rooms
            .get_mut(room)
            .filter(|e| e.members.contains(&id))
        else {
            return false;
        };
        entry.state.grant(id, op)
    }

    /// Renames `id` to a fresh guest nick; returns (old, new).
    pub fn rename_to_guest(&self, id: ConnId) -> Option<(Nick, Nick)> {
        let mut tables = self.lock();
        if !tables.names.has(&id) {
            return None;
        }
        let nick = tables.fresh_guest(&self.guest_suffix);
        let old = tables.names.set(id, nick.clone())?;
        tables.follow_nick(id, &nick);
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
    /// start in no room). `remote`: the room on other nodes of a cluster.
    pub fn register_guest(&self, id: ConnId, room: Option<&RoomName>, remote: &RemoteRoom) -> Nick {
        let mut tables = self.lock();
        let nick = tables.fresh_guest(&self.guest_suffix);
        tables.names.set(id, nick.clone());
        if let Some(room) = room {
            entry_for(&mut tables.rooms, room, remote);
            tables.join(room, id, remote.members > 0);
        }
        nick
    }

    /// Changes `id`'s nick; returns the old one.
    pub fn rename(&self, id: ConnId, new: &Nick) -> Result<Nick, ProtocolError> {
        let mut tables = self.lock();
        if tables
            .names
            .owner(new.as_str())
            .is_some_and(|owner| owner != id)
        {
            return Err(ProtocolError::NickTaken(new.clone()));
        }
        let old = tables
            .names
            .set(id, new.clone())
            .expect("BUG: renaming a connection the directory does not know");
        tables.follow_nick(id, new);
        Ok(old)
    }

    /// Who owns `nick` (case-insensitive), if anyone.
    pub fn lookup(&self, nick: &str) -> Option<ConnId> {
        self.lookup_full(nick).map(|(id, _, _)| id)
    }

    /// The `user@host` of each of `nicks` held here (`None` for the others), under
    /// one lock: WHO, WHOIS, USERHOST, and the source of an event whose sender is
    /// not the connection at hand.
    pub fn userhosts<'n>(
        &self,
        nicks: impl IntoIterator<Item = &'n Nick>,
    ) -> Vec<Option<UserHost>> {
        let tables = self.lock();
        let of = |nick: &Nick| {
            let id = tables.names.owner(nick.as_str())?;
            Some(tables.profiles.get(&id)?.userhost.clone())
        };
        nicks.into_iter().map(of).collect()
    }

    /// Owner, nick as spelled, and away message of `nick`, if anyone has it.
    pub fn lookup_full(&self, nick: &str) -> Option<(ConnId, Nick, Option<Box<str>>)> {
        let tables = self.lock();
        let id = tables.names.owner(nick)?;
        let spelled = tables.names.nick(&id)?.clone();
        Some((id, spelled, tables.away.get(&id).cloned()))
    }

    /// [`Self::lookup_full`] for each of `nicks` that someone has, under one lock.
    pub fn lookup_each(&self, nicks: &[&str]) -> Vec<(ConnId, Nick, Option<Box<str>>)> {
        let tables = self.lock();
        nicks
            .iter()
            .filter_map(|nick| {
                let id = tables.names.owner(nick)?;
                let spelled = tables.names.nick(&id)?.clone();
                Some((id, spelled, tables.away.get(&id).cloned()))
            })
            .collect()
    }

    /// Sets (`Some`) or clears (`None`) the away message of `id`.
    pub fn set_away(&self, id: ConnId, text: Option<&str>) {
        let mut tables = self.lock();
        match text {
            Some(text) => tables.away.insert(id, text.into()),
            None => tables.away.remove(&id),
        };
    }

    /// Adds `id` to `room`.
    pub fn join(&self, room: &RoomName, id: ConnId) -> Joined {
        self.lock().join(room, id, false)
    }

    /// Removes `id` from `room`; the room disappears with its last member.
    pub fn leave(&self, room: &RoomName, id: ConnId) {
        self.lock().leave(room, id);
    }

    /// Removes `id` from every room in `rooms`, under one lock.
    pub fn leave_all(&self, id: ConnId, rooms: &[RoomName]) {
        let mut tables = self.lock();
        for room in rooms {
            tables.leave(room, id);
        }
    }

    /// Forgets a closed connection's nick and away message (its rooms are left with
    /// [`Self::leave_all`] first).
    pub fn remove(&self, id: ConnId) {
        let mut tables = self.lock();
        tables.names.remove(&id);
        tables.away.remove(&id);
        tables.invited_elsewhere.retain(|_, ids| {
            ids.remove(&id);
            !ids.is_empty()
        });
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
                born: r.born,
            })
    }

    /// The incarnation of each of `rooms` (0 for a room with no members here), under
    /// one lock: history kept for another incarnation is not the room's.
    pub fn borns(&self, rooms: &[RoomName]) -> Vec<u64> {
        let tables = self.lock();
        let born = |room| tables.rooms.get(room).map_or(0, |r: &RoomEntry| r.born);
        rooms.iter().map(born).collect()
    }

    /// Up to `page` member nicks of `room`, sorted, and how many more there are.
    /// `None` if the room has no members.
    pub fn who(&self, room: &RoomName, page: usize) -> Option<(Vec<Nick>, usize)> {
        let tables = self.lock();
        let entry = tables.rooms.get(room)?;
        let mut nicks: Vec<Nick> = entry
            .members
            .iter()
            .filter_map(|id| tables.names.nick(id).cloned())
            .collect();
        drop(tables);
        // The lower-cased key is computed once per nick, not once per comparison.
        nicks.sort_by_cached_key(|n| n.as_str().to_ascii_lowercase());
        let more = nicks.len().saturating_sub(page);
        nicks.truncate(page);
        Some((nicks, more))
    }

    /// Every room and its member count, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        room_list(&self.lock(), |_| true)
    }

    /// The topic of `room`.
    pub fn topic(&self, room: &RoomName) -> Option<Box<str>> {
        self.lock().rooms.get(room).and_then(|r| r.topic.clone())
    }

    /// The topic of `room` and who set it when, if known.
    pub fn topic_and_setter(&self, room: &RoomName) -> (Option<Box<str>>, Option<TopicSetter>) {
        let tables = self.lock();
        let entry = tables.rooms.get(room);
        let topic = entry.and_then(|r| r.topic.clone());
        (topic, entry.and_then(|r| r.topic_by.clone()))
    }

    /// Sets the topic of `room` (which must have members); its setter is told when
    /// the change is sequenced ([`Self::topic_set_by`]).
    pub fn set_topic(&self, room: &RoomName, topic: &str) {
        if let Some(entry) = self.lock().rooms.get_mut(room) {
            entry.topic = Some(topic.into());
            entry.topic_by = None;
        }
    }

    /// Who set the topic of `room` (on its home shard, for a `TOPIC` from any node).
    pub fn topic_set_by(&self, room: &RoomName, setter: TopicSetter) {
        if let Some(entry) = self.lock().rooms.get_mut(room) {
            entry.topic_by = Some(setter);
        }
    }
}

/// Moderation, profiles and the IRC user queries: each method one short lock.
impl Directory {
    /// Records a new connection's profile.
    pub fn set_profile(&self, id: ConnId, profile: Profile) {
        let mut tables = self.lock();
        let registered = profile.registered;
        tables.profiles.insert(id, profile);
        if registered {
            tables.count_registered();
        }
    }

    /// An IRC connection finished registering with this real name and `user@host`.
    pub fn register(&self, id: ConnId, realname: &str, userhost: UserHost) {
        let mut tables = self.lock();
        let Some(profile) = tables.profiles.get_mut(&id) else {
            return;
        };
        profile.realname = realname.into();
        profile.userhost = userhost;
        if !std::mem::replace(&mut profile.registered, true) {
            tables.count_registered();
        }
    }

    /// Remembers `id` as having had `nick` (for `WHOWAS`): called when it changes
    /// nick and when it closes (then its profile is dropped too).
    pub fn remember(&self, id: ConnId, nick: &Nick, closing: bool) {
        let mut tables = self.lock();
        let profile = if closing {
            tables.profiles.remove(&id)
        } else {
            tables.profiles.get(&id).cloned()
        };
        let Some(profile) = profile else {
            return;
        };
        if profile.registered {
            if closing {
                tables.registered -= 1;
            }
            if tables.whowas.len() == WHOWAS_HISTORY {
                tables.whowas.pop_front();
            }
            let (realname, userhost) = (profile.realname, profile.userhost);
            let nick = nick.clone();
            tables.whowas.push_back(WhowasEntry {
                nick,
                realname,
                userhost,
            });
        }
    }

    /// Up to `count` (0: all) of the latest users who had `nick`, newest first.
    pub fn whowas(&self, nick: &str, count: usize) -> Vec<WhowasEntry> {
        let count = if count == 0 { usize::MAX } else { count };
        let tables = self.lock();
        let matching = tables.whowas.iter().rev();
        let matching = matching.filter(|entry| entry.nick.as_str().eq_ignore_ascii_case(nick));
        matching.take(count).cloned().collect()
    }

    /// The counts of `LUSERS`.
    pub fn lusers(&self) -> LusersReport {
        let tables = self.lock();
        LusersReport {
            users: tables.registered,
            unknown: tables.profiles.len() - tables.registered,
            rooms: tables.rooms.len(),
            max_users: tables.max_registered,
            operators: 0, // counted by the shards (`Shared::opers`)
        }
    }

    /// Joins `room` if its modes and bans let `id` in (one lock for check and join, so
    /// two joiners cannot both take the last place under `+l`). Already a member: ok.
    /// `remote`: the room on other nodes of a cluster. A room with members there is
    /// not new: its first member here is checked against the state those nodes
    /// described (and counted with their members under `+l`), and is not made its
    /// operator.
    pub fn admit(
        &self,
        room: &RoomName,
        id: ConnId,
        who: &Identity<'_>,
        key: Option<&str>,
        remote: &RemoteRoom,
    ) -> Result<Joined, JoinRefusal> {
        let mut tables = self.lock();
        let tables = &mut *tables;
        let fresh = !tables.rooms.contains_key(room);
        let entry = entry_for(&mut tables.rooms, room, remote);
        if !entry.members.contains(&id) {
            let invited = tables.invited_elsewhere.get_mut(room);
            if invited.as_ref().is_some_and(|ids| ids.contains(&id)) {
                entry.state.invite(id, |_| true);
            }
            let members = entry.members.len() + remote.members;
            if let Err(refusal) = entry.state.admit(id, who, key, members) {
                if fresh {
                    tables.rooms.remove(room);
                }
                return Err(refusal);
            }
            if let Some(ids) = invited {
                ids.remove(&id);
            }
        }
        Ok(tables.join(room, id, remote.members > 0 || remote.registered))
    }

    /// May `id` send a message to `room` (`+n`, `+m`, bans)? One lock per room
    /// message, on the sender's shard; under the same lock, the account the sender is
    /// logged in to (IRC `account-tag`), and the sender's last-spoke time is stamped
    /// (`WHOIS` idle). `None`: it may not.
    pub fn may_speak(
        &self,
        room: &RoomName,
        id: ConnId,
        who: &Identity<'_>,
    ) -> Option<Option<Nick>> {
        let now = profile_time(unix_now()); // read the clock outside the lock
        let mut tables = self.lock();
        let entry = tables.rooms.get(room)?;
        let member = entry.members.contains(&id);
        if !entry.state.may_speak(id, member, who) {
            return None;
        }
        let profile = tables.profiles.get_mut(&id);
        Some(profile.and_then(|p| {
            p.spoke_at = now;
            p.account.clone()
        }))
    }

    /// `id` sent a private message now (its `WHOIS` idle time starts again).
    pub fn spoke(&self, id: ConnId) {
        let now = profile_time(unix_now());
        if let Some(profile) = self.lock().profiles.get_mut(&id) {
            profile.spoke_at = now;
        }
    }

    /// The account and real name of `id` (an IRC `extended-join`).
    pub fn account_and_realname(&self, id: ConnId) -> (Option<Nick>, Option<Arc<str>>) {
        let tables = self.lock();
        let profile = tables.profiles.get(&id);
        let account = profile.and_then(|p| p.account.clone());
        (account, profile.map(|p| Arc::clone(&p.realname)))
    }

    /// May `id` see (`set` false) or set the topic of `room`? 403 if there is no such
    /// room; 442 to set it without being a member, or to see a secret room's from
    /// outside; 482 to set it under `+t` without being an operator.
    pub fn topic_access(
        &self,
        room: &RoomName,
        id: ConnId,
        set: bool,
    ) -> Result<(), ProtocolError> {
        let tables = self.lock();
        let entry = tables.room(room)?;
        let member = entry.members.contains(&id) && !entry.state.is_kicked(id);
        if !member && (set || entry.state.has(Flag::Secret)) {
            return Err(ProtocolError::NotInRoom(room.clone()));
        }
        let operator = entry.state.role(id) == Role::Operator;
        if set && entry.state.has(Flag::TopicLock) && !operator {
            return Err(ProtocolError::NotOperator(room.clone()));
        }
        Ok(())
    }

    /// Applies mode changes to `room` on behalf of `by` (who must be an operator),
    /// resolving the nicks of `o`/`v` changes under the same lock; a nick held on
    /// another node of a cluster is found in `remote` (its node applies the change to
    /// its member when the room event reaches it).
    pub fn change_modes(
        &self,
        room: &RoomName,
        by: ConnId,
        changes: &[ModeChange],
        remote: &[RemoteSeat],
    ) -> Result<ModeOutcome, ProtocolError> {
        let mut tables = self.lock();
        let by_nick = tables.names.nick(&by).cloned();
        let tables = &mut *tables;
        let entry = tables
            .rooms
            .get_mut(room)
            .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))?;
        if entry.state.role(by) != Role::Operator {
            return Err(ProtocolError::NotOperator(room.clone()));
        }
        let by_nick = by_nick.map_or_else(|| "*".into(), |n| n.to_string());
        let now = unix_now();
        let mut outcome = ModeOutcome::default();
        for change in changes {
            let mut change = change.clone();
            let names = &tables.names;
            let target = match resolve_target(names, remote, entry, room, &change) {
                Ok(target) => target,
                Err(error) => {
                    outcome.refused.push(error);
                    continue;
                }
            };
            let id = match target {
                Target::None => None,
                Target::Here(id, spelled) => {
                    change.kind = with_nick(&change.kind, &spelled);
                    Some(id)
                }
                Target::Elsewhere(seat) => {
                    change.kind = with_nick(&change.kind, &seat.nick);
                    let now_set = match change.kind {
                        ModeKind::Op(_) => seat.op,
                        _ => seat.voiced,
                    };
                    if now_set != change.set {
                        outcome.applied.push(change);
                    }
                    continue;
                }
            };
            match entry.state.apply(&change, id, &by_nick, now) {
                Ok(true) => outcome.applied.push(change),
                Ok(false) => {}
                Err(_) => outcome
                    .refused
                    .push(ProtocolError::BanListFull(room.clone())),
            }
        }
        Ok(outcome)
    }

    /// The modes of `room` (the key shown only to members) and its creation time.
    pub fn modes(&self, room: &RoomName, asker: ConnId) -> Option<(String, u64)> {
        let tables = self.lock();
        let entry = tables.rooms.get(room)?;
        let modes = entry.state.modes_string(entry.members.contains(&asker));
        Some((modes, entry.state.created))
    }

    /// The ban list of `room`.
    pub fn bans(&self, room: &RoomName) -> Option<Vec<BanInfo>> {
        self.lock().rooms.get(room).map(|e| e.state.bans().to_vec())
    }

    /// Checks and records a kick of `nick` from `room` by `by`. The kicked member
    /// stays in the room (so it is told) until its own shard carries the kick out
    /// ([`Self::take_kicked`]). Returns the kicked nick as spelled.
    pub fn kick(&self, room: &RoomName, by: ConnId, nick: &str) -> Result<Nick, ProtocolError> {
        let mut tables = self.lock();
        let target = tables.lookup_key(nick);
        let spelled = target.and_then(|id| tables.names.nick(&id).cloned());
        let entry = tables.room_mut(room)?;
        if !entry.members.contains(&by) {
            return Err(ProtocolError::NotInRoom(room.clone()));
        }
        if entry.state.role(by) != Role::Operator {
            return Err(ProtocolError::NotOperator(room.clone()));
        }
        let (Some(target), Some(spelled)) = (target, spelled) else {
            return Err(ProtocolError::NoSuchNick(nick.into()));
        };
        if !entry.members.contains(&target) || entry.state.is_kicked(target) {
            let (nick, room) = (spelled, room.clone());
            return Err(ProtocolError::NotOnRoom { nick, room });
        }
        entry.state.kick(target);
        Ok(spelled)
    }

    /// Which of `ids` (members of `room` on the calling shard) have a kick waiting to
    /// be carried out.
    pub fn take_kicked(&self, room: &RoomName, ids: &[ConnId]) -> Vec<ConnId> {
        let tables = self.lock();
        let Some(entry) = tables.rooms.get(room) else {
            return Vec::new();
        };
        ids.iter()
            .copied()
            .filter(|&id| entry.state.is_kicked(id))
            .collect()
    }

    /// Checks and records an invitation of `nick` to `room` by `by`; returns the
    /// target and its nick as spelled.
    pub fn invite(
        &self,
        room: &RoomName,
        by: ConnId,
        nick: &str,
    ) -> Result<(ConnId, Nick), ProtocolError> {
        let mut tables = self.lock();
        let target = tables.lookup_key(nick);
        let spelled = target.and_then(|id| tables.names.nick(&id).cloned());
        let tables = &mut *tables;
        let entry = tables
            .rooms
            .get_mut(room)
            .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))?;
        if !entry.members.contains(&by) {
            return Err(ProtocolError::NotInRoom(room.clone()));
        }
        let operator = entry.state.role(by) == Role::Operator;
        if entry.state.has(Flag::InviteOnly) && !operator {
            return Err(ProtocolError::NotOperator(room.clone()));
        }
        let (Some(target), Some(spelled)) = (target, spelled) else {
            return Err(ProtocolError::NoSuchNick(nick.into()));
        };
        if entry.members.contains(&target) {
            let (nick, room) = (spelled, room.clone());
            return Err(ProtocolError::AlreadyOnRoom { nick, room });
        }
        let alive = &tables.names;
        entry.state.invite(target, |id| alive.has(&id));
        Ok((target, spelled))
    }

    /// The rooms `id` has a pending invitation to (scans every room: `INVITE` without
    /// parameters is rare).
    pub fn invites_of(&self, id: ConnId) -> Vec<RoomName> {
        let tables = self.lock();
        let here = tables
            .rooms
            .iter()
            .filter(|(_, entry)| entry.state.is_invited(id))
            .map(|(room, _)| room);
        let elsewhere = tables
            .invited_elsewhere
            .iter()
            .filter(|(_, ids)| ids.contains(&id))
            .map(|(room, _)| room);
        let mut rooms: Vec<RoomName> = here.chain(elsewhere).cloned().collect();
        rooms.sort();
        rooms.dedup();
        rooms
    }

    /// Up to `page` members of `room` with their roles, sorted by nick, how many more
    /// there are, and whether the room is secret. A secret room looks empty to
    /// non-members. `None` if the room has no members.
    pub fn members(
        &self,
        room: &RoomName,
        asker: ConnId,
        page: usize,
    ) -> Option<(Vec<Member>, usize, bool)> {
        let tables = self.lock();
        let entry = tables.rooms.get(room)?;
        let secret = entry.state.has(Flag::Secret);
        if secret && !entry.members.contains(&asker) {
            return Some((Vec::new(), 0, true));
        }
        let mut members: Vec<Member> = entry
            .members
            .iter()
            .filter_map(|&id| tables.member(entry, id))
            .collect();
        drop(tables);
        members.sort_by_cached_key(|m| m.nick.as_str().to_ascii_lowercase());
        let more = members.len().saturating_sub(page);
        members.truncate(page);
        Some((members, more, secret))
    }

    /// Every local member of `rooms`, once each (the backplane's link notices).
    pub fn member_ids(&self, rooms: &[RoomName]) -> Vec<ConnId> {
        let tables = self.lock();
        let mut ids: Vec<ConnId> = (rooms.iter())
            .filter_map(|room| tables.rooms.get(room))
            .flat_map(|entry| entry.members.iter().copied())
            .collect();
        drop(tables);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// True if `room` has members here.
    pub fn has_room(&self, room: &RoomName) -> bool {
        self.lock().rooms.contains_key(room)
    }

    /// Every room `asker` may see (secret rooms only to their members), sorted, and
    /// the names of those it may not (so that their members on other nodes are not
    /// listed either), under one lock.
    pub fn visible_rooms(&self, asker: ConnId) -> (Vec<RoomInfo>, HashSet<RoomName>) {
        let visible = |e: &RoomEntry| !e.state.has(Flag::Secret) || e.members.contains(&asker);
        let tables = self.lock();
        let hidden = (tables.rooms.iter())
            .filter(|(_, entry)| !visible(entry))
            .map(|(room, _)| room.clone())
            .collect();
        (room_list(&tables, visible), hidden)
    }

    /// What `WHOIS nick` shows `asker` (secret rooms only if `asker` is in them too).
    /// Scans the rooms for the target's memberships: `WHOIS` is rare.
    pub fn whois(&self, nick: &str, asker: ConnId) -> Option<WhoisInfo> {
        let tables = self.lock();
        let id = tables.lookup_key(nick)?;
        let nick = tables.names.nick(&id)?.clone();
        let profile = tables.profiles.get(&id)?;
        let secret = Flag::Secret;
        let mut rooms: Vec<_> = tables
            .rooms
            .iter()
            .filter(|(_, e)| e.members.contains(&id))
            .filter(|(_, e)| !e.state.has(secret) || e.members.contains(&asker))
            .map(|(room, e)| (room.clone(), e.state.role(id)))
            .collect();
        rooms.sort();
        let now = unix_now();
        let spoke = u64::from(profile.spoke_at.max(profile.signon));
        Some(WhoisInfo {
            nick,
            realname: Arc::clone(&profile.realname),
            away: tables.away.get(&id).cloned(),
            rooms,
            idle_secs: now.saturating_sub(spoke),
            signon: u64::from(profile.signon),
            irc: profile.irc,
            account: profile.account.clone(),
            node: None,
        })
    }

    /// `WHO nick-or-mask` for `asker`: an exact nick finds that user; a mask finds the
    /// users who share a room with `asker` (everyone is `+i`), and `asker`, whose nick
    /// or real name matches. At most `page` rows.
    pub fn who_mask(&self, mask: &str, asker: ConnId, page: usize) -> Vec<WhoRow> {
        let tables = self.lock();
        let exact = tables.lookup_key(mask);
        let mut seen: HashSet<ConnId> = HashSet::new();
        let mut rows = Vec::new();
        let candidates: Vec<ConnId> = match exact {
            Some(id) => vec![id],
            None => std::iter::once(asker)
                .chain(
                    tables
                        .rooms
                        .values()
                        .filter(|e| e.members.contains(&asker))
                        .flat_map(|e| e.members.iter().copied()),
                )
                .collect(),
        };
        for id in candidates {
            if rows.len() == page || !seen.insert(id) {
                continue;
            }
            let Some(member) = tables.person(id) else {
                continue;
            };
            let wanted = exact.is_some()
                || glob_matches(mask, member.nick.as_str())
                || glob_matches(mask, &member.realname);
            if wanted {
                let userhost = tables.profiles.get(&id).map(|p| p.userhost.clone());
                rows.push(WhoRow {
                    room: None,
                    member,
                    userhost,
                });
            }
        }
        rows
    }
}

/// Whom an `o`/`v` change is about.
enum Target<'r> {
    /// Nobody: another kind of change.
    None,
    /// A member here, with its nick as spelled.
    Here(ConnId, Nick),
    /// A member on another node of the cluster.
    Elsewhere(&'r RemoteSeat),
}

/// For an `o`/`v` change, the target member; [`Target::None`] for other changes.
/// Errors if nobody has the nick here or elsewhere (401) or they are not in the room
/// (441).
fn resolve_target<'r>(
    names: &NickTable,
    remote: &'r [RemoteSeat],
    entry: &RoomEntry,
    room: &RoomName,
    change: &ModeChange,
) -> Result<Target<'r>, ProtocolError> {
    let (ModeKind::Op(nick) | ModeKind::Voice(nick)) = &change.kind else {
        return Ok(Target::None);
    };
    let no_such = || ProtocolError::NoSuchNick(nick.clone());
    let key = Nick::parse(nick).map_err(|_| no_such())?.key();
    let not_on = |nick: &Nick| ProtocolError::NotOnRoom {
        nick: nick.clone(),
        room: room.clone(),
    };
    let Some(id) = names.owner(nick) else {
        let seat = remote
            .iter()
            .find(|s| s.nick.key() == key)
            .ok_or_else(no_such)?;
        return if seat.in_room {
            Ok(Target::Elsewhere(seat))
        } else {
            Err(not_on(&seat.nick))
        };
    };
    let spelled = names.nick(&id).cloned().ok_or_else(no_such)?;
    if !entry.members.contains(&id) || entry.state.is_kicked(id) {
        return Err(not_on(&spelled));
    }
    Ok(Target::Here(id, spelled))
}

/// The same `o`/`v` change naming the nick as its owner spells it.
fn with_nick(kind: &ModeKind, nick: &Nick) -> ModeKind {
    match kind {
        ModeKind::Op(_) => ModeKind::Op(nick.as_str().into()),
        ModeKind::Voice(_) => ModeKind::Voice(nick.as_str().into()),
        other => other.clone(),
    }
}

/// Moderation decided on other nodes of a cluster, applied to this node's copy of a
/// room's state (roles only for this node's members: each node keeps the roles of
/// its own connections).
impl Directory {
    /// A kick decided elsewhere: marks `nick`'s connection if it is here and in
    /// `room`, so the shards carry it out once the `KICK` is delivered here.
    pub fn kick_from_elsewhere(&self, room: &RoomName, nick: &Nick) {
        let mut tables = self.lock();
        let Some(id) = tables.names.owner(nick.as_str()) else {
            return;
        };
        if let Some(entry) = tables
            .rooms
            .get_mut(room)
            .filter(|e| e.members.contains(&id))
        {
            entry.state.kick(id);
        }
    }

    /// The state of `room` as another node needs it to admit the room's first member
    /// there (None if the room has no members here).
    pub fn room_snapshot(&self, room: &RoomName) -> Option<RoomSnapshot> {
        self.lock().rooms.get(room).map(|entry| RoomSnapshot {
            created: entry.state.created,
            changes: entry.state.changes(),
            bans: entry.state.bans().to_vec(),
            topic: entry.topic.clone(),
        })
    }

    /// An invitation from another node for the user holding `nick`, if it is here:
    /// recorded in the room's state, or kept until the user joins if the room has no
    /// members here. Returns the user's connection and nick as spelled.
    pub fn invite_from_elsewhere(&self, room: &RoomName, nick: &Nick) -> Option<(ConnId, Nick)> {
        let mut tables = self.lock();
        let tables = &mut *tables;
        let id = tables.names.owner(nick.as_str())?;
        let spelled = tables.names.nick(&id)?.clone();
        match tables.rooms.get_mut(room) {
            Some(entry) => {
                let alive = &tables.names;
                entry.state.invite(id, |id| alive.has(&id));
            }
            None => {
                let pending = tables.invited_elsewhere.entry(room.clone()).or_default();
                pending.insert(id);
            }
        }
        Some((id, spelled))
    }

    /// What this node tells the others about `id`, in `rooms` (its session's), as it
    /// is now: nick, protocol, real name, away message and roles. `None` once the
    /// connection is gone (its `Gone` follows).
    pub fn roster_entry(
        &self,
        id: ConnId,
        claimed_ms: u64,
        rooms: Vec<RoomName>,
    ) -> Option<RosterEntry> {
        let tables = self.lock();
        let nick = tables.names.nick(&id)?.clone();
        let profile = tables.profiles.get(&id);
        let seat = |room: RoomName| {
            let state = tables.rooms.get(&room).map(|entry| &entry.state);
            RosterRoom {
                op: state.is_some_and(|state| state.role(id) == Role::Operator),
                voiced: state.is_some_and(|state| state.is_voiced(id)),
                room,
            }
        };
        Some(RosterEntry {
            realname: profile.map_or_else(|| nick.shared_text(), |p| Arc::clone(&p.realname)),
            irc: profile.is_some_and(|p| p.irc),
            away: tables.away.get(&id).cloned(),
            nick,
            claimed_ms,
            rooms: rooms.into_iter().map(seat).collect(),
        })
    }

    /// Mode changes decided elsewhere, as they were applied there.
    pub fn modes_from_elsewhere(&self, room: &RoomName, by: &str, changes: &[ModeChange]) {
        let mut tables = self.lock();
        let targets: Vec<Option<ConnId>> = changes
            .iter()
            .map(|change| match &change.kind {
                ModeKind::Op(nick) | ModeKind::Voice(nick) => tables.names.owner(nick),
                _ => None,
            })
            .collect();
        let Some(entry) = tables.rooms.get_mut(room) else {
            return;
        };
        for (change, target) in changes.iter().zip(targets) {
            let is_role = matches!(change.kind, ModeKind::Op(_) | ModeKind::Voice(_));
            if is_role && target.is_none() {
                continue; // a member of another node: its node keeps its role
            }
            let _ = entry.state.apply(change, target, by, unix_now());
        }
    }
}

/// The rooms `show` keeps, with member counts and topics, sorted by name.
fn room_list(tables: &Tables, show: impl Fn(&RoomEntry) -> bool) -> Vec<RoomInfo> {
    let mut list: Vec<RoomInfo> = (tables.rooms.iter())
        .filter(|(_, entry)| show(entry))
        .map(|(room, entry)| RoomInfo {
            room: room.clone(),
            members: entry.members.len(),
            topic: entry.topic.clone(),
        })
        .collect();
    list.sort_by(|a, b| a.room.cmp(&b.room));
    list
}

/// The entry of `room`, made if the room has no members here yet: from the state
/// other nodes described if it exists there, else new.
fn entry_for<'t>(
    rooms: &'t mut HashMap<RoomName, RoomEntry>,
    room: &RoomName,
    remote: &RemoteRoom,
) -> &'t mut RoomEntry {
    rooms
        .entry(room.clone())
        .or_insert_with(|| match &remote.snapshot {
            Some(snapshot) if remote.members > 0 || remote.registered => RoomEntry {
                topic: snapshot.topic.clone(),
                state: RoomState::seeded(snapshot),
                ..RoomEntry::default()
            },
            _ => RoomEntry::default(),
        })
}

impl Tables {
    fn fresh_guest(&mut self, suffix: &str) -> Nick {
        loop {
            self.next_guest += 1;
            let candidate = format!("guest{}{suffix}", self.next_guest);
            let nick = Nick::parse(&candidate).expect("BUG: guest nicks are valid");
            if !self.names.is_taken(nick.as_str()) {
                return nick;
            }
        }
    }

    /// Adds `id` to `room`; the first member of a room that is new (not `elsewhere`,
    /// on another node) is its operator.
    fn join(&mut self, room: &RoomName, id: ConnId, elsewhere: bool) -> Joined {
        let entry = self.rooms.entry(room.clone()).or_default();
        if entry.born == 0 {
            self.last_born += 1;
            entry.born = self.last_born;
        }
        if entry.members.insert(id) {
            // The lobby belongs to the server: nobody becomes its operator.
            if entry.members.len() == 1 && !elsewhere && !room.is_lobby() {
                entry.state.found(id);
            }
            let shard = id.shard();
            if entry.per_shard.len() <= shard {
                entry.per_shard.resize(shard + 1, 0);
            }
            entry.per_shard[shard] += 1;
            entry.shard_mask |= 1 << shard;
        }
        let (members, topic) = (entry.members.len(), entry.topic.clone());
        let topic_by = entry.topic_by.clone();
        let held = self.rooms.get_key_value(room).map(|(name, _)| name.clone());
        Joined {
            room: held.unwrap_or_else(|| room.clone()),
            members,
            topic,
            topic_by,
            away: self.away.get(&id).cloned(),
        }
    }

    fn leave(&mut self, room: &RoomName, id: ConnId) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        if entry.members.remove(&id) {
            entry.state.forget(id);
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

    /// A line user's real name is its nick, whatever it is now (an IRC user's came
    /// with `USER`).
    fn follow_nick(&mut self, id: ConnId, nick: &Nick) {
        if let Some(profile) = self.profiles.get_mut(&id).filter(|p| !p.irc) {
            profile.realname = nick.shared_text();
        }
    }

    fn count_registered(&mut self) {
        self.registered += 1;
        self.max_registered = self.max_registered.max(self.registered);
    }

    /// Who owns `nick` (case-insensitive).
    fn lookup_key(&self, nick: &str) -> Option<ConnId> {
        self.names.owner(nick)
    }

    fn room(&self, room: &RoomName) -> Result<&RoomEntry, ProtocolError> {
        self.rooms
            .get(room)
            .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))
    }

    fn room_mut(&mut self, room: &RoomName) -> Result<&mut RoomEntry, ProtocolError> {
        self.rooms
            .get_mut(room)
            .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))
    }

    /// `id` as a member of `entry`: nick, role, away flag and real name.
    fn member(&self, entry: &RoomEntry, id: ConnId) -> Option<Member> {
        let mut member = self.person(id)?;
        member.role = entry.state.role(id);
        member.voiced = entry.state.is_voiced(id);
        Some(member)
    }

    /// `id` outside any room: nick, away flag and real name.
    fn person(&self, id: ConnId) -> Option<Member> {
        let nick = self.names.nick(&id)?.clone();
        let realname = self
            .profiles
            .get(&id)
            .map_or_else(|| nick.shared_text(), |p| Arc::clone(&p.realname));
        Some(Member {
            nick,
            role: Role::Member,
            away: self.away.contains_key(&id),
            voiced: false,
            realname,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::server::token::encode;

    fn id(shard: usize, key: usize) -> ConnId {
        ConnId::new(encode(shard, key), key as u32).unwrap()
    }

    #[test]
    fn guests_are_unique_and_nicks_case_insensitive() {
        let d = Directory::new();
        let lobby = RoomName::lobby();
        let a = d.register_guest(id(0, 1), Some(&lobby), &RemoteRoom::default());
        let b = d.register_guest(id(1, 1), Some(&lobby), &RemoteRoom::default());
        assert_ne!(a, b);
        let alice = Nick::parse("Alice").unwrap();
        d.rename(id(0, 1), &alice).unwrap();
        let err = d.rename(id(1, 1), &Nick::parse("alice").unwrap());
        assert_eq!(
            err,
            Err(ProtocolError::NickTaken(Nick::parse("alice").unwrap()))
        );
        assert_eq!(d.lookup("ALICE"), Some(id(0, 1)));
        let profile = |realname: &str, irc| Profile {
            realname: realname.into(),
            signon: 0,
            spoke_at: 0,
            registered: true,
            irc,
            account: None,
            userhost: UserHost::new("h.ip"),
        };
        d.set_profile(id(0, 1), profile("ignored", false));
        d.rename(id(0, 1), &alice).unwrap();
        let entry = d.roster_entry(id(0, 1), 1, Vec::new()).unwrap();
        assert_eq!(
            Some(&*entry.realname),
            Some("Alice"),
            "a line user's real name is its nick"
        );
        assert_eq!(d.lookup(a.as_str()), None, "old nick is freed");
        // Changing only the case of one's own nick is allowed.
        assert!(d.rename(id(0, 1), &Nick::parse("ALICE").unwrap()).is_ok());
    }

    #[test]
    fn a_room_line_and_a_private_message_stamp_when_the_sender_last_spoke() {
        let d = Directory::new();
        let lobby = RoomName::lobby();
        let (al, bo) = (id(0, 1), id(0, 2));
        for who in [al, bo] {
            d.register_guest(who, Some(&lobby), &RemoteRoom::default());
            let userhost = UserHost::new("h.ip");
            let (realname, signon, spoke_at) = (Arc::from("x"), 0, 0);
            let (registered, irc, account) = (true, false, None);
            let profile = Profile {
                realname,
                signon,
                spoke_at,
                registered,
                irc,
                account,
                userhost,
            };
            d.set_profile(who, profile);
        }
        let spoke = |who| u64::from(d.lock().profiles.get(&who).unwrap().spoke_at);
        let identity = Identity {
            nick: "al",
            user: crate::protocol::identity::User::named("al"),
            shown_host: "h.ip",
            address: std::net::IpAddr::from([10, 0, 0, 7]),
        };
        assert!(d.may_speak(&lobby, al, &identity).is_some());
        assert!(spoke(al) >= unix_now() - 1, "a room line stamps it");
        assert_eq!(spoke(bo), 0, "only the sender's");
        d.spoke(bo);
        assert!(spoke(bo) >= unix_now() - 1, "a private message stamps it");
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
            d.register_guest(id(0, k), Some(&lobby), &RemoteRoom::default());
        }
        let (nicks, more) = d.who(&lobby, 3).unwrap();
        assert_eq!((nicks.len(), more), (3, 2));
    }

    #[test]
    fn a_room_from_elsewhere_is_joined_under_its_modes_without_a_new_operator() {
        use crate::protocol::modes::parse;
        let d = Directory::new();
        let vault = RoomName::parse("vault").unwrap();
        let snapshot = RoomSnapshot {
            created: 7,
            changes: parse("+ikl-t", &["sesame", "3"]).changes,
            bans: vec![BanInfo {
                mask: "zed!*@*".into(),
                set_by: "al".into(),
                set_at: 5,
            }],
            topic: Some("gold".into()),
        };
        let remote = RemoteRoom {
            members: 2,
            snapshot: Some(snapshot),
            registered: false,
        };
        let who = |nick| Identity {
            nick,
            user: crate::protocol::identity::User::named(nick),
            shown_host: "miochat",
            address: std::net::IpAddr::from([10, 0, 0, 1]),
        };
        let (al, bo) = (id(0, 1), id(0, 2));
        d.register_guest(al, None, &RemoteRoom::default());
        d.register_guest(bo, None, &RemoteRoom::default());
        let refused = d.admit(&vault, al, &who("al"), Some("sesame"), &remote);
        assert_eq!(refused.unwrap_err(), JoinRefusal::InviteOnly);
        assert!(
            !d.has_room(&vault),
            "a refused first joiner leaves no room behind"
        );
        let nick = d.lookup_full("guest1").unwrap().1;
        assert_eq!(d.invite_from_elsewhere(&vault, &nick).unwrap().0, al);
        assert_eq!(d.invites_of(al), std::slice::from_ref(&vault));
        let refused = d.admit(&vault, al, &who("al"), Some("nope"), &remote);
        assert_eq!(refused.unwrap_err(), JoinRefusal::BadKey);
        let joined = d
            .admit(&vault, al, &who("al"), Some("sesame"), &remote)
            .unwrap();
        assert_eq!(joined.topic.as_deref(), Some("gold"));
        assert!(d.invites_of(al).is_empty(), "the invitation was used");
        let entry = d.roster_entry(al, 1, vec![vault.clone()]).unwrap();
        assert!(entry.rooms.iter().all(|seat| !seat.op && !seat.voiced));
        assert_eq!(d.modes(&vault, al).unwrap(), ("+ikln sesame 3".into(), 7));
        let bans = d.bans(&vault).unwrap();
        assert_eq!(
            (&*bans[0].set_by, bans[0].set_at),
            ("al", 5),
            "who set it, when"
        );
        // Two members elsewhere and one here fill `+l 3`.
        let nick = d.lookup_full("guest2").unwrap().1;
        d.invite_from_elsewhere(&vault, &nick);
        let full = d.admit(&vault, bo, &who("bo"), Some("sesame"), &remote);
        assert_eq!(full.unwrap_err(), JoinRefusal::Full);
    }
}
