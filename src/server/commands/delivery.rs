//! Who gets an event, and how it gets there: replies, room fan-out in one order per
//! room, and private messages to any shard.
//!
//! - [`Delivery::reply`]: to the sender only, rendered for its protocol and nick.
//! - [`Delivery::broadcast`] / [`Delivery::announce`]: to a room. The event is wrapped
//!   once in an [`Outgoing`] (rendered at most once per protocol) and handed to the
//!   room's *home shard* ([`home_shard`]), which alone gives it its place in the
//!   room's order: it fans out to its own members and sends the event once to every
//!   other shard with members, whose FIFO inboxes keep that order (ET-8).
//! - [`Delivery::deliver_to`]: to one connection on any shard, checked against its
//!   generation on arrival (ET-6).
//! - On a room's home shard, [`Delivery::sequence`] also keeps the room's history and
//!   holds a crowd's joins and quits for a summary (`room_home.rs`), and
//!   [`Delivery::history_to`] answers `/history` and the playback on join.
//! - Who gets a room event is decided per reader in [`Delivery::deliver_local`]: the
//!   sender only with `/echo on` or `echo-message`, IRC-only events only to readers
//!   with the capability, one copy of a user's quit or nick change per IRC reader.
//!
//! Every byte for one reader is made plain by [`Delivery::plain_for`] (tags
//! included) and framed once, at the end, by `Protocol::frame`: the same path for a
//! reply, an echo, a farewell and a private message, so no path can skip the
//! WebSocket framing (the `every_path_to_a_websocket_is_framed` test).
//!
//! Everything here only *queues* through [`Effects`]; the loop flushes once per turn.
//! The directory lock is taken once per room event on its home shard (to learn which
//! shards have members), never per recipient.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use log::info;

use crate::protocol::identity::UserHost;
use crate::protocol::irc::Prefixes;
use crate::protocol::outgoing::{Outgoing, Protocol, account_tag_lines, prefix_tags, render_plain};
use crate::protocol::raw;
use crate::protocol::{
    Event, HistoryLine, Nick, ProtocolError, RoomName, SayKind, SummaryKind, irc, render, timestamp,
};
use crate::server::config::JOIN_HISTORY;

use crate::server::backplane::handle::BackplaneMsg;
use crate::server::backplane::wire::crosses_nodes;
use crate::server::close_reason::CloseReason;
use crate::server::commands::Effects;
use crate::server::directory::Reach;
use crate::server::inbox::{Origin, RoomEvent, ShardMsg};
use crate::server::live::LiveLimits;
use crate::server::room_home::{Release, RoomHome, said_line};
use crate::server::rooms::{LocalRooms, home_shard};
use crate::server::session::Session;
use crate::server::shared::Shared;
use crate::server::store::{HistoryQuery, Job, StoredLine};
use crate::server::token::ConnId;

/// Protocol errors logged per connection before its further errors go unlogged (a
/// client spewing garbage must not turn into a log flood; it still gets every error).
const LOGGED_ERRORS_PER_CONNECTION: u8 = 5;

/// One shard's delivery: its local room membership and the way out to other shards.
#[derive(Debug)]
pub struct Delivery {
    /// This shard's index.
    index: usize,
    /// How many shards the server runs.
    shards: usize,
    /// Local members of each room, for fan-out without a lock.
    rooms: LocalRooms,
    /// Config (sendq, server name, announce limit) and the directory.
    shared: Arc<Shared>,
    /// History and held joins/quits of the rooms this shard is home to (only this
    /// shard's thread touches it; a `RefCell` because sequencing borrows `&self`).
    home: RefCell<RoomHome>,
    /// The limits in force on this shard (a reload replaces them: `live.rs`).
    pub limits: LiveLimits,
}

impl Delivery {
    /// Delivery for shard `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Self {
        Delivery {
            index,
            shards: shared.shards.len(),
            rooms: LocalRooms::default(),
            home: RefCell::new(RoomHome::new(shared.config.history)),
            limits: LiveLimits::of(&shared.config),
            shared,
        }
    }

    /// A reload's new limits; rooms keep at most the new history length from their
    /// next line on.
    pub fn set_limits(&mut self, limits: LiveLimits) {
        self.limits = limits;
        self.home.get_mut().set_history(limits.history);
    }

    /// Adds local connection `key` to `room`'s fan-out list.
    pub fn enter(&mut self, room: &RoomName, key: usize) {
        self.rooms.join(room, key);
    }

    /// Removes local connection `key` from `room`'s fan-out list.
    pub fn exit(&mut self, room: &RoomName, key: usize) {
        self.rooms.leave(room, key);
    }

    /// Takes local connection `key` (`id`, `nick`) out of `rooms` (this shard's
    /// tables and the directory, in one lock) and, given a `reason`, announces `quit
    /// nick reason` to each room (a user's quit, kill or k-line; during shutdown
    /// there is none: everyone is leaving).
    pub fn depart(
        &mut self,
        fx: &mut Effects<'_>,
        (key, id, nick): (usize, ConnId, &Nick),
        rooms: &[RoomName],
        reason: Option<&str>,
    ) {
        for room in rooms {
            self.exit(room, key);
        }
        self.shared.directory.leave_all(id, rooms);
        let Some(reason) = reason else {
            return;
        };
        let reason: Box<str> = reason.into();
        let once = self.next_once();
        for room in rooms {
            let (nick, reason) = (nick.clone(), reason.clone());
            let event = Event::Quit {
                room: room.clone(),
                nick,
                reason,
            };
            self.announce_once(fx, room, None, event, once);
        }
    }

    /// `event` to connection `key` alone, showing `from` as the `user@host` of its
    /// source (an operator's `WALLOPS` or `/wall`).
    pub fn reply_from(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        event: &Event,
        from: Option<&UserHost>,
    ) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let plain = self.plain_for(session, event, None, from);
        if !plain.is_empty() {
            fx.queue_plain(key, plain);
        }
    }

    /// Slab keys of this shard's members of `room`.
    pub fn local_members(&self, room: &RoomName) -> &[usize] {
        self.rooms.members(room)
    }

    /// True if this shard is `room`'s home, where its events are sequenced (and so
    /// delivered to this shard's members at once).
    pub fn is_home(&self, room: &RoomName) -> bool {
        home_shard(room, self.shards) == self.index
    }

    /// `event` to connection `key` alone, in its protocol.
    pub fn reply(&self, fx: &mut Effects<'_>, key: usize, event: &Event) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let plain = self.plain_for(session, event, None, None);
        // Some events are nothing in some dialects (an empty MOTD after a line
        // welcome): an empty write would read as a dead socket.
        if !plain.is_empty() {
            fx.queue_plain(key, plain);
        }
    }

    /// `event` for the one reader `session`, as plain lines (framed by the caller,
    /// through `Protocol::frame`): in its dialect, addressed to its nick, with the
    /// IRC capabilities it enabled (history is a `chathistory` batch; a private
    /// message carries `server-time` and the sender's client tags); `from` is the
    /// `user@host` of the event's source, if known.
    fn plain_for(
        &self,
        session: &Session,
        event: &Event,
        client_tags: Option<&str>,
        from: Option<&UserHost>,
    ) -> Arc<[u8]> {
        let server = &self.shared.config.server_name;
        let me = session.nick.as_str();
        let caps = session.caps();
        let prefixes = Prefixes {
            from,
            me: Some(&session.userhost),
        };
        match (session.protocol().base(), event) {
            (Protocol::Irc, Event::Playback { room, lines }) => {
                Arc::from(raw::to_wire(irc::playback(room, lines, server, caps)))
            }
            (Protocol::Irc, Event::Private { .. } | Event::PrivateTagMsg { .. }) => {
                let plain = irc::reply_with(event, server, me, caps, prefixes);
                tag_for(&Arc::from(raw::to_wire(plain)), caps, client_tags)
            }
            (Protocol::Irc, Event::YouJoined { .. }) if caps.has("server-time") => {
                // Your JOIN echo carries the time, as everyone else's JOIN does.
                let mut plain = irc::reply_with(event, server, me, caps, prefixes);
                let at = timestamp(crate::protocol::outgoing::now_ms());
                plain.insert_str(0, &format!("@time={at} "));
                Arc::from(raw::to_wire(plain))
            }
            (Protocol::Irc, event) => Arc::from(raw::to_wire(irc::reply_with(
                event, server, me, caps, prefixes,
            ))),
            (_, event) => render_plain(Protocol::Line, event, server, me),
        }
    }

    /// `echo-message` for a private message (or `TAGMSG`): the IRC sender sees
    /// `:me!user@host PRIVMSG target :text`, as the target does, in its own framing.
    pub fn echo_private(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        target: &str,
        event: &Event,
        client_tags: Option<&str>,
    ) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let caps = session.caps();
        if !caps.has("echo-message") {
            return;
        }
        let server = &self.shared.config.server_name;
        let prefixes = Prefixes {
            from: Some(&session.userhost),
            me: None,
        };
        let plain = irc::reply_with(event, server, target, irc::Caps::default(), prefixes);
        fx.queue_plain(
            key,
            tag_for(&Arc::from(raw::to_wire(plain)), caps, client_tags),
        );
    }

    /// `event` to connection `key` as its last word, then close it once flushed.
    pub fn farewell(&self, fx: &mut Effects<'_>, key: usize, event: &Event, reason: CloseReason) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let plain = self.plain_for(session, event, None, None);
        fx.close_with(key, plain, reason);
    }

    /// [`Self::farewell`] from someone whose `user@host` is `from` (an operator's
    /// kill).
    pub fn farewell_from(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        event: &Event,
        reason: CloseReason,
        from: Option<&UserHost>,
    ) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let plain = self.plain_for(session, event, None, from);
        fx.close_with(key, plain, reason);
    }

    /// Answers a client mistake with an error line, and logs the first few.
    pub fn reject(&self, fx: &mut Effects<'_>, key: usize, error: ProtocolError) {
        if let Some(session) = fx.session(key)
            && session.errors_logged < LOGGED_ERRORS_PER_CONNECTION
        {
            session.errors_logged += 1;
            let more = if session.errors_logged == LOGGED_ERRORS_PER_CONNECTION {
                " (further errors from this connection are not logged)"
            } else {
                ""
            };
            let code = error.code();
            info!("{} {}: {code}: {error}{more}", session.peer(), session.nick);
        }
        self.reply(fx, key, &Event::Error(error));
    }

    /// `event` to every member of `room` but `except` (a local key), in the room's one
    /// order (ET-8).
    pub fn broadcast(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
    ) {
        self.publish(fx, room, except, Outgoing::new(event), false);
    }

    /// Like [`Self::broadcast`], with the sender's client-only tags (IRCv3
    /// message-tags), which readers with `message-tags` get.
    pub fn broadcast_tagged(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
        tags: Option<&str>,
    ) {
        self.publish(fx, room, except, Outgoing::tagged(event, tags), false);
    }

    /// Like [`Self::announce`] for one copy of a change told to each of a user's
    /// rooms (a quit, a nick change): IRC readers get the first copy only.
    pub fn announce_once(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
        once: u64,
    ) {
        self.publish(fx, room, except, Outgoing::once(event, once), true);
    }

    /// A number for one change told to several rooms (see `Outgoing::once`): never
    /// the same twice in this process.
    pub fn next_once(&self) -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Like [`Self::broadcast`] for join/leave/nick/quit notices, which are skipped in
    /// rooms larger than `--announce-max` (a 10 000-member lobby does not need
    /// 10 000 join lines per join).
    pub fn announce(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
    ) {
        self.publish(fx, room, except, Outgoing::new(event), true);
    }

    /// Hands a room event to the room's home shard: this one, or one inbox message.
    pub fn publish(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        outgoing: Arc<Outgoing>,
        notice: bool,
    ) {
        if let Some(source) = self.source_of(fx, except, &outgoing.event) {
            outgoing.set_source(source);
        }
        let except = except.and_then(|key| fx.session(key)).map(|s| s.id);
        let (room, origin) = (room.clone(), Origin::Local);
        let event = RoomEvent {
            room,
            except,
            outgoing,
            notice,
            origin,
        };
        match home_shard(&event.room, self.shards) {
            home if home == self.index => self.sequence(fx, event),
            home => fx.send(home, ShardMsg::Sequence(event)),
        }
    }

    /// The `user@host` of an event's source (`Event::actor`): the connection
    /// `except` when it is the actor (a line, a join, a rename: no lock), else as the
    /// directory has it (a mode change, a kick, a topic, a quit: one short lock).
    fn source_of(
        &self,
        fx: &mut Effects<'_>,
        except: Option<usize>,
        event: &Event,
    ) -> Option<UserHost> {
        let actor = event.actor()?;
        let renamed = match event {
            Event::NickChanged { new, .. } => Some(new),
            _ => None,
        };
        if let Some(session) = except.and_then(|key| fx.session(key))
            && (session.nick == *actor || renamed == Some(&session.nick))
        {
            return Some(session.userhost.clone());
        }
        let names = std::iter::once(actor).chain(renamed);
        self.shared
            .directory
            .userhosts(names)
            .into_iter()
            .flatten()
            .next()
    }

    /// ET-8, on the room's home shard: local members get the event now, every other
    /// shard with members gets it in this turn's batch. Each peer's inbox is FIFO and
    /// only this shard feeds it the room's events, so every member on every shard sees
    /// the room in this order, and an answer (which must come back through here) can
    /// never overtake the line it answers. An event caused here then goes to the other
    /// nodes of the cluster, if any, once.
    pub fn sequence(&self, fx: &mut Effects<'_>, event: RoomEvent) {
        let RoomEvent {
            room,
            except,
            outgoing,
            notice,
            origin,
        } = event;
        let reach = self.shared.directory.reach(&room);
        let limit = self.limits.announce_max;
        if notice && limit != 0 && reach.members + self.shared.cluster.member_count(&room) > limit {
            return;
        }
        let now = Instant::now();
        let held = notice && self.home.borrow_mut().hold(&outgoing.event, except, now);
        if held {
            outgoing.quiet_for_line();
        } else {
            // Joins or quits still held go out first, in the room's order.
            let early = self.home.borrow_mut().flush(&room, now);
            for release in early {
                self.release(fx, release);
            }
        }
        if let Event::TopicChanged { nick, .. } = &outgoing.event {
            let by = match outgoing.source() {
                Some(known) => known.source(nick.as_str()).to_string(),
                None => nick.to_string(),
            };
            let at = crate::server::room_state::unix_now();
            self.shared.directory.topic_set_by(&room, (by.into(), at));
        }
        self.keep(&room, &outgoing, reach);
        self.deliver_local(fx, &room, except, &outgoing);
        for shard in reach.shards().filter(|&shard| shard != self.index) {
            let (room, outgoing) = (room.clone(), Arc::clone(&outgoing));
            fx.send(
                shard,
                ShardMsg::Room {
                    room,
                    except,
                    outgoing,
                },
            );
        }
        if origin == Origin::Local
            && self.shared.backplane.is_some()
            && crosses_nodes(&outgoing.event)
        {
            fx.publish(BackplaneMsg::Room { room, outgoing });
        }
    }

    /// What is said in a room gets its message id here, in the room's one order, and
    /// is kept: in memory for playback, and on its way to the store (never waited
    /// for: a full store queue is counted, and the line is still delivered). Kept
    /// for the room's incarnation `reach.born`; a line that arrives after its room
    /// emptied (nobody here reads it) is not kept at all.
    fn keep(&self, room: &RoomName, outgoing: &Outgoing, reach: Reach) {
        if reach.members == 0 {
            return;
        }
        // A line from another node keeps the id its origin gave it.
        let id = || outgoing.msgid().unwrap_or_else(|| self.shared.next_msgid());
        let Some(line) = said_line(&outgoing.event, outgoing.at_ms, id) else {
            return;
        };
        outgoing.set_msgid(line.id);
        self.record_line(room, line, reach);
    }

    /// A line into the room's memory and, unless a notice, the store. A channel
    /// notice stays in memory only (a notice replayed as a message could be answered
    /// by a bot).
    fn record_line(&self, room: &RoomName, line: HistoryLine, reach: Reach) {
        if let Some(store) = self
            .shared
            .store
            .as_ref()
            .filter(|_| line.kind != SayKind::Notice)
        {
            let stored = StoredLine {
                room: room.clone(),
                line: line.clone(),
                born: reach.born,
            };
            if store.submit(Job::Line(stored)).is_err() {
                log::debug!("store busy: a line of {room} was not stored");
            }
        }
        let registered = || self.shared.registry.is_registered(room);
        self.home
            .borrow_mut()
            .record(room, line, reach.born, registered);
    }

    /// In a cluster, the tail of `room`'s shared log, read when this node began to
    /// listen to the room: the lines it did not have are kept, and its members (who
    /// joined as its first here) get them as history, so history is the same on
    /// every node.
    pub fn seeded(&self, fx: &mut Effects<'_>, room: RoomName, lines: Vec<HistoryLine>) {
        let newest = (self.home.borrow().recent(&room, 1).first()).map_or(0, |l| l.id);
        let reach = self.shared.directory.reach(&room);
        let fresh: Vec<HistoryLine> = (lines.into_iter()).filter(|l| l.id > newest).collect();
        if fresh.is_empty() || reach.members == 0 {
            return;
        }
        for line in &fresh {
            self.record_line(&room, line.clone(), reach);
        }
        let skip = fresh.len().saturating_sub(JOIN_HISTORY);
        let lines = fresh.into_iter().skip(skip).collect();
        let members = self
            .shared
            .directory
            .member_ids(std::slice::from_ref(&room));
        let playback = Outgoing::new(Event::Playback { room, lines });
        for id in members {
            self.deliver_to(fx, id, Arc::clone(&playback));
        }
    }

    /// In a cluster, `lines` of `room` this node missed while cut off, read back
    /// from the room's shared log: kept as history (memory and store, as a live line
    /// is), then handed to the members with `EVENT ROOM recovered N`.
    pub fn recovered(&self, fx: &mut Effects<'_>, room: RoomName, lines: Vec<HistoryLine>) {
        let reach = self.shared.directory.reach(&room);
        if reach.born != 0 {
            for line in &lines {
                self.record_line(&room, line.clone(), reach);
            }
        }
        let count = lines.len() as u64;
        let members = (self.shared.directory).member_ids(std::slice::from_ref(&room));
        let playback = Outgoing::new(Event::Playback {
            room: room.clone(),
            lines,
        });
        let told = Outgoing::new(Event::Recovered { room, count });
        for id in members {
            self.deliver_to(fx, id, Arc::clone(&playback));
            self.deliver_to(fx, id, Arc::clone(&told));
        }
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Tells `rooms` and the connection itself that `old` is now `nick` (a `/nick`,
    /// a nick lost to another node or to its account's owner), and the other nodes.
    pub fn renamed(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        old: Nick,
        nick: Nick,
        rooms: Vec<RoomName>,
    ) {
        if old != nick {
            let once = self.next_once();
            for room in rooms {
                let (old, new) = (old.clone(), nick.clone());
                let event = Event::NickChanged {
                    room: room.clone(),
                    old,
                    new,
                };
                self.announce_once(fx, &room, Some(key), event, once);
            }
        }
        self.tell_cluster(fx, key, Some(old.clone()));
        self.reply(fx, key, &Event::NickIs { old, nick });
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
        let (id, claimed_ms, rooms) = (session.id, session.claimed_ms, session.rooms.to_vec());
        fx.publish(BackplaneMsg::User {
            id,
            claimed_ms,
            rooms,
            was,
        });
    }

    /// Fan-out on this shard: one `Arc` clone per member, no lock, no copy. Each
    /// protocol's bytes are rendered at most once, on first use.
    pub fn deliver_local(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<ConnId>,
        outgoing: &Outgoing,
    ) {
        let except = except
            .filter(|id| id.shard() == self.index)
            .map(ConnId::key);
        let now = Instant::now();
        let needs = needs_cap(&outgoing.event);
        for &key in self.rooms.members(room) {
            let Some(session) = fx.session(key) else {
                continue;
            };
            if Some(key) == except && !(session.echo && is_said(&outgoing.event)) {
                continue;
            }
            let flavour = session.flavour();
            if outgoing.is_silent_for(flavour)
                || needs.is_some_and(|cap| !session.caps().has(cap))
                || outgoing
                    .once
                    .is_some_and(|once| !session.first_copy(once, now))
            {
                continue;
            }
            if let Some(own) = own_join_summed_up(&outgoing.event, session) {
                // A summary naming this reader's own join: the rest of it, for it.
                if let Some(rest) = own {
                    fx.queue_plain(key, render::line(&rest));
                }
                continue;
            }
            let protocol = session.protocol();
            if outgoing.extras.is_some() {
                // The sender's account or a JOIN's real name: a variant for the
                // readers that asked, itself rendered once per flavour.
                let (account_tag, extended_join) = session.caps().account_extras();
                if account_tag || extended_join {
                    let bytes =
                        outgoing.bytes_for_reader(protocol, flavour, account_tag, extended_join);
                    fx.queue(key, bytes);
                    continue;
                }
            }
            fx.queue(key, outgoing.bytes_for(protocol, flavour));
        }
    }

    /// On the home shard of `room`: the last `count` lines to connection `to`, on
    /// any shard (`/join`, `/history`, IRC `JOIN`). Nothing on a join when there is
    /// no history.
    pub fn history_to(
        &self,
        fx: &mut Effects<'_>,
        room: RoomName,
        to: ConnId,
        count: usize,
        on_join: bool,
    ) {
        // Lines of an earlier room of this name are not this room's.
        let born = self.shared.directory.borns(std::slice::from_ref(&room))[0];
        let registered = || self.shared.registry.is_registered(&room);
        let kept = self.home.borrow_mut().fence(&room, born, registered);
        if let Some(store) = &self.shared.store
            && kept < count
        {
            // Memory holds fewer lines than asked (a restart, or a quiet room): the
            // store has them all, including what waits for its batch.
            let query = HistoryQuery::Latest(count);
            let read = Job::Read {
                to,
                room,
                query,
                quiet_if_empty: on_join,
            };
            if store.submit(read).is_err() && !on_join {
                self.deliver_to(
                    fx,
                    to,
                    Outgoing::new(Event::Error(ProtocolError::StoreBusy)),
                );
            }
            return;
        }
        let lines = self.home.borrow().recent(&room, count);
        if on_join && lines.is_empty() {
            return;
        }
        let playback = Event::Playback { room, lines };
        self.deliver_to(fx, to, Outgoing::new(playback));
    }

    /// Asks `room`'s home shard (this one, or by one inbox message) for its last
    /// `count` lines for connection `key`.
    pub fn ask_history(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        key: usize,
        count: usize,
        on_join: bool,
    ) {
        let Some(to) = fx.session(key).map(|s| s.id) else {
            return;
        };
        match home_shard(room, self.shards) {
            home if home == self.index => self.history_to(fx, room.clone(), to, count, on_join),
            home => {
                let room = room.clone();
                fx.send(
                    home,
                    ShardMsg::History {
                        room,
                        to,
                        count,
                        on_join,
                    },
                );
            }
        }
    }

    /// A held join or quit (or their summary) goes out to line readers, in the room's
    /// order; IRC readers had the original at once, other nodes make their own.
    fn release(&self, fx: &mut Effects<'_>, (summary, except): Release) {
        let room = match &summary {
            Event::Summary { room, .. } | Event::Joined { room, .. } | Event::Quit { room, .. } => {
                room.clone()
            }
            _ => return,
        };
        let outgoing = Outgoing::new(summary);
        outgoing.quiet_for_irc();
        let (origin, notice) = (Origin::Remote, false);
        self.sequence(
            fx,
            RoomEvent {
                room,
                except,
                outgoing,
                notice,
                origin,
            },
        );
    }

    /// The tick on this shard: join/quit summaries whose second has passed go out
    /// in their rooms' order, and rooms with no members left are forgotten (every
    /// 30 s; one directory lock per room kept).
    pub fn on_tick(&self, fx: &mut Effects<'_>, now: Instant, forget: bool) {
        let due = self.home.borrow_mut().due(now);
        for release in due {
            self.release(fx, release);
        }
        if forget {
            let rooms = self.home.borrow().rooms();
            for room in rooms {
                if self.shared.directory.reach(&room).members == 0 {
                    self.home.borrow_mut().forget(&room);
                }
            }
        }
    }

    /// [`Self::deliver_to`] for what local connection `from` sends (a private
    /// message, an invitation): readers see its `user@host`.
    pub fn deliver_from(
        &self,
        fx: &mut Effects<'_>,
        from: usize,
        to: ConnId,
        outgoing: Arc<Outgoing>,
    ) {
        if let Some(session) = fx.session(from) {
            outgoing.set_source(session.userhost.clone());
        }
        self.deliver_to(fx, to, outgoing);
    }

    /// `outgoing` to one connection, if it still exists *and* is the same connection
    /// (ET-6: a reused slab slot has a new generation). Rendered for that one reader.
    pub fn deliver_to(&self, fx: &mut Effects<'_>, to: ConnId, outgoing: Arc<Outgoing>) {
        if to.shard() != self.index {
            return fx.send(to.shard(), ShardMsg::Direct { to, outgoing });
        }
        match fx.session(to.key()) {
            Some(session) if session.id == to => {
                let tags_only = matches!(outgoing.event, Event::PrivateTagMsg { .. });
                if tags_only && !session.caps().has("message-tags") {
                    return;
                }
                let tags = outgoing.client_tags.as_deref();
                let from = outgoing.source();
                let mut plain = self.plain_for(session, &outgoing.event, tags, from);
                let account = outgoing.extras.as_ref().and_then(|e| e.account.as_ref());
                if let Some(account) = account.filter(|_| session.caps().has("account-tag"))
                    && session.protocol().speaks_irc()
                {
                    plain = account_tag_lines(&plain, account);
                }
                if !plain.is_empty() {
                    fx.queue_plain(to.key(), plain);
                }
            }
            _ => log::debug!("dropping a message for {to:?}, which has closed"),
        }
    }
}

/// For a line reader whose own join a join summary names: `Some` of the summary
/// without it (`None` in it when nobody else is left; a single other join as a plain
/// `join` line). `None` for every other event and reader, who get the shared bytes.
/// A summary names at most [`crate::protocol::SUMMARY_NICKS`] joiners, so at most
/// that many readers get a rendering of their own, once a second at most.
fn own_join_summed_up(event: &Event, reader: &Session) -> Option<Option<Event>> {
    let Event::Summary {
        room,
        kind: SummaryKind::Joins,
        count,
        nicks,
    } = event
    else {
        return None;
    };
    if reader.protocol().speaks_irc() || !nicks.contains(&reader.nick) {
        return None;
    }
    let others: Vec<Nick> = nicks
        .iter()
        .filter(|n| **n != reader.nick)
        .cloned()
        .collect();
    let (room, count) = (room.clone(), count.saturating_sub(1));
    Some(match (count, others.as_slice()) {
        (0, _) => None,
        (1, [nick]) => Some(Event::Joined {
            room,
            nick: nick.clone(),
        }),
        _ => Some(Event::Summary {
            room,
            kind: SummaryKind::Joins,
            count,
            nicks: others,
        }),
    })
}

/// True for what someone said in a room (what `/echo on` and `echo-message` echo).
fn is_said(event: &Event) -> bool {
    matches!(
        event,
        Event::Message { .. }
            | Event::Action { .. }
            | Event::RoomNotice { .. }
            | Event::TagMsg { .. }
    )
}

/// `plain` with the tags an IRC reader with `caps` gets on a line for it alone: the
/// sender's client tags (`message-tags`) and the time (`server-time`), if any.
fn tag_for(plain: &Arc<[u8]>, caps: irc::Caps, client_tags: Option<&str>) -> Arc<[u8]> {
    let mut tags: Vec<String> = Vec::new();
    if let Some(client) = client_tags.filter(|_| caps.has("message-tags")) {
        tags.push(client.to_string());
    }
    if caps.has("server-time") {
        let at = timestamp(crate::protocol::outgoing::now_ms());
        tags.push(format!("time={at}"));
    }
    if tags.is_empty() {
        return Arc::clone(plain);
    }
    prefix_tags(plain, &tags.join(";"))
}

/// The IRCv3 capability a reader needs to get this room event at all (line readers
/// never get these: their renderings are empty).
fn needs_cap(event: &Event) -> Option<&'static str> {
    match event {
        Event::AwayChanged { .. } => Some("away-notify"),
        Event::AccountChanged { .. } => Some("account-notify"),
        Event::InviteNotice { .. } => Some("invite-notify"),
        Event::TagMsg { .. } => Some("message-tags"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::{SocketAddr, TcpListener, TcpStream as StdStream};
    use std::time::Duration;

    use mio::net::TcpStream;
    use mio::{Poll, Waker};
    use slab::Slab;

    use super::*;
    use crate::protocol::Nick;
    use crate::server::config::ServerConfig;
    use crate::server::connection::{Connection, Turn};
    use crate::server::inbox::ShardHandle;
    use crate::server::session::Session;
    use crate::server::token::{self, INBOX_WAKER};
    use crate::server::web::{Socket, Web};

    fn one_shard() -> (Arc<Shared>, Poll) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), INBOX_WAKER).unwrap();
        let (handle, _inbox) = ShardHandle::new(Arc::new(waker));
        let config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        (Arc::new(Shared::new(config, vec![handle], None)), poll)
    }

    /// A connection in slot `key` with generation `generation`.
    fn connection(
        listener: &TcpListener,
        key: usize,
        generation: u32,
    ) -> (Connection<Session>, StdStream) {
        let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        server_side.set_nonblocking(true).unwrap();
        let id = ConnId::new(token::encode(0, key), generation).unwrap();
        let nick = Nick::parse(&format!("n{generation}")).unwrap();
        let session = Session::new(id, peer, nick, Protocol::Line);
        (
            Connection::new(TcpStream::from_std(server_side), session, 512),
            client,
        )
    }

    /// An upgraded WebSocket connection speaking `protocol`, every IRCv3 capability
    /// enabled (IRC), in slot `key`.
    fn websocket(
        listener: &TcpListener,
        key: usize,
        protocol: Protocol,
    ) -> (Connection<Session>, StdStream) {
        let (mut conn, client) = connection(listener, key, key as u32 + 1);
        let mut session = conn.session.take().unwrap();
        session = Session::new(session.id, session.peer(), session.nick, protocol);
        if let Some(irc) = session.irc.as_mut() {
            irc.caps = irc::Caps::default()
                .request(&irc::CAPABILITIES.join(" "))
                .unwrap();
        }
        let socket = Socket::new(session.peer(), protocol, std::time::Instant::now());
        conn.web = Some(Web::Socket(Box::new(socket)));
        conn.session = Some(session);
        (conn, client)
    }

    /// Every reply, echo, private message and farewell path, to a WebSocket of each
    /// dialect: what reaches the socket parses as whole frames, of the dialect's
    /// opcode, one line each without CR LF. And bytes framed for TCP are refused.
    #[test]
    fn every_path_to_a_websocket_is_framed() {
        let (shared, _poll) = one_shard();
        let delivery = Delivery::new(0, Arc::clone(&shared));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let kinds = [
            (Protocol::WebLine, 1),
            (Protocol::WebIrc, 1),
            (Protocol::WebIrcBinary, 2),
        ];
        let mut conns = Slab::new();
        let mut clients = Vec::new();
        for (key, (protocol, _)) in kinds.iter().enumerate() {
            let (conn, client) = websocket(&listener, key, *protocol);
            assert_eq!(conns.insert(Box::new(conn)), key);
            clients.push(client);
        }
        let (mut turn, mut outbound) = (Turn::default(), vec![Vec::new()]);
        let mut to_backplane = Vec::new();
        let grace = Duration::from_secs(1);
        let mut fx = Effects::new(
            &mut conns,
            &mut turn,
            &mut outbound,
            &mut to_backplane,
            1 << 20,
            grace,
        );
        let from = Nick::parse("someone").unwrap();
        let said = |notice| Event::Private {
            from: from.clone(),
            text: "private A->B".into(),
            notice,
        };
        let tagmsg = Event::PrivateTagMsg { from: from.clone() };
        let account = Some(Nick::parse("acct").unwrap());
        for key in 0..kinds.len() {
            let id = fx.session(key).unwrap().id;
            delivery.reply(&mut fx, key, &Event::Pong(Some("t".into())));
            for event in [said(false), said(true), tagmsg.clone()] {
                delivery.echo_private(&mut fx, key, "wrb", &event, Some("+draft/x=1"));
                let outgoing =
                    Outgoing::with_extras(event, Some("+draft/x=1"), account.clone(), None);
                delivery.deliver_to(&mut fx, id, outgoing);
            }
            let raw = Protocol::Irc.frame(&Arc::from(&b":x PRIVMSG y :z\r\n"[..]));
            assert!(!fx.queue(key, raw), "bytes framed for TCP are refused");
            delivery.farewell(&mut fx, key, &Event::Bye, CloseReason::Quit);
        }
        for (key, (protocol, opcode)) in kinds.iter().enumerate() {
            let mut wire = Vec::new();
            conns[key].send_queue.flush_to(&mut wire).unwrap();
            let (frames, used) = crate::protocol::websocket::server_frames(&wire);
            assert_eq!(
                used,
                wire.len(),
                "{protocol:?}: whole frames only: {wire:?}"
            );
            let data: Vec<_> = frames.iter().filter(|(op, _)| *op != 8).collect();
            let echoes = usize::from(protocol.speaks_irc()) * 6;
            assert!(data.len() >= 2 + echoes, "{protocol:?}: {frames:?}");
            for (op, payload) in data {
                assert_eq!(op, opcode, "{protocol:?}: {payload:?}");
                assert!(
                    !payload.is_empty() && !payload.contains(&b'\n'),
                    "{payload:?}"
                );
            }
        }
    }

    fn private(text: &str) -> Arc<Outgoing> {
        let from = Nick::parse("someone").unwrap();
        Outgoing::new(Event::Private {
            from,
            text: text.into(),
            notice: false,
        })
    }

    #[test]
    fn et6_a_message_for_a_closed_connection_never_reaches_the_slots_next_owner() {
        let (shared, _poll) = one_shard();
        let delivery = Delivery::new(0, Arc::clone(&shared));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Slab::new();
        let (mut turn, mut outbound) = (Turn::default(), vec![Vec::new()]);
        let (old_conn, _a) = connection(&listener, 0, 1);
        let old = old_conn.id;
        assert_eq!(conns.insert(Box::new(old_conn)), old.key());
        conns.remove(old.key()); // closed and reaped: the slot is free
        let (new_conn, _b) = connection(&listener, 0, 2);
        let new = new_conn.id;
        assert_eq!(
            conns.insert(Box::new(new_conn)),
            old.key(),
            "the slab reused the slot"
        );
        let grace = Duration::from_secs(1);
        let mut to_backplane = Vec::new();
        let mut fx = Effects::new(
            &mut conns,
            &mut turn,
            &mut outbound,
            &mut to_backplane,
            1 << 20,
            grace,
        );
        delivery.deliver_to(&mut fx, old, private("for the old owner"));
        assert_eq!(fx.deliveries, 0, "dropped: the generation does not match");
        delivery.deliver_to(&mut fx, new, private("for the new owner"));
        assert_eq!(fx.deliveries, 1);
        assert!(!conns[new.key()].send_queue.is_empty());
    }
}
