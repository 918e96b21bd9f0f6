//! THE event loop: one shard = one thread = one `mio::Poll` and the connections in it.
//!
//! Only the edge-triggered machinery lives here: *when* things run. What is done to
//! one connection (adopt, bytes to lines, flush, reap) is `conn_table.rs`; what a line
//! *means* is the chat's, reached through one door (`effects.rs`). One **turn**:
//!
//! 1. `poll`: a zero timeout if work was left over, else until the next tick or the
//!    first flood pause to end.
//! 2. `ShardState::drain_inbox` first, before any socket (ET-8); then each event:
//!    writable → flush; readable, read-closed or error → read (the read decides).
//! 3. `ShardState::on_readable` reads until `WouldBlock` (ET-1; for TLS, the session
//!    drained too: ET-9), at most `READS_PER_TURN` chunks; cut short, the key goes on
//!    `unfinished_reads`, read again this turn and the next ones (ET-2). A connection
//!    paused by flood control is not read; a timer brings it back (ET-10).
//! 4. `ShardState::end_turn`: pauses that ended, unfinished reads, the tick, the
//!    cross-shard batch (before any reply: ET-8), **flush each dirty connection once**
//!    (ET-3, ET-4), **reap** (ET-5), and what reaping produced.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::nonblocking::ReadOutcome;

use crate::server::close_reason::CloseReason;
use crate::server::config::{EVENTS_CAPACITY, INBOX_DRAIN_CAP, READ_CHUNK, READS_PER_TURN, TICK};
use crate::server::conn_table::ConnTable;
use crate::server::handler::Handler;
use crate::server::inbox::{Inbox, ShardMsg};
use crate::server::pauses::Pauses;
use crate::server::shared::Shared;
use crate::server::stats::bump;
use crate::server::token::{self, INBOX_WAKER};

/// A shard: its `Poll`, its inbox, and everything it owns.
#[derive(Debug)]
pub struct Shard<H: Handler> {
    poll: Poll,
    events: Events,
    state: ShardState<H>,
}

/// Everything a shard owns besides its `Poll` and events (split so that the loop can
/// borrow the events while handlers mutate the state).
#[derive(Debug)]
pub struct ShardState<H: Handler> {
    inbox: Inbox,
    /// The connections, the chat, and the turn's lists.
    table: ConnTable<H>,
    /// Connections whose reads the per-turn budget cut short (ET-2).
    unfinished_reads: VecDeque<usize>,
    /// Connections flood control paused (ET-10): the timer list that resumes them.
    pauses: Pauses,
    /// The one read buffer of the shard: connections own no read buffer.
    scratch: Vec<u8>,
    last_tick: Instant,
    /// Set when shutdown began: the time by which every connection must be closed.
    shutdown_deadline: Option<Instant>,
}

impl<H: Handler> Shard<H> {
    /// A shard with its own `Poll` (whose waker the `shared` handles already hold),
    /// handing its lines to `chat`.
    pub fn new(
        index: usize,
        poll: Poll,
        inbox: Inbox,
        shared: Arc<Shared>,
        chat: H,
    ) -> io::Result<Self> {
        let registry = poll.registry().try_clone()?;
        let state = ShardState {
            inbox,
            table: ConnTable::new(index, shared, registry, chat),
            unfinished_reads: VecDeque::new(),
            pauses: Pauses::default(),
            scratch: vec![0; READ_CHUNK],
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
        let index = self.state.table.index;
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
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("shard {index}: poll failed: {e}; closing its connections");
                self.state.table.close_all(CloseReason::Io);
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
            let stats = &self.state.table.shared.stats.shards[index];
            stats.count_turn(working - polling, working.elapsed());
        }
        log::debug!("shard {index} stopped");
    }
}

impl<H: Handler> ShardState<H> {
    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some() && self.table.conns.is_empty()
    }

    /// One event: writable → flush; readable, read-closed or error → read (a close is
    /// learned from the read, 0 or an error, never from a flag).
    fn on_event(&mut self, event: &mio::event::Event) {
        if event.token() == INBOX_WAKER {
            return bump(&self.table.shared.stats.shards[self.table.index].wakes_received);
        }
        let (_, key) = token::decode(event.token());
        if event.is_writable() {
            self.table.flush(key);
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
            .next_due(&self.table.conns, Instant::now())
            .map_or(tick, |due| due.min(tick))
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
                } => self.table.adopt(stream, peer, protocol, tls),
                ShardMsg::Shutdown => self.begin_shutdown(),
                ShardMsg::Limits(limits) => self.table.set_limits(limits),
                msg => self.table.with_chat(|chat, fx| chat.on_message(fx, msg)),
            }
        }
        let stats = &self.table.shared.stats.shards[self.table.index];
        stats.inbox_messages.fetch_add(taken as u64, Relaxed);
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
                .table
                .conns
                .get_mut(key)
                .filter(|c| c.is_open() && !c.is_paused())
            else {
                // Reaped earlier (a spurious event), closing, or paused: a paused
                // connection's bytes stay in the kernel and its timer comes back.
                return false;
            };
            let read = conn.read(scratch, &mut self.table.turn);
            if conn.transport.take_handshake_done() {
                self.table.shared.end_handshake();
                bump(&self.table.shared.stats.shards[self.table.index].tls_handshakes);
            }
            match read {
                Ok(ReadOutcome::Data(n)) => self.table.on_bytes(key, &scratch[..n]),
                Ok(ReadOutcome::WouldBlock) => return false,
                Ok(ReadOutcome::Eof) => {
                    // The client will send nothing more but may still read (a
                    // half-close, as `nc -N` does): flush what is queued, then close.
                    let grace = self.table.shared.config.shutdown_grace;
                    conn.drain(CloseReason::PeerClosed, grace, &mut self.table.turn);
                    return false;
                }
                Err(reason) => {
                    conn.close(reason, &mut self.table.turn);
                    return false;
                }
            }
        }
        true
    }

    /// ET-3: every connection that got output this turn is flushed exactly once.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.table.turn.dirty);
        for &key in &dirty {
            self.table.flush(key);
        }
        debug_assert!(self.table.turn.dirty.is_empty(), "flush never queues");
        dirty.clear();
        self.table.turn.dirty = dirty;
    }

    fn end_turn(&mut self) {
        let stats = &self.table.shared.stats.shards[self.table.index];
        self.pauses.take_new(&mut self.table.turn, stats);
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
        self.table.send_outbound();
        loop {
            self.flush_dirty();
            if self.table.turn.closing.is_empty() {
                break;
            }
            self.table.reap();
        }
        self.table.send_outbound();
    }

    /// ET-10: only a timer brings a paused connection back (`pauses.rs`): the due
    /// ones get the bytes held from their last chunk, then are read as if ready.
    fn resume_paused(&mut self, now: Instant) {
        for (key, held) in self.pauses.due(&mut self.table.conns, now) {
            if !held.is_empty() {
                self.table.on_bytes(key, &held);
            }
            self.on_readable(key);
        }
        let stats = &self.table.shared.stats.shards[self.table.index];
        self.pauses.take_new(&mut self.table.turn, stats);
    }

    /// Drain deadlines and the shutdown deadline here; idle and keepalive in the chat.
    fn on_tick(&mut self, now: Instant) {
        self.last_tick = now;
        self.table.expire(now);
        if !self.pauses.is_empty() {
            self.table.cut_flooders(&mut self.pauses, now);
        }
        self.table.with_chat(|chat, fx| chat.on_tick(fx, now));
        if self.shutdown_deadline.is_some_and(|end| now >= end) {
            self.table.close_all(CloseReason::Shutdown);
        }
    }

    /// Tells every client, then lets each drain for up to `--shutdown-grace`.
    fn begin_shutdown(&mut self) {
        let grace = self.table.shared.config.shutdown_grace;
        self.shutdown_deadline = Some(Instant::now() + grace);
        self.table.begin_shutdown();
    }
}
