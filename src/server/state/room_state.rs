//! One room's moderation state: its modes, its operators and voiced members, its
//! bans and pending invitations. Plain data and the rules that change it; no locks,
//! no sockets, no messages.
//!
//! The state lives in the directory's entry for the room (so both protocols and
//! every shard see one state; see `directory.rs`) and is only touched under the
//! directory's lock, by the short methods here. What to *tell* people about a change
//! is decided elsewhere (`moderation.rs`); this file only answers "is it allowed?" and
//! "did it change anything?". A change that changes nothing (`+t` on a `+t` room,
//! `+o` for an operator) reports `false`, so nobody is told about it.
//!
//! The rules, as ngIRCd and InspIRCd users expect them:
//! - a new room is `+nt` and its first member is its operator;
//! - joining checks, in order: a ban, `+i`, `+k`, then `+l` (lowering the limit
//!   never removes anyone); an invitation lifts the ban and `+i` for one join, as
//!   in ngIRCd and InspIRCd (an operator who invites a banned user means it);
//! - speaking needs membership under `+n`, voice or operator status under `+m`, and a
//!   banned member may not speak unless voiced or an operator;
//! - a member who leaves (or is kicked) loses its roles.

use std::collections::{BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::mask::Identity;
use crate::protocol::modes::{Flag, ModeChange, ModeKind};
use crate::protocol::{BanInfo, Nick, ProtocolError, Role, RoomName};

use crate::server::token::ConnId;

/// Most bans a room keeps.
pub use crate::protocol::irc::MAX_BANS;

/// Pending invitations kept per room before the ones of closed connections are
/// dropped.
const INVITES_BEFORE_PRUNING: usize = 64;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The moderation state of one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// When the room was created (Unix seconds).
    pub created: u64,
    flags: BTreeSet<Flag>,
    key: Option<Box<str>>,
    limit: Option<u32>,
    bans: Vec<BanInfo>,
    ops: HashSet<ConnId>,
    voiced: HashSet<ConnId>,
    invited: HashSet<ConnId>,
    /// Kicked members whose own shard has not yet taken them out of the room: they
    /// are still counted for delivery (so they see their KICK) but may not speak.
    kicked: HashSet<ConnId>,
}

impl Default for RoomState {
    /// A new room: `+nt`, created now, nobody in any role.
    fn default() -> Self {
        RoomState {
            created: unix_now(),
            flags: BTreeSet::from([Flag::NoExternal, Flag::TopicLock]),
            key: None,
            limit: None,
            bans: Vec::new(),
            ops: HashSet::new(),
            voiced: HashSet::new(),
            invited: HashSet::new(),
            kicked: HashSet::new(),
        }
    }
}

/// A room's state as another node of a cluster needs it to admit the room's first
/// member there: its creation time, its modes as changes (every flag set or unset,
/// key, limit; roles are not in it, each node tells its own members' roles in its
/// roster), its bans with who set them and when, and its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    /// When the room was created (Unix seconds).
    pub created: u64,
    /// The changes that make a new room's flags, key and limit equal to this one's.
    pub changes: Vec<ModeChange>,
    /// The bans, oldest first.
    pub bans: Vec<BanInfo>,
    /// The topic, if set.
    pub topic: Option<Box<str>>,
}

impl RoomSnapshot {
    /// True if the room is secret (`+s`).
    pub fn is_secret(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.set && c.kind == ModeKind::Flag(Flag::Secret))
    }
}

/// What is known of a room from outside this node's directory when one of its users
/// joins it: how many members it has on other nodes of a cluster and, if the room
/// exists there, its state (`None` while no snapshot has arrived yet); or, for a
/// registered room, its state as stored. Either way its first member here is
/// admitted against that state and not made its operator.
#[derive(Debug, Clone, Default)]
pub struct RemoteRoom {
    /// Members on other nodes.
    pub members: usize,
    /// The room's state there (or as stored, for a registered room).
    pub snapshot: Option<RoomSnapshot>,
    /// The room is registered: `snapshot` is its stored state.
    pub registered: bool,
}

/// A user of another node of a cluster, as an `o`/`v` mode change naming it needs
/// it: whether it is in the room, and its roles there (its own node keeps them and
/// applies the change when the room event reaches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSeat {
    /// The nick as spelled.
    pub nick: Nick,
    /// In the room.
    pub in_room: bool,
    /// Its operator.
    pub op: bool,
    /// Voiced there.
    pub voiced: bool,
}

/// A ban was refused: the room already has [`MAX_BANS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanListFull;

/// Why a join was refused, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// A ban matches (474).
    Banned,
    /// `+i` and no invitation (473).
    InviteOnly,
    /// `+k` and no or the wrong key (475).
    BadKey,
    /// `+l` reached (471).
    Full,
}

impl JoinRefusal {
    /// The protocol error for `room`.
    pub fn error(self, room: RoomName) -> ProtocolError {
        match self {
            JoinRefusal::Banned => ProtocolError::Banned(room),
            JoinRefusal::InviteOnly => ProtocolError::InviteOnly(room),
            JoinRefusal::BadKey => ProtocolError::BadKey(room),
            JoinRefusal::Full => ProtocolError::RoomFull(room),
        }
    }
}

impl RoomState {
    /// The state another node described: what a new room would be, with the
    /// snapshot's changes applied.
    pub fn seeded(snapshot: &RoomSnapshot) -> RoomState {
        let mut state = RoomState {
            created: snapshot.created,
            ..RoomState::default()
        };
        for change in &snapshot.changes {
            let _ = state.apply(change, None, "", snapshot.created);
        }
        state.bans = snapshot.bans.iter().take(MAX_BANS).cloned().collect();
        state
    }

    /// An access grant: operator status (`op`) or voice; false if already held.
    pub fn grant(&mut self, id: ConnId, op: bool) -> bool {
        match op {
            true => self.ops.insert(id),
            false => self.voiced.insert(id),
        }
    }

    /// The first member of a new room becomes its operator.
    pub fn found(&mut self, id: ConnId) {
        self.ops.insert(id);
    }

    /// A member left (or its kick was carried out): it loses its roles.
    pub fn forget(&mut self, id: ConnId) {
        self.ops.remove(&id);
        self.voiced.remove(&id);
        self.kicked.remove(&id);
    }

    /// The member's role (operator wins over voice).
    pub fn role(&self, id: ConnId) -> Role {
        if self.ops.contains(&id) {
            Role::Operator
        } else if self.voiced.contains(&id) {
            Role::Voiced
        } else {
            Role::Member
        }
    }

    /// True if `id` is voiced (an operator may be too).
    pub fn is_voiced(&self, id: ConnId) -> bool {
        self.voiced.contains(&id)
    }

    /// True if the flag is set.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// The bans, oldest first.
    pub fn bans(&self) -> &[BanInfo] {
        &self.bans
    }

    /// True if `who` matches a ban.
    pub fn is_banned(&self, who: &Identity<'_>) -> bool {
        self.bans.iter().any(|ban| who.matches(&ban.mask))
    }

    /// May `id` join, with `members` in the room now? Uses up its invitation.
    pub fn admit(
        &mut self,
        id: ConnId,
        who: &Identity<'_>,
        key: Option<&str>,
        members: usize,
    ) -> Result<(), JoinRefusal> {
        let invited = self.invited.contains(&id);
        if self.is_banned(who) && !invited {
            return Err(JoinRefusal::Banned);
        }
        if self.has(Flag::InviteOnly) && !invited {
            return Err(JoinRefusal::InviteOnly);
        }
        if self.key.is_some() && self.key.as_deref() != key {
            return Err(JoinRefusal::BadKey);
        }
        if self.limit.is_some_and(|limit| members >= limit as usize) {
            return Err(JoinRefusal::Full);
        }
        self.invited.remove(&id);
        Ok(())
    }

    /// May `id` (a member or not) send a message to the room?
    pub fn may_speak(&self, id: ConnId, member: bool, who: &Identity<'_>) -> bool {
        let member = member && !self.kicked.contains(&id);
        let role = if member { self.role(id) } else { Role::Member };
        if !member && self.has(Flag::NoExternal) {
            return false;
        }
        if role == Role::Member && self.has(Flag::Moderated) {
            return false;
        }
        role != Role::Member || !self.is_banned(who)
    }

    /// Records an invitation of `id`; `alive` says which connections still exist, so
    /// that invitations of closed connections do not pile up.
    pub fn invite(&mut self, id: ConnId, alive: impl Fn(ConnId) -> bool) {
        if self.invited.len() >= INVITES_BEFORE_PRUNING {
            self.invited.retain(|&invited| alive(invited));
        }
        self.invited.insert(id);
    }

    /// True if `id` has a pending invitation.
    pub fn is_invited(&self, id: ConnId) -> bool {
        self.invited.contains(&id)
    }

    /// Marks a member as kicked: roles gone, silent until its shard removes it.
    pub fn kick(&mut self, id: ConnId) {
        self.ops.remove(&id);
        self.voiced.remove(&id);
        self.kicked.insert(id);
    }

    /// True while a kick of `id` waits to be carried out.
    pub fn is_kicked(&self, id: ConnId) -> bool {
        self.kicked.contains(&id)
    }

    /// Applies one change (`target` is the member an `o`/`v` change is about, already
    /// checked to be in the room). `Ok(true)` if something changed.
    pub fn apply(
        &mut self,
        change: &ModeChange,
        target: Option<ConnId>,
        by: &str,
        now: u64,
    ) -> Result<bool, BanListFull> {
        let set = change.set;
        let changed = match &change.kind {
            ModeKind::Flag(flag) if set => self.flags.insert(*flag),
            ModeKind::Flag(flag) => self.flags.remove(flag),
            ModeKind::Key(key) => replace(&mut self.key, if set { key.clone() } else { None }),
            ModeKind::Limit(limit) => replace(&mut self.limit, if set { *limit } else { None }),
            ModeKind::Ban(mask) if set => self.add_ban(mask, by, now)?,
            ModeKind::Ban(mask) => {
                let before = self.bans.len();
                self.bans.retain(|ban| !ban.mask.eq_ignore_ascii_case(mask));
                self.bans.len() != before
            }
            ModeKind::Op(_) | ModeKind::Voice(_) => {
                let Some(id) = target else {
                    return Ok(false);
                };
                let set_of = match change.kind {
                    ModeKind::Op(_) => &mut self.ops,
                    _ => &mut self.voiced,
                };
                if set {
                    set_of.insert(id)
                } else {
                    set_of.remove(&id)
                }
            }
        };
        Ok(changed)
    }

    fn add_ban(&mut self, mask: &str, by: &str, now: u64) -> Result<bool, BanListFull> {
        if self
            .bans
            .iter()
            .any(|ban| ban.mask.eq_ignore_ascii_case(mask))
        {
            return Ok(false);
        }
        if self.bans.len() >= MAX_BANS {
            return Err(BanListFull);
        }
        self.bans.push(BanInfo {
            mask: mask.into(),
            set_by: by.into(),
            set_at: now,
        });
        Ok(true)
    }

    /// The room's modes as changes that make another copy's flags, key and limit
    /// equal to this one's: every flag set or unset, the key and limit set or unset
    /// (bans go with who set them, [`Self::bans`]; roles are not included: each node
    /// keeps its own members' roles).
    pub fn changes(&self) -> Vec<ModeChange> {
        let mut changes: Vec<ModeChange> = Flag::ALL
            .into_iter()
            .map(|flag| ModeChange {
                set: self.flags.contains(&flag),
                kind: ModeKind::Flag(flag),
            })
            .collect();
        changes.push(ModeChange {
            set: self.key.is_some(),
            kind: ModeKind::Key(self.key.clone()),
        });
        changes.push(ModeChange {
            set: self.limit.is_some(),
            kind: ModeKind::Limit(self.limit),
        });
        changes
    }

    /// The modes as `RPL_CHANNELMODEIS` shows them: `+iklmnst KEY LIMIT`, letters in
    /// alphabetical order. The key is shown to members only (others see `*`).
    pub fn modes_string(&self, show_key: bool) -> String {
        let mut letters: Vec<char> = self.flags.iter().map(|flag| flag.letter()).collect();
        let mut params = String::new();
        if let Some(key) = &self.key {
            letters.push('k');
            params.push(' ');
            params.push_str(if show_key { key } else { "*" });
        }
        if let Some(limit) = self.limit {
            letters.push('l');
            params.push_str(&format!(" {limit}"));
        }
        letters.sort_unstable();
        format!("+{}{params}", letters.into_iter().collect::<String>())
    }
}

/// Replaces `slot` with `value`; true if that changed it.
fn replace<T: PartialEq>(slot: &mut Option<T>, value: Option<T>) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::IpAddr;

    use super::*;
    use crate::protocol::modes::parse;
    use crate::server::token::encode;

    fn id(key: usize) -> ConnId {
        ConnId::new(encode(0, key), 1).unwrap()
    }

    fn who(nick: &str) -> Identity<'_> {
        Identity {
            nick,
            user: crate::protocol::identity::User::named(nick),
            shown_host: "miochat",
            address: IpAddr::from([10, 0, 0, 7]),
        }
    }

    fn apply(state: &mut RoomState, modes: &str, params: &[&str], target: Option<ConnId>) {
        for change in parse(modes, params).changes {
            state.apply(&change, target, "op", 1).unwrap();
        }
    }

    #[test]
    fn new_rooms_are_nt_and_changes_that_change_nothing_say_so() {
        let mut state = RoomState::default();
        assert_eq!(state.modes_string(true), "+nt");
        let again = parse("+t", &[]).changes;
        assert!(!state.apply(&again[0], None, "op", 1).unwrap());
        apply(&mut state, "+kl-t+m", &["sesame", "5"], None);
        assert_eq!(state.modes_string(true), "+klmn sesame 5");
        assert_eq!(state.modes_string(false), "+klmn * 5");
    }

    #[test]
    fn join_checks_in_order_and_invites_lift_invite_only_once() {
        let mut state = RoomState::default();
        apply(&mut state, "+ikl", &["key", "2"], None);
        apply(&mut state, "+b", &["bad!*@*"], None);
        assert_eq!(
            state.admit(id(1), &who("bad"), Some("key"), 0),
            Err(JoinRefusal::Banned)
        );
        assert_eq!(
            state.admit(id(1), &who("ok"), Some("key"), 0),
            Err(JoinRefusal::InviteOnly)
        );
        state.invite(id(1), |_| true);
        assert_eq!(
            state.admit(id(1), &who("ok"), Some("nope"), 0),
            Err(JoinRefusal::BadKey)
        );
        state.invite(id(2), |_| true);
        assert_eq!(
            state.admit(id(2), &who("bad"), Some("key"), 0),
            Ok(()),
            "an invitation lifts a ban too"
        );
        assert_eq!(
            state.admit(id(1), &who("ok"), Some("key"), 2),
            Err(JoinRefusal::Full)
        );
        assert_eq!(state.admit(id(1), &who("ok"), Some("key"), 1), Ok(()));
        assert_eq!(
            state.admit(id(1), &who("ok"), Some("key"), 1),
            Err(JoinRefusal::InviteOnly),
            "the invitation was used up"
        );
    }

    #[test]
    fn speaking_rules() {
        let mut state = RoomState::default();
        let (op, voiced, plain) = (id(1), id(2), id(3));
        state.found(op);
        apply(&mut state, "+v", &["v"], Some(voiced));
        assert!(state.may_speak(plain, true, &who("plain")));
        assert!(!state.may_speak(plain, false, &who("plain")), "+n");
        apply(&mut state, "-n+m", &[], None);
        assert!(!state.may_speak(plain, true, &who("plain")), "+m");
        assert!(state.may_speak(voiced, true, &who("v")));
        assert!(state.may_speak(op, true, &who("op")));
        apply(&mut state, "-m+b", &["*!*@10.0.0.*"], None);
        assert!(!state.may_speak(plain, true, &who("plain")), "banned");
        assert!(
            state.may_speak(voiced, true, &who("v")),
            "voice beats a ban"
        );
        state.kick(voiced);
        assert!(!state.may_speak(voiced, true, &who("v")), "kicked");
        state.forget(voiced);
        assert_eq!(state.role(voiced), Role::Member);
    }

    #[test]
    fn ban_list_is_bounded_and_case_insensitive() {
        let mut state = RoomState::default();
        apply(&mut state, "+b", &["Bob"], None);
        let same = parse("+b", &["bob!*@*"]).changes;
        assert!(!state.apply(&same[0], None, "op", 1).unwrap());
        for i in 1..MAX_BANS {
            apply(&mut state, "+b", &[&format!("n{i}")], None);
        }
        let one_more = parse("+b", &["extra"]).changes;
        assert!(state.apply(&one_more[0], None, "op", 1).is_err());
        apply(&mut state, "-b", &["BOB"], None);
        assert_eq!(state.bans().len(), MAX_BANS - 1);
    }
}
