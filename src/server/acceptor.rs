//! The acceptor thread: the listening socket, the signal handlers, and the hand-off of
//! new connections to shards.
//!
//! It owns one `Poll` with three sources: the listener, SIGINT/SIGTERM (through
//! `signal-hook-mio`, which turns a signal into readiness on a pipe), and a `Waker` that
//! [`super::ServerHandle::shutdown`] uses. New sockets are handed to shards round-robin,
//! **unregistered** (a mio source stays bound to the first `Poll` it is registered
//! with), as memcached's `dispatch_conn_new` does. Round-robin keeps placement in our
//! code, where a reader can see it and a test can rely on it; docs/DESIGN.md compares
//! it with one `SO_REUSEPORT` listener per shard.
//!
//! Accepting never spins and never stalls:
//! - accept until `WouldBlock` (edge-triggered: the backlog is not reported again),
//!   under a per-turn budget; a budget-stopped acceptor polls again at once;
//! - `Interrupted` and `ConnectionAborted` (a client gave up in the backlog): continue;
//! - at `--max-connections`: accept, send `ERR server-full ...`, close;
//! - `EMFILE`/`ENFILE`: log once per episode, then libuv's trick: close a spare
//!   descriptor kept for this moment, accept each waiting client, tell it
//!   `ERR server-busy ...`, close it, reopen the spare; then retry after
//!   `ACCEPT_BACKOFF` through the poll timeout. Never a busy loop, never a sleep, and
//!   never a backlog abandoned without a timer to come back to it.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::nonblocking::write_once;
use crate::protocol::{Event, Refusal, irc, render};

use super::Shared;
use super::config::{ACCEPT_BACKOFF, ACCEPTS_PER_TURN};
use super::inbox::ShardMsg;
use super::stats::bump;
use crate::protocol::outgoing::Protocol;

/// The listening socket.
const TOKEN_LISTENER: Token = Token(0);
/// SIGINT or SIGTERM arrived.
const TOKEN_SIGNAL: Token = Token(1);
/// [`super::ServerHandle::shutdown`] was called.
pub const TOKEN_WAKEUP: Token = Token(2);
/// The IRC listening socket (`--irc-listen`).
const TOKEN_IRC_LISTENER: Token = Token(3);

/// The acceptor's state.
pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    /// The IRC listener, if configured; accepted exactly like the line listener.
    irc_listener: Option<TcpListener>,
    signals: Option<Signals>,
    /// Set by `ServerHandle::shutdown` before it wakes us.
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    /// Shard that gets the next connection.
    next_shard: usize,
    /// A descriptor held in reserve so that, out of descriptors, we can still accept
    /// a client to tell it why it is refused.
    spare: Option<File>,
    /// When to accept again after backing off (or at once, if the budget ran out).
    retry_at: Option<Instant>,
    /// True between the first EMFILE/ENFILE and the next successful accept.
    out_of_descriptors: bool,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("listener", &self.listener)
            .field("handles_signals", &self.signals.is_some())
            .field("next_shard", &self.next_shard)
            .field("retry_at", &self.retry_at)
            .field("out_of_descriptors", &self.out_of_descriptors)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Registers the listener (and signal handlers, if configured) with `poll`.
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        mut irc_listener: Option<TcpListener>,
        stop: Arc<AtomicBool>,
        shared: Arc<Shared>,
    ) -> io::Result<Acceptor> {
        poll.registry()
            .register(&mut listener, TOKEN_LISTENER, Interest::READABLE)?;
        if let Some(irc) = irc_listener.as_mut() {
            poll.registry()
                .register(irc, TOKEN_IRC_LISTENER, Interest::READABLE)?;
        }
        let signals = if shared.config.handle_signals {
            let mut signals = Signals::new([SIGINT, SIGTERM])?;
            poll.registry()
                .register(&mut signals, TOKEN_SIGNAL, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        Ok(Acceptor {
            poll,
            listener,
            irc_listener,
            signals,
            stop,
            shared,
            next_shard: 0,
            spare: File::open("/dev/null").ok(),
            retry_at: None,
            out_of_descriptors: false,
        })
    }

    /// Accepts until a signal or `shutdown()`, then tells every shard to shut down.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let timeout = self
                .retry_at
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                log::error!("acceptor: poll failed: {e}; shutting down");
                break;
            }
            if self.stop_requested(&events) {
                break;
            }
            let ready = |token| events.iter().any(|e| e.token() == token);
            let (line_ready, irc_ready) = (ready(TOKEN_LISTENER), ready(TOKEN_IRC_LISTENER));
            let retry_due = self.retry_at.is_some_and(|at| Instant::now() >= at);
            if retry_due {
                self.retry_at = None;
            }
            // A retry (back-off over, or budget spent) revisits both listeners: edge
            // triggering will not report a backlog we left behind.
            if (line_ready && self.retry_at.is_none()) || retry_due {
                self.accept_pending(Protocol::Line);
            }
            let irc_retry = retry_due && self.irc_listener.is_some();
            if (irc_ready && self.retry_at.is_none()) || irc_retry {
                self.accept_pending(Protocol::Irc);
            }
        }
        self.shutdown_shards();
    }

    fn stop_requested(&mut self, events: &Events) -> bool {
        for event in events.iter() {
            match event.token() {
                TOKEN_SIGNAL => {
                    if let Some(signals) = self.signals.as_mut()
                        && let Some(signal) = signals.pending().next()
                    {
                        let name = if signal == SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        };
                        log::info!("{name} received: shutting down");
                        return true;
                    }
                }
                TOKEN_WAKEUP if self.stop.load(Ordering::Acquire) => {
                    log::info!("shutdown requested");
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    fn listener(&self, protocol: Protocol) -> &TcpListener {
        match (protocol, &self.irc_listener) {
            (Protocol::Irc, Some(irc)) => irc,
            _ => &self.listener,
        }
    }

    /// Accepts until `WouldBlock`, an error that needs a pause, or the budget.
    fn accept_pending(&mut self, protocol: Protocol) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener(protocol).accept() {
                Ok((stream, peer)) => {
                    if self.out_of_descriptors {
                        self.out_of_descriptors = false;
                        log::info!("file descriptors available again: accepting");
                    }
                    self.hand_off(stream, peer, protocol);
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return,
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted => continue,
                    _ if is_out_of_descriptors(&e) => {
                        self.on_out_of_descriptors(&e, protocol);
                        return;
                    }
                    _ => {
                        log::error!("accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}");
                        self.back_off(ACCEPT_BACKOFF);
                        return;
                    }
                },
            }
        }
        // Budget spent with the backlog perhaps not empty: no new edge will come for
        // it, so poll again without waiting.
        self.back_off(Duration::ZERO);
    }

    fn back_off(&mut self, delay: Duration) {
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Gives the connection to the next shard, or refuses it at `--max-connections`.
    fn hand_off(&mut self, mut stream: TcpStream, peer: SocketAddr, protocol: Protocol) {
        if !self.shared.try_take_slot() {
            bump(&self.shared.stats.refused);
            log::warn!(
                "{peer} refused: {} connections open (--max-connections)",
                self.shared.config.max_connections
            );
            write_once(&mut stream, &self.refusal(Refusal::ServerFull, protocol));
            return;
        }
        let shard = self.next_shard;
        self.next_shard = (self.next_shard + 1) % self.shared.shards.len();
        let adopt = ShardMsg::Adopt {
            stream,
            peer,
            protocol,
        };
        if !self.shared.shards[shard].send(adopt) {
            self.shared.release_slot();
        }
    }

    /// The one line a refused client gets, in its listener's protocol.
    fn refusal(&self, refusal: Refusal, protocol: Protocol) -> Vec<u8> {
        let event = Event::Closing(refusal);
        match protocol {
            Protocol::Line => render::line(&event).to_vec(),
            Protocol::Irc => irc::reply(&event, &self.shared.config.server_name, "*").into_bytes(),
        }
    }

    /// EMFILE/ENFILE: refuse the waiting clients with a reason, then pause.
    fn on_out_of_descriptors(&mut self, e: &io::Error, protocol: Protocol) {
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            log::warn!(
                "out of file descriptors ({e}): refusing new connections, retrying every {ACCEPT_BACKOFF:?}"
            );
        }
        if let Some(spare) = self.spare.take() {
            drop(spare);
            let refusal = self.refusal(Refusal::NoDescriptors, protocol);
            for _ in 0..ACCEPTS_PER_TURN {
                let Ok((mut stream, _)) = self.listener(protocol).accept() else {
                    break;
                };
                bump(&self.shared.stats.refused);
                write_once(&mut stream, &refusal);
            }
            self.spare = File::open("/dev/null").ok();
        }
        self.back_off(ACCEPT_BACKOFF);
    }

    fn shutdown_shards(self) {
        // Dropping the listener closes it: new clients are refused by the kernel.
        drop(self.listener);
        drop(self.irc_listener);
        for shard in &self.shared.shards {
            shard.send(ShardMsg::Shutdown);
        }
    }
}

/// EMFILE (process limit) or ENFILE (system limit).
fn is_out_of_descriptors(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}
