//! The chat half of a shard: everything the event loop hands over, and nothing it
//! keeps for itself.
//!
//! The loop (`shard.rs`) owns sockets, buffers and the turn; this file owns what a
//! connection *means*. The loop calls it at five moments, always lending it an
//! [`Effects`] to act through:
//!
//! - a connection was adopted ([`Chat::open_session`], then [`Chat::on_adopted`]): give
//!   it a guest nick and, for the line protocol, the lobby and a welcome;
//! - a line arrived ([`Chat::on_line`]): count it as activity, apply flood control,
//!   and hand it to its protocol (the line parser and [`Relay`], or [`IrcSession`]);
//! - another shard sent something ([`Chat::on_message`]): a room event to sequence or
//!   deliver, or a private message;
//! - the tick ([`Chat::on_tick`]): join/quit summaries due on this home shard, idle
//!   timeouts (before registration) and the IRC keepalive;
//! - a connection was reaped ([`Chat::on_closed`]): leave its rooms, tell them, free
//!   its nick.
//!
//! Nothing here calls back into the loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::framing::FrameError;
use crate::protocol::identity::UserHost;
use crate::protocol::mask::host_of;
use crate::protocol::outgoing::Protocol;
use crate::protocol::parse::parse_line;
use crate::protocol::{Event, Nick, NoticeKind, ProtocolError, Refusal, RoomName, irc};

use crate::server::backplane::handle::{BackplaneMsg, ClaimAnswer, ClaimFor};
use crate::server::close_reason::CloseReason;
use crate::server::commands::Effects;
use crate::server::config::IDLE_WARNING;
use crate::server::directory::{Profile, profile_time};
use crate::server::handler::Handler;
use crate::server::inbox::ShardMsg;
use crate::server::irc_session::IrcSession;
use crate::server::live::LiveLimits;
use crate::server::oper;
use crate::server::relay::{Departure, Relay};
use crate::server::room_state::{RemoteRoom, unix_now};
use crate::server::services::{Services, reclaimed};
use crate::server::session::{FloodBucket, Session};
use crate::server::shared::Shared;
use crate::server::store::Answer;
use crate::server::token::ConnId;

/// The chat state and behaviour of one shard.
#[derive(Debug)]
pub struct Chat {
    /// Commands and delivery.
    relay: Relay,
    /// Config, directory, stats.
    shared: Arc<Shared>,
    /// Ticks so far (rooms without members are forgotten every few).
    ticks: u64,
}

/// Every this many ticks (of 250 ms), a home shard forgets the history of rooms
/// that have no members left.
const FORGET_EVERY_TICKS: u64 = 120;

impl Chat {
    /// The chat of shard `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Self {
        Chat {
            relay: Relay::new(index, Arc::clone(&shared)),
            shared,
            ticks: 0,
        }
    }

    /// An answer of the store or auth thread for one connection; a change the asker
    /// no longer waits for still reaches its room.
    fn on_stored(&mut self, fx: &mut Effects<'_>, reply: crate::server::store::StoreReply) {
        let key = reply.to.key();
        let gone = fx.session(key).is_none_or(|s| s.id != reply.to);
        if gone && let Answer::Done(then) = reply.answer {
            // The one who asked has left; the room still hears of the change.
            if let Some((room, event)) = then.broadcast {
                self.relay.delivery.broadcast(fx, &room, None, event);
            }
        } else if !gone {
            let (delivery, shared) = (&self.relay.delivery, &*self.shared);
            Services {
                delivery,
                shared,
                fx,
                key,
            }
            .on_stored(reply);
        }
    }

    /// Redis answered a nick claim of connection `id`; a claim won for a
    /// connection that has closed meanwhile is given back.
    fn claimed(
        &mut self,
        fx: &mut Effects<'_>,
        id: ConnId,
        nick: Nick,
        then: ClaimFor,
        answer: ClaimAnswer,
    ) {
        let key = id.key();
        if fx.session(key).is_none_or(|s| s.id != id) {
            if answer == ClaimAnswer::Won {
                fx.publish(BackplaneMsg::Release { id, nick });
            }
            return;
        }
        match then {
            ClaimFor::Rename => self.relay.claimed_rename(fx, key, nick, answer),
            ClaimFor::Takeover => {} // never answered
            ClaimFor::IrcRegistration => {
                let shared = &*self.shared;
                IrcSession {
                    relay: &mut self.relay,
                    fx,
                    shared,
                    key,
                }
                .nick_claimed(nick, answer);
            }
        }
    }

    /// Records activity and takes a flood-control token. Every line that was read is
    /// handled: one that takes the last token asks the loop to stop reading the
    /// connection until the bucket refills (fake lag), so nothing typed is lost.
    /// Returns the connection's protocol.
    fn admit(&mut self, fx: &mut Effects<'_>, key: usize) -> Option<Protocol> {
        let now = Instant::now();
        let flood = self.relay.delivery.limits.flood;
        let session = fx.session(key)?;
        // The flood bucket was last filled when the last line came.
        let since = std::mem::replace(&mut session.last_active, now);
        session.spoke_once = true;
        session.idle_warned = false;
        if let Some(irc) = session.irc.as_mut() {
            irc.ping_sent = None;
        }
        let protocol = session.protocol();
        // A session opened while flood control was off gets its bucket when a
        // reload turns it on.
        if let Some(limit) = flood
            && let Some(resume) = (session.flood)
                .get_or_insert_with(|| FloodBucket::new(limit))
                .take(limit, since, now)
        {
            // Operators hear of a connection's first pause (not of every one).
            let first = !std::mem::replace(&mut session.flood_noticed, true);
            let who = first.then(|| (session.nick.clone(), session.peer().ip()));
            fx.pause_reading(key, resume);
            if let Some((nick, address)) = who {
                let address = host_of(address);
                let text = || format!("{nick} ({address}) is over the flood limit: slowed down");
                self.relay.notice(fx, NoticeKind::Flood, text);
            }
        }
        Some(protocol)
    }

    /// `--idle-timeout` applies to connections that have not registered: a line
    /// connection that never sent a line, an IRC one before its welcome. A
    /// registered connection is never cut for being quiet (a reader is not idle);
    /// TCP keepalive finds the dead ones, and the kernel's reset closes them.
    fn tick_one(&mut self, fx: &mut Effects<'_>, key: usize, now: Instant) {
        let idle_timeout = self.relay.delivery.limits.idle_timeout;
        let config = &self.shared.config;
        let Some(session) = fx.session(key) else {
            return;
        };
        let silent = now.duration_since(session.last_active);
        let (peer, nick) = (session.peer(), session.nick.clone());
        let registered = session.spoke_once && session.is_registered();
        if let Some(limit) = idle_timeout.filter(|_| !registered) {
            let warning = IDLE_WARNING.min(limit / 2);
            if silent >= limit {
                log::info!("{peer} {nick} idle for {silent:?}");
                return self.close_idle(fx, key);
            }
            if silent >= limit - warning && !session.idle_warned && session.irc.is_none() {
                session.idle_warned = true;
                let warn = Event::IdleWarning(warning.as_secs().max(1));
                return self.relay.delivery.reply(fx, key, &warn);
            }
        }
        let Some(irc) = session.irc.as_deref_mut() else {
            return;
        };
        if irc.identify_by.is_some_and(|by| now >= by) {
            irc.identify_by = None;
            let owner = self.shared.directory.owns(session.id, &session.nick);
            if !owner {
                log::info!("{peer} {nick} did not identify in time: renamed");
                return self.relay.to_guest(fx, key, ProtocolError::NickRegistered);
            }
        }
        let Some(session) = fx.session(key) else {
            return;
        };
        let Some(irc) = session.irc.as_deref_mut() else {
            return;
        };
        match irc.ping_sent {
            Some(sent) if now.duration_since(sent) >= config.irc_pong_timeout => {
                log::info!("{peer} {nick} ping timeout");
                self.close_idle(fx, key);
            }
            None if silent >= config.irc_ping => {
                irc.ping_sent = Some(now);
                let ping = irc::keepalive_ping(&config.server_name);
                let ping = session.protocol().frame(&Arc::from(ping.into_bytes()));
                fx.last_word(key, ping);
            }
            _ => {}
        }
    }

    fn close_idle(&self, fx: &mut Effects<'_>, key: usize) {
        let notice = Event::Closing(Refusal::IdleTimeout);
        self.relay
            .delivery
            .farewell(fx, key, &notice, CloseReason::IdleTimeout);
    }
}

/// What the loop calls (`event_loop/handler.rs`): each a door into the chat.
impl Handler for Chat {
    type Session = Session;

    /// A session for a connection being adopted: a fresh guest nick (and, for the
    /// line protocol, the lobby) in the directory, and a full flood bucket.
    fn open_session(&self, id: ConnId, peer: SocketAddr, protocol: Protocol) -> Session {
        let lobby = RoomName::lobby();
        let start_room = (!protocol.speaks_irc()).then_some(&lobby);
        let remote = match start_room {
            Some(lobby) => self.shared.room_outside(lobby),
            None => RemoteRoom::default(),
        };
        let nick = self
            .shared
            .directory
            .register_guest(id, start_room, &remote);
        let mut session = Session::new(id, peer, nick, protocol);
        let host = self.shared.hosts.host_for(peer.ip());
        session.userhost = UserHost::new(&host);
        session.flood = (self.relay.delivery.limits.flood).map(FloodBucket::new);
        if !protocol.speaks_irc() {
            // Held inline: most users are in one room at a time (`room_list.rs`).
            session.rooms.push(lobby.clone());
            session.current = Some(lobby);
        }
        // A line user's real name is its nick; an IRC user's comes with USER.
        let profile = Profile {
            realname: session.nick.shared_text(),
            signon: profile_time(unix_now()),
            spoke_at: 0,
            registered: protocol == Protocol::Line,
            irc: protocol.speaks_irc(),
            account: None,
            userhost: session.userhost.clone(),
        };
        self.shared.directory.set_profile(id, profile);
        session
    }

    /// Greets a line connection (welcome, and a join notice in the lobby); an IRC one
    /// waits for NICK/USER.
    fn on_adopted(&mut self, fx: &mut Effects<'_>, key: usize) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let (nick, protocol, peer) = (session.nick.clone(), session.protocol(), session.peer());
        log::info!("{peer} connected ({protocol:?}) as {nick}");
        if !protocol.speaks_irc() {
            // A line connection's identity is known now (an IRC one's at registration).
            if self.relay.klined(fx, key, false) {
                return;
            }
            let room = RoomName::lobby();
            self.relay.delivery.enter(&room, key);
            let welcome = Event::Welcome {
                nick: nick.clone(),
                room: room.clone(),
            };
            self.relay.delivery.reply(fx, key, &welcome);
            let lines = self.shared.operators.get().motd.clone();
            let motd = Event::Motd {
                lines,
                asked: false,
            };
            self.relay.delivery.reply(fx, key, &motd);
            let joined = Event::Joined {
                room: room.clone(),
                nick: nick.clone(),
            };
            self.relay.delivery.announce(fx, &room, Some(key), joined);
            let address = host_of(peer.ip());
            let text = || format!("{nick} ({address}) connected ({})", protocol.label());
            self.relay.notice(fx, NoticeKind::Connect, text);
        }
        self.relay.tell_cluster(fx, key, None);
    }

    /// One line (or framing error) from connection `key`.
    fn on_line(&mut self, fx: &mut Effects<'_>, key: usize, line: Result<&[u8], FrameError>) {
        if crate::logging::tracing()
            && let (Ok(line), Some(session)) = (line, fx.session(key))
        {
            crate::logging::trace_line(&session.id, true, line);
        }
        let Some(protocol) = self.admit(fx, key) else {
            return;
        };
        match (protocol.base(), line) {
            (Protocol::Line, Ok(line)) => match parse_line(line) {
                Ok(Some(command)) => self.relay.apply(fx, key, command),
                Ok(None) => {}
                Err(error) => self.relay.delivery.reject(fx, key, error),
            },
            (_, Ok(line)) => {
                let shared = &*self.shared;
                IrcSession {
                    relay: &mut self.relay,
                    fx,
                    shared,
                    key,
                }
                .on_line(line);
            }
            (_, Err(FrameError::TooLong)) => {
                let max = self.relay.delivery.limits.max_line_for(protocol);
                self.relay
                    .delivery
                    .reject(fx, key, ProtocolError::LineTooLong { max });
            }
        }
    }

    /// A reload's new limits (the shard's table keeps its own copy).
    fn set_limits(&mut self, limits: LiveLimits) {
        self.relay.delivery.set_limits(limits);
    }

    /// Flood control's hard ceiling: a paused client kept too much unread for too
    /// long. It is told `ERR flood` (IRC: "Excess Flood") and closed.
    fn cut_flooder(&mut self, fx: &mut Effects<'_>, key: usize) {
        if let Some(session) = fx.session(key) {
            let (nick, address) = (session.nick.clone(), host_of(session.peer().ip()));
            let text = || format!("{nick} ({address}) was cut for flooding");
            self.relay.notice(fx, NoticeKind::Flood, text);
        }
        let notice = Event::Closing(Refusal::Flood);
        self.relay
            .delivery
            .farewell(fx, key, &notice, CloseReason::Flood);
    }

    /// A message from another shard (adoption and shutdown are the loop's own). A
    /// room event that kicks someone is carried out here once delivered, if the
    /// kicked member is on this shard.
    fn on_message(&mut self, fx: &mut Effects<'_>, msg: ShardMsg) {
        let delivery = &self.relay.delivery;
        let kicked_in = match msg {
            ShardMsg::Sequence(event) => {
                let kick = matches!(event.outgoing.event, Event::Kicked { .. });
                let room = event.room.clone();
                delivery.sequence(fx, event);
                kick.then_some(room)
            }
            ShardMsg::Room {
                room,
                except,
                outgoing,
            } => {
                delivery.deliver_local(fx, &room, except, &outgoing);
                matches!(outgoing.event, Event::Kicked { .. }).then_some(room)
            }
            ShardMsg::Direct { to, outgoing } => {
                delivery.deliver_to(fx, to, outgoing);
                None
            }
            ShardMsg::History {
                room,
                to,
                count,
                on_join,
            } => {
                delivery.history_to(fx, room, to, count, on_join);
                None
            }
            ShardMsg::Rename { id } => {
                if fx.session(id.key()).is_some_and(|s| s.id == id) {
                    self.relay.lose_nick(fx, id.key());
                }
                None
            }
            ShardMsg::Stored(reply) => {
                self.on_stored(fx, *reply);
                None
            }
            // History read from a room's shared log: no kick to carry out after.
            ShardMsg::Seeded { room, lines } => return delivery.seeded(fx, room, lines),
            ShardMsg::Recovered { room, lines } => return delivery.recovered(fx, room, lines),
            ShardMsg::Claimed {
                id,
                nick,
                then,
                answer,
            } => {
                self.claimed(fx, id, nick, then, answer);
                None
            }
            ShardMsg::PrivateSent {
                id,
                to,
                away,
                delivered,
            } => {
                if fx.session(id.key()).is_some_and(|s| s.id == id) {
                    (self.relay).private_sent(fx, id.key(), to, away, delivered);
                }
                None
            }
            ShardMsg::Oper(msg) => return self.relay.on_oper(fx, msg),
            lost @ ShardMsg::NickReclaimed { .. } => {
                reclaimed(&self.relay.delivery, fx, lost);
                None
            }
            ShardMsg::Adopt { .. } | ShardMsg::Shutdown | ShardMsg::Limits(_) => {
                debug_assert!(false, "BUG: the loop handles adoption, limits and shutdown");
                None
            }
        };
        if let Some(room) = kicked_in {
            self.relay.carry_out_kicks(fx, &room);
        }
    }

    /// The tick: join/quit summaries due on this home shard, idle timeouts and the
    /// IRC keepalive (PING after `--irc-ping` of silence, "Ping timeout" if no
    /// answer comes within `--irc-pong-timeout`).
    fn on_tick(&mut self, fx: &mut Effects<'_>, now: Instant) {
        self.ticks += 1;
        let forget = self.ticks.is_multiple_of(FORGET_EVERY_TICKS);
        self.relay.delivery.on_tick(fx, now, forget);
        for key in fx.keys() {
            if fx.is_open(key) {
                self.tick_one(fx, key, now);
            }
        }
    }

    /// Tells every client the server is going down (their connections then drain).
    fn begin_shutdown(&mut self, fx: &mut Effects<'_>) {
        for key in fx.keys() {
            if fx.is_open(key) {
                self.relay
                    .delivery
                    .farewell(fx, key, &Event::ShuttingDown, CloseReason::Shutdown);
            }
        }
    }

    /// A reaped connection: out of its rooms (telling them, unless the server is
    /// shutting down), its nick and away message freed.
    fn on_closed(&mut self, fx: &mut Effects<'_>, mut session: Session, why: &str, tell: bool) {
        if session.oper.is_some() {
            oper::drop_oper(
                &self.relay.delivery,
                &self.shared,
                &mut self.relay.opers,
                session.id.key(),
            );
        }
        let rooms = std::mem::take(&mut session.rooms);
        let who = Departure {
            key: session.id.key(),
            id: session.id,
            nick: &session.nick,
            rooms: &rooms,
        };
        self.relay.depart(fx, who, tell.then_some(why));
        self.shared
            .directory
            .remember(session.id, &session.nick, true);
        self.shared.directory.remove(session.id);
        if self.shared.backplane.is_some() {
            fx.publish(BackplaneMsg::Gone { id: session.id });
        }
    }
}
