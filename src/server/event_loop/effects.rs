//! The one door between the event loop and the chat.
//!
//! The chat decides what happens; the loop does it. Each time the loop hands the chat
//! a line, an inbox message or a tick, it lends it an [`Effects`], and the chat can
//! only ask for three things through it:
//!
//! - **queue these bytes for connection `key`** ([`Effects::queue`]): an `Arc` clone
//!   into its send queue, marking it dirty so the loop flushes it once at the end of
//!   the turn (ET-3); nothing is written to a socket here. The bytes are a [`Wire`],
//!   framed for the connection's socket by `Protocol::frame`; plain lines go through
//!   [`Effects::queue_plain`] and [`Effects::close_with`], which frame them;
//! - **send this to shard `k`** ([`Effects::send`]): into the turn's cross-shard batch,
//!   which the loop sends with one wake per peer shard before it flushes (ET-8);
//! - **tell the other nodes** ([`Effects::publish`]), when there is a cluster
//!   backplane, in the same end-of-turn batch;
//! - **close this connection**, at once ([`Effects::close`]) or once its output is
//!   flushed ([`Effects::close_after_flush`]); the loop reaps it at the end of the
//!   turn (ET-5);
//! - **stop reading this connection until then** ([`Effects::pause_reading`]): flood
//!   control's fake lag; the loop's timer resumes it (ET-10).
//!
//! Plus read and write access to each connection's session, the chat's own state
//! (the handler's `Session` type: `handler.rs`).
//! The chat never sees a socket, a `Poll` or a token, and nothing it calls can call
//! back into the loop, so `shard.rs` can be read without the chat and the chat without
//! the loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::websocket::Wire;

use crate::server::backplane::handle::BackplaneMsg;
use crate::server::close_reason::CloseReason;
use crate::server::connection::SessionInfo;
use crate::server::connection::{Conns, Queued, Turn};
use crate::server::inbox::ShardMsg;

/// What the chat may do to the loop's connections during one call.
#[derive(Debug)]
pub struct Effects<'a, S> {
    conns: &'a mut Conns<S>,
    turn: &'a mut Turn,
    outbound: &'a mut [Vec<ShardMsg>],
    to_backplane: &'a mut Vec<BackplaneMsg>,
    sendq: usize,
    grace: Duration,
    /// Lines queued through [`Effects::queue`] (the loop adds them to the stats once).
    pub deliveries: u64,
}

impl<'a, S: SessionInfo> Effects<'a, S> {
    /// Effects over a shard's connections, its turn lists and its outbound batches.
    pub fn new(
        conns: &'a mut Conns<S>,
        turn: &'a mut Turn,
        outbound: &'a mut [Vec<ShardMsg>],
        to_backplane: &'a mut Vec<BackplaneMsg>,
        sendq: usize,
        grace: Duration,
    ) -> Self {
        Effects {
            conns,
            turn,
            outbound,
            to_backplane,
            sendq,
            grace,
            deliveries: 0,
        }
    }

    /// The session of connection `key`, if it exists.
    pub fn session(&mut self, key: usize) -> Option<&mut S> {
        self.conns.get_mut(key)?.session.as_mut()
    }

    /// Every chat connection's key (for timers and shutdown, never on the hot path);
    /// a web connection that is still an HTTP request is not the chat's.
    pub fn keys(&self) -> Vec<usize> {
        self.conns
            .iter()
            .filter(|(_, conn)| conn.session.is_some())
            .map(|(key, _)| key)
            .collect()
    }

    /// True while lines from connection `key` are read and acted on.
    pub fn is_open(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| c.is_open())
    }

    /// Queues `bytes` for connection `key` within its send-queue limit; false if it
    /// was not queued (gone, closing, just cut as a slow consumer, or framed for
    /// another kind of socket).
    pub fn queue(&mut self, key: usize, bytes: Wire) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let queued = conn.queue(bytes, self.sendq, self.turn) == Queued::Yes;
        self.deliveries += u64::from(queued);
        queued
    }

    /// Queues lines rendered for connection `key` alone (IRC numerics made in
    /// `protocol::irc`), in its framing: one WebSocket frame per line for a browser,
    /// the bytes as they are otherwise. False if not queued, as for [`Self::queue`].
    pub fn queue_plain(&mut self, key: usize, plain: Arc<[u8]>) -> bool {
        let Some(protocol) = self.session(key).map(|s| s.protocol()) else {
            return false;
        };
        self.queue(key, protocol.frame(&plain))
    }

    /// Queues a last word whatever the limit (a notice before a close).
    pub fn last_word(&mut self, key: usize, bytes: Wire) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.push(bytes, self.turn);
        }
    }

    /// Stops reading connection `key`; it closes once its output is flushed (or after
    /// the shutdown grace, if the client does not read).
    pub fn close_after_flush(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.drain(reason, self.grace, self.turn);
        }
    }

    /// Queues the plain lines `plain` as the connection's last word, in its framing,
    /// then closes it once flushed: the one way to say goodbye (`OK bye`, IRC
    /// `ERROR`, an idle notice).
    pub fn close_with(&mut self, key: usize, plain: Arc<[u8]>, reason: CloseReason) {
        if let Some(protocol) = self.session(key).map(|s| s.protocol()) {
            self.last_word(key, protocol.frame(&plain));
        }
        self.close_after_flush(key, reason);
    }

    /// Closes connection `key` at the end of the turn, dropping unsent output.
    pub fn close(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.close(reason, self.turn);
        }
    }

    /// Adds `msg` to this turn's batch for the cluster backplane (sent with the
    /// shards' batches, one wake per turn).
    pub fn publish(&mut self, msg: BackplaneMsg) {
        self.to_backplane.push(msg);
    }

    /// Flood control: read nothing more from connection `key` until `until`; the line
    /// being handled is the last one before the pause.
    pub fn pause_reading(&mut self, key: usize, until: Instant) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.pause(until, self.turn);
        }
    }

    /// True while connection `key` is paused by flood control.
    pub fn is_paused(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| c.is_paused())
    }

    /// Adds `msg` to this turn's batch for shard `shard`.
    pub fn send(&mut self, shard: usize, msg: ShardMsg) {
        self.outbound[shard].push(msg);
    }
}
