//! Chat semantics: what each [`Command`] does, as a method of the shard that owns the
//! sender.
//!
//! The relay decides *who* is told *what*; it never touches a socket. Every outcome is
//! an [`Event`] handed to one of three shard methods:
//!
//! - `reply(key, event)`: to the sender only;
//! - `broadcast(room, except, event)` / `announce(...)`: to a room's members, rendered
//!   once, delivered locally and sent once to each other shard with members;
//! - `deliver_to(conn_id, outgoing)`: to one connection on any shard (private messages).
//!
//! Those only queue and mark connections dirty; the shard flushes at the end of its
//! turn. Directory calls (nick table, room membership) take the directory lock once
//! per command.

use crate::protocol::{Command, Event, Nick, ProtocolError, RoomName, SayKind};

use super::config::{MAX_ROOMS_PER_CONNECTION, WHO_PAGE};
use super::connection::CloseReason;
use super::inbox::Outgoing;
use super::shard::ShardState;
use super::stats::bump;
use super::token::ConnId;

impl ShardState {
    /// Carries out one command from connection `key`.
    pub(super) fn apply(&mut self, key: usize, command: Command<'_>) {
        let result = match command {
            Command::Say(text) => self.say(key, text, false),
            Command::Me(text) => self.say(key, text, true),
            Command::Msg { to, text } => self.private(key, to, text),
            Command::Nick(nick) => self.rename(key, nick),
            Command::Join(room) => self.join(key, room),
            Command::Leave(room) => self.leave(key, room),
            Command::Who(room) => self.who(key, room),
            Command::Rooms => {
                let rooms = self.shared.directory.rooms();
                self.reply(key, &Event::Rooms(rooms));
                Ok(())
            }
            Command::Topic(text) => self.topic(key, text),
            Command::Ping(token) => {
                self.reply(key, &Event::Pong(token.map(Into::into)));
                Ok(())
            }
            Command::Stats => {
                let report = self.shared.stats.report();
                self.reply(key, &Event::Stats(report));
                Ok(())
            }
            Command::Help => {
                self.reply(key, &Event::Help);
                Ok(())
            }
            Command::Quit(reason) => {
                self.quit(key, reason);
                Ok(())
            }
            Command::SayTo { room, text, kind } => self.say_to(key, room, text, kind),
            Command::Notice { to, text } => self.private_to(key, to, text, true),
            Command::TopicOf { room, text } => self.topic_of(key, room, text),
            Command::Names(room) => {
                let nicks = self.members(&room);
                self.reply(key, &Event::Names { room, nicks });
                Ok(())
            }
            Command::Whois(nick) => self.whois(key, nick),
            Command::Away(text) => {
                let id = self.conns[key].id;
                self.shared.directory.set_away(id, text);
                self.reply(key, &Event::Away(text.is_some()));
                Ok(())
            }
            Command::Ison(nicks) => {
                let online = nicks
                    .iter()
                    .filter_map(|n| self.shared.directory.lookup_full(n))
                    .map(|(_, nick, _)| nick)
                    .collect();
                self.reply(key, &Event::Ison(online));
                Ok(())
            }
            Command::Userhost(nicks) => {
                let found = nicks
                    .iter()
                    .filter_map(|n| self.shared.directory.lookup_full(n))
                    .map(|(_, nick, away)| (nick, away.is_some()))
                    .collect();
                self.reply(key, &Event::Userhost(found));
                Ok(())
            }
        };
        if let Err(error) = result {
            self.reject(key, error);
        }
    }

    /// The sender's nick and current room.
    fn speaker(&self, key: usize) -> Result<(Nick, RoomName), ProtocolError> {
        let conn = &self.conns[key];
        let room = conn.current.clone().ok_or(ProtocolError::NoRoom)?;
        Ok((conn.nick.clone(), room))
    }

    /// A plain line or `/me`: to every other member of the current room.
    fn say(&mut self, key: usize, text: &str, action: bool) -> Result<(), ProtocolError> {
        let (from, room) = self.speaker(key)?;
        bump(&self.shared.stats.shards[self.index].messages_in);
        let text = text.into();
        let event = if action {
            Event::Action {
                room: room.clone(),
                from,
                text,
            }
        } else {
            Event::Message {
                room: room.clone(),
                from,
                text,
            }
        };
        self.broadcast(&room, Some(key), event);
        Ok(())
    }

    /// `/msg`: only the target receives it, whichever shard it is on.
    fn private(&mut self, key: usize, to: &str, text: &str) -> Result<(), ProtocolError> {
        self.private_to(key, to, text, false)
    }

    /// A private message or notice. The sender of a message (not a notice) to
    /// someone away is told so, as IRC's 301 does.
    fn private_to(
        &mut self,
        key: usize,
        to: &str,
        text: &str,
        notice: bool,
    ) -> Result<(), ProtocolError> {
        let (target, nick, away) = self
            .shared
            .directory
            .lookup_full(to)
            .ok_or_else(|| ProtocolError::NoSuchNick(to.into()))?;
        bump(&self.shared.stats.shards[self.index].messages_in);
        let event = Event::Private {
            from: self.conns[key].nick.clone(),
            text: text.into(),
            notice,
        };
        self.deliver_to(target, Outgoing::new(event));
        if let (Some(text), false) = (away, notice) {
            self.reply(key, &Event::IsAway { nick, text });
        }
        Ok(())
    }

    /// A message, action or notice to a named room (IRC `PRIVMSG #room`).
    fn say_to(
        &mut self,
        key: usize,
        room: RoomName,
        text: &str,
        kind: SayKind,
    ) -> Result<(), ProtocolError> {
        let conn = &self.conns[key];
        if !conn.rooms.contains(&room) {
            return Err(ProtocolError::CannotSendTo(room));
        }
        let from = conn.nick.clone();
        bump(&self.shared.stats.shards[self.index].messages_in);
        let (r, text) = (room.clone(), text.into());
        let event = match kind {
            SayKind::Message => Event::Message {
                room: r,
                from,
                text,
            },
            SayKind::Action => Event::Action {
                room: r,
                from,
                text,
            },
            SayKind::Notice => Event::RoomNotice {
                room: r,
                from,
                text,
            },
        };
        self.broadcast(&room, Some(key), event);
        Ok(())
    }

    /// Show or set the topic of a named room the connection is in.
    fn topic_of(
        &mut self,
        key: usize,
        room: RoomName,
        text: Option<&str>,
    ) -> Result<(), ProtocolError> {
        let conn = &self.conns[key];
        if !conn.rooms.contains(&room) {
            return Err(ProtocolError::NotInRoom(room));
        }
        let nick = conn.nick.clone();
        self.set_or_show_topic(key, nick, room, text);
        Ok(())
    }

    /// Who is behind `nick` (IRC WHOIS).
    fn whois(&mut self, key: usize, nick: &str) -> Result<(), ProtocolError> {
        let (_, nick, away) = self
            .shared
            .directory
            .lookup_full(nick)
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        self.reply(key, &Event::Whois { nick, away });
        Ok(())
    }

    /// Every member's nick, for protocols that list them all (IRC NAMES).
    fn members(&self, room: &RoomName) -> Vec<Nick> {
        self.shared
            .directory
            .who(room, usize::MAX)
            .map(|(nicks, _)| nicks)
            .unwrap_or_default()
    }

    /// `/nick`: claim the new nick, then tell every room the connection is in.
    fn rename(&mut self, key: usize, nick: Nick) -> Result<(), ProtocolError> {
        let id = self.conns[key].id;
        let old = self.shared.directory.rename(id, &nick)?;
        let conn = &mut self.conns[key];
        conn.nick = nick.clone();
        let rooms = conn.rooms.clone();
        log::info!("{} {old} is now {nick}", conn.peer);
        if old != nick {
            for room in rooms {
                let event = Event::NickChanged {
                    room: room.clone(),
                    old: old.clone(),
                    new: nick.clone(),
                };
                self.announce(&room, Some(key), event);
            }
        }
        self.reply(key, &Event::NickIs { old, nick });
        Ok(())
    }

    /// `/join`: join if needed, make current, tell the room.
    fn join(&mut self, key: usize, room: RoomName) -> Result<(), ProtocolError> {
        let conn = &mut self.conns[key];
        let id = conn.id;
        let already = conn.rooms.contains(&room);
        if !already && conn.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return Err(ProtocolError::TooManyRooms {
                max: MAX_ROOMS_PER_CONNECTION,
            });
        }
        conn.current = Some(room.clone());
        let nick = conn.nick.clone();
        if !already {
            conn.rooms.push(room.clone());
            self.rooms.join(&room, key);
        }
        let info = self.shared.directory.join(&room, id);
        let wants_names = self.conns[key].irc.is_some();
        if !already {
            let event = Event::Joined {
                room: room.clone(),
                nick,
            };
            self.announce(&room, Some(key), event);
        }
        let nicks = if wants_names {
            self.members(&room)
        } else {
            Vec::new()
        };
        let reply = Event::YouJoined {
            room,
            members: info.members,
            topic: info.topic,
            nicks,
        };
        self.reply(key, &reply);
        Ok(())
    }

    /// `/leave [ROOM]`: the current room by default.
    fn leave(&mut self, key: usize, room: Option<RoomName>) -> Result<(), ProtocolError> {
        let conn = &mut self.conns[key];
        let room = match room {
            Some(room) => room,
            None => conn.current.clone().ok_or(ProtocolError::NoRoom)?,
        };
        let Some(pos) = conn.rooms.iter().position(|r| *r == room) else {
            return Err(ProtocolError::NotInRoom(room));
        };
        conn.rooms.remove(pos);
        if conn.current.as_ref() == Some(&room) {
            conn.current = conn.rooms.last().cloned();
        }
        let (id, nick) = (conn.id, conn.nick.clone());
        self.rooms.leave(&room, key);
        // Announce before leaving the directory, so the room's size still counts us.
        let event = Event::Left {
            room: room.clone(),
            nick,
        };
        self.announce(&room, Some(key), event);
        self.shared.directory.leave(&room, id);
        self.reply(key, &Event::YouLeft { room });
        Ok(())
    }

    /// `/who [ROOM]`: any room may be listed, joined or not (as IRC's WHO).
    fn who(&mut self, key: usize, room: Option<RoomName>) -> Result<(), ProtocolError> {
        let room = match room {
            Some(room) => room,
            None => self.conns[key]
                .current
                .clone()
                .ok_or(ProtocolError::NoRoom)?,
        };
        let (nicks, more) = self
            .shared
            .directory
            .who(&room, WHO_PAGE)
            .ok_or_else(|| ProtocolError::NoSuchRoom(room.clone()))?;
        self.reply(key, &Event::Who { room, nicks, more });
        Ok(())
    }

    /// `/topic [TEXT]`: show, or set and tell the room (the setter included).
    fn topic(&mut self, key: usize, text: Option<&str>) -> Result<(), ProtocolError> {
        let (nick, room) = self.speaker(key)?;
        self.set_or_show_topic(key, nick, room, text);
        Ok(())
    }

    fn set_or_show_topic(&mut self, key: usize, nick: Nick, room: RoomName, text: Option<&str>) {
        match text {
            None => {
                let topic = self.shared.directory.topic(&room);
                self.reply(key, &Event::Topic { room, topic });
            }
            Some(topic) => {
                self.shared.directory.set_topic(&room, topic);
                let event = Event::TopicChanged {
                    room: room.clone(),
                    nick,
                    topic: topic.into(),
                };
                self.broadcast(&room, None, event);
            }
        }
    }

    /// `/quit`: tell the rooms now (with the client's reason), say goodbye, then
    /// drain: the connection closes once `OK bye` is flushed.
    fn quit(&mut self, key: usize, reason: Option<&str>) {
        let conn = &mut self.conns[key];
        let rooms = std::mem::take(&mut conn.rooms);
        conn.current = None;
        let (id, nick) = (conn.id, conn.nick.clone());
        self.depart(key, id, &nick, &rooms, reason.unwrap_or("quit"), true);
        self.reply(key, &Event::Bye);
        let grace = self.shared.config.shutdown_grace;
        self.conns[key].drain(CloseReason::Quit, grace, &mut self.turn);
    }

    /// Takes a connection out of `rooms` (this shard's tables and the directory, in
    /// one lock) and, if `tell`, announces `quit nick reason` to each room. Used by
    /// `/quit` and by the shard when it reaps a closed connection.
    pub(super) fn depart(
        &mut self,
        key: usize,
        id: ConnId,
        nick: &Nick,
        rooms: &[RoomName],
        reason: &str,
        tell: bool,
    ) {
        for room in rooms {
            self.rooms.leave(room, key);
        }
        self.shared.directory.leave_all(id, rooms);
        if !tell {
            return;
        }
        let reason: Box<str> = reason.into();
        for room in rooms {
            let event = Event::Quit {
                room: room.clone(),
                nick: nick.clone(),
                reason: reason.clone(),
            };
            self.announce(room, None, event);
        }
    }
}
