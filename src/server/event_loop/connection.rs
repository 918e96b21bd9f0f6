//! Per-connection state, owned by exactly one shard thread.
//!
//! A [`Connection`] is a socket plus the little state the event loop needs between
//! events: the unfinished line ([`LineFramer`]), the lines waiting to be written
//! ([`SendQueue`]), and where it is in its life ([`ConnState`]).
//! It is kept small on purpose: an idle connection owns no buffer (reads go into the
//! shard's scratch buffer; empty queues do not allocate), which is what lets one
//! process hold tens of thousands of them.
//!
//! Life of a connection:
//!
//! ```text
//!   Open ──/quit, EOF, idle, shutdown──▶ Draining ──flushed or deadline──▶ Closing
//!     │                                                                     ▲
//!     └── reset, IO error, slow consumer ───────────────────────────────────┘
//! ```
//!
//! EOF only says the client will send nothing more; it may still be reading (a
//! half-close, as `nc -N` does at the end of its input), so it drains: what was
//! queued for it is flushed before the close.
//!
//! `Closing` connections are only *marked* here; the shard reaps them at the end of its
//! turn (ET-5), so nothing is removed from the slab while events or members are being
//! iterated, and one connection's failure never touches another's control flow.
//!
//! The chat's view of the connection (nick, rooms, IRC registration) is the
//! [`Session`] inside it; this file is only the transport half. The bytes go through
//! a [`Transport`], plain TCP or TLS (`tls.rs`); the loop reads and flushes the same
//! way for both. A connection from the web listener also has a [`Web`] phase
//! (`web.rs`): an HTTP request with no session yet, then, after the upgrade, a
//! WebSocket whose frames carry the lines.
//!
//! Flood control's "fake lag" also lives here, as loop state: a connection over its
//! line budget is *paused* ([`Paused`]): it is not read until then, and what was
//! already read but not yet handed to the chat waits in `held`. The shard's timer
//! resumes it (ET-10). The pause is boxed and there only while it lasts: most
//! connections are never paused, and each of them would carry its 56 bytes.

use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Registry};

use crate::framing::LineFramer;
use crate::nonblocking::ReadOutcome;
use crate::protocol::outgoing::Protocol;
use crate::protocol::websocket::{Framing, Wire};
use crate::send_queue::{Flushed, SendQueue};

use crate::server::close_reason::CloseReason;
use crate::server::tls::Transport;
use crate::server::token::ConnId;
use crate::server::web::{HttpRequest, HttpStep, Keepalive, Web};

/// A queue may hold this many times `--sendq` within one turn before the end-of-turn
/// flush; past it the connection is cut at once (a memory bound, not the policy).
pub const HARD_SENDQ_FACTOR: usize = 4;

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Reading and writing normally.
    Open,
    /// No longer reading; closes once its send queue is flushed or at its deadline.
    /// Boxed: few connections are ever draining, and an `Instant` inline made every
    /// connection 8 bytes bigger.
    Draining(Box<Drain>),
    /// Marked for reaping at the end of this turn.
    Closing(CloseReason),
}

/// Why a draining connection will close, and when it stops waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// Why it will close.
    pub reason: CloseReason,
    /// When to give up waiting for the client to read.
    pub deadline: Instant,
}

/// Lists a shard builds during one turn and works through at its end.
#[derive(Debug, Default)]
pub struct Turn {
    /// Connections with newly queued output, each once (ET-3: flush once per turn).
    pub dirty: Vec<usize>,
    /// Connections to reap at the end of the turn (ET-5).
    pub closing: Vec<usize>,
    /// Connections flood control paused this turn; the shard's timer list takes them
    /// at the end of the turn (ET-10).
    pub paused: Vec<usize>,
}

/// What the loop reads of a connection's chat session.
pub trait SessionInfo: std::fmt::Debug {
    /// The protocol the connection speaks (how its bytes are framed).
    fn protocol(&self) -> Protocol;
    /// Its identity (token and generation).
    fn conn_id(&self) -> ConnId;
    /// The client's address (behind a trusted proxy, the one it names).
    fn peer_addr(&self) -> SocketAddr;
    /// A name for log lines (the nick).
    fn log_name(&self) -> &str;
}

/// A shard's connections, by slab key. Each is boxed: the slab doubles as it grows,
/// so at 19 000 connections it holds room for 32 768, and an empty slot of a boxed
/// slab costs a pointer, not a whole 456-byte connection (heaptrack, 19 000 idle
/// connections: 786 bytes of slab per connection before, 484 after).
pub type Conns<S> = Slab<Box<Connection<S>>>;

/// One client connection: the socket and its buffers, plus the chat's session `S`
/// (the handler's: `handler.rs`).
#[derive(Debug)]
pub struct Connection<S> {
    /// Identity across threads and time (token and generation).
    pub id: ConnId,
    /// The web phase (an HTTP request, or a WebSocket) for connections from the web
    /// listener; `None` for the line and IRC listeners.
    pub web: Option<Web>,
    /// The socket (and TLS session, if any), registered with the owning shard's `Poll`.
    pub transport: Transport,
    /// The unfinished line between reads.
    pub framer: LineFramer,
    /// Output waiting for the socket.
    pub send_queue: SendQueue,
    /// Interest currently registered with `Poll` (ET-4: reregister only on change).
    pub registered: Interest,
    /// Where the connection is in its life.
    pub state: ConnState,
    /// True while on the shard's `Turn::dirty` list, so it is listed once.
    pub dirty: bool,
    /// What the chat knows about this connection; the event loop never looks inside.
    /// `None` while a web connection is still an HTTP request (not yet a chat).
    pub session: Option<S>,
    /// Flood control's fake lag, while it lasts (ET-10).
    pub paused: Option<Box<Paused>>,
}

/// A connection paused by flood control.
#[derive(Debug)]
pub struct Paused {
    /// Not read until then.
    pub until: Instant,
    /// Bytes read but not yet handed to the chat because the pause came mid-chunk.
    pub held: Vec<u8>,
    /// Since when its unread input has been over the limit.
    pub over_unread_since: Option<Instant>,
}

/// Result of queuing a line for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued.
    Yes,
    /// Not queued: the connection is closing or draining.
    Closed,
    /// Not queued: it would pass `--sendq`; the connection is now closing.
    Overflow,
    /// Not queued: framed for another kind of socket (a bug, logged).
    Misframed,
}

impl<S: SessionInfo> Connection<S> {
    /// Logs a close once: a warning for a slow consumer (the operator may want to
    /// raise `--sendq`) and for a WebSocket client that says the server broke the
    /// protocol (a server bug), an info line otherwise (debug for a served HTTP
    /// request); a WebSocket protocol error says what it was.
    pub fn log_close(&self, reason: CloseReason, sendq: usize) {
        let peer = self.peer();
        let Some(nick) = self.session.as_ref().map(|s| s.log_name()) else {
            return log::debug!("{peer} http closed: {}", reason.label());
        };
        match reason {
            CloseReason::SlowConsumer => {
                log::warn!("{peer} {nick} cut: slow consumer (send queue passed {sendq} bytes)")
            }
            CloseReason::Flood => {
                log::warn!("{peer} {nick} cut: flood (unread input over the limit for too long)")
            }
            CloseReason::WebSocketRejected => {
                log::warn!("{peer} {nick} closed: {}", self.trouble())
            }
            CloseReason::WebSocketError => {
                log::info!("{peer} {nick} closed: websocket-error: {}", self.trouble())
            }
            _ => log::info!("{peer} {nick} closed: {}", reason.label()),
        }
    }

    /// What went wrong on a WebSocket that closed over a protocol error.
    fn trouble(&self) -> &str {
        match &self.web {
            Some(Web::Socket(socket)) => socket.trouble.as_deref().unwrap_or("unknown"),
            _ => "unknown",
        }
    }

    /// A new open plain-TCP connection (already registered for READABLE).
    pub fn new(stream: mio::net::TcpStream, session: S, max_line: usize) -> Self {
        Self::over(Transport::Plain(stream), session, max_line)
    }

    /// A new open connection over `transport` (already registered for READABLE).
    pub fn over(transport: Transport, session: S, max_line: usize) -> Self {
        let mut conn = Self::bare(transport, session.conn_id(), max_line);
        conn.session = Some(session);
        conn
    }

    /// A new connection from the web listener: an HTTP request whose head must
    /// arrive by `deadline`. It has no chat session until it upgrades.
    pub fn http(transport: Transport, id: ConnId, peer: SocketAddr, deadline: Instant) -> Self {
        let mut conn = Self::bare(transport, id, 0);
        conn.web = Some(Web::Http(Box::new(HttpRequest::new(peer, deadline))));
        conn
    }

    fn bare(transport: Transport, id: ConnId, max_line: usize) -> Self {
        Connection {
            id,
            web: None,
            transport,
            framer: LineFramer::new(max_line),
            send_queue: SendQueue::new(),
            registered: Interest::READABLE,
            state: ConnState::Open,
            dirty: false,
            session: None,
            paused: None,
        }
    }

    /// The address at the other end of the socket, for logs and the per-address
    /// limits: a web connection's proxy, when it is behind a trusted one. Not a field
    /// of its own: a line or IRC session holds the same address, and a web
    /// connection's boxed request or socket holds it, so an idle connection does not
    /// pay 32 bytes for a copy.
    pub fn peer(&self) -> SocketAddr {
        match (&self.web, &self.session) {
            (Some(Web::Http(request)), _) => request.peer,
            (Some(Web::Socket(socket)), _) => socket.peer,
            (None, Some(session)) => session.peer_addr(),
            // Never: a line or IRC connection is made with its session.
            (None, None) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Reads once through the transport (ET-1; for TLS, ET-9: plaintext still inside
    /// the session comes first). Ciphertext the read produced (handshake replies)
    /// marks the connection dirty, so this turn's flush writes it: no edge would.
    /// An error comes back as the reason to close.
    pub fn read(
        &mut self,
        scratch: &mut [u8],
        turn: &mut Turn,
    ) -> Result<ReadOutcome, CloseReason> {
        let outcome = self.transport.read(scratch);
        if self.transport.wants_write() {
            self.mark_dirty(turn);
        }
        outcome.map_err(|failure| {
            log::debug!("{} read failed: {}", self.peer(), failure.error);
            match (&self.transport, failure.error.kind()) {
                (Transport::Tls(_), _) if failure.during_handshake => {
                    CloseReason::TlsHandshakeFailed
                }
                (Transport::Tls(_), io::ErrorKind::InvalidData) => CloseReason::TlsError,
                _ => CloseReason::from_io(&failure.error),
            }
        })
    }

    /// True while flood control keeps this connection unread.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Keeps `bytes` (read after the line that paused the connection) for the end
    /// of the pause; nothing to keep unless paused.
    pub fn hold(&mut self, bytes: &[u8]) {
        if let Some(paused) = self.paused.as_mut() {
            paused.held.extend_from_slice(bytes);
        }
    }

    /// Flood control: read nothing more from this connection until `until` (once
    /// paused, a later call does not move the time).
    pub fn pause(&mut self, until: Instant, turn: &mut Turn) {
        if self.paused.is_none() {
            let held = Vec::new();
            let over_unread_since = None;
            self.paused = Some(Box::new(Paused {
                until,
                held,
                over_unread_since,
            }));
            turn.paused.push(self.key());
        }
    }

    /// Why the connection is being reaped (`Io` if it was never marked closing).
    pub fn close_reason(&self) -> CloseReason {
        match &self.state {
            ConnState::Closing(reason) => *reason,
            ConnState::Draining(drain) => drain.reason,
            ConnState::Open => CloseReason::Io,
        }
    }

    /// The slab key of this connection in its shard.
    pub fn key(&self) -> usize {
        self.id.key()
    }

    /// True while lines from the client are read and acted on.
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    /// Queues `line` unless the queue would pass the hard limit (`HARD_SENDQ_FACTOR`
    /// times `sendq`), in which case the connection is cut as a slow consumer at once
    /// and its queue freed: the line is not queued and, since the connection closes,
    /// neither is anything after it. The sender of the line is never affected: one
    /// recipient's failure only marks that recipient closing.
    ///
    /// The ordinary `--sendq` check happens after the end-of-turn flush (see
    /// [`Self::flush`]): within one turn a fast reader can be handed more than `sendq`
    /// (one sender's read budget is 64 KiB of lines), and that is not slowness. The
    /// hard limit only bounds memory within a turn.
    pub fn queue(&mut self, line: Wire, sendq: usize, turn: &mut Turn) -> Queued {
        if matches!(self.state, ConnState::Closing(_)) {
            return Queued::Closed;
        }
        if self.send_queue.queued_bytes() + line.len() > sendq.saturating_mul(HARD_SENDQ_FACTOR) {
            self.cut_slow_consumer(turn);
            return Queued::Overflow;
        }
        if self.push(line, turn) {
            Queued::Yes
        } else {
            Queued::Misframed
        }
    }

    fn cut_slow_consumer(&mut self, turn: &mut Turn) {
        self.send_queue.clear();
        self.close(CloseReason::SlowConsumer, turn);
    }

    /// Queues `line` whatever the limit (a last word before closing), if it is
    /// framed as this socket needs: bytes framed otherwise would break the stream
    /// (raw bytes inside a WebSocket read as a frame header), so they are refused
    /// and logged as the bug they are. False if refused.
    pub fn push(&mut self, line: Wire, turn: &mut Turn) -> bool {
        let framing = self.framing();
        if !line.fits(framing) {
            log::error!(
                "BUG: {} bytes framed for another socket refused for {} ({framing:?})",
                line.len(),
                self.peer()
            );
            return false;
        }
        if crate::logging::tracing() {
            for payload in line.payloads() {
                crate::logging::trace_line(&self.id, false, payload);
            }
        }
        self.send_queue.push(line.into_bytes());
        self.mark_dirty(turn);
        true
    }

    /// How this socket's bytes are framed: WebSocket frames once upgraded, the
    /// bytes as they are otherwise (an HTTP request, the line and IRC listeners).
    pub fn framing(&self) -> Framing {
        match &self.web {
            Some(Web::Socket(socket)) => socket.protocol.framing(),
            _ => Framing::Raw,
        }
    }

    fn mark_dirty(&mut self, turn: &mut Turn) {
        if !self.dirty {
            self.dirty = true;
            turn.dirty.push(self.key());
        }
    }

    /// Marks the connection for reaping (once).
    pub fn close(&mut self, reason: CloseReason, turn: &mut Turn) {
        if !matches!(self.state, ConnState::Closing(_)) {
            self.state = ConnState::Closing(reason);
            turn.closing.push(self.key());
        }
    }

    /// Stops reading; closes once the send queue is flushed or `grace` passes. A
    /// WebSocket gets its close frame last (once: nothing may follow it).
    pub fn drain(&mut self, reason: CloseReason, grace: Duration, turn: &mut Turn) {
        if self.state == ConnState::Open {
            if let Some(Web::Socket(socket)) = self.web.as_mut()
                && let Some(frame) = socket.close_for(reason)
            {
                self.push(frame, turn);
            }
            let deadline = Instant::now() + grace;
            self.state = ConnState::Draining(Box::new(Drain { reason, deadline }));
            // Flushing an empty queue is how a draining connection learns it is done.
            self.mark_dirty(turn);
        }
    }

    /// Interest wanted now: always READABLE, plus WRITABLE while output is pending,
    /// in the send queue or, for TLS, as ciphertext inside the session (ET-4: asking
    /// for WRITABLE with nothing to write only wastes wake-ups; ET-9).
    pub fn interest(&self) -> Interest {
        if self.send_queue.is_empty() && !self.transport.wants_write() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        }
    }

    /// Writes queued output until drained or `WouldBlock`, then brings the registered
    /// interest up to date. Marks the connection closing on an error; as a slow
    /// consumer if more than `sendq` bytes are still unsent (the kernel's buffers are
    /// full too, so the client really is not reading); or, when draining, once
    /// everything is flushed.
    ///
    /// Returns how many write syscalls it made (the batching figure in `/stats`).
    pub fn flush(&mut self, sendq: usize, registry: &Registry, turn: &mut Turn) -> u64 {
        self.dirty = false;
        if matches!(self.state, ConnState::Closing(_)) {
            return 0;
        }
        let mut writer = self.transport.writer();
        let flushed = writer
            .write_pending()
            .and_then(|()| self.send_queue.flush_to(&mut writer));
        // ET-9: a drained queue is not a drained connection while TLS still holds
        // ciphertext the socket would not take.
        let flushed = match flushed {
            Ok(Flushed::Drained) if writer.has_pending() => Ok(Flushed::Pending),
            other => other,
        };
        let writes = writer.syscalls;
        match flushed {
            Ok(Flushed::Drained) => {
                if let ConnState::Draining(drain) = &self.state {
                    self.close(drain.reason, turn);
                    return writes;
                }
            }
            Ok(Flushed::Pending) if self.send_queue.queued_bytes() > sendq => {
                self.cut_slow_consumer(turn);
                return writes;
            }
            Ok(Flushed::Pending) => {}
            Err(e) => {
                log::debug!("{} write failed: {e}", self.peer());
                self.close(CloseReason::from_io(&e), turn);
                return writes;
            }
        }
        self.update_interest(registry, turn);
        writes
    }

    /// ET-4: reregister only when the wanted interest differs from the registered one.
    fn update_interest(&mut self, registry: &Registry, turn: &mut Turn) {
        let want = self.interest();
        if want == self.registered {
            return;
        }
        let token = self.id.token();
        match registry.reregister(self.transport.socket(), token, want) {
            Ok(()) => self.registered = want,
            Err(e) => {
                log::warn!("{} reregister failed: {e}", self.peer());
                self.close(CloseReason::Io, turn);
            }
        }
    }

    /// Feeds bytes to the HTTP request being read. An answer is queued and the
    /// connection drains (one request per connection); an upgrade is returned for
    /// the shard, which gives the connection a chat session.
    pub fn read_request(
        &mut self,
        bytes: &[u8],
        shared: &crate::server::shared::Shared,
        turn: &mut Turn,
    ) -> Option<Upgrade> {
        let Some(Web::Http(request)) = self.web.as_mut() else {
            return None;
        };
        match request.feed(bytes, shared) {
            HttpStep::Waiting => None,
            HttpStep::Answer(answer) => {
                self.push(Protocol::Http.frame(&Arc::from(answer)), turn);
                self.drain(CloseReason::HttpServed, shared.config.shutdown_grace, turn);
                None
            }
            HttpStep::Upgrade {
                response,
                protocol,
                rest,
                forwarded,
            } => Some((response, protocol, rest, forwarded)),
        }
    }

    /// The upgrade: the `101` goes out first, then the connection is a chat
    /// connection with `session`, its lines in WebSocket frames.
    pub fn upgrade(&mut self, response: Vec<u8>, session: S, max_line: usize, turn: &mut Turn) {
        self.push(Protocol::Http.frame(&Arc::from(response)), turn);
        let peer = self.peer();
        let socket = crate::server::web::Socket::new(peer, session.protocol(), Instant::now());
        self.web = Some(Web::Socket(Box::new(socket)));
        self.framer = LineFramer::new(max_line);
        self.session = Some(session);
    }

    /// The web timers, on the shard tick: a request head overdue (slow loris) is
    /// answered `408` and closed; a silent WebSocket is pinged, and closed if the
    /// ping goes unanswered.
    pub fn check_web_timers(
        &mut self,
        now: Instant,
        ping: Duration,
        grace: Duration,
        turn: &mut Turn,
    ) {
        if !self.is_open() {
            return;
        }
        match self.web.as_mut() {
            Some(Web::Http(request)) if request.expired(now) => {
                let answer = crate::protocol::http::error_response(408);
                self.push(Protocol::Http.frame(&Arc::from(answer)), turn);
                self.drain(CloseReason::HttpTimeout, grace, turn);
            }
            Some(Web::Socket(socket)) => match socket.keepalive(now, ping) {
                Keepalive::Ping => {
                    self.push(crate::protocol::websocket::ping_frame(), turn);
                }
                Keepalive::Dead => self.drain(CloseReason::IdleTimeout, grace, turn),
                Keepalive::Quiet => {}
            },
            _ => {}
        }
    }

    /// On the tick: the send queue's ring, if it stayed empty for a whole tick, and
    /// the framer's buffer for a partial line, if none is pending, are freed. An idle
    /// connection then holds no buffer; a busy one keeps reusing its own.
    pub fn give_back_idle_buffers(&mut self) {
        self.send_queue.give_back_if_idle();
        self.framer.give_back_if_empty();
    }

    /// True if a draining connection ran out of time to flush.
    pub fn drain_expired(&self, now: Instant) -> Option<CloseReason> {
        match &self.state {
            ConnState::Draining(drain) if now >= drain.deadline => Some(drain.reason),
            _ => None,
        }
    }
}

/// A request that upgrades: the `101` response, the chat protocol, the bytes after
/// the head, and its `X-Forwarded-For` headers.
pub type Upgrade = (Vec<u8>, Protocol, Vec<u8>, Option<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_indices_match_all() {
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }
}
/// Sizes that every idle connection pays, kept from creeping back: glibc serves a
/// request from chunks in 16-byte steps (8 bytes of header), so a connection of
/// 312 bytes takes a 320-byte chunk where 392 took 400, and a remote user of the
/// cluster view (88 bytes) one of 96 where 152 took 160.
#[cfg(all(test, target_pointer_width = "64"))]
mod sizes {
    use crate::server::commands::session::Session;
    use crate::server::state::cluster::RemoteUser;
    use std::mem::size_of;

    #[test]
    fn an_idle_connection_and_a_remote_user_stay_small() {
        assert!(size_of::<super::Connection<Session>>() <= 312);
        assert!(size_of::<RemoteUser>() <= 88);
    }
}
