//! Moderation semantics: what `/mode`, `/op`, `/kick`, `/ban`, `/invite` (and IRC's
//! `MODE`, `KICK`, `INVITE`) do, whichever protocol they came from, and who is told.
//!
//! The *rules* (may this member join, speak, change this mode) are in `room_state.rs`
//! and run under the directory's lock; the *state* is in the directory's room entry,
//! shared by both protocols and every shard. This file is the glue in between, in the
//! same shape as the relay: check and change the state with one directory call, then
//! hand events to [`Delivery`]:
//!
//! - a mode change or a kick is a **room event**: it goes through the room's home
//!   shard like a message (`Delivery::broadcast`), so every member sees it in the
//!   room's one order, the one who made it included (IRC clients expect their own
//!   `MODE` and `KICK` echoed). Line-protocol users get one `EVENT` line per change;
//! - the one who asked gets a reply (`OK changed`, `OK kicked`, `341`), or an error;
//! - an invitation goes to the invited user alone, on whatever shard it is.
//!
//! A kick is carried out by the kicked member's own shard, because only a
//! connection's shard changes its room lists: the directory marks the member kicked
//! (it stays counted, so it receives its `KICK`, but may no longer speak), and when the
//! `Kicked` event has been delivered on that shard, the relay takes the member out
//! (`Relay::carry_out_kicks`, called by the chat for events from other shards and by
//! the relay itself when this shard is the room's home).

use crate::protocol::mask::Identity;
use crate::protocol::modes::{ModeKind, ModeRequest, changes_string};
use crate::protocol::outgoing::Outgoing;
use crate::protocol::{Event, MAX_KICK_LEN, Nick, ProtocolError, RoomName};

use crate::server::backplane::handle::BackplaneMsg;
use crate::server::backplane::wire::Wire;
use crate::server::commands::Effects;
use crate::server::delivery::Delivery;
use crate::server::room_state::RemoteSeat;
use crate::server::session::Session;
use crate::server::shared::Shared;
use crate::server::store::{Job, RoomWrite, Then};

/// Hands a registered room's state, as it is now, to the store (nothing for a room
/// that is not registered), with what to send once it is committed. True if the
/// store took it.
pub fn save_room(shared: &Shared, room: &RoomName, then: Option<Then>) -> bool {
    let (Some(store), true) = (&shared.store, shared.registry.is_registered(room)) else {
        return false;
    };
    let Some(snapshot) = shared.directory.room_snapshot(room) else {
        return false;
    };
    let room = room.clone();
    let write = Box::new(RoomWrite::Update { room, snapshot });
    match store.submit(Job::Room(write, then.map(Box::new))) {
        Ok(()) => true,
        Err(_) => {
            log::warn!("store busy: a change of a registered room was not saved");
            false
        }
    }
}

/// What a moderation command returns: done, or a mistake to answer.
pub type Outcome = Result<(), ProtocolError>;

/// One moderation command being carried out for connection `key`.
#[derive(Debug)]
pub struct Moderator<'r, 'f, 'a> {
    /// How events reach people.
    pub delivery: &'r Delivery,
    /// The directory (where the state lives) and config.
    pub shared: &'r Shared,
    /// The turn's effects.
    pub fx: &'f mut Effects<'a>,
    /// The connection asking.
    pub key: usize,
}

/// Who `session` is, for ban masks: `nick!user@host` as IRC shows it, and its real
/// address.
pub fn identity(session: &Session) -> Identity<'_> {
    Identity {
        nick: session.nick.as_str(),
        user: session.userhost.user(session.nick.as_str()),
        shown_host: session.userhost.host(),
        address: session.peer().ip(),
    }
}

impl Moderator<'_, '_, '_> {
    /// The named room, or the asker's current one.
    fn room_or_current(&mut self, room: Option<RoomName>) -> Result<RoomName, ProtocolError> {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        match room {
            Some(room) => Ok(room),
            None => session.current.clone().ok_or(ProtocolError::NoRoom),
        }
    }

    /// `/mode`, `/op`, `/ban`, `/bans`, IRC `MODE #room ...`: show the modes or the
    /// ban list, or change modes (operators only) and tell the room.
    pub fn mode(mut self, room: Option<RoomName>, request: ModeRequest) -> Outcome {
        let room = self.room_or_current(room)?;
        let id = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?.id;
        let directory = &self.shared.directory;
        if request.is_query() {
            // A room with members only on other nodes: its modes as they told them.
            // Empty here: as other nodes told it, or as it is stored if registered.
            let (modes, created) = directory
                .modes(&room, id)
                .or_else(|| self.shared.cluster.modes(&room))
                .or_else(|| self.shared.registry.modes(&room))
                .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))?;
            let modes = modes.into();
            let reply = Event::Modes {
                room,
                modes,
                created,
            };
            self.delivery.reply(self.fx, self.key, &reply);
            return Ok(());
        }
        if request.list_bans {
            let bans = directory
                .bans(&room)
                .or_else(|| self.shared.cluster.bans(&room))
                .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))?;
            let reply = Event::Bans {
                room: room.clone(),
                bans,
            };
            self.delivery.reply(self.fx, self.key, &reply);
        }
        for error in request.errors.iter().cloned() {
            let error = ProtocolError::BadMode {
                room: room.clone(),
                error,
            };
            self.delivery.reject(self.fx, self.key, error);
        }
        if request.changes.is_empty() {
            return Ok(());
        }
        self.change(room, &request)
    }

    /// Applies the changes of `request` and tells the room what changed.
    fn change(self, room: RoomName, request: &ModeRequest) -> Outcome {
        let Some(session) = self.fx.session(self.key) else {
            return Ok(());
        };
        let (id, by, line) = (session.id, session.nick.clone(), session.irc.is_none());
        let remote = self.remote_seats(&room, request);
        let outcome = (self.shared.directory)
            .change_modes(&room, id, &request.changes, &remote)
            .map_err(|e| self.shared.cluster.existing(e, ProtocolError::NotOperator))?;
        // A line client gets OK unless every change was refused (then only ERRs).
        let all_refused = outcome.applied.is_empty() && !outcome.refused.is_empty();
        for error in outcome.refused {
            self.delivery.reject(self.fx, self.key, error);
        }
        let reply = (line && !all_refused).then(|| match outcome.applied.is_empty() {
            // Nothing refused, nothing changed: every change was already so.
            true => {
                Event::Done(format!("unchanged {room} {}", changes_string(&request.changes)).into())
            }
            false => Event::ModesChanged {
                room: room.clone(),
                changes: outcome.applied.clone(),
            },
        });
        let event = (!outcome.applied.is_empty()).then(|| Event::ModeChanged {
            room: room.clone(),
            by,
            changes: outcome.applied.clone(),
        });
        let bans = outcome
            .applied
            .iter()
            .any(|c| matches!(c.kind, ModeKind::Ban(_)));
        // A ban in a registered room is on disk before anyone is told of it.
        if bans && let Some(then) = self.save_first(&room, id, reply.clone(), event.clone()) {
            return then;
        }
        if event.is_some() {
            save_room(self.shared, &room, None);
        }
        if let Some(reply) = reply {
            self.delivery.reply(self.fx, self.key, &reply);
        }
        if let Some(event) = event {
            self.delivery.broadcast(self.fx, &room, None, event);
        }
        Ok(())
    }

    /// For a registered room: hands the room's new state to the store, with the reply
    /// and the room event to send once it is committed. `None` if the room is not
    /// registered, or the store is busy (then they go out now, unsaved, and the
    /// failure is counted and logged).
    fn save_first(
        &self,
        room: &RoomName,
        to: crate::server::token::ConnId,
        reply: Option<Event>,
        event: Option<Event>,
    ) -> Option<Outcome> {
        let then = Then {
            to,
            reply,
            broadcast: event.map(|event| (room.clone(), event)),
        };
        save_room(self.shared, room, Some(then)).then_some(Ok(()))
    }

    /// The users of other nodes of the cluster that `o`/`v` changes in `request`
    /// name (their nodes apply the changes when the room event reaches them).
    fn remote_seats(&self, room: &RoomName, request: &ModeRequest) -> Vec<RemoteSeat> {
        let cluster = &self.shared.cluster;
        request
            .changes
            .iter()
            .filter_map(|change| match &change.kind {
                ModeKind::Op(nick) | ModeKind::Voice(nick) => cluster.seat(room, nick),
                _ => None,
            })
            .collect()
    }

    /// `/kick NICK [REASON]`, IRC `KICK #room nick :reason`: the room (the kicked
    /// member included) is told, then the member's shard takes it out. Returns the
    /// room.
    pub fn kick(
        mut self,
        room: Option<RoomName>,
        nick: &str,
        reason: Option<&str>,
    ) -> Result<RoomName, ProtocolError> {
        let room = self.room_or_current(room)?;
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let (id, by, line) = (session.id, session.nick.clone(), session.irc.is_none());
        let kicked = match self.shared.directory.kick(&room, id, nick) {
            // The kicker may kick here (the directory checks that first), and the
            // nick is not on this node: a member on another node of the cluster is
            // kicked by its own node when the KICK reaches it.
            Err(ProtocolError::NoSuchNick(_)) => self.remote_member(&room, nick)?,
            other => {
                other.map_err(|e| self.shared.cluster.existing(e, ProtocolError::NotInRoom))?
            }
        };
        let reason: Box<str> = cut(reason.unwrap_or(by.as_str()), MAX_KICK_LEN).into();
        log::info!("{by} kicked {kicked} from {room}: {reason}");
        if line {
            let reply = Event::KickDone {
                room: room.clone(),
                nick: kicked.clone(),
            };
            self.delivery.reply(self.fx, self.key, &reply);
        }
        let event = Event::Kicked {
            room: room.clone(),
            by,
            nick: kicked,
            reason,
        };
        self.delivery.broadcast(self.fx, &room, None, event);
        Ok(room)
    }

    /// `nick` as spelled, if a user of another node of the cluster is in `room`.
    fn remote_member(&self, room: &RoomName, nick: &str) -> Result<Nick, ProtocolError> {
        let found = (self.shared.cluster).with_owner(nick, |user| {
            (user.entry.nick.clone(), user.entry.seat(room).is_some())
        });
        match found {
            Some((nick, true)) => Ok(nick),
            Some((nick, false)) => Err(ProtocolError::NotOnRoom {
                nick,
                room: room.clone(),
            }),
            None => Err(ProtocolError::NoSuchNick(nick.into())),
        }
    }

    /// `/invite NICK [ROOM]`, IRC `INVITE nick #room`: the target is told, wherever it
    /// is, and may then join once past `+i`.
    pub fn invite(mut self, nick: &str, room: Option<RoomName>) -> Outcome {
        let room = self.room_or_current(room)?;
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let (id, by) = (session.id, session.nick.clone());
        let nick = match self.shared.directory.invite(&room, id, nick) {
            Ok((target, nick)) => {
                let invited = Event::Invited {
                    room: room.clone(),
                    by: by.clone(),
                    nick: nick.clone(),
                };
                let invited = Outgoing::new(invited);
                (self.delivery).deliver_from(self.fx, self.key, target, invited);
                nick
            }
            // The inviter may invite (the directory checks that first), and the nick
            // is not on this node: a user of another node is invited through its node.
            Err(ProtocolError::NoSuchNick(_)) => self.invite_elsewhere(&room, &by, nick)?,
            Err(error) => {
                return Err(self
                    .shared
                    .cluster
                    .existing(error, ProtocolError::NotInRoom));
            }
        };
        // IRC members with `invite-notify` see who was invited (not the inviter,
        // who gets 341, nor line members).
        let notice = Event::InviteNotice {
            room: room.clone(),
            by,
            nick: nick.clone(),
        };
        self.delivery
            .broadcast(self.fx, &room, Some(self.key), notice);
        let reply = Event::Inviting { room, nick };
        self.delivery.reply(self.fx, self.key, &reply);
        Ok(())
    }

    /// Invites `nick`, a user of another node of the cluster, through its node.
    fn invite_elsewhere(
        &mut self,
        room: &RoomName,
        by: &Nick,
        nick: &str,
    ) -> Result<Nick, ProtocolError> {
        let user = self
            .shared
            .cluster
            .owner(nick)
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        let node = (self.shared.cluster.node_name(user.node))
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        if user.entry.seat(room).is_some() {
            let (nick, room) = (user.entry.nick, room.clone());
            return Err(ProtocolError::AlreadyOnRoom { nick, room });
        }
        let wire = Wire::Invite {
            origin: self.shared.node_name().to_string(),
            by: by.clone(),
            to: user.entry.nick.clone(),
            room: room.clone(),
        };
        self.fx.publish(BackplaneMsg::Private {
            node,
            wire: Box::new(wire),
            answer: None,
        });
        Ok(user.entry.nick)
    }

    /// IRC `INVITE` without parameters: the rooms the asker may join by invitation.
    pub fn invites(self) -> Outcome {
        let Some(session) = self.fx.session(self.key) else {
            return Ok(());
        };
        let rooms = self.shared.directory.invites_of(session.id);
        self.delivery
            .reply(self.fx, self.key, &Event::Invites(rooms));
        Ok(())
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::MAX_ROOMS_PER_CONNECTION;

    #[test]
    fn advertised_limits_match_the_server() {
        assert_eq!(crate::protocol::irc::MAX_ROOMS, MAX_ROOMS_PER_CONNECTION);
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("hi", 10), "hi");
    }
}
