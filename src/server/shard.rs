//! THE event loop: one shard = one thread = one `mio::Poll` and the connections in it.
//!
//! This file is only the edge-triggered machinery; what a line *means* is the chat's
//! business (`chat.rs`), reached through one door, [`Effects`]. One **turn**:
//!
//! 1. `poll`, with a zero timeout if work was left over (reads the budget cut short,
//!    an inbox backlog), else up to the next tick.
//! 2. [`ShardState::drain_inbox`] first, before any socket is read (ET-8), then for
//!    each event: writable → flush; readable, read-closed or error → read. The flags
//!    are hints; the read's result (data, EOF, error) is the truth.
//! 3. [`ShardState::on_readable`] reads until `WouldBlock` (ET-1), at most
//!    `READS_PER_TURN` chunks; a connection cut short goes on `unfinished_reads` and is
//!    read again in [`ShardState::end_turn`] of the *same* turn, and after that on the
//!    next turns (ET-2). Each complete line goes to the chat, which only queues.
//!    A TLS connection reads through its session (ET-9: plaintext rustls still holds
//!    counts as unread); a connection paused by flood control is not read at all.
//!    A web connection's bytes are an HTTP request head until it is answered or
//!    upgraded, then WebSocket frames whose messages are the lines (`web.rs`).
//! 4. [`ShardState::end_turn`]: paused connections whose time has come (ET-10: a
//!    timer, not an edge, brings them back), the unfinished reads, the tick if due, the turn's
//!    cross-shard batch (one wake per peer, before any reply leaves: ET-8), **flush
//!    every dirty connection once** (ET-3, interest updated: ET-4), **reap** closed
//!    connections (ET-5), and send what reaping produced.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Registry};
use slab::Slab;

use crate::framing::LineFramer;
use crate::nonblocking::ReadOutcome;
use crate::protocol::outgoing::Protocol;

use super::backplane::BackplaneMsg;
use super::chat::Chat;
use super::config::{EVENTS_CAPACITY, INBOX_DRAIN_CAP, READ_CHUNK, READS_PER_TURN};
use super::connection::{CloseReason, ConnState, Connection, Turn};
use super::effects::Effects;
use super::inbox::{Inbox, ShardMsg};
use super::pauses::Pauses;
use super::shared::Shared;
use super::stats::bump;
use super::tls::Transport;
use super::token::{self, ConnId, INBOX_WAKER};
use super::web::{FrameAction, Web};

/// How often a shard checks idle and draining connections.
const TICK: Duration = Duration::from_millis(250);

/// A shard: its `Poll`, its inbox, and everything it owns.
#[derive(Debug)]
pub struct Shard {
    poll: Poll,
    events: Events,
    state: ShardState,
}

/// Everything a shard owns besides its `Poll` and event list (split so that the loop
/// can borrow the events while handlers mutate the state).
#[derive(Debug)]
pub struct ShardState {
    index: usize,
    inbox: Inbox,
    conns: Slab<Connection>,
    /// The chat half: sessions' meaning, rooms, delivery.
    chat: Chat,
    /// Dirty and closing lists of the current turn.
    turn: Turn,
    /// Messages for other shards produced this turn, by shard index.
    outbound: Vec<Vec<ShardMsg>>,
    /// Messages for the cluster backplane produced this turn.
    to_backplane: Vec<BackplaneMsg>,
    shared: Arc<Shared>,
    /// Connections whose reads the per-turn budget cut short (ET-2).
    unfinished_reads: VecDeque<usize>,
    /// Connections flood control paused (ET-10): the timer list that resumes them.
    pauses: Pauses,
    /// The one read buffer of the shard: connections own no read buffer.
    scratch: Vec<u8>,
    /// Source of connection generations (ET-6): counts adoptions on this shard.
    next_generation: u64,
    registry: Registry,
    last_tick: Instant,
    /// Set when shutdown began: the time by which every connection must be closed.
    shutdown_deadline: Option<Instant>,
}

impl Shard {
    /// A shard with its own `Poll` (whose waker the `shared` handles already hold).
    pub fn new(
        index: usize,
        poll: Poll,
        inbox: Inbox,
        shared: Arc<Shared>,
    ) -> std::io::Result<Shard> {
        let registry = poll.registry().try_clone()?;
        let state = ShardState {
            index,
            inbox,
            conns: Slab::new(),
            chat: Chat::new(index, Arc::clone(&shared)),
            turn: Turn::default(),
            outbound: (0..shared.shards.len()).map(|_| Vec::new()).collect(),
            to_backplane: Vec::new(),
            shared,
            unfinished_reads: VecDeque::new(),
            pauses: Pauses::default(),
            scratch: vec![0; READ_CHUNK],
            next_generation: 0,
            registry,
            last_tick: Instant::now(),
            shutdown_deadline: None,
        };
        Ok(Shard {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            state,
        })
    }

    /// Runs turns until shutdown has closed every connection.
    pub fn run(mut self) {
        let index = self.state.index;
        while !self.state.finished() {
            let mut timeout = self.state.poll_timeout();
            if !timeout.is_zero() && !self.state.inbox.park() {
                timeout = Duration::ZERO;
            }
            let polling = Instant::now();
            let polled = self.poll.poll(&mut self.events, Some(timeout));
            self.state.inbox.unpark();
            let working = Instant::now();
            if let Err(e) = polled {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("shard {index}: poll failed: {e}; closing its connections");
                self.state.close_all(CloseReason::Io);
                self.state.end_turn();
                break;
            }
            // ET-8: the inbox first, before any socket. (A wake that arrives after this
            // drain raises a new edge: nothing waits.)
            self.state.drain_inbox();
            for event in self.events.iter() {
                self.state.on_event(event);
            }
            self.state.end_turn();
            let stats = &self.state.shared.stats.shards[index];
            stats.count_turn(working - polling, working.elapsed());
        }
        log::debug!("shard {index} stopped");
    }
}

impl ShardState {
    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some() && self.conns.is_empty()
    }

    /// One event: writable → flush; readable, read-closed or error → read (a close is
    /// learned from the read, 0 or an error, never from a flag).
    fn on_event(&mut self, event: &mio::event::Event) {
        if event.token() == INBOX_WAKER {
            return bump(&self.shared.stats.shards[self.index].wakes_received);
        }
        let (_, key) = token::decode(event.token());
        if event.is_writable() {
            self.flush(key);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.on_readable(key);
        }
    }

    /// Zero if work was left over; else until the next tick or the earliest paused
    /// connection's resume time, whichever comes first (ET-10).
    fn poll_timeout(&self) -> Duration {
        if !self.unfinished_reads.is_empty() || self.inbox.has_backlog() {
            return Duration::ZERO;
        }
        let tick = TICK.saturating_sub(self.last_tick.elapsed());
        self.pauses
            .next_due(&self.conns, Instant::now())
            .map_or(tick, |due| due.min(tick))
    }

    /// Calls the chat through its one door, an [`Effects`] over this shard's
    /// connections and turn lists, and counts what it queued (once per call).
    fn with_chat<R>(&mut self, call: impl FnOnce(&mut Chat, &mut Effects<'_>) -> R) -> R {
        let config = &self.shared.config;
        let (sendq, grace) = (config.sendq, config.shutdown_grace);
        let conns = &mut self.conns;
        let (turn, outbound) = (&mut self.turn, &mut self.outbound);
        let mut fx = Effects::new(conns, turn, outbound, &mut self.to_backplane, sendq, grace);
        let result = call(&mut self.chat, &mut fx);
        let stats = &self.shared.stats.shards[self.index];
        stats.deliveries_out.fetch_add(fx.deliveries, Relaxed);
        result
    }

    /// Drains the inbox until empty, since wakes coalesce (ET-7), or until the cap, so
    /// sockets get their share of the thread too (then polls with zero timeout).
    fn drain_inbox(&mut self) {
        let mut taken = 0;
        while let Some(msg) = self.inbox.next(taken, INBOX_DRAIN_CAP) {
            taken += 1;
            match msg {
                ShardMsg::Adopt {
                    stream,
                    peer,
                    protocol,
                    tls,
                } => self.adopt(stream, peer, protocol, tls),
                ShardMsg::Shutdown => self.begin_shutdown(),
                msg => self.with_chat(|chat, fx| chat.on_message(fx, msg)),
            }
        }
        let stats = &self.shared.stats.shards[self.index];
        stats.inbox_messages.fetch_add(taken as u64, Relaxed);
    }

    /// Registers a socket handed over by the acceptor and lets the chat greet it.
    fn adopt(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let key = self.conns.vacant_entry().key();
        let token = token::encode(self.index, key);
        let handshaking = tls.is_some();
        if self.shutdown_deadline.is_some() {
            return self.release(peer, handshaking);
        }
        let config = &self.shared.config;
        let deadline = Instant::now() + config.tls_handshake_timeout;
        let transport =
            match Transport::open(stream, tls, deadline, &self.registry, token, config.nodelay) {
                Ok(transport) => transport,
                Err(e) => {
                    log::warn!("{peer}: cannot adopt the connection: {e}");
                    return self.release(peer, handshaking);
                }
            };
        self.next_generation += 1;
        let id = ConnId {
            token,
            generation: self.next_generation,
        };
        self.shared.stats.shards[self.index].on_open(protocol);
        if protocol == Protocol::Http {
            // Not a chat connection yet: no session until it upgrades (web.rs).
            let deadline = Instant::now() + self.shared.config.http_timeout;
            self.conns
                .insert(Connection::http(transport, id, peer, deadline));
            return;
        }
        let session = self.chat.open_session(id, peer, protocol);
        let max_line = self.shared.config.max_line_for(protocol);
        self.conns
            .insert(Connection::over(transport, session, max_line));
        self.with_chat(|chat, fx| chat.on_adopted(fx, key));
    }

    /// Bytes of a web connection: a request head until it is answered or upgraded.
    /// The upgrade is this connection's adoption by the chat, as `adopt` is for the
    /// other listeners; what followed the head is already frames.
    fn on_request(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some((response, protocol, rest)) =
            conn.read_request(bytes, &self.shared, &mut self.turn)
        else {
            return;
        };
        let session = self.chat.open_session(conn.id, conn.peer, protocol);
        let max_line = self.shared.config.max_line_for(protocol);
        conn.upgrade(response, session, max_line, &mut self.turn);
        self.shared.stats.shards[self.index].on_upgrade(protocol);
        self.with_chat(|chat, fx| chat.on_adopted(fx, key));
        if !rest.is_empty() {
            self.on_frames(key, &rest);
        }
    }

    /// Bytes of a WebSocket: each complete message is a line for the chat; pings
    /// are answered; a close or a violation queues a close frame and drains. The
    /// decoder is taken out while the chat runs (it may touch any connection); if
    /// flood control pauses the connection, the bytes not yet decoded wait in
    /// `held`, as the line framer's do (ET-10).
    fn on_frames(&mut self, key: usize, bytes: &[u8]) {
        let Some(Some(Web::Socket(socket))) = self.conns.get_mut(key).map(|c| c.web.as_mut())
        else {
            return;
        };
        let mut decoder = std::mem::take(&mut socket.decoder);
        let binary_ok = socket.binary_ok();
        decoder.feed(bytes);
        let now = Instant::now();
        while let Some(conn) = self
            .conns
            .get_mut(key)
            .filter(|c| c.is_open() && !c.is_paused())
        {
            let Some(Web::Socket(socket)) = conn.web.as_mut() else {
                break;
            };
            let unit = match decoder.next(conn.framer.max_line(), binary_ok) {
                Ok(None) => break,
                Ok(Some(unit)) => Ok(unit),
                Err(violation) => Err(violation),
            };
            match socket.act(unit, now) {
                FrameAction::Line(line) => {
                    self.with_chat(|chat, fx| chat.on_line(fx, key, Ok(line)))
                }
                FrameAction::Send(bytes) => conn.push(bytes, &mut self.turn),
                FrameAction::Close(frame, reason) => {
                    if let Some(frame) = frame {
                        conn.push(frame, &mut self.turn);
                    }
                    let grace = self.shared.config.shutdown_grace;
                    conn.drain(reason, grace, &mut self.turn);
                }
                FrameAction::Nothing => {}
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.is_open() && conn.is_paused() {
                conn.held.extend(decoder.take_unparsed());
            }
            if let Some(Web::Socket(socket)) = conn.web.as_mut() {
                socket.decoder = decoder;
            }
        }
    }

    /// Gives back what the acceptor reserved for a connection that is going away.
    fn release(&self, peer: SocketAddr, handshaking: bool) {
        if handshaking {
            self.shared.end_handshake();
        }
        self.shared.release(peer.ip());
    }

    /// Reads what the connection has sent, under the per-turn budget (ET-1, ET-2).
    fn on_readable(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if self.read_until_blocked(key, &mut scratch) {
            // ET-2: bytes may still sit in the kernel and no new edge will announce
            // them; come back to this connection.
            self.unfinished_reads.push_back(key);
        }
        self.scratch = scratch;
    }

    /// The drain loop. Ends in exactly one of: `WouldBlock` (drained; for TLS, the
    /// session empty too: ET-9), EOF, an error (both close), the connection no longer
    /// open or paused by flood control, or the budget spent (returns true).
    fn read_until_blocked(&mut self, key: usize, scratch: &mut [u8]) -> bool {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self
                .conns
                .get_mut(key)
                .filter(|c| c.is_open() && !c.is_paused())
            else {
                // Reaped earlier (a spurious event), closing, or paused: a paused
                // connection's bytes stay in the kernel and its timer comes back.
                return false;
            };
            let read = conn.read(scratch, &mut self.turn);
            if conn.transport.take_handshake_done() {
                self.shared.end_handshake();
                bump(&self.shared.stats.shards[self.index].tls_handshakes);
            }
            match read {
                Ok(ReadOutcome::Data(n)) => self.on_bytes(key, &scratch[..n]),
                Ok(ReadOutcome::WouldBlock) => return false,
                Ok(ReadOutcome::Eof) => {
                    // The client will send nothing more but may still read (a
                    // half-close, as `nc -N` does): flush what is queued, then close.
                    let grace = self.shared.config.shutdown_grace;
                    conn.drain(CloseReason::PeerClosed, grace, &mut self.turn);
                    return false;
                }
                Err(reason) => {
                    conn.close(reason, &mut self.turn);
                    return false;
                }
            }
        }
        true
    }

    /// Splits a chunk into lines and hands each to the chat. The framer is taken out
    /// of the connection while it runs, because the chat may touch any connection.
    /// If a line makes flood control pause the connection, the rest of the chunk is
    /// held in the connection until the pause ends (ET-10).
    fn on_bytes(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.web {
            Some(Web::Http(_)) => return self.on_request(key, bytes),
            Some(Web::Socket(_)) => return self.on_frames(key, bytes),
            None => {}
        }
        let placeholder = LineFramer::new(conn.framer.max_line()); // allocates nothing
        let mut framer = std::mem::replace(&mut conn.framer, placeholder);
        let consumed = self.with_chat(|chat, fx| {
            framer.feed(bytes, |line| {
                chat.on_line(fx, key, line);
                // Stop at once if that line closed it (`/quit`) or paused it.
                fx.is_open(key) && !fx.is_paused(key)
            })
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.framer = framer;
            if conn.is_open() && consumed < bytes.len() {
                conn.held.extend_from_slice(&bytes[consumed..]);
            }
        }
    }

    /// Flushes one connection (a writable event, or the end-of-turn flush).
    fn flush(&mut self, key: usize) {
        let sendq = self.shared.config.sendq;
        if let Some(conn) = self.conns.get_mut(key) {
            let queued = conn.send_queue.queued_bytes();
            let writes = conn.flush(sendq, &self.registry, &mut self.turn);
            let stats = &self.shared.stats.shards[self.index];
            stats.writes.fetch_add(writes, Relaxed);
            // What left the queue went to the socket, unless a cut cleared it.
            if !matches!(conn.state, ConnState::Closing(_)) {
                let sent = queued.saturating_sub(conn.send_queue.queued_bytes());
                stats.bytes_out.fetch_add(sent as u64, Relaxed);
            }
        }
    }

    /// ET-3: every connection that got output this turn is flushed exactly once.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.turn.dirty);
        for &key in &dirty {
            self.flush(key);
        }
        debug_assert!(self.turn.dirty.is_empty(), "flush never queues");
        dirty.clear();
        self.turn.dirty = dirty;
    }

    fn end_turn(&mut self) {
        self.pauses
            .take_new(&mut self.turn, &self.shared.stats.shards[self.index]);
        if !self.pauses.is_empty() {
            self.resume_paused(Instant::now());
        }
        for _ in 0..self.unfinished_reads.len() {
            if let Some(key) = self.unfinished_reads.pop_front() {
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

    /// ET-10: only a timer brings a paused connection back (`pauses.rs`): the due
    /// ones get the bytes held from their last chunk, then are read as if ready.
    fn resume_paused(&mut self, now: Instant) {
        for key in self.pauses.due(&mut self.conns, now) {
            let held = self.conns.get_mut(key).map(|c| std::mem::take(&mut c.held));
            if let Some(held) = held.filter(|held| !held.is_empty()) {
                self.on_bytes(key, &held);
            }
            self.on_readable(key);
        }
        self.pauses
            .take_new(&mut self.turn, &self.shared.stats.shards[self.index]);
    }

    /// Flood control's hard ceiling, on the tick: cut who kept too much unread.
    fn check_flood_ceiling(&mut self, now: Instant) {
        let config = &self.shared.config;
        let (limit, timeout) = (config.flood_max_unread, config.flood_unread_timeout);
        for key in self
            .pauses
            .over_ceiling(&mut self.conns, now, limit, timeout)
        {
            self.with_chat(|chat, fx| chat.cut_flooder(fx, key));
        }
    }

    /// Sends each peer shard the messages queued for it this turn, with one wake.
    fn send_outbound(&mut self) {
        let stats = &self.shared.stats.shards[self.index];
        for (shard, batch) in self.outbound.iter_mut().enumerate() {
            let sent = self.shared.shards[shard].send_batch(batch);
            stats.cross_shard.fetch_add(sent.messages, Relaxed);
            stats.wakes_sent.fetch_add(u64::from(sent.woke), Relaxed);
        }
        match &self.shared.backplane {
            Some(backplane) => backplane.send_batch(&mut self.to_backplane),
            None => self.to_backplane.clear(),
        }
    }

    /// ET-5: closed connections leave the slab only here, after every event of the
    /// turn has been handled; the chat then takes them out of its rooms.
    fn reap(&mut self) {
        for key in std::mem::take(&mut self.turn.closing) {
            let Some(mut conn) = self.conns.try_remove(key) else {
                continue;
            };
            let reason = conn.close_reason();
            if !matches!(reason, CloseReason::Reset | CloseReason::Io) {
                conn.transport.say_goodbye();
            }
            if let Err(e) = self.registry.deregister(conn.transport.socket()) {
                log::debug!("{} deregister: {e}", conn.peer);
            }
            let (peer, handshaking) = (conn.peer, conn.transport.is_handshaking());
            reason.log(&conn, self.shared.config.sendq);
            let protocol = conn
                .session
                .as_ref()
                .map_or(Protocol::Http, |s| s.protocol());
            let tell = self.shutdown_deadline.is_none();
            if let Some(session) = conn.session.take() {
                self.with_chat(|chat, fx| chat.on_closed(fx, session, reason.label(), tell));
            }
            self.shared.stats.shards[self.index].on_close(reason, protocol);
            self.release(peer, handshaking);
        }
    }

    /// Drain deadlines and the shutdown deadline here; idle and keepalive in the chat.
    fn on_tick(&mut self, now: Instant) {
        self.last_tick = now;
        let (ping, grace) = (
            self.shared.config.ws_ping,
            self.shared.config.shutdown_grace,
        );
        for (_, conn) in self.conns.iter_mut() {
            if let Some(reason) = conn.drain_expired(now) {
                conn.close(reason, &mut self.turn);
            } else if conn.transport.handshake_expired(now) {
                conn.close(CloseReason::TlsHandshakeTimeout, &mut self.turn);
            } else if conn.web.is_some() {
                conn.check_web_timers(now, ping, grace, &mut self.turn);
            }
        }
        if !self.pauses.is_empty() {
            self.check_flood_ceiling(now);
        }
        self.with_chat(|chat, fx| chat.on_tick(fx, now));
        if self.shutdown_deadline.is_some_and(|end| now >= end) {
            self.close_all(CloseReason::Shutdown);
        }
    }

    /// Tells every client, then lets each drain for up to `--shutdown-grace`.
    fn begin_shutdown(&mut self) {
        let grace = self.shared.config.shutdown_grace;
        self.shutdown_deadline = Some(Instant::now() + grace);
        self.with_chat(|chat, fx| chat.begin_shutdown(fx));
        for (_, conn) in self.conns.iter_mut() {
            conn.drain(CloseReason::Shutdown, grace, &mut self.turn);
        }
    }

    fn close_all(&mut self, reason: CloseReason) {
        for (_, conn) in self.conns.iter_mut() {
            conn.close(reason, &mut self.turn);
        }
    }
}
