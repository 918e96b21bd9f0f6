//! THE event loop: one shard = one thread = one `mio::Poll` and the connections in it.
//!
//! A shard owns its connections outright (a `Slab`, indexed by the key in each token),
//! so nothing here takes a lock except the few directory calls. One **turn** of the
//! loop (docs/DESIGN.md, "One shard turn"):
//!
//! 1. `poll` with a timeout: zero if work is left over from the last turn (the `ready`
//!    list or an inbox backlog), else up to the next tick.
//! 2. For each event: the inbox waker → `on_wake`; a connection → `on_writable`
//!    and/or `on_readable`. Error and HUP flags are hints only: a close is learned
//!    from `read` returning 0 or an error (A8).
//! 3. `on_readable` reads until `WouldBlock` (ET-1), but at most `READS_PER_TURN`
//!    chunks; a connection cut short by that budget goes on `ready` and is read again
//!    next turn, because the kernel will not send another edge for bytes it already
//!    reported (ET-2). Each complete line is parsed and applied by `relay`, which only
//!    *queues* output and marks recipients dirty.
//! 4. End of turn: service `ready`, run the tick if due, send the turn's batched
//!    messages to other shards with one wake each (before any reply, ET-8), **flush
//!    every dirty connection once** (ET-3) and adjust its interest (ET-4), **reap**
//!    closing connections (ET-5), and send what reaping produced.
//!
//! Every turn starts by draining the inbox, before any socket is read (ET-8).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry};
use slab::Slab;

use crate::framing::{FrameError, LineFramer};
use crate::nonblocking::{ReadOutcome, read_some};
use crate::protocol::irc::{self, MAX_IRC_LINE};
use crate::protocol::parse::parse_line;
use crate::protocol::{Event, ProtocolError, Refusal, RoomName, render};

use super::Shared;
use super::config::{EVENTS_CAPACITY, INBOX_DRAIN_CAP, READ_CHUNK, READS_PER_TURN};
use super::connection::{CloseReason, ConnState, Connection, FloodBucket, Queued, Turn};
use super::inbox::{Outgoing, Protocol, ShardMsg};
use super::rooms::{LocalRooms, home_shard};
use super::stats::bump;
use super::token::{self, ConnId, INBOX_WAKER};

/// How often a shard checks idle and draining connections.
const TICK: Duration = Duration::from_millis(250);

/// Protocol errors logged per connection before its further errors go unlogged (a
/// client spewing garbage must not turn into a log flood; it still gets every `ERR`).
const LOGGED_ERRORS_PER_CONNECTION: u8 = 5;

/// A shard: its `Poll`, its inbox, and everything it owns.
#[derive(Debug)]
pub struct Shard {
    poll: Poll,
    events: Events,
    inbox: Receiver<ShardMsg>,
    state: ShardState,
}

/// Everything a shard owns besides its `Poll` (split so that the event loop can borrow
/// the event list while handlers mutate the state).
#[derive(Debug)]
pub struct ShardState {
    /// This shard's index (the low bits of its tokens).
    pub(super) index: usize,
    /// Connections, by slab key.
    pub(super) conns: Slab<Connection>,
    /// Local room membership, for fan-out.
    pub(super) rooms: LocalRooms,
    /// Dirty and closing lists of the current turn.
    pub(super) turn: Turn,
    /// Messages for other shards produced this turn, by shard index.
    pub(super) outbound: Vec<Vec<ShardMsg>>,
    /// Server-wide state: config, directory, stats, shard handles.
    pub(super) shared: Arc<Shared>,
    /// Connections whose read budget ran out with data possibly left (ET-2).
    ready: VecDeque<usize>,
    /// The one read buffer of the shard: connections own no read buffer.
    scratch: Vec<u8>,
    /// Source of connection generations (ET-6).
    next_generation: u64,
    /// A clone of the `Poll`'s registry, to (re)register from handlers.
    registry: Registry,
    /// When the last tick ran.
    last_tick: Instant,
    /// Set when shutdown began: the time by which every connection must be closed.
    shutdown_deadline: Option<Instant>,
    /// True if the last `on_wake` stopped at `INBOX_DRAIN_CAP` with messages left.
    inbox_backlog: bool,
}

impl Shard {
    /// A shard with its own `Poll` (whose waker the `shared` handles already hold).
    pub fn new(
        index: usize,
        poll: Poll,
        inbox: Receiver<ShardMsg>,
        shared: Arc<Shared>,
    ) -> std::io::Result<Shard> {
        let registry = poll.registry().try_clone()?;
        let shards = shared.shards.len();
        Ok(Shard {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            inbox,
            state: ShardState {
                index,
                conns: Slab::new(),
                rooms: LocalRooms::default(),
                turn: Turn::default(),
                outbound: (0..shards).map(|_| Vec::new()).collect(),
                shared,
                ready: VecDeque::new(),
                scratch: vec![0; READ_CHUNK],
                next_generation: 0,
                registry,
                last_tick: Instant::now(),
                shutdown_deadline: None,
                inbox_backlog: false,
            },
        })
    }

    /// Runs turns until shutdown has closed every connection.
    pub fn run(mut self) {
        let index = self.state.index;
        log::debug!("shard {index} running");
        while !self.state.finished() {
            let timeout = self.state.poll_timeout();
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("shard {index}: poll failed: {e}; closing its connections");
                self.state.close_all(CloseReason::Io);
                self.state.end_turn();
                break;
            }
            // ET-8: the inbox first, before any socket. A message another shard sent
            // before a client could react to it is then handled before that reaction.
            // (A wake that arrives after this drain raises a new edge: nothing waits.)
            self.state.on_wake(&self.inbox);
            for event in self.events.iter() {
                if event.token() == INBOX_WAKER {
                    continue;
                }
                let (_, key) = token::decode(event.token());
                if event.is_writable() {
                    self.state.on_writable(key);
                }
                // Readable, read-closed and error all lead to a read: the read's result
                // (data, 0 = EOF, or the error) is what we act on, never the flag (A8).
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.state.on_readable(key);
                }
            }
            self.state.end_turn();
        }
        log::debug!("shard {index} stopped");
    }
}

impl ShardState {
    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some() && self.conns.is_empty()
    }

    /// Zero if work is pending from the last turn, else until the next tick.
    fn poll_timeout(&self) -> Duration {
        if !self.ready.is_empty() || self.inbox_backlog {
            return Duration::ZERO;
        }
        TICK.saturating_sub(self.last_tick.elapsed())
    }

    // ----- inbox --------------------------------------------------------------------

    /// Drains the inbox: wakes coalesce, so one wake may stand for many messages (ET-7).
    fn on_wake(&mut self, inbox: &Receiver<ShardMsg>) {
        self.inbox_backlog = false;
        for _ in 0..INBOX_DRAIN_CAP {
            match inbox.try_recv() {
                Ok(msg) => self.on_message(msg),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
        // Cap reached: poll with zero timeout and continue next turn, so sockets get
        // their share of this thread too.
        self.inbox_backlog = true;
    }

    fn on_message(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Adopt {
                stream,
                peer,
                protocol,
            } => self.adopt(stream, peer, protocol),
            ShardMsg::Sequence {
                room,
                except,
                outgoing,
                notice,
            } => self.sequence(&room, except, outgoing, notice),
            ShardMsg::Room {
                room,
                except,
                outgoing,
            } => self.deliver_local(&room, except, &outgoing),
            ShardMsg::Direct { to, outgoing } => self.deliver_to(to, outgoing),
            ShardMsg::Shutdown => self.begin_shutdown(),
        }
    }

    /// Registers a connection handed over by the acceptor and greets it. A line
    /// connection gets a guest nick, the lobby and a welcome line at once; an IRC
    /// connection gets a placeholder guest nick and waits for NICK/USER (`irc.rs`).
    fn adopt(&mut self, mut stream: TcpStream, peer: SocketAddr, protocol: Protocol) {
        if self.shutdown_deadline.is_some() {
            self.shared.release_slot();
            return;
        }
        let max_line = self.max_line(protocol);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = token::encode(self.index, key);
        if let Err(e) = self
            .registry
            .register(&mut stream, token, Interest::READABLE)
        {
            log::warn!("{peer}: cannot register connection: {e}");
            self.shared.release_slot();
            return;
        }
        let config = &self.shared.config;
        if let Err(e) = stream.set_nodelay(config.nodelay) {
            log::debug!("{peer}: set_nodelay: {e}");
        }
        self.next_generation += 1;
        let id = ConnId {
            token,
            generation: self.next_generation,
        };
        let lobby = RoomName::lobby();
        let start_room = (protocol == Protocol::Line).then_some(&lobby);
        let nick = self.shared.directory.register_guest(id, start_room);
        let now = Instant::now();
        let config = &self.shared.config;
        let mut conn = Connection::new(stream, id, peer, nick.clone(), max_line, now);
        conn.flood = config.flood.map(|limit| FloodBucket::new(limit, now));
        if protocol == Protocol::Irc {
            conn.irc = Some(Box::default());
        } else {
            conn.rooms.push(lobby.clone());
            conn.current = Some(lobby.clone());
        }
        entry.insert(conn);
        let stats = &self.shared.stats.shards[self.index];
        stats.connections.fetch_add(1, Relaxed);
        bump(&stats.adopted);
        log::info!(
            "{peer} connected ({protocol:?}) as {nick} (shard {})",
            self.index
        );
        if protocol == Protocol::Line {
            self.rooms.join(&lobby, key);
            self.reply(
                key,
                &Event::Welcome {
                    nick: nick.clone(),
                    room: lobby.clone(),
                },
            );
            self.announce(
                &lobby,
                Some(key),
                Event::Joined {
                    room: lobby.clone(),
                    nick,
                },
            );
        }
    }

    // ----- reading ------------------------------------------------------------------

    /// Reads what the connection has sent, under the per-turn budget (ET-1, ET-2).
    pub(super) fn on_readable(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let budget_spent = self.read_until_blocked(key, &mut scratch);
        self.scratch = scratch;
        if budget_spent {
            // ET-2: bytes may still sit in the kernel and no new edge will announce
            // them; come back to this connection next turn.
            self.ready.push_back(key);
        }
    }

    /// The drain loop. Ends in exactly one of: `WouldBlock` (drained), EOF, an error
    /// (both close), the connection no longer open, or the budget spent (returns true).
    fn read_until_blocked(&mut self, key: usize, scratch: &mut [u8]) -> bool {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                // A spurious event for a connection reaped earlier (mio#219).
                log::trace!("event for vacant key {key}");
                return false;
            };
            if !conn.is_open() {
                return false;
            }
            match read_some(&mut conn.stream, scratch) {
                Ok(ReadOutcome::Data(n)) => self.on_bytes(key, &scratch[..n]),
                Ok(ReadOutcome::WouldBlock) => return false,
                Ok(ReadOutcome::Eof) => {
                    // The client will send nothing more, but may still be reading
                    // (a half-close, as `nc -N` does): flush what is queued, then close.
                    let grace = self.shared.config.shutdown_grace;
                    conn.drain(CloseReason::PeerClosed, grace, &mut self.turn);
                    return false;
                }
                Err(e) => {
                    log::debug!("{} read failed: {e}", conn.peer);
                    conn.close(CloseReason::from_io(&e), &mut self.turn);
                    return false;
                }
            }
        }
        true
    }

    /// Splits a chunk into lines and handles each. The framer is taken out of the
    /// connection while it runs, because handling a line needs the whole shard.
    fn on_bytes(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // `LineFramer::new` allocates nothing: the placeholder is free.
        let placeholder = LineFramer::new(conn.framer.max_line());
        let mut framer = std::mem::replace(&mut conn.framer, placeholder);
        framer.feed(bytes, |line| {
            self.on_line(key, line);
            // Stop at once if that line closed the connection (e.g. `/quit`).
            self.conns.get(key).is_some_and(Connection::is_open)
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.framer = framer;
        }
    }

    /// One line from connection `key`: count it as activity, apply flood control,
    /// then hand it to its protocol.
    fn on_line(&mut self, key: usize, line: Result<&[u8], FrameError>) {
        let Some(protocol) = self.admit_line(key) else {
            return;
        };
        match (protocol, line) {
            (Protocol::Line, Ok(line)) => match parse_line(line) {
                Ok(Some(command)) => self.apply(key, command),
                Ok(None) => {}
                Err(error) => self.reject(key, error),
            },
            (Protocol::Irc, Ok(line)) => self.on_irc_line(key, line),
            (_, Err(FrameError::TooLong)) => {
                let max = self.max_line(protocol);
                self.reject(key, ProtocolError::LineTooLong { max });
            }
        }
    }

    /// Records activity and takes a flood-control token. Returns the connection's
    /// protocol, or `None` if the line is to be dropped (flood; told once per episode).
    fn admit_line(&mut self, key: usize) -> Option<Protocol> {
        let now = Instant::now();
        let flood = self.shared.config.flood;
        let conn = self.conns.get_mut(key)?;
        conn.last_active = now;
        if let Some(irc) = conn.irc.as_mut() {
            irc.ping_sent = None;
        }
        let protocol = conn.protocol();
        if let (Some(limit), Some(bucket)) = (flood, conn.flood.as_mut())
            && let Err(first_drop) = bucket.take(limit, now)
        {
            if first_drop {
                self.reject(key, ProtocolError::Flood);
            }
            return None;
        }
        Some(protocol)
    }

    /// The line limit of a protocol (IRC's is fixed by the RFC).
    fn max_line(&self, protocol: Protocol) -> usize {
        match protocol {
            Protocol::Line => self.shared.config.max_line,
            Protocol::Irc => MAX_IRC_LINE,
        }
    }

    /// Answers a client mistake with an `ERR` line, and logs the first few.
    pub(super) fn reject(&mut self, key: usize, error: ProtocolError) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.errors_logged < LOGGED_ERRORS_PER_CONNECTION {
                conn.errors_logged += 1;
                let more = if conn.errors_logged == LOGGED_ERRORS_PER_CONNECTION {
                    " (further errors from this connection are not logged)"
                } else {
                    ""
                };
                log::info!(
                    "{} {}: {}: {error}{more}",
                    conn.peer,
                    conn.nick,
                    error.code()
                );
            }
        }
        self.reply(key, &Event::Error(error));
    }

    // ----- delivering ---------------------------------------------------------------

    /// Queues `event` for one local connection (a reply to its own command),
    /// rendered in that connection's protocol.
    pub(super) fn reply(&mut self, key: usize, event: &Event) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let line = render_for(conn, event, &self.shared.config.server_name);
        if conn.queue(&line, self.shared.config.sendq, &mut self.turn) == Queued::Yes {
            bump(&self.shared.stats.shards[self.index].deliveries_out);
        }
    }

    /// Queues raw protocol bytes for one connection (IRC numerics built by `irc.rs`).
    pub(super) fn send_raw(&mut self, key: usize, text: String) {
        let line: Arc<[u8]> = Arc::from(text.into_bytes());
        if let Some(conn) = self.conns.get_mut(key) {
            conn.queue(&line, self.shared.config.sendq, &mut self.turn);
        }
    }

    /// Sends `event` to every member of `room` except `except` (a local key), in the
    /// room's one order: through the room's home shard (ET-8). The event is rendered
    /// once for all of them.
    pub(super) fn broadcast(&mut self, room: &RoomName, except: Option<usize>, event: Event) {
        self.publish(room, except, event, false);
    }

    /// Like [`Self::broadcast`] for join/leave/nick/quit notices, which are skipped in
    /// rooms larger than `--announce-max` (a 10 000-member lobby does not need
    /// 10 000 join lines per join).
    pub(super) fn announce(&mut self, room: &RoomName, except: Option<usize>, event: Event) {
        self.publish(room, except, event, true);
    }

    /// Hands a room event to the room's home shard, which alone decides its place in
    /// the room's order: this shard if it is the home, else one inbox message.
    fn publish(&mut self, room: &RoomName, except: Option<usize>, event: Event, notice: bool) {
        let except = except.and_then(|key| self.conns.get(key)).map(|c| c.id);
        let outgoing = Outgoing::new(event);
        let home = home_shard(room, self.outbound.len());
        if home == self.index {
            self.sequence(room, except, outgoing, notice);
        } else {
            self.outbound[home].push(ShardMsg::Sequence {
                room: room.clone(),
                except,
                outgoing,
                notice,
            });
        }
    }

    /// ET-8, on the room's home shard: local members get the event now, every other
    /// shard with members gets it in this turn's batch. Each peer's inbox is FIFO and
    /// only this shard feeds it the room's events, so every member on every shard sees
    /// the room in this order, and an answer (which must come back through here) can
    /// never overtake the line it answers.
    fn sequence(
        &mut self,
        room: &RoomName,
        except: Option<ConnId>,
        outgoing: Arc<Outgoing>,
        notice: bool,
    ) {
        let (mask, members) = self.shared.directory.reach(room);
        let limit = self.shared.config.announce_max;
        if notice && limit != 0 && members > limit {
            return;
        }
        self.deliver_local(room, except, &outgoing);
        let remote = mask & !(1u64 << self.index);
        for (shard, batch) in self.outbound.iter_mut().enumerate() {
            if remote & (1u64 << shard) != 0 {
                batch.push(ShardMsg::Room {
                    room: room.clone(),
                    except,
                    outgoing: Arc::clone(&outgoing),
                });
            }
        }
    }

    /// Fan-out on this shard: one `Arc` clone per member, no lock, no copy. Each
    /// protocol's bytes are rendered at most once, on first use.
    fn deliver_local(&mut self, room: &RoomName, except: Option<ConnId>, outgoing: &Outgoing) {
        let except = except
            .filter(|id| id.shard() == self.index)
            .map(ConnId::key);
        let members = self.rooms.members(room);
        let sendq = self.shared.config.sendq;
        let mut delivered = 0;
        for &key in members {
            if Some(key) == except {
                continue;
            }
            if let Some(conn) = self.conns.get_mut(key)
                && conn.queue(outgoing.bytes(conn.protocol()), sendq, &mut self.turn) == Queued::Yes
            {
                delivered += 1;
            }
        }
        let stats = &self.shared.stats.shards[self.index];
        stats.deliveries_out.fetch_add(delivered, Relaxed);
    }

    /// Delivers to one connection if it still exists *and* is the same connection
    /// (ET-6: a reused slab slot has a new generation).
    pub(super) fn deliver_to(&mut self, to: ConnId, outgoing: Arc<Outgoing>) {
        if to.shard() != self.index {
            self.outbound[to.shard()].push(ShardMsg::Direct { to, outgoing });
            return;
        }
        let sendq = self.shared.config.sendq;
        match self.conns.get_mut(to.key()) {
            Some(conn) if conn.id == to => {
                // A private message names its recipient in IRC, so it is rendered for
                // this one connection.
                let line = render_for(conn, &outgoing.event, &self.shared.config.server_name);
                if conn.queue(&line, sendq, &mut self.turn) == Queued::Yes {
                    bump(&self.shared.stats.shards[self.index].deliveries_out);
                }
            }
            _ => log::debug!("dropping a message for {to:?}, which has closed"),
        }
    }

    // ----- writing ------------------------------------------------------------------

    /// A writable event: flush what is queued (the rest of an earlier partial write).
    fn on_writable(&mut self, key: usize) {
        let sendq = self.shared.config.sendq;
        if let Some(conn) = self.conns.get_mut(key) {
            let writes = conn.flush(sendq, &self.registry, &mut self.turn);
            self.shared.stats.shards[self.index]
                .writes
                .fetch_add(writes, Relaxed);
        }
    }

    /// ET-3: every connection that got output this turn is flushed exactly once, with
    /// everything queued for it in one `write_vectored` series.
    fn flush_dirty(&mut self) {
        let sendq = self.shared.config.sendq;
        let mut dirty = std::mem::take(&mut self.turn.dirty);
        let mut writes = 0;
        for &key in &dirty {
            if let Some(conn) = self.conns.get_mut(key) {
                writes += conn.flush(sendq, &self.registry, &mut self.turn);
            }
        }
        self.shared.stats.shards[self.index]
            .writes
            .fetch_add(writes, Relaxed);
        debug_assert!(self.turn.dirty.is_empty(), "flush never queues");
        dirty.clear();
        self.turn.dirty = dirty;
    }

    // ----- end of turn ---------------------------------------------------------------

    fn end_turn(&mut self) {
        for _ in 0..self.ready.len() {
            if let Some(key) = self.ready.pop_front() {
                self.on_readable(key);
            }
        }
        if self.last_tick.elapsed() >= TICK {
            self.on_tick(Instant::now());
        }
        // ET-8: other shards get this turn's messages before our clients get this
        // turn's replies, so no client can act on a reply and overtake them.
        self.send_outbound();
        loop {
            self.flush_dirty();
            if self.turn.closing.is_empty() {
                break;
            }
            self.reap();
        }
        self.send_outbound();
    }

    /// Sends each peer shard the messages queued for it this turn, with one wake.
    fn send_outbound(&mut self) {
        for (shard, batch) in self.outbound.iter_mut().enumerate() {
            self.shared.shards[shard].send_batch(batch);
        }
    }

    /// ET-5: closed connections leave the slab only here, after every event of the
    /// turn has been handled.
    fn reap(&mut self) {
        let closing = std::mem::take(&mut self.turn.closing);
        for key in closing {
            if let Some(conn) = self.conns.try_remove(key) {
                self.retire(conn);
            }
        }
    }

    /// Forgets a connection everywhere, tells its rooms, counts and logs the reason.
    fn retire(&mut self, mut conn: Connection) {
        let reason = match conn.state {
            ConnState::Closing(reason) => reason,
            _ => CloseReason::Io,
        };
        if let Err(e) = self.registry.deregister(&mut conn.stream) {
            log::debug!("{} deregister: {e}", conn.peer);
        }
        // Quits are not announced during shutdown: everyone is leaving.
        let tell = self.shutdown_deadline.is_none();
        let rooms = std::mem::take(&mut conn.rooms);
        self.depart(
            conn.key(),
            conn.id,
            &conn.nick,
            &rooms,
            reason.label(),
            tell,
        );
        self.shared.directory.remove(conn.id);
        let stats = &self.shared.stats.shards[self.index];
        stats.connections.fetch_sub(1, Relaxed);
        bump(&stats.closes[reason.index()]);
        self.shared.release_slot();
        match reason {
            CloseReason::SlowConsumer => log::warn!(
                "{} {} cut: slow consumer (send queue passed {} bytes)",
                conn.peer,
                conn.nick,
                self.shared.config.sendq
            ),
            _ => log::info!("{} {} closed: {}", conn.peer, conn.nick, reason.label()),
        }
    }

    /// Idle timeouts, drain deadlines and the shutdown deadline.
    fn on_tick(&mut self, now: Instant) {
        self.last_tick = now;
        let idle_timeout = self.shared.config.idle_timeout;
        let grace = self.shared.config.shutdown_grace;
        let config = &self.shared.config;
        let idle_notice = Event::Closing(Refusal::IdleTimeout);
        for (_, conn) in self.conns.iter_mut() {
            if let Some(reason) = conn.drain_expired(now) {
                conn.close(reason, &mut self.turn);
            } else if conn.irc.is_some() {
                // IRC keepalive: PING after `--irc-ping` of silence; no answer within
                // `--irc-pong-timeout` closes with "Ping timeout".
                match keepalive(conn, now, config.irc_ping, config.irc_pong_timeout) {
                    Keepalive::Fine => {}
                    Keepalive::Ping => {
                        let ping = format!("PING :{}\r\n", config.server_name);
                        conn.push(Arc::from(ping.into_bytes()), &mut self.turn);
                    }
                    Keepalive::Dead => {
                        log::info!("{} {} ping timeout", conn.peer, conn.nick);
                        let line = render_for(conn, &idle_notice, &config.server_name);
                        conn.push(line, &mut self.turn);
                        conn.drain(CloseReason::IdleTimeout, grace, &mut self.turn);
                    }
                }
            } else if let Some(timeout) = idle_timeout
                && conn.is_idle(now, timeout)
            {
                log::info!("{} {} idle for {timeout:?}", conn.peer, conn.nick);
                conn.push(render::line(&idle_notice), &mut self.turn);
                conn.drain(CloseReason::IdleTimeout, grace, &mut self.turn);
            }
        }
        if self
            .shutdown_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            self.close_all(CloseReason::Shutdown);
        }
    }

    /// Tells every client, then lets each drain for up to `--shutdown-grace`.
    fn begin_shutdown(&mut self) {
        let grace = self.shared.config.shutdown_grace;
        self.shutdown_deadline = Some(Instant::now() + grace);
        for (_, conn) in self.conns.iter_mut() {
            if conn.is_open() {
                let notice =
                    render_for(conn, &Event::ShuttingDown, &self.shared.config.server_name);
                conn.push(notice, &mut self.turn);
            }
            conn.drain(CloseReason::Shutdown, grace, &mut self.turn);
        }
    }

    fn close_all(&mut self, reason: CloseReason) {
        for (_, conn) in self.conns.iter_mut() {
            conn.close(reason, &mut self.turn);
        }
    }
}

/// `event` in `conn`'s protocol (IRC replies are addressed to the connection's nick).
fn render_for(conn: &Connection, event: &Event, server_name: &str) -> Arc<[u8]> {
    match conn.protocol() {
        Protocol::Line => render::line(event),
        Protocol::Irc => Arc::from(irc::reply(event, server_name, conn.nick.as_str()).into_bytes()),
    }
}

/// What the IRC keepalive should do for a connection now.
enum Keepalive {
    Fine,
    Ping,
    Dead,
}

fn keepalive(conn: &mut Connection, now: Instant, ping: Duration, timeout: Duration) -> Keepalive {
    if !conn.is_open() {
        return Keepalive::Fine;
    }
    let Some(irc) = conn.irc.as_mut() else {
        return Keepalive::Fine;
    };
    match irc.ping_sent {
        Some(sent) if now.duration_since(sent) >= timeout => Keepalive::Dead,
        Some(_) => Keepalive::Fine,
        None if now.duration_since(conn.last_active) >= ping => {
            irc.ping_sent = Some(now);
            Keepalive::Ping
        }
        None => Keepalive::Fine,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::sync::atomic::AtomicUsize;

    use mio::Waker;

    use super::*;
    use crate::protocol::Nick;
    use crate::server::directory::Directory;
    use crate::server::inbox::ShardHandle;
    use crate::server::stats::Stats;
    use crate::server::{ServerConfig, Shared};

    /// A one-shard server state driven by hand, and a listener to make sockets with.
    fn lone_shard() -> (Shard, TcpListener) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), INBOX_WAKER).unwrap();
        let (handle, inbox) = ShardHandle::new(Arc::new(waker));
        let config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        let shared = Arc::new(Shared {
            config,
            directory: Directory::new(),
            stats: Stats::new(1),
            shards: vec![handle],
            live: AtomicUsize::new(8),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        (Shard::new(0, poll, inbox, shared).unwrap(), listener)
    }

    /// Connects a client and adopts the server side; returns the client and the id.
    fn adopt(shard: &mut Shard, listener: &TcpListener) -> (StdStream, ConnId) {
        let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        server_side.set_nonblocking(true).unwrap();
        shard
            .state
            .adopt(TcpStream::from_std(server_side), peer, Protocol::Line);
        let newest = shard.state.next_generation;
        let (_, conn) = shard
            .state
            .conns
            .iter()
            .find(|(_, c)| c.id.generation == newest)
            .unwrap();
        (client, conn.id)
    }

    #[test]
    fn et6_a_message_for_a_closed_connection_never_reaches_the_slots_next_owner() {
        let (mut shard, listener) = lone_shard();
        let (_a, old) = adopt(&mut shard, &listener);
        shard.state.end_turn();
        shard.state.conns[old.key()].close(CloseReason::Reset, &mut shard.state.turn);
        shard.state.end_turn(); // reaped: the slot is free
        let (_c, new) = adopt(&mut shard, &listener);
        shard.state.end_turn(); // welcome flushed: the queue is empty
        assert_eq!(new.key(), old.key(), "the slab reused the slot");
        assert_ne!(new, old);
        let private = |text: &str| {
            Outgoing::new(Event::Private {
                from: Nick::parse("someone").unwrap(),
                text: text.into(),
                notice: false,
            })
        };
        shard.state.deliver_to(old, private("for the old owner"));
        assert!(shard.state.conns[new.key()].send_queue.is_empty());
        shard.state.deliver_to(new, private("for the new owner"));
        assert!(!shard.state.conns[new.key()].send_queue.is_empty());
    }
}
