//! How threads talk to a shard: a channel plus a `mio::Waker`, and nothing else.
//!
//! A shard sleeps in `poll`, so putting a message in its channel is not enough: it must
//! also be woken. [`ShardHandle::send`] does both, in that order (send, then wake), so
//! by the time the shard sees the wake the message is there. Wakes coalesce (the waker
//! is an eventfd: ten wakes may produce one event), so the shard's `drain_inbox` drains the
//! channel until it is empty rather than taking one message per wake (ET-7).
//!
//! Wakes are skipped when the shard is awake: a shard *parks* (sets a flag) before it
//! sleeps in `poll`, looks at its inbox once more, and senders wake it only if the
//! flag was set ([`ShardHandle::park`]). Under load shards are rarely asleep, so most
//! cross-shard batches cost no syscall at all.
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
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, fence};
use std::sync::mpsc::{Receiver, Sender, channel};

use mio::Waker;
use mio::net::TcpStream;

use crate::protocol::RoomName;
use crate::protocol::outgoing::{Outgoing, Protocol};

use crate::server::operators::OperMsg;
use crate::server::token::ConnId;

/// Messages a batch (to a shard or to the backplane) keeps room for after it was sent.
pub const KEPT_BATCH: usize = 1024;
/// A room event on its way to the room's home shard.
#[derive(Debug)]
pub struct RoomEvent {
    /// The room.
    pub room: RoomName,
    /// The sender, who does not get its own line back.
    pub except: Option<ConnId>,
    /// What to deliver.
    pub outgoing: Arc<Outgoing>,
    /// A join/leave/nick/quit notice, skipped in rooms over `--announce-max`.
    pub notice: bool,
    /// Caused here (published to the other nodes) or on another node.
    pub origin: Origin,
}

/// Where a room event was caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// By a user of this node: other nodes must hear of it.
    Local,
    /// On another node (it came through the backplane): not published again.
    Remote,
}

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
        /// For a TLS listener, the certificate configuration current at accept time
        /// (a SIGHUP reload changes new handshakes only).
        tls: Option<Arc<rustls::ServerConfig>>,
    },
    /// To the room's home shard: put this event in the room's order, deliver it to
    /// the local members and forward it to every other shard with members (ET-8).
    Sequence(RoomEvent),
    /// Redis's claim says another node's user holds this connection's nick: rename
    /// it.
    Rename {
        /// The connection.
        id: ConnId,
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
    /// To the room's home shard: send the room's last `count` lines to `to`.
    History {
        /// The room.
        room: RoomName,
        /// Who asked.
        to: ConnId,
        /// How many lines.
        count: usize,
        /// Asked by a join: send nothing if there is no history.
        on_join: bool,
    },
    /// An answer from the store or auth thread for one connection.
    Stored(Box<crate::server::store::StoreReply>),
    /// This connection lost its nick to the account's owner, who logged in: it is
    /// `new` now (the directory already says so); tell it and its rooms.
    NickReclaimed {
        /// The connection.
        id: ConnId,
        /// The nick it had.
        old: crate::protocol::Nick,
        /// The guest nick it has now.
        new: crate::protocol::Nick,
    },
    /// Redis answered a nick claim of this connection (or could not be asked).
    Claimed {
        /// The connection.
        id: ConnId,
        /// The nick it asked for.
        nick: crate::protocol::Nick,
        /// Why it asked.
        then: crate::server::backplane::ClaimFor,
        /// What Redis said.
        answer: crate::server::backplane::ClaimAnswer,
    },
    /// What became of a private message this connection sent to another node:
    /// `Ok` once Redis handed it to the recipient's node, `Err(why)` if it did not.
    PrivateSent {
        /// The sender.
        id: ConnId,
        /// The recipient.
        to: crate::protocol::Nick,
        /// The recipient's away message.
        away: Option<Box<str>>,
        /// Delivered to the node, or why not.
        delivered: Result<(), &'static str>,
    },
    /// To the room's home shard, in a cluster: the tail of the room's shared log,
    /// read when this node began to listen to it.
    Seeded {
        /// The room.
        room: RoomName,
        /// Its lines, oldest first.
        lines: Vec<crate::protocol::HistoryLine>,
    },
    /// To the room's home shard, in a cluster: lines of the room's shared log this
    /// node missed while cut off, read back. Kept as the room's history here, then
    /// handed to its members, with how many, in the room's order (live events
    /// that follow come through the home shard too).
    Recovered {
        /// The room.
        room: RoomName,
        /// The lines, oldest first.
        lines: Vec<crate::protocol::HistoryLine>,
    },
    /// Server operators' business: an `OPER` checked, a kill, a k-line sweep, a
    /// `WALLOPS`, `/wall` or server notice (`commands/oper.rs`).
    Oper(OperMsg),
    /// A reload's new limits (from the acceptor): applied between two turns.
    Limits(crate::server::live::LiveLimits),
    /// Tell every client, flush, close, exit.
    Shutdown,
}

/// The sending side of a shard's inbox, cloneable across threads.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
    /// True while the shard sleeps (or is about to sleep) in `poll`: only then does a
    /// message need a wake. A busy shard drains its inbox at the start of its next
    /// turn anyway, so waking it would cost an eventfd write and an extra turn for
    /// nothing.
    parked: Arc<AtomicBool>,
}

/// What [`ShardHandle::send_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSent {
    /// Messages sent.
    pub messages: u64,
    /// Whether the shard had to be woken.
    pub woke: bool,
}

impl ShardHandle {
    /// A handle and the receiving end for the shard that owns `waker`.
    pub fn new(waker: Arc<Waker>) -> (ShardHandle, Receiver<ShardMsg>) {
        let (tx, rx) = channel();
        let parked = Arc::new(AtomicBool::new(false));
        (ShardHandle { tx, waker, parked }, rx)
    }

    /// Sends one message and wakes the shard if it sleeps. False if the shard has
    /// exited.
    pub fn send(&self, msg: ShardMsg) -> bool {
        self.tx.send(msg).is_ok() && self.wake_if_parked().is_some()
    }

    /// Sends every message in `batch` (emptying it), then at most one wake.
    pub fn send_batch(&self, batch: &mut Vec<ShardMsg>) -> BatchSent {
        let messages = batch.len() as u64;
        if messages == 0 {
            return BatchSent::default();
        }
        for msg in batch.drain(..) {
            if self.tx.send(msg).is_err() {
                return BatchSent::default(); // the shard has exited
            }
        }
        // A burst (thousands of claims answered in one turn) grows a batch far past
        // what a quiet turn needs; the rest is given back, not held for good.
        batch.shrink_to(KEPT_BATCH);
        let woke = self.wake_if_parked() == Some(true);
        BatchSent { messages, woke }
    }

    /// The sender's half of the parking protocol: the message is in the channel;
    /// if the shard has announced it is going to sleep, wake it (once: the flag is
    /// cleared). `None` if the wake failed.
    fn wake_if_parked(&self) -> Option<bool> {
        fence(SeqCst); // the send above is visible before the flag is read
        if !self.parked.swap(false, SeqCst) {
            return Some(false);
        }
        match self.waker.wake() {
            Ok(()) => Some(true),
            Err(e) => {
                log::warn!("waking a shard failed: {e}");
                None
            }
        }
    }

    /// The shard's half: announce that it is about to sleep in `poll`. The caller
    /// must then look at its inbox once more and not sleep if anything is there: a
    /// message sent before the flag was visible skipped its wake. (The two fences
    /// make it impossible for both sides to miss each other.)
    pub fn park(&self) {
        self.parked.store(true, SeqCst);
        fence(SeqCst);
    }

    /// The shard is awake: senders need not wake it.
    pub fn unpark(&self) {
        self.parked.store(false, SeqCst);
    }
}

/// The receiving side of a shard's inbox, owned by the shard's thread.
#[derive(Debug)]
pub struct Inbox {
    rx: Receiver<ShardMsg>,
    /// The shard's own handle, for its `parked` flag.
    own: ShardHandle,
    /// A message found while parking, handed out first.
    early: Option<ShardMsg>,
    /// True if the last drain stopped at its cap with messages left.
    backlog: bool,
}

impl Inbox {
    /// The inbox behind `own`.
    pub fn new(rx: Receiver<ShardMsg>, own: ShardHandle) -> Self {
        Inbox {
            rx,
            own,
            early: None,
            backlog: false,
        }
    }

    /// The next message of this drain, if any; `taken` is how many this drain has
    /// handed out so far. At `cap` it stops and remembers that messages may be left,
    /// so the shard polls with a zero timeout and sockets get their share too.
    pub fn next(&mut self, taken: usize, cap: usize) -> Option<ShardMsg> {
        self.backlog = taken == cap;
        if self.backlog {
            return None;
        }
        self.early.take().or_else(|| self.rx.try_recv().ok())
    }

    /// True if the last drain stopped at its cap.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Announces that the shard is about to sleep, so senders wake it. False if a
    /// message arrived meanwhile (kept for the next drain): then it must not sleep.
    pub fn park(&mut self) -> bool {
        self.own.park();
        match self.rx.try_recv() {
            Ok(msg) => {
                self.own.unpark();
                self.early = Some(msg);
                false
            }
            Err(_) => true,
        }
    }

    /// The shard is awake again.
    pub fn unpark(&self) {
        self.own.unpark();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use mio::{Events, Poll, Token};

    use super::*;

    #[test]
    fn a_parked_shard_is_woken_once_and_a_busy_one_not_at_all() {
        let mut poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(7)).unwrap();
        let (handle, inbox) = ShardHandle::new(Arc::new(waker));
        let mut batch = vec![ShardMsg::Shutdown, ShardMsg::Shutdown];
        let busy = handle.send_batch(&mut batch);
        assert_eq!(
            busy,
            BatchSent {
                messages: 2,
                woke: false
            }
        );
        handle.park();
        batch.push(ShardMsg::Shutdown);
        assert!(
            handle.send_batch(&mut batch).woke,
            "a parked shard is woken"
        );
        batch.push(ShardMsg::Shutdown);
        assert!(!handle.send_batch(&mut batch).woke, "one wake is enough");
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        assert_eq!(inbox.try_iter().count(), 4, "nothing is lost");
    }
}
