//! Chat semantics: what each [`Command`] does, whichever protocol it came from.
//!
//! The relay decides *who* is told *what*; it never touches a socket. Every outcome is
//! an [`Event`] handed to [`Delivery`]: a reply to the sender, a room event (rendered
//! once, put in the room's one order by its home shard), or a private message to one
//! connection on any shard. Those only queue; the loop flushes at the end of its turn.
//!
//! Directory locks per command, as they really are: a room message takes none here
//! (its home shard takes one to learn which shards have members); `/join` takes one to
//! join, one more on the home shard for the join notice, and one more for IRC's member
//! list; `/quit` one for all its rooms. `ISON` and `USERHOST` look every nick up under
//! one lock. None is taken per recipient, which is what would make fan-out contend.

use std::sync::Arc;

use crate::protocol::outgoing::Outgoing;
use crate::protocol::{Command, Event, Nick, ProtocolError, RoomInfo, RoomName, SayKind};

use super::backplane::BackplaneMsg;
use super::backplane::wire::{RosterEntry, Wire};
use super::config::{MAX_ROOMS_PER_CONNECTION, WHO_PAGE};
use super::connection::CloseReason;
use super::delivery::Delivery;
use super::effects::Effects;
use super::shared::Shared;
use super::stats::bump;

/// The chat semantics of one shard.
#[derive(Debug)]
pub struct Relay {
    /// How events reach people.
    pub delivery: Delivery,
    /// Config, directory and stats.
    shared: Arc<Shared>,
    /// This shard's index (for its stats).
    index: usize,
}

impl Relay {
    /// The relay of shard `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Self {
        Relay {
            delivery: Delivery::new(index, Arc::clone(&shared)),
            shared,
            index,
        }
    }

    /// Carries out one command from connection `key`; a mistake is answered with an
    /// error line and changes nothing.
    pub fn apply(&mut self, fx: &mut Effects<'_>, key: usize, command: Command<'_>) {
        if let Err(error) = self.try_apply(fx, key, command) {
            self.delivery.reject(fx, key, error);
        }
    }

    fn try_apply(&mut self, fx: &mut Effects<'_>, key: usize, command: Command<'_>) -> Outcome {
        match command {
            Command::Say(text) => self.say(fx, key, None, text, SayKind::Message),
            Command::Me(text) => self.say(fx, key, None, text, SayKind::Action),
            Command::SayTo { room, text, kind } => self.say(fx, key, Some(room), text, kind),
            Command::Msg { to, text } => self.private(fx, key, to, text, false),
            Command::Notice { to, text } => self.private(fx, key, to, text, true),
            Command::Nick(nick) => self.rename(fx, key, nick),
            Command::Join(room) => self.join(fx, key, room),
            Command::Leave(room) => self.leave(fx, key, room),
            Command::Who(room) => self.who(fx, key, room),
            Command::Topic(text) => self.topic(fx, key, None, text),
            Command::TopicOf { room, text } => self.topic(fx, key, Some(room), text),
            Command::Quit(reason) => self.quit(fx, key, reason),
            Command::Whois(nick) => self.whois(fx, key, nick),
            Command::Away(text) => self.away(fx, key, text),
            query => self.answer(fx, key, query),
        }
    }

    /// Commands that only read: each is answered with one reply.
    fn answer(&mut self, fx: &mut Effects<'_>, key: usize, query: Command<'_>) -> Outcome {
        let directory = &self.shared.directory;
        let reply = match query {
            Command::Rooms => Event::Rooms(self.rooms()),
            Command::Ping(token) => Event::Pong(token.map(Into::into)),
            Command::Stats => Event::Stats(self.shared.report()),
            Command::Help => Event::Help,
            Command::Names(room) => Event::Names {
                nicks: self.members(&room),
                room,
            },
            Command::Ison(nicks) => {
                let found = directory.lookup_each(&nicks);
                Event::Ison(found.into_iter().map(|(_, nick, _)| nick).collect())
            }
            Command::Userhost(nicks) => {
                let found = directory.lookup_each(&nicks);
                let found = found.into_iter().map(|(_, n, away)| (n, away.is_some()));
                Event::Userhost(found.collect())
            }
            other => unreachable!("BUG: {other:?} is not a query"),
        };
        self.delivery.reply(fx, key, &reply);
        Ok(())
    }

    /// A line, action or notice to a room: the current room (`room` = `None`) or a
    /// named one the sender is in.
    fn say(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: Option<RoomName>,
        text: &str,
        kind: SayKind,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
            Some(room) if session.rooms.contains(&room) => room,
            Some(room) => return Err(ProtocolError::CannotSendTo(room)),
        };
        let (from, text) = (session.nick.clone(), text.into());
        bump(&self.shared.stats.shards[self.index].messages_in);
        let event = match kind {
            SayKind::Message => Event::Message {
                room: room.clone(),
                from,
                text,
            },
            SayKind::Action => Event::Action {
                room: room.clone(),
                from,
                text,
            },
            SayKind::Notice => Event::RoomNotice {
                room: room.clone(),
                from,
                text,
            },
        };
        self.delivery.broadcast(fx, &room, Some(key), event);
        Ok(())
    }

    /// A private message or notice, to whichever shard has the target. The sender of
    /// a message (never of a notice) to someone away is told so, as IRC's 301 does.
    fn private(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        to: &str,
        text: &str,
        notice: bool,
    ) -> Outcome {
        let Some((target, nick, away)) = self.shared.directory.lookup_full(to) else {
            return self.private_remote(fx, key, to, text, notice);
        };
        let from = fx
            .session(key)
            .map(|s| s.nick.clone())
            .ok_or(ProtocolError::NoRoom)?;
        bump(&self.shared.stats.shards[self.index].messages_in);
        let event = Event::Private {
            from,
            text: text.into(),
            notice,
        };
        self.delivery.deliver_to(fx, target, Outgoing::new(event));
        if let (Some(text), false) = (away, notice) {
            self.delivery.reply(fx, key, &Event::IsAway { nick, text });
        }
        Ok(())
    }

    /// A private message to a user of another node, through the backplane.
    fn private_remote(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        to: &str,
        text: &str,
        notice: bool,
    ) -> Outcome {
        let user = self
            .shared
            .cluster
            .owner(to)
            .ok_or_else(|| ProtocolError::NoSuchNick(to.into()))?;
        let from = fx
            .session(key)
            .map(|s| s.nick.clone())
            .ok_or(ProtocolError::NoRoom)?;
        bump(&self.shared.stats.shards[self.index].messages_in);
        let origin = self.node().to_string();
        let (to, text) = (user.nick, text.into());
        let wire = Wire::Private {
            origin,
            from,
            to,
            notice,
            text,
        };
        fx.publish(BackplaneMsg::Private {
            node: user.node,
            wire,
        });
        Ok(())
    }

    /// This node's name in the cluster.
    fn node(&self) -> &str {
        self.shared
            .config
            .backplane
            .as_ref()
            .map_or("", |b| b.node.as_str())
    }

    /// Tells the other nodes, if any, how connection `key` is now (`was`: its nick
    /// before a rename).
    pub fn tell_cluster(&self, fx: &mut Effects<'_>, key: usize, was: Option<Nick>) {
        if self.shared.backplane.is_none() {
            return;
        }
        let Some(session) = fx.session(key) else {
            return;
        };
        let (id, nick, claimed_ms) = (session.id, session.nick.clone(), session.claimed_ms);
        let entry = RosterEntry {
            nick,
            claimed_ms,
            rooms: session.rooms.clone(),
        };
        fx.publish(BackplaneMsg::User { id, entry, was });
    }

    /// Claims `nick` for connection `key`, refusing a nick held here or on another
    /// node with the same error; returns the old nick.
    pub fn claim_nick(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: &Nick,
    ) -> Result<Nick, ProtocolError> {
        let session = fx.session(key).ok_or(ProtocolError::BadNick)?;
        if self.shared.cluster.owner(nick.as_str()).is_some() {
            return Err(ProtocolError::NickTaken(nick.clone()));
        }
        let old = self.shared.directory.rename(session.id, nick)?;
        if old.key() != nick.key() {
            session.claimed_ms = super::backplane::now_ms();
        }
        session.nick = nick.clone();
        Ok(old)
    }

    /// Another node's user claimed this connection's nick first: rename it to a guest
    /// nick, tell it why, and tell its rooms.
    pub fn lose_nick(&mut self, fx: &mut Effects<'_>, key: usize) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let Some((old, nick)) = self.shared.directory.rename_to_guest(session.id) else {
            return;
        };
        session.nick = nick.clone();
        session.claimed_ms = super::backplane::now_ms();
        let rooms = session.rooms.clone();
        self.delivery
            .reject(fx, key, ProtocolError::NickTaken(old.clone()));
        self.renamed(fx, key, old, nick, rooms);
    }

    /// Tells `rooms` and the connection itself that `old` is now `nick`.
    fn renamed(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        old: Nick,
        nick: Nick,
        rooms: Vec<RoomName>,
    ) {
        if old != nick {
            for room in rooms {
                let (old, new) = (old.clone(), nick.clone());
                let event = Event::NickChanged {
                    room: room.clone(),
                    old,
                    new,
                };
                self.delivery.announce(fx, &room, Some(key), event);
            }
        }
        self.tell_cluster(fx, key, Some(old.clone()));
        self.delivery.reply(fx, key, &Event::NickIs { old, nick });
    }

    /// Who is behind `nick` (IRC WHOIS).
    fn whois(&mut self, fx: &mut Effects<'_>, key: usize, nick: &str) -> Outcome {
        let (_, nick, away) = self
            .shared
            .directory
            .lookup_full(nick)
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        self.delivery.reply(fx, key, &Event::Whois { nick, away });
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) the away message.
    fn away(&mut self, fx: &mut Effects<'_>, key: usize, text: Option<&str>) -> Outcome {
        if let Some(session) = fx.session(key) {
            self.shared.directory.set_away(session.id, text);
        }
        self.delivery.reply(fx, key, &Event::Away(text.is_some()));
        Ok(())
    }

    /// Every member's nick on every node, sorted (IRC NAMES, `/who`).
    fn members(&self, room: &RoomName) -> Vec<Nick> {
        let mut nicks = self
            .shared
            .directory
            .who(room, usize::MAX)
            .map(|(nicks, _)| nicks)
            .unwrap_or_default();
        nicks.extend(self.shared.cluster.members(room));
        nicks.sort_by_cached_key(|n| n.as_str().to_ascii_lowercase());
        nicks
    }

    /// Every room with its member count on every node, sorted by name.
    fn rooms(&self) -> Vec<RoomInfo> {
        let mut rooms = self.shared.directory.rooms();
        for (room, remote) in self.shared.cluster.room_sizes() {
            match rooms.iter_mut().find(|info| info.room == room) {
                Some(info) => info.members += remote,
                None => rooms.push(RoomInfo {
                    room,
                    members: remote,
                    topic: None,
                }),
            }
        }
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }

    /// `/nick`: claim the new nick, then tell every room the connection is in.
    fn rename(&mut self, fx: &mut Effects<'_>, key: usize, nick: Nick) -> Outcome {
        let old = self.claim_nick(fx, key, &nick)?;
        let Some(session) = fx.session(key) else {
            return Ok(());
        };
        log::info!("{} {old} is now {nick}", session.peer);
        let rooms = session.rooms.clone();
        self.renamed(fx, key, old, nick, rooms);
        Ok(())
    }

    /// `/join`: join if needed, make current, tell the room.
    fn join(&mut self, fx: &mut Effects<'_>, key: usize, room: RoomName) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let already = session.rooms.contains(&room);
        if !already && session.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return Err(ProtocolError::TooManyRooms {
                max: MAX_ROOMS_PER_CONNECTION,
            });
        }
        session.current = Some(room.clone());
        let (id, nick, wants_names) = (session.id, session.nick.clone(), session.irc.is_some());
        if !already {
            session.rooms.push(room.clone());
            self.delivery.enter(&room, key);
        }
        let info = self.shared.directory.join(&room, id);
        let members = info.members + self.shared.cluster.member_count(&room);
        if !already {
            self.tell_cluster(fx, key, None);
            let event = Event::Joined {
                room: room.clone(),
                nick,
            };
            self.delivery.announce(fx, &room, Some(key), event);
        }
        let nicks = if wants_names {
            self.members(&room)
        } else {
            Vec::new()
        };
        let reply = Event::YouJoined {
            room,
            members,
            topic: info.topic,
            nicks,
        };
        self.delivery.reply(fx, key, &reply);
        Ok(())
    }

    /// `/leave [ROOM]`: the current room by default.
    fn leave(&mut self, fx: &mut Effects<'_>, key: usize, room: Option<RoomName>) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            Some(room) => room,
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
        };
        let Some(pos) = session.rooms.iter().position(|r| *r == room) else {
            return Err(ProtocolError::NotInRoom(room));
        };
        session.rooms.remove(pos);
        if session.current.as_ref() == Some(&room) {
            session.current = session.rooms.last().cloned();
        }
        let (id, nick) = (session.id, session.nick.clone());
        self.delivery.exit(&room, key);
        // Announce before leaving the directory, so the room's size still counts us.
        let event = Event::Left {
            room: room.clone(),
            nick,
        };
        self.delivery.announce(fx, &room, Some(key), event);
        self.shared.directory.leave(&room, id);
        self.tell_cluster(fx, key, None);
        self.delivery.reply(fx, key, &Event::YouLeft { room });
        Ok(())
    }

    /// `/who [ROOM]`: any room may be listed, joined or not (as IRC's WHO).
    fn who(&mut self, fx: &mut Effects<'_>, key: usize, room: Option<RoomName>) -> Outcome {
        let room = match room {
            Some(room) => room,
            None => current_room(fx, key)?,
        };
        let mut nicks = self.members(&room);
        if nicks.is_empty() {
            return Err(ProtocolError::NoSuchRoom(room));
        }
        let more = nicks.len().saturating_sub(WHO_PAGE);
        nicks.truncate(WHO_PAGE);
        self.delivery
            .reply(fx, key, &Event::Who { room, nicks, more });
        Ok(())
    }

    /// `/topic [TEXT]` (the current room) or IRC `TOPIC #room [TEXT]` (a room the
    /// sender is in): show it, or set it and tell the room, the setter included.
    fn topic(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: Option<RoomName>,
        text: Option<&str>,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
            Some(room) if session.rooms.contains(&room) => room,
            Some(room) => return Err(ProtocolError::NotInRoom(room)),
        };
        let nick = session.nick.clone();
        let Some(topic) = text else {
            let topic = self.shared.directory.topic(&room);
            self.delivery.reply(fx, key, &Event::Topic { room, topic });
            return Ok(());
        };
        self.shared.directory.set_topic(&room, topic);
        let event = Event::TopicChanged {
            room: room.clone(),
            nick,
            topic: topic.into(),
        };
        self.delivery.broadcast(fx, &room, None, event);
        Ok(())
    }

    /// `/quit`: tell the rooms now (with the client's reason), say goodbye, then
    /// close once `OK bye` is flushed.
    fn quit(&mut self, fx: &mut Effects<'_>, key: usize, reason: Option<&str>) -> Outcome {
        if let Some(session) = fx.session(key) {
            let rooms = std::mem::take(&mut session.rooms);
            session.current = None;
            let (id, nick) = (session.id, session.nick.clone());
            let who = Departure {
                key,
                id,
                nick: &nick,
                rooms: &rooms,
            };
            self.depart(fx, who, Some(reason.unwrap_or("quit")));
        }
        self.delivery
            .farewell(fx, key, &Event::Bye, CloseReason::Quit);
        Ok(())
    }

    /// Takes a connection out of its rooms (this shard's tables and the directory, in
    /// one lock) and, given a `reason`, announces `quit nick reason` to each room
    /// (during shutdown there is none: everyone is leaving). Used by `/quit` and when
    /// the loop reaps a closed connection.
    pub fn depart(&mut self, fx: &mut Effects<'_>, who: Departure<'_>, reason: Option<&str>) {
        for room in who.rooms {
            self.delivery.exit(room, who.key);
        }
        self.shared.directory.leave_all(who.id, who.rooms);
        let Some(reason) = reason else {
            return;
        };
        let reason: Box<str> = reason.into();
        for room in who.rooms {
            let (nick, reason) = (who.nick.clone(), reason.clone());
            let event = Event::Quit {
                room: room.clone(),
                nick,
                reason,
            };
            self.delivery.announce(fx, room, None, event);
        }
    }
}

/// What a command returns: done, or a mistake to answer.
type Outcome = Result<(), ProtocolError>;

/// A connection leaving all its rooms at once.
#[derive(Debug)]
pub struct Departure<'a> {
    /// Its slab key on this shard.
    pub key: usize,
    /// Its identity in the directory.
    pub id: super::token::ConnId,
    /// Its nick, for the quit notices.
    pub nick: &'a Nick,
    /// The rooms it was in.
    pub rooms: &'a [RoomName],
}

/// The sender's current room.
fn current_room(fx: &mut Effects<'_>, key: usize) -> Result<RoomName, ProtocolError> {
    fx.session(key)
        .and_then(|s| s.current.clone())
        .ok_or(ProtocolError::NoRoom)
}
