//! One connection to Redis, on the backplane's `Poll`: dial, write pipelined commands,
//! read RESP frames.
//!
//! RESP framing and encoding come from the `redis-protocol` crate (its sans-IO
//! `resp2` functions, without its async codec); this file only moves bytes. The
//! socket is a [`crate::dialer::Conn`], the same non-blocking client socket the bench
//! and the terminal client use, so finishing a non-blocking connect is written once.
//! Writes follow the server's rule: commands are appended during a turn and the link
//! is flushed once at its end, so everything a turn produced leaves in one write.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Registry, Token};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

use crate::dialer::{Conn, DialError, ReadEnd, Ready};

/// `PING`, encoded: the hello of a link that has just connected.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Input buffer capacity a link keeps after a burst.
const KEPT_BUFFER: usize = 64 * 1024;

/// Bytes read from a link before the frames they hold are handed on, then read
/// again (ET: until `WouldBlock`, in the same event). A join storm of 19 000 users
/// is megabytes of replies and roster lines; read whole, it grew the buffer, the
/// frames and the process's resident memory for good (heaptrack: about 1.1 KiB per
/// connection at the peak).
const READ_BUDGET: usize = 256 * 1024;

/// What one readiness event on a link came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkEvent {
    /// The link has just come up.
    pub came_up: bool,
    /// The read stopped at [`READ_BUDGET`]: handle the frames, then call again.
    pub more: bool,
}
/// Silence after which a link that is up sends `PING`. Room lines, probes and lease
/// renewals keep a busy link talking; this keeps a quiet one honest.
pub const PING_AFTER: Duration = Duration::from_secs(2);
/// Silence after which a link (or a connect) is dropped as lost: a Redis that was
/// stopped (SIGSTOP, a VM paused), or a path that went dark without a reset, never
/// closes the socket, and the node would wait on it for ever.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(8);

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No socket; the next attempt is due at this time.
    Down(Instant),
    /// A non-blocking connect is in progress.
    Connecting,
    /// Connected, and a `PING` sent: the link is up only once Redis answers it. The
    /// kernel completes a connect to a Redis that is stopped, and a link taken for up
    /// then would send what the node holds into a socket nobody reads.
    Hello,
    /// Connected and answered: commands flow.
    Up,
}

/// One Redis connection.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    token: Token,
    conn: Option<Conn>,
    /// Where the link is.
    pub state: LinkState,
    /// Bytes read but not yet a whole frame.
    unparsed: Vec<u8>,
    backoff: Duration,
    /// State of the jitter generator (xorshift; no cryptography needed).
    jitter: u64,
    /// True once this outage was reported (one warning per outage, not per retry).
    warned: bool,
    /// When Redis last sent a byte on this link (or, before it did, when the link
    /// started connecting).
    heard: Instant,
    /// A `PING` was sent for this silence and is not answered yet.
    pinged: bool,
}

impl Link {
    /// A link to `addr`, down and due to connect at once.
    pub fn new(addr: SocketAddr, token: Token, seed: u64) -> Self {
        Link {
            addr,
            token,
            conn: None,
            state: LinkState::Down(Instant::now()),
            unparsed: Vec::new(),
            backoff: MIN_BACKOFF,
            jitter: seed | 1,
            warned: false,
            heard: Instant::now(),
            pinged: false,
        }
    }

    /// Starts connecting if the link is down and its back-off has passed.
    pub fn maybe_connect(&mut self, registry: &Registry, now: Instant) {
        let LinkState::Down(due) = self.state else {
            return;
        };
        if now < due {
            return;
        }
        match Conn::connect(self.addr, None, registry, self.token) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.state = LinkState::Connecting;
                self.heard = now;
            }
            Err(e) => self.fail(registry, &e),
        }
    }

    /// When the next connect attempt is due, if the link is down.
    pub fn due(&self) -> Option<Instant> {
        match self.state {
            LinkState::Down(due) => Some(due),
            _ => None,
        }
    }

    /// A readiness event: finishes a connect (says when the link has just come up),
    /// flushes on writable, and reads every complete frame into `frames`, up to
    /// [`READ_BUDGET`] bytes (`more`: call again once they are handled).
    pub fn on_event(
        &mut self,
        registry: &Registry,
        writable: bool,
        scratch: &mut [u8],
        frames: &mut Vec<OwnedFrame>,
    ) -> LinkEvent {
        match self.try_event(registry, writable, scratch, frames) {
            Ok(event) => event,
            Err(e) => {
                self.fail(registry, &e);
                LinkEvent::default()
            }
        }
    }

    fn try_event(
        &mut self,
        registry: &Registry,
        writable: bool,
        scratch: &mut [u8],
        frames: &mut Vec<OwnedFrame>,
    ) -> io::Result<LinkEvent> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(LinkEvent::default());
        };
        match conn.on_ready(writable, registry) {
            Ok(Ready::Connecting) => return Ok(LinkEvent::default()),
            Ok(Ready::JustConnected) => {
                self.state = LinkState::Hello;
                conn.send_later(PING);
                conn.flush(registry)?;
            }
            Ok(Ready::Open) => {}
            Err(DialError::Connect(e) | DialError::Write(e)) => return Err(e),
        }
        let before = self.unparsed.len();
        let unparsed = &mut self.unparsed;
        let end = conn.read_bytes(scratch, READ_BUDGET, |bytes| {
            unparsed.extend_from_slice(bytes);
        })?;
        if end == ReadEnd::Closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if self.unparsed.len() > before {
            (self.heard, self.pinged) = (Instant::now(), false);
        }
        let mut came_up = false;
        let mut used = 0;
        while let Some((frame, len)) = decode(&self.unparsed[used..]).map_err(io::Error::other)? {
            used += len;
            if self.state == LinkState::Hello {
                // The answer to the hello `PING` (an error, such as `NOAUTH` or
                // `LOADING`, counts as an answer too: the commands that follow get
                // theirs).
                (self.state, self.backoff, self.warned) = (LinkState::Up, MIN_BACKOFF, false);
                came_up = true;
                continue;
            }
            frames.push(frame);
        }
        self.unparsed.drain(..used);
        // A burst (a roster of thousands, a join storm) can grow this far past what a
        // quiet link needs; give the rest back rather than hold it for the process's
        // life.
        self.unparsed.shrink_to(KEPT_BUFFER);
        let more = end == ReadEnd::More;
        Ok(LinkEvent { came_up, more })
    }

    /// Appends one command (an array of bulk strings); sent by [`Self::flush`].
    pub fn command(&mut self, args: &[&[u8]]) -> bool {
        encode_command(args).is_some_and(|bytes| self.send_encoded(&bytes))
    }

    /// Appends one command already encoded by [`encode_command`]; false if the link
    /// is not up.
    pub fn send_encoded(&mut self, bytes: &[u8]) -> bool {
        if self.state != LinkState::Up {
            return false;
        }
        self.conn
            .as_mut()
            .map(|conn| conn.send_later(bytes))
            .is_some()
    }

    /// Points a link that is down at another address (the next seed of a cluster).
    pub fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = addr;
    }

    /// The address this link dials.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes what the turn queued (until `WouldBlock`; the rest on WRITABLE).
    pub fn flush(&mut self, registry: &Registry) {
        if !matches!(self.state, LinkState::Up | LinkState::Hello) {
            return;
        }
        if let Some(Err(e)) = self.conn.as_mut().map(|conn| conn.flush(registry)) {
            self.fail(registry, &e);
        }
    }

    /// Checks the link's silence at `now`: drops it (as lost) once Redis has said
    /// nothing for [`SILENCE_LIMIT`], and otherwise, with `may_ping`, sends one `PING`
    /// after [`PING_AFTER`]. True when a `PING` was queued: its reply is owed.
    pub fn keep_alive(&mut self, registry: &Registry, now: Instant, may_ping: bool) -> bool {
        let silent = now.saturating_duration_since(self.heard);
        match self.state {
            LinkState::Down(_) => false,
            _ if silent >= SILENCE_LIMIT => {
                let limit = SILENCE_LIMIT.as_secs();
                let error = format!("no answer in {limit} s");
                self.fail(registry, &io::Error::new(io::ErrorKind::TimedOut, error));
                false
            }
            LinkState::Up if may_ping && !self.pinged && silent >= PING_AFTER => {
                self.pinged = self.command(&[b"PING"]);
                self.pinged
            }
            _ => false,
        }
    }

    /// True when the link is down after a failure (not merely not dialled yet).
    pub fn has_failed(&self) -> bool {
        matches!(self.state, LinkState::Down(_)) && self.warned
    }

    /// Puts off the next connect attempt of a link that is down by `wait`.
    pub fn delay(&mut self, wait: Duration) {
        if let LinkState::Down(due) = self.state {
            self.state = LinkState::Down(due.max(Instant::now() + wait));
        }
    }

    /// True while connected.
    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }

    /// Drops the socket without a word (the links are being remade on purpose).
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.deregister(registry);
        }
        self.unparsed.clear();
        self.state = LinkState::Down(Instant::now() + MAX_BACKOFF);
    }

    /// Drops the socket and schedules a reconnect after a capped, jittered back-off.
    pub fn fail(&mut self, registry: &Registry, error: &io::Error) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.deregister(registry);
        }
        if self.state == LinkState::Up {
            log::warn!("backplane: lost Redis at {}: {error}; retrying", self.addr);
        } else if !self.warned {
            log::warn!(
                "backplane: cannot reach Redis at {}: {error}; retrying",
                self.addr
            );
        } else {
            log::debug!("backplane: cannot reach Redis at {}: {error}", self.addr);
        }
        self.warned = true;
        self.unparsed.clear();
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let spread = self.backoff.as_millis() as u64 / 2 + 1;
        let wait = self.backoff / 2 + Duration::from_millis(self.jitter % spread);
        self.state = LinkState::Down(Instant::now() + wait);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// One command as RESP bytes: an array of bulk strings, encoded from the arguments
/// where they lie (no copy of each argument first: a room event's payload is one).
pub fn encode_command(args: &[&[u8]]) -> Option<Vec<u8>> {
    let frames: Vec<BorrowedFrame<'_>> =
        args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let frame = BorrowedFrame::Array(&frames);
    let mut bytes = vec![0; frame.encode_len(false)];
    encode_borrowed(&mut bytes, &frame, false).ok()?;
    Some(bytes)
}
