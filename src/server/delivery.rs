//! Who gets an event, and how it gets there: replies, room fan-out in one order per
//! room, and private messages to any shard.
//!
//! - [`Delivery::reply`]: to the sender only, rendered for its protocol and nick.
//! - [`Delivery::broadcast`] / [`Delivery::announce`]: to a room. The event is wrapped
//!   once in an [`Outgoing`] (rendered at most once per protocol) and handed to the
//!   room's *home shard* ([`home_shard`]), which alone gives it its place in the
//!   room's order: it fans out to its own members and sends the event once to every
//!   other shard with members, whose FIFO inboxes keep that order (ET-8).
//! - [`Delivery::deliver_to`]: to one connection on any shard, checked against its
//!   generation on arrival (ET-6).
//!
//! Everything here only *queues* through [`Effects`]; the loop flushes once per turn.
//! The directory lock is taken once per room event on its home shard (to learn which
//! shards have members), never per recipient.

use std::sync::Arc;

use log::info;

use crate::protocol::outgoing::{Outgoing, render_for};
use crate::protocol::{Event, ProtocolError, RoomName};

use super::backplane::handle::BackplaneMsg;
use super::backplane::wire::crosses_nodes;
use super::close_reason::CloseReason;
use super::effects::Effects;
use super::inbox::{Origin, RoomEvent, ShardMsg};
use super::rooms::{LocalRooms, home_shard};
use super::shared::Shared;
use super::token::ConnId;

/// Protocol errors logged per connection before its further errors go unlogged (a
/// client spewing garbage must not turn into a log flood; it still gets every error).
const LOGGED_ERRORS_PER_CONNECTION: u8 = 5;

/// One shard's delivery: its local room membership and the way out to other shards.
#[derive(Debug)]
pub struct Delivery {
    /// This shard's index.
    index: usize,
    /// How many shards the server runs.
    shards: usize,
    /// Local members of each room, for fan-out without a lock.
    rooms: LocalRooms,
    /// Config (sendq, server name, announce limit) and the directory.
    shared: Arc<Shared>,
}

impl Delivery {
    /// Delivery for shard `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Self {
        Delivery {
            index,
            shards: shared.shards.len(),
            rooms: LocalRooms::default(),
            shared,
        }
    }

    /// Adds local connection `key` to `room`'s fan-out list.
    pub fn enter(&mut self, room: &RoomName, key: usize) {
        self.rooms.join(room, key);
    }

    /// Removes local connection `key` from `room`'s fan-out list.
    pub fn exit(&mut self, room: &RoomName, key: usize) {
        self.rooms.leave(room, key);
    }

    /// Slab keys of this shard's members of `room`.
    pub fn local_members(&self, room: &RoomName) -> &[usize] {
        self.rooms.members(room)
    }

    /// True if this shard is `room`'s home, where its events are sequenced (and so
    /// delivered to this shard's members at once).
    pub fn is_home(&self, room: &RoomName) -> bool {
        home_shard(room, self.shards) == self.index
    }

    /// `event` to connection `key` alone, in its protocol.
    pub fn reply(&self, fx: &mut Effects<'_>, key: usize, event: &Event) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let server = &self.shared.config.server_name;
        let bytes = render_for(session.protocol(), event, server, session.nick.as_str());
        fx.queue(key, &bytes);
    }

    /// `event` to connection `key` as its last word, then close it once flushed.
    pub fn farewell(&self, fx: &mut Effects<'_>, key: usize, event: &Event, reason: CloseReason) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let server = &self.shared.config.server_name;
        let bytes = render_for(session.protocol(), event, server, session.nick.as_str());
        fx.close_with(key, bytes, reason);
    }

    /// Answers a client mistake with an error line, and logs the first few.
    pub fn reject(&self, fx: &mut Effects<'_>, key: usize, error: ProtocolError) {
        if let Some(session) = fx.session(key)
            && session.errors_logged < LOGGED_ERRORS_PER_CONNECTION
        {
            session.errors_logged += 1;
            let more = if session.errors_logged == LOGGED_ERRORS_PER_CONNECTION {
                " (further errors from this connection are not logged)"
            } else {
                ""
            };
            let code = error.code();
            info!("{} {}: {code}: {error}{more}", session.peer, session.nick);
        }
        self.reply(fx, key, &Event::Error(error));
    }

    /// `event` to every member of `room` but `except` (a local key), in the room's one
    /// order (ET-8).
    pub fn broadcast(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
    ) {
        self.publish(fx, room, except, event, false);
    }

    /// Like [`Self::broadcast`] for join/leave/nick/quit notices, which are skipped in
    /// rooms larger than `--announce-max` (a 10 000-member lobby does not need
    /// 10 000 join lines per join).
    pub fn announce(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
    ) {
        self.publish(fx, room, except, event, true);
    }

    /// Hands a room event to the room's home shard: this one, or one inbox message.
    fn publish(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<usize>,
        event: Event,
        notice: bool,
    ) {
        let except = except.and_then(|key| fx.session(key)).map(|s| s.id);
        let outgoing = Outgoing::new(event);
        let (room, origin) = (room.clone(), Origin::Local);
        let event = RoomEvent {
            room,
            except,
            outgoing,
            notice,
            origin,
        };
        match home_shard(&event.room, self.shards) {
            home if home == self.index => self.sequence(fx, event),
            home => fx.send(home, ShardMsg::Sequence(event)),
        }
    }

    /// ET-8, on the room's home shard: local members get the event now, every other
    /// shard with members gets it in this turn's batch. Each peer's inbox is FIFO and
    /// only this shard feeds it the room's events, so every member on every shard sees
    /// the room in this order, and an answer (which must come back through here) can
    /// never overtake the line it answers. An event caused here then goes to the other
    /// nodes of the cluster, if any, once.
    pub fn sequence(&self, fx: &mut Effects<'_>, event: RoomEvent) {
        let RoomEvent {
            room,
            except,
            outgoing,
            notice,
            origin,
        } = event;
        let reach = self.shared.directory.reach(&room);
        let limit = self.shared.config.announce_max;
        if notice && limit != 0 && reach.members + self.shared.cluster.member_count(&room) > limit {
            return;
        }
        self.deliver_local(fx, &room, except, &outgoing);
        for shard in reach.shards().filter(|&shard| shard != self.index) {
            let (room, outgoing) = (room.clone(), Arc::clone(&outgoing));
            fx.send(
                shard,
                ShardMsg::Room {
                    room,
                    except,
                    outgoing,
                },
            );
        }
        if origin == Origin::Local
            && self.shared.backplane.is_some()
            && crosses_nodes(&outgoing.event)
        {
            fx.publish(BackplaneMsg::Room { room, outgoing });
        }
    }

    /// Fan-out on this shard: one `Arc` clone per member, no lock, no copy. Each
    /// protocol's bytes are rendered at most once, on first use.
    pub fn deliver_local(
        &self,
        fx: &mut Effects<'_>,
        room: &RoomName,
        except: Option<ConnId>,
        outgoing: &Outgoing,
    ) {
        let except = except
            .filter(|id| id.shard() == self.index)
            .map(ConnId::key);
        for &key in self.rooms.members(room) {
            if Some(key) == except {
                continue;
            }
            if let Some(session) = fx.session(key) {
                let protocol = session.protocol();
                fx.queue(key, outgoing.bytes(protocol));
            }
        }
    }

    /// `outgoing` to one connection, if it still exists *and* is the same connection
    /// (ET-6: a reused slab slot has a new generation). Rendered for that one reader.
    pub fn deliver_to(&self, fx: &mut Effects<'_>, to: ConnId, outgoing: Arc<Outgoing>) {
        if to.shard() != self.index {
            return fx.send(to.shard(), ShardMsg::Direct { to, outgoing });
        }
        match fx.session(to.key()) {
            Some(session) if session.id == to => {
                let server = &self.shared.config.server_name;
                let me = session.nick.as_str();
                let bytes = render_for(session.protocol(), &outgoing.event, server, me);
                fx.queue(to.key(), &bytes);
            }
            _ => log::debug!("dropping a message for {to:?}, which has closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::{SocketAddr, TcpListener, TcpStream as StdStream};
    use std::time::Duration;

    use mio::net::TcpStream;
    use mio::{Poll, Waker};
    use slab::Slab;

    use super::*;
    use crate::protocol::Nick;
    use crate::protocol::outgoing::Protocol;
    use crate::server::config::ServerConfig;
    use crate::server::connection::{Connection, Turn};
    use crate::server::inbox::ShardHandle;
    use crate::server::session::Session;
    use crate::server::token::{self, INBOX_WAKER};

    fn one_shard() -> (Arc<Shared>, Poll) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), INBOX_WAKER).unwrap();
        let (handle, _inbox) = ShardHandle::new(Arc::new(waker));
        let config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        (Arc::new(Shared::new(config, vec![handle], None)), poll)
    }

    /// A connection in slot `key` with generation `generation`.
    fn connection(listener: &TcpListener, key: usize, generation: u64) -> (Connection, StdStream) {
        let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        server_side.set_nonblocking(true).unwrap();
        let id = ConnId {
            token: token::encode(0, key),
            generation,
        };
        let nick = Nick::parse(&format!("n{generation}")).unwrap();
        let session = Session::new(id, peer, nick, Protocol::Line);
        (
            Connection::new(TcpStream::from_std(server_side), session, 512),
            client,
        )
    }

    fn private(text: &str) -> Arc<Outgoing> {
        let from = Nick::parse("someone").unwrap();
        Outgoing::new(Event::Private {
            from,
            text: text.into(),
            notice: false,
        })
    }

    #[test]
    fn et6_a_message_for_a_closed_connection_never_reaches_the_slots_next_owner() {
        let (shared, _poll) = one_shard();
        let delivery = Delivery::new(0, Arc::clone(&shared));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Slab::new();
        let (mut turn, mut outbound) = (Turn::default(), vec![Vec::new()]);
        let (old_conn, _a) = connection(&listener, 0, 1);
        let old = old_conn.id;
        assert_eq!(conns.insert(old_conn), old.key());
        conns.remove(old.key()); // closed and reaped: the slot is free
        let (new_conn, _b) = connection(&listener, 0, 2);
        let new = new_conn.id;
        assert_eq!(
            conns.insert(new_conn),
            old.key(),
            "the slab reused the slot"
        );
        let grace = Duration::from_secs(1);
        let mut to_backplane = Vec::new();
        let mut fx = Effects::new(
            &mut conns,
            &mut turn,
            &mut outbound,
            &mut to_backplane,
            1 << 20,
            grace,
        );
        delivery.deliver_to(&mut fx, old, private("for the old owner"));
        assert_eq!(fx.deliveries, 0, "dropped: the generation does not match");
        delivery.deliver_to(&mut fx, new, private("for the new owner"));
        assert_eq!(fx.deliveries, 1);
        assert!(!conns[new.key()].send_queue.is_empty());
    }
}
