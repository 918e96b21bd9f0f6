//! How threads talk to a shard: a channel plus a `mio::Waker`, and nothing else.
//!
//! A shard sleeps in `poll`, so putting a message in its channel is not enough: it must
//! also be woken. [`ShardHandle::send`] does both, in that order (send, then wake), so
//! by the time the shard sees the wake the message is there. Wakes coalesce (the waker
//! is an eventfd: ten wakes may produce one event), so the shard's `on_wake` drains the
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
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};

use mio::Waker;
use mio::net::TcpStream;

use crate::protocol::{Event, RoomName, irc, render};

use super::token::ConnId;

/// An event on its way to several recipients, rendered at most once per protocol
/// (and not at all for a protocol none of the recipients speaks).
#[derive(Debug)]
pub struct Outgoing {
    /// What happened.
    pub event: Event,
    /// The line-protocol bytes, rendered by the first shard that needs them.
    line: OnceLock<Arc<[u8]>>,
    /// The IRC bytes, likewise.
    irc: OnceLock<Arc<[u8]>>,
}

impl Outgoing {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Outgoing {
            event,
            line: OnceLock::new(),
            irc: OnceLock::new(),
        })
    }

    /// The line-protocol rendering, computed once and then shared.
    pub fn line(&self) -> &Arc<[u8]> {
        self.line.get_or_init(|| render::line(&self.event))
    }

    /// The rendering for `protocol`, computed once and then shared. Only for events
    /// whose IRC form does not depend on the recipient (room events).
    pub fn bytes(&self, protocol: Protocol) -> &Arc<[u8]> {
        match protocol {
            Protocol::Line => self.line(),
            Protocol::Irc => self.irc.get_or_init(|| {
                let line = irc::broadcast(&self.event);
                debug_assert!(line.is_some(), "BUG: {:?} has no room form", self.event);
                Arc::from(line.unwrap_or_default().into_bytes())
            }),
        }
    }
}

/// The wire protocol a connection speaks (decided by the listener that accepted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// miochat's line protocol.
    Line,
    /// IRC.
    Irc,
}

/// A message to a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// A freshly accepted, not yet registered connection (R4: a source stays bound to
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
