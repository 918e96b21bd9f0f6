//! How shards reach the backplane thread: a channel plus a `Waker`, as shards reach
//! each other, and the messages that travel on it.
//!
//! In its own file so that the state every thread shares (`shared.rs`) can hold the
//! handle without depending on the backplane thread, which depends on that state.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use mio::Waker;

use crate::protocol::outgoing::Outgoing;
use crate::protocol::{Nick, RoomName};

use super::wire::Wire;
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
    },
    /// The shards have stopped: say goodbye and exit.
    Shutdown,
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
