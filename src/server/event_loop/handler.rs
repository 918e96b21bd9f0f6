//! The chat as the loop sees it: two traits, so that the loop's folder never names
//! the chat's types.
//!
//! The loop owns sockets, buffers and turns; the chat (`server::commands`) owns what
//! lines mean. The chat plugs into the loop, not the other way round: a shard is
//! built over any [`Handler`], and a connection carries the handler's session without
//! looking inside beyond [`SessionInfo`] (`connection.rs`: its protocol, for framing, and its name, for
//! a log line). A reader can so follow `shard.rs` with no chat code open, and a test
//! could drive the loop with a handler of its own.
//!
//! Every call the loop makes into the chat is listed here; each lends the chat an
//! [`Effects`], the one door back into the loop.

use std::net::SocketAddr;
use std::time::Instant;

use crate::framing::FrameError;
use crate::protocol::outgoing::Protocol;
use crate::server::live::LiveLimits;

use super::connection::SessionInfo;
use super::effects::Effects;
use super::inbox::ShardMsg;
use super::token::ConnId;

/// The chat half of a shard: what the loop calls, each time with an [`Effects`].
pub trait Handler: std::fmt::Debug {
    /// The chat's state per connection, kept inside the loop's `Connection`.
    type Session: SessionInfo;

    /// A new connection's session (the loop stores it, then calls `on_adopted`).
    fn open_session(&self, id: ConnId, peer: SocketAddr, protocol: Protocol) -> Self::Session;
    /// Connection `key` is in the table: greet it.
    fn on_adopted(&mut self, fx: &mut Effects<'_, Self::Session>, key: usize);
    /// One line from connection `key` (or why its framing failed).
    fn on_line(
        &mut self,
        fx: &mut Effects<'_, Self::Session>,
        key: usize,
        line: Result<&[u8], FrameError>,
    );
    /// A message from another shard, the acceptor, the store or the backplane.
    fn on_message(&mut self, fx: &mut Effects<'_, Self::Session>, msg: ShardMsg);
    /// The shard's timer (idle checks, pings, flood refills).
    fn on_tick(&mut self, fx: &mut Effects<'_, Self::Session>, now: Instant);
    /// A connection left the table at the end of a turn; `tell` is false at shutdown.
    fn on_closed(
        &mut self,
        fx: &mut Effects<'_, Self::Session>,
        session: Self::Session,
        why: &str,
        tell: bool,
    );
    /// Flood control's hard ceiling cut connection `key`.
    fn cut_flooder(&mut self, fx: &mut Effects<'_, Self::Session>, key: usize);
    /// The server is shutting down: say goodbye to everyone.
    fn begin_shutdown(&mut self, fx: &mut Effects<'_, Self::Session>);
    /// A reload's new limits.
    fn set_limits(&mut self, limits: LiveLimits);
}
