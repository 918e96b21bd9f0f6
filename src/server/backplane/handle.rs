//! How shards reach the backplane thread: a channel plus a `Waker`, as shards reach
//! each other, and the messages that travel on it.
//!
//! In its own file so that the state every thread shares (`shared.rs`) can hold the
//! handle without depending on the backplane thread, which depends on that state.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use mio::Waker;

use crate::protocol::outgoing::Outgoing;
use crate::protocol::{KlineInfo, Nick, RoomName};

use super::wire::Wire;
use crate::server::inbox::KEPT_BATCH;
use crate::server::token::ConnId;

/// What shards tell the backplane.
#[derive(Debug)]
pub enum BackplaneMsg {
    /// A room event caused by a local user, already in the room's local order.
    Room {
        /// The room.
        room: RoomName,
        /// The event.
        outgoing: Arc<Outgoing>,
    },
    /// A local user as it is now.
    User {
        /// The connection.
        id: ConnId,
        /// When its nick was claimed (ms since the Unix epoch).
        claimed_ms: u64,
        /// Its rooms (the rest of its roster entry, the backplane reads from the
        /// directory when it sends it).
        rooms: Vec<RoomName>,
        /// Its nick before, if this change renamed it.
        was: Option<Nick>,
    },
    /// A local user disconnected.
    Gone {
        /// The connection.
        id: ConnId,
    },
    /// A private message or invitation to a user of another node (boxed: every room
    /// event in a batch would otherwise be as large as this rarer message).
    Private {
        /// The node that has the recipient.
        node: Arc<str>,
        /// The message.
        wire: Box<Wire>,
        /// Who to tell whether it reached the recipient's node ([`ShardMsg::PrivateSent`](crate::server::inbox::ShardMsg::PrivateSent)):
        /// the sender of a private message, never of a notice or an invitation.
        answer: Option<PrivateAnswer>,
    },
    /// Claim `nick` for local connection `id` in Redis (atomic: `SET NX PX`); the
    /// answer comes back as [`ShardMsg::Claimed`](crate::server::inbox::ShardMsg::Claimed).
    Claim {
        /// The connection.
        id: ConnId,
        /// The nick it asked for.
        nick: Nick,
        /// What the shard does once the claim is answered.
        then: ClaimFor,
    },
    /// Give back a claim the connection no longer uses (compare-and-delete: only if
    /// it is still this connection's).
    Release {
        /// The connection.
        id: ConnId,
        /// The nick.
        nick: Nick,
    },
    /// A message for every node, on the cluster channel (`WALLOPS`, `/wall`).
    Broadcast(Box<Wire>),
    /// A k-line set (`Some`) or lifted on this node: kept in the cluster's hash of
    /// k-lines in Redis and told to every node.
    Kline {
        /// Its mask.
        mask: Box<str>,
        /// The k-line, or `None`: lifted.
        kline: Option<Box<KlineInfo>>,
    },
    /// The shards have stopped: say goodbye and exit.
    Shutdown,
}

/// Why a nick was claimed: what the shard does with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFor {
    /// `/nick` or IRC `NICK` after registration: rename and tell the rooms.
    Rename,
    /// IRC `NICK` before registration (`protect` false: a registered account's nick
    /// may be taken for `--nick-grace`).
    IrcRegistration,
    /// An account's owner logged in and took its nick back here: the claim is
    /// taken whoever held it, and nobody waits for the answer.
    Takeover,
}

/// What Redis said of a nick claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// The nick is this connection's now, on every node.
    Won,
    /// Another connection, on this node or another, holds it.
    Taken,
    /// Redis is unreachable: nobody can tell whether the nick is free.
    Unavailable,
}

/// Whom to tell what became of a private message to another node.
#[derive(Debug, Clone)]
pub struct PrivateAnswer {
    /// The sender.
    pub sender: ConnId,
    /// The recipient.
    pub to: Nick,
    /// The recipient's away message, told with `OK sent`.
    pub away: Option<Box<str>>,
}

/// The sending side of the backplane's inbox, held in [`Shared`](super::super::shared::Shared).
#[derive(Debug, Clone)]
pub struct BackplaneHandle {
    tx: Sender<BackplaneMsg>,
    waker: Arc<Waker>,
}

impl BackplaneHandle {
    /// Sends every message of `batch` (emptying it) with one wake.
    pub fn send_batch(&self, batch: &mut Vec<BackplaneMsg>) {
        if batch.is_empty() {
            return;
        }
        for msg in batch.drain(..) {
            if self.tx.send(msg).is_err() {
                return; // the backplane has exited
            }
        }
        // A burst (thousands of renames in one turn) is not held for good.
        batch.shrink_to(KEPT_BATCH);
        if let Err(e) = self.waker.wake() {
            log::warn!("waking the backplane failed: {e}");
        }
    }
}

impl BackplaneHandle {
    /// A handle over the backplane's channel and its `Poll`'s waker.
    pub fn new(tx: Sender<BackplaneMsg>, waker: Arc<Waker>) -> Self {
        BackplaneHandle { tx, waker }
    }
}
