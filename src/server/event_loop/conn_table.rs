//! A shard's connections, and the work that touches them one by one: adopting a
//! socket, turning its bytes into the chat's lines (the line framer, or an HTTP
//! request head and then WebSocket frames), flushing it, and reaping it.
//!
//! The event loop (`shard.rs`) decides *when* each of these runs; this file is *what*
//! they do to a connection. Both are one thread's, so nothing here is locked. The chat
//! is reached only through [`ConnTable::with_chat`], which lends it an [`Effects`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use mio::Registry;
use mio::net::TcpStream;
use slab::Slab;

use crate::framing::LineFramer;
use crate::protocol::http::client_address;
use crate::protocol::outgoing::Protocol;

use crate::server::backplane::handle::BackplaneMsg;
use crate::server::close_reason::CloseReason;
use crate::server::connection::SessionInfo;
use crate::server::connection::{ConnState, Connection, Conns, Turn};
use crate::server::effects::Effects;
use crate::server::handler::Handler;
use crate::server::inbox::ShardMsg;
use crate::server::live::LiveLimits;
use crate::server::pauses::Pauses;
use crate::server::shared::Shared;
use crate::server::tls::Transport;
use crate::server::token::{self, ConnId};
use crate::server::web::{FrameAction, Web};

/// A shard's connections with the lists one turn builds over them.
#[derive(Debug)]
pub struct ConnTable<H: Handler> {
    /// This shard's index (the low bits of its tokens).
    pub index: usize,
    /// Connections, by slab key.
    pub conns: Conns<H::Session>,
    /// The chat half: sessions' meaning, rooms, delivery.
    pub chat: H,
    /// Dirty and closing lists of the current turn.
    pub turn: Turn,
    /// Messages for other shards produced this turn, by shard index.
    pub outbound: Vec<Vec<ShardMsg>>,
    /// Messages for the cluster backplane produced this turn.
    pub to_backplane: Vec<BackplaneMsg>,
    /// Config, directory, stats, the other shards' handles.
    pub shared: Arc<Shared>,
    /// The shard's `Poll` registry (sockets are registered and deregistered here).
    pub registry: Registry,
    /// Source of connection generations (ET-6): counts adoptions on this shard.
    next_generation: u32,
    /// False once shutdown began: no new connection is adopted, no quit announced.
    pub accepting: bool,
    /// The limits in force (a reload sends new ones: `live.rs`).
    pub limits: LiveLimits,
}

impl<H: Handler> ConnTable<H> {
    /// An empty table for shard `index`, its lines handed to `chat`.
    pub fn new(index: usize, shared: Arc<Shared>, registry: Registry, chat: H) -> Self {
        ConnTable {
            index,
            conns: Slab::new(),
            chat,
            turn: Turn::default(),
            outbound: (0..shared.shards.len()).map(|_| Vec::new()).collect(),
            to_backplane: Vec::new(),
            registry,
            next_generation: 0,
            accepting: true,
            limits: LiveLimits::of(&shared.config),
            shared,
        }
    }

    /// Calls the chat through its one door, an [`Effects`] over this shard's
    /// connections and turn lists, and counts what it queued (once per call).
    pub fn with_chat<R>(
        &mut self,
        call: impl FnOnce(&mut H, &mut Effects<'_, H::Session>) -> R,
    ) -> R {
        let (sendq, grace) = (self.limits.sendq, self.shared.config.shutdown_grace);
        let conns = &mut self.conns;
        let (turn, outbound) = (&mut self.turn, &mut self.outbound);
        let mut fx = Effects::new(conns, turn, outbound, &mut self.to_backplane, sendq, grace);
        let result = call(&mut self.chat, &mut fx);
        let stats = &self.shared.stats.shards[self.index];
        stats.deliveries_out.fetch_add(fx.deliveries, Relaxed);
        result
    }
    /// Registers a socket handed over by the acceptor and lets the chat greet it.
    pub fn adopt(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let key = self.conns.vacant_entry().key();
        let token = token::encode(self.index, key);
        let handshaking = tls.is_some();
        if !self.accepting {
            return self.release(peer, handshaking);
        }
        let generation = self.next_generation.wrapping_add(1);
        let Some(id) = ConnId::new(token, generation) else {
            log::error!("{peer}: slab key {key} does not fit a connection id; refused");
            return self.release(peer, handshaking);
        };
        self.next_generation = generation;
        let config = &self.shared.config;
        let deadline = Instant::now() + config.tls_handshake_timeout;
        let transport =
            match Transport::open(stream, tls, deadline, &self.registry, token, config.nodelay) {
                Ok(transport) => transport,
                Err(e) => {
                    log::warn!("{peer}: cannot adopt the connection: {e}");
                    return self.release(peer, handshaking);
                }
            };
        self.shared.stats.shards[self.index].on_open(protocol);
        if protocol == Protocol::Http {
            // Not a chat connection yet: no session until it upgrades (web.rs).
            let deadline = Instant::now() + self.shared.config.http_timeout;
            self.conns
                .insert(Box::new(Connection::http(transport, id, peer, deadline)));
            return;
        }
        let session = self.chat.open_session(id, peer, protocol);
        let max_line = self.limits.max_line_for(protocol);
        self.conns
            .insert(Box::new(Connection::over(transport, session, max_line)));
        self.with_chat(|chat, fx| chat.on_adopted(fx, key));
    }
    /// Bytes of a web connection: a request head until it is answered or upgraded.
    /// The upgrade is this connection's adoption by the chat, as `adopt` is for the
    /// other listeners; what followed the head is already frames.
    fn on_request(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some((response, protocol, rest, forwarded)) =
            conn.read_request(bytes, &self.shared, &mut self.turn)
        else {
            return;
        };
        // Behind a trusted proxy, the client is the one it names (bans, cloaks).
        let trusted = &self.shared.config.trusted_proxies;
        let tcp_peer = conn.peer();
        let client = client_address(tcp_peer.ip(), forwarded.as_deref(), trusted);
        let peer = SocketAddr::new(client, tcp_peer.port());
        let session = self.chat.open_session(conn.id, peer, protocol);
        let max_line = self.limits.max_line_for(protocol);
        conn.upgrade(response, session, max_line, &mut self.turn);
        self.shared.stats.shards[self.index].on_upgrade(protocol);
        self.with_chat(|chat, fx| chat.on_adopted(fx, key));
        if !rest.is_empty() {
            self.on_frames(key, &rest);
        }
    }
    /// Bytes of a WebSocket: each complete message is a line for the chat; pings
    /// are answered; a close or a violation queues a close frame and drains. The
    /// decoder is taken out while the chat runs (it may touch any connection); if
    /// flood control pauses the connection, the bytes not yet decoded wait in
    /// `held`, as the line framer's do (ET-10).
    fn on_frames(&mut self, key: usize, bytes: &[u8]) {
        let Some(Some(Web::Socket(socket))) = self.conns.get_mut(key).map(|c| c.web.as_mut())
        else {
            return;
        };
        let mut decoder = std::mem::take(&mut socket.decoder);
        let binary_ok = socket.binary_ok();
        decoder.feed(bytes);
        let now = Instant::now();
        while let Some(conn) = self
            .conns
            .get_mut(key)
            .filter(|c| c.is_open() && !c.is_paused())
        {
            let Some(Web::Socket(socket)) = conn.web.as_mut() else {
                break;
            };
            let unit = match decoder.next(conn.framer.max_line(), binary_ok) {
                Ok(None) => break,
                Ok(Some(unit)) => Ok(unit),
                Err(violation) => Err(violation),
            };
            match socket.act(unit, now) {
                FrameAction::Line(line) => {
                    self.with_chat(|chat, fx| chat.on_line(fx, key, Ok(line)))
                }
                FrameAction::Send(bytes) => {
                    conn.push(bytes, &mut self.turn);
                }
                FrameAction::Close(frame, reason) => {
                    if let Some(frame) = frame {
                        conn.push(frame, &mut self.turn);
                    }
                    let grace = self.shared.config.shutdown_grace;
                    conn.drain(reason, grace, &mut self.turn);
                }
                FrameAction::Nothing => {}
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.is_open() && conn.is_paused() {
                conn.hold(&decoder.take_unparsed());
            }
            if let Some(Web::Socket(socket)) = conn.web.as_mut() {
                socket.decoder = decoder;
            }
        }
    }
    /// Gives back what the acceptor reserved for a connection that is going away.
    fn release(&self, peer: SocketAddr, handshaking: bool) {
        if handshaking {
            self.shared.end_handshake();
        }
        self.shared.release(peer.ip());
    }
    /// Splits a chunk into lines and hands each to the chat. The framer is taken out
    /// of the connection while it runs, because the chat may touch any connection.
    /// If a line makes flood control pause the connection, the rest of the chunk is
    /// held in the connection until the pause ends (ET-10).
    pub fn on_bytes(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.web {
            Some(Web::Http(_)) => return self.on_request(key, bytes),
            Some(Web::Socket(_)) => return self.on_frames(key, bytes),
            None => {}
        }
        let placeholder = LineFramer::new(conn.framer.max_line()); // allocates nothing
        let mut framer = std::mem::replace(&mut conn.framer, placeholder);
        let consumed = self.with_chat(|chat, fx| {
            framer.feed(bytes, |line| {
                chat.on_line(fx, key, line);
                // Stop at once if that line closed it (`/quit`) or paused it.
                fx.is_open(key) && !fx.is_paused(key)
            })
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.framer = framer;
            if conn.is_open() && consumed < bytes.len() {
                conn.hold(&bytes[consumed..]);
            }
        }
    }
    /// Flushes one connection (a writable event, or the end-of-turn flush).
    pub fn flush(&mut self, key: usize) {
        let sendq = self.limits.sendq;
        if let Some(conn) = self.conns.get_mut(key) {
            let queued = conn.send_queue.queued_bytes();
            let writes = conn.flush(sendq, &self.registry, &mut self.turn);
            let stats = &self.shared.stats.shards[self.index];
            stats.writes.fetch_add(writes, Relaxed);
            // What left the queue went to the socket, unless a cut cleared it.
            if !matches!(conn.state, ConnState::Closing(_)) {
                let sent = queued.saturating_sub(conn.send_queue.queued_bytes());
                stats.bytes_out.fetch_add(sent as u64, Relaxed);
            }
        }
    }
    /// Sends each peer shard the messages queued for it this turn, with one wake.
    pub fn send_outbound(&mut self) {
        let stats = &self.shared.stats.shards[self.index];
        for (shard, batch) in self.outbound.iter_mut().enumerate() {
            let sent = self.shared.shards[shard].send_batch(batch);
            stats.cross_shard.fetch_add(sent.messages, Relaxed);
            stats.wakes_sent.fetch_add(u64::from(sent.woke), Relaxed);
        }
        match &self.shared.backplane {
            Some(backplane) => backplane.send_batch(&mut self.to_backplane),
            None => self.to_backplane.clear(),
        }
    }
    /// ET-5: closed connections leave the slab only here, after every event of the
    /// turn has been handled; the chat then takes them out of its rooms.
    pub fn reap(&mut self) {
        for key in std::mem::take(&mut self.turn.closing) {
            let Some(mut conn) = self.conns.try_remove(key) else {
                continue;
            };
            let reason = conn.close_reason();
            if !matches!(reason, CloseReason::Reset | CloseReason::Io) {
                conn.transport.say_goodbye();
            }
            if let Err(e) = self.registry.deregister(conn.transport.socket()) {
                log::debug!("{} deregister: {e}", conn.peer());
            }
            let (peer, handshaking) = (conn.peer(), conn.transport.is_handshaking());
            conn.log_close(reason, self.limits.sendq);
            let protocol = conn
                .session
                .as_ref()
                .map_or(Protocol::Http, |s| s.protocol());
            let tell = self.accepting;
            if let Some(session) = conn.session.take() {
                self.with_chat(|chat, fx| chat.on_closed(fx, session, reason.label(), tell));
            }
            self.shared.stats.shards[self.index].on_close(reason, protocol);
            self.release(peer, handshaking);
        }
    }
    /// The per-connection deadlines, on the tick: a drain that ran out of time, a TLS
    /// handshake too slow, a web request head too slow or a WebSocket ping unanswered.
    /// Buffers a connection left unused for a whole tick are given back meanwhile.
    pub fn expire(&mut self, now: Instant) {
        let config = &self.shared.config;
        let (ping, grace) = (config.ws_ping, config.shutdown_grace);
        for (_, conn) in self.conns.iter_mut() {
            if let Some(reason) = conn.drain_expired(now) {
                conn.close(reason, &mut self.turn);
            } else if conn.transport.handshake_expired(now) {
                conn.close(CloseReason::TlsHandshakeTimeout, &mut self.turn);
            } else if conn.web.is_some() {
                conn.check_web_timers(now, ping, grace, &mut self.turn);
            }
            conn.give_back_idle_buffers();
        }
    }

    /// Shutdown: adopt nobody more, tell every client, and let each drain for up to
    /// `--shutdown-grace` (the loop closes what is left at the deadline).
    pub fn begin_shutdown(&mut self) {
        self.accepting = false;
        self.with_chat(|chat, fx| chat.begin_shutdown(fx));
        let grace = self.shared.config.shutdown_grace;
        for (_, conn) in self.conns.iter_mut() {
            conn.drain(CloseReason::Shutdown, grace, &mut self.turn);
        }
    }

    /// Flood control's hard ceiling, on the tick: a paused connection that kept more
    /// than `--flood-max-unread` unread for `--flood-unread-timeout` is cut.
    pub fn cut_flooders(&mut self, pauses: &mut Pauses, now: Instant) {
        let (limit, timeout) = (
            self.limits.flood_max_unread,
            self.limits.flood_unread_timeout,
        );
        for key in pauses.over_ceiling(&mut self.conns, now, limit, timeout) {
            self.with_chat(|chat, fx| chat.cut_flooder(fx, key));
        }
    }

    /// A reload's new limits: kept for the next lines and writes, given to the chat,
    /// and applied to the line framers of open connections (IRC's limit is fixed).
    pub fn set_limits(&mut self, limits: LiveLimits) {
        self.limits = limits;
        self.chat.set_limits(limits);
        for (_, conn) in self.conns.iter_mut() {
            if let Some(protocol) = conn.session.as_ref().map(|s| s.protocol()) {
                conn.framer.set_max_line(limits.max_line_for(protocol));
            }
        }
    }

    /// Marks every connection closing (shutdown's deadline, or a failed `poll`).
    pub fn close_all(&mut self, reason: CloseReason) {
        for (_, conn) in self.conns.iter_mut() {
            conn.close(reason, &mut self.turn);
        }
    }
}
