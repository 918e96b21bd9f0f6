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
use mio::{Events, Interest, Poll, Registry};
use slab::Slab;

use crate::framing::LineFramer;
use crate::nonblocking::ReadOutcome;
use crate::protocol::outgoing::Protocol;

use super::backplane::BackplaneMsg;
use super::chat::Chat;
use super::config::{
    EVENTS_CAPACITY, INBOX_DRAIN_CAP, KEEPALIVE_IDLE, KEEPALIVE_PROBES, READ_CHUNK, READS_PER_TURN,
};
use super::connection::{CloseReason, Connection, Turn};
use super::effects::Effects;
use super::inbox::{Inbox, ShardMsg};
use super::shared::Shared;
use super::stats::bump;
use super::tls::Transport;
use super::token::{self, ConnId, INBOX_WAKER};

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
    paused: Vec<usize>,
    /// Buffer for measuring a paused connection's unread input (allocated on first use).
    peek: Vec<u8>,
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
            paused: Vec::new(),
            peek: Vec::new(),
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
        let now = Instant::now();
        let tick = TICK.saturating_sub(self.last_tick.elapsed());
        self.paused
            .iter()
            .filter_map(|&key| self.conns.get(key)?.paused_until)
            .map(|until| until.saturating_duration_since(now))
            .fold(tick, Duration::min)
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
        let Some(mut transport) = self.transport_for(stream, peer, tls) else {
            return self.release(peer, handshaking);
        };
        if let Err(e) = self
            .registry
            .register(transport.socket(), token, Interest::READABLE)
        {
            log::warn!("{peer}: cannot register connection: {e}");
            return self.release(peer, handshaking);
        }
        if let Err(e) = transport.socket().set_nodelay(self.shared.config.nodelay) {
            log::debug!("{peer}: set_nodelay: {e}");
        }
        // A peer that vanished (cable, crash, NAT timeout) is found by TCP keepalive
        // and reset by the kernel; the read error then closes it like any other.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_IDLE)
            .with_retries(KEEPALIVE_PROBES);
        if let Err(e) = socket2::SockRef::from(&*transport.socket()).set_tcp_keepalive(&keepalive) {
            log::debug!("{peer}: set_tcp_keepalive: {e}");
        }
        self.next_generation += 1;
        let id = ConnId {
            token,
            generation: self.next_generation,
        };
        let session = self.chat.open_session(id, peer, protocol);
        let max_line = self.shared.config.max_line_for(protocol);
        self.conns
            .insert(Connection::over(transport, session, max_line));
        self.shared.stats.shards[self.index].on_open();
        self.with_chat(|chat, fx| chat.on_adopted(fx, key));
    }

    /// The transport of a new connection: plain, or TLS with its handshake deadline.
    /// `None` if the connection cannot be taken (shutting down, TLS setup failed).
    fn transport_for(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Option<Transport> {
        if self.shutdown_deadline.is_some() {
            return None;
        }
        let Some(config) = tls else {
            return Some(Transport::Plain(stream));
        };
        let deadline = Instant::now() + self.shared.config.tls_handshake_timeout;
        Transport::tls(stream, config, deadline)
            .inspect_err(|e| log::warn!("{peer}: cannot start TLS: {e}"))
            .ok()
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
            let writes = conn.flush(sendq, &self.registry, &mut self.turn);
            self.shared.stats.shards[self.index]
                .writes
                .fetch_add(writes, Relaxed);
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
        self.take_new_pauses();
        if !self.paused.is_empty() {
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

    /// ET-10: a paused connection's edge was spent while it was paused (or its bytes
    /// arrived with no edge at all: they were already there), so nothing but this timer
    /// will bring it back. Due ones first get the lines held from their last chunk,
    /// then are read like any ready connection.
    fn resume_paused(&mut self, now: Instant) {
        let mut paused = std::mem::take(&mut self.paused);
        paused.retain(|&key| {
            let Some(conn) = self.conns.get_mut(key) else {
                return false; // reaped
            };
            match conn.paused_until {
                Some(until) if until > now => return true,
                Some(_) => conn.paused_until = None,
                None => return false, // a stale entry (the key was reused)
            }
            let held = std::mem::take(&mut conn.held);
            if !held.is_empty() {
                self.on_bytes(key, &held);
            }
            self.on_readable(key);
            false
        });
        paused.append(&mut self.paused);
        self.paused = paused;
        self.take_new_pauses();
    }

    /// Moves the connections paused since the last call onto the timer list.
    fn take_new_pauses(&mut self) {
        let stats = &self.shared.stats.shards[self.index];
        stats
            .flood_pauses
            .fetch_add(self.turn.paused.len() as u64, Relaxed);
        self.paused.append(&mut self.turn.paused);
    }

    /// Flood control's ceiling, checked on the tick: a paused connection whose unread
    /// input (held bytes plus what waits in the kernel, measured with a bounded
    /// `MSG_PEEK`) stays over `--flood-max-unread` for `--flood-unread-timeout` is
    /// told `ERR flood` and closed.
    fn check_flood_ceiling(&mut self, now: Instant) {
        let (limit, timeout) = (
            self.shared.config.flood_max_unread,
            self.shared.config.flood_unread_timeout,
        );
        let mut peek = std::mem::take(&mut self.peek);
        peek.resize(limit + 1, 0);
        for index in 0..self.paused.len() {
            let key = self.paused[index];
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.is_open()) else {
                continue;
            };
            let room = (limit + 1).saturating_sub(conn.held.len());
            let waiting = conn.transport.socket().peek(&mut peek[..room]).unwrap_or(0);
            if conn.held.len() + waiting <= limit {
                conn.over_unread_since = None;
                continue;
            }
            let since = *conn.over_unread_since.get_or_insert(now);
            if now.duration_since(since) >= timeout {
                self.with_chat(|chat, fx| chat.cut_flooder(fx, key));
            }
        }
        self.peek = peek;
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
                log::debug!("{} deregister: {e}", conn.session.peer);
            }
            let (peer, handshaking) = (conn.session.peer, conn.transport.is_handshaking());
            reason.log(&conn.session, self.shared.config.sendq);
            let tell = self.shutdown_deadline.is_none();
            self.with_chat(|chat, fx| chat.on_closed(fx, conn.session, reason.label(), tell));
            self.shared.stats.shards[self.index].on_close(reason);
            self.release(peer, handshaking);
        }
    }

    /// Drain deadlines and the shutdown deadline here; idle and keepalive in the chat.
    fn on_tick(&mut self, now: Instant) {
        self.last_tick = now;
        for (_, conn) in self.conns.iter_mut() {
            if let Some(reason) = conn.drain_expired(now) {
                conn.close(reason, &mut self.turn);
            } else if conn.transport.handshake_expired(now) {
                conn.close(CloseReason::TlsHandshakeTimeout, &mut self.turn);
            }
        }
        if !self.paused.is_empty() {
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
