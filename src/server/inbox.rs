//! How threads talk to a shard: a channel plus a `mio::Waker`, and nothing else.
//!
//! A shard sleeps in `poll`, so putting a message in its channel is not enough: it must
//! also be woken. [`ShardHandle::send`] does both, in that order (send, then wake), so
//! by the time the shard sees the wake the message is there. Wakes coalesce (the waker
//! is an eventfd: ten wakes may produce one event), so the shard's `drain_inbox` drains the
//! channel until it is empty rather than taking one message per wake (ET-7).
//!
//! Shards batch what they send each other: messages for shard *j* produced during one
//! turn go out together at the end of the turn with a single wake
//! ([`ShardHandle::send_batch`]), so a burst of room messages costs one `eventfd`
//! write per peer shard per turn, not one per message.
//!
//! A room message crosses as one `Arc<Outgoing>` per *shard*, never per member: the
//! receiving shard delivers it to its own local members.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use mio::Waker;
use mio::net::TcpStream;

use crate::protocol::RoomName;
use crate::protocol::outgoing::{Outgoing, Protocol};

use super::token::ConnId;

/// A message to a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// A freshly accepted, not yet registered connection (a mio source stays bound to
    /// the first `Poll` it is registered with, so the acceptor never registers it).
    Adopt {
        /// The socket.
        stream: TcpStream,
        /// Its remote address.
        peer: SocketAddr,
        /// Which listener accepted it.
        protocol: Protocol,
    },
    /// To the room's home shard: put this event in the room's order, deliver it to
    /// the local members and forward it to every other shard with members (ET-8).
    Sequence {
        /// The room.
        room: RoomName,
        /// The sender, who does not get its own line back.
        except: Option<ConnId>,
        /// What to deliver.
        outgoing: Arc<Outgoing>,
        /// A join/leave/nick/quit notice, skipped in rooms over `--announce-max`.
        notice: bool,
    },
    /// From the room's home shard: deliver to every local member of `room`.
    Room {
        /// The room.
        room: RoomName,
        /// The sender, if it is on this shard: it does not get its own line back.
        except: Option<ConnId>,
        /// What to deliver.
        outgoing: Arc<Outgoing>,
    },
    /// Deliver to one connection, if it still exists (generation checked: ET-6).
    Direct {
        /// The recipient.
        to: ConnId,
        /// What to deliver.
        outgoing: Arc<Outgoing>,
    },
    /// Tell every client, flush, close, exit.
    Shutdown,
}

/// The sending side of a shard's inbox, cloneable across threads.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
}

impl ShardHandle {
    /// A handle and the receiving end for the shard that owns `waker`.
    pub fn new(waker: Arc<Waker>) -> (ShardHandle, Receiver<ShardMsg>) {
        let (tx, rx) = channel();
        (ShardHandle { tx, waker }, rx)
    }

    /// Sends one message and wakes the shard. False if the shard has exited.
    pub fn send(&self, msg: ShardMsg) -> bool {
        self.tx.send(msg).is_ok() && self.wake()
    }

    /// Sends every message in `batch` (emptying it) with a single wake.
    pub fn send_batch(&self, batch: &mut Vec<ShardMsg>) -> bool {
        if batch.is_empty() {
            return true;
        }
        for msg in batch.drain(..) {
            if self.tx.send(msg).is_err() {
                return false;
            }
        }
        self.wake()
    }

    fn wake(&self) -> bool {
        match self.waker.wake() {
            Ok(()) => true,
            Err(e) => {
                log::warn!("waking a shard failed: {e}");
                false
            }
        }
    }
}
