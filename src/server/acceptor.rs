//! The acceptor thread: the listening sockets, the signal handlers, the per-address
//! limits, and the hand-off of new connections to shards.
//!
//! It owns one `Poll` with these sources: up to five listeners (line, IRC, each of
//! them over TLS, and the web listener, whose refusals are `503` answers), SIGINT/SIGTERM/SIGHUP (through `signal-hook-mio`, which turns a
//! signal into readiness on a pipe), and a `Waker` that
//! [`super::ServerHandle::shutdown`] uses. SIGHUP (or `/rehash`) reopens the log
//! file, reads the configuration again through the server's `ConfigSource` and
//! applies its live part (`live.rs`), and reloads the TLS certificate and key: each
//! TLS socket is handed off with the configuration current at that moment, so a
//! reload changes new handshakes only, and a reload that fails keeps the old one. New sockets are handed to shards round-robin,
//! **unregistered** (a mio source stays bound to the first `Poll` it is registered
//! with), as memcached's `dispatch_conn_new` does. Round-robin keeps placement in our
//! code, where a reader can see it and a test can rely on it; docs/DESIGN.md compares
//! it with one `SO_REUSEPORT` listener per shard.
//!
//! Accepting never spins and never stalls:
//! - accept until `WouldBlock` (edge-triggered: the backlog is not reported again),
//!   under a per-turn budget; a budget-stopped acceptor polls again at once;
//! - `Interrupted` and `ConnectionAborted` (a client gave up in the backlog): continue;
//! - over `--max-per-ip` or `--connect-rate` for its address (the table in
//!   `address_limits.rs`): accept, send `ERR server-busy ...`, close;
//! - at `--max-connections`: accept, send `ERR server-full ...`, close;
//! - on a TLS listener, refusals are closes without a line (a plain-text line would
//!   be garbage to a TLS client), and past `--max-tls-handshakes` handshakes in
//!   progress a new TLS connection is closed at once;
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
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::nonblocking::write_once;
use crate::protocol::{Event, Refusal, http, irc, render};

use super::Shared;
use super::address_limits::Admission;
use super::config::{ACCEPT_BACKOFF, ACCEPTS_PER_TURN, ServerConfig, TlsFiles};
use super::inbox::ShardMsg;
use super::live::{ConfigSource, LiveLimits};
use super::room_state::unix_now;
use super::stats::bump;
use super::store::Job;
use super::tls::load_server_config;
use crate::protocol::outgoing::Protocol;

/// SIGINT, SIGTERM or SIGHUP arrived.
const TOKEN_SIGNAL: Token = Token(1);
/// [`super::ServerHandle::shutdown`] was called.
pub const TOKEN_WAKEUP: Token = Token(2);
/// Listener `i` is registered as `Token(FIRST_LISTENER + i)`.
const FIRST_LISTENER: usize = 16;

/// One listening socket and what its connections speak.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// The protocol its clients speak.
    pub protocol: Protocol,
    /// True if its clients speak TLS first.
    pub tls: bool,
}

/// The certificate files and the configuration built from them.
#[derive(Debug)]
pub struct TlsState {
    /// Where the certificate and key are read from (again on SIGHUP).
    pub files: TlsFiles,
    /// What new handshakes use.
    pub config: Arc<rustls::ServerConfig>,
}

/// The acceptor's state.
pub struct Acceptor {
    poll: Poll,
    /// Every listener, by index (line first; then IRC and the TLS ones, if configured).
    listeners: Vec<Listener>,
    /// The TLS configuration, if any listener speaks TLS.
    tls: Option<TlsState>,
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
    /// Where a reload reads the configuration again (none: TLS files only).
    source: Option<Box<dyn ConfigSource>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("listeners", &self.listeners)
            .field("handles_signals", &self.signals.is_some())
            .field("next_shard", &self.next_shard)
            .field("retry_at", &self.retry_at)
            .field("out_of_descriptors", &self.out_of_descriptors)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Registers the listeners (and signal handlers, if configured) with `poll`.
    pub fn new(
        poll: Poll,
        mut listeners: Vec<Listener>,
        tls: Option<TlsState>,
        stop: Arc<AtomicBool>,
        shared: Arc<Shared>,
    ) -> io::Result<Acceptor> {
        for (index, listener) in listeners.iter_mut().enumerate() {
            let token = Token(FIRST_LISTENER + index);
            poll.registry()
                .register(&mut listener.socket, token, Interest::READABLE)?;
        }
        let signals = if shared.config.handle_signals {
            let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
            poll.registry()
                .register(&mut signals, TOKEN_SIGNAL, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        Ok(Acceptor {
            poll,
            listeners,
            tls,
            signals,
            stop,
            shared,
            next_shard: 0,
            spare: File::open("/dev/null").ok(),
            retry_at: None,
            out_of_descriptors: false,
            source: None,
        })
    }

    /// Reloads read the configuration from `source` (the `--config` file and flags).
    pub fn with_source(mut self, source: Option<Box<dyn ConfigSource>>) -> Self {
        self.source = source;
        self
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
            let retry_due = self.retry_at.is_some_and(|at| Instant::now() >= at);
            if retry_due {
                self.retry_at = None;
            }
            // A retry (back-off over, or budget spent) revisits every listener: edge
            // triggering will not report a backlog we left behind.
            for index in 0..self.listeners.len() {
                let token = Token(FIRST_LISTENER + index);
                let ready = events.iter().any(|e| e.token() == token);
                if (ready && self.retry_at.is_none()) || retry_due {
                    self.accept_pending(index);
                }
            }
        }
        self.shutdown_shards();
    }

    fn stop_requested(&mut self, events: &Events) -> bool {
        let mut stop = false;
        for event in events.iter() {
            match event.token() {
                TOKEN_SIGNAL => {
                    let pending: Vec<i32> = match self.signals.as_mut() {
                        Some(signals) => signals.pending().collect(),
                        None => Vec::new(),
                    };
                    for signal in pending {
                        match signal {
                            SIGHUP => {
                                log::info!("SIGHUP received: reloading");
                                self.reload();
                            }
                            SIGINT => {
                                log::info!("SIGINT received: shutting down");
                                stop = true;
                            }
                            _ => {
                                log::info!("SIGTERM received: shutting down");
                                stop = true;
                            }
                        }
                    }
                }
                TOKEN_WAKEUP if self.stop.load(Ordering::Acquire) => {
                    log::info!("shutdown requested");
                    stop = true;
                }
                TOKEN_WAKEUP if self.shared.take_reload_request() => {
                    log::info!("reload requested (/rehash)");
                    self.reload();
                }
                _ => {}
            }
        }
        stop
    }

    /// SIGHUP or `/rehash`: the log file is reopened (logrotate moved it away), then
    /// the configuration is read again and what can change while the server runs is
    /// applied; a configuration that does not load changes nothing.
    fn reload(&mut self) {
        crate::logging::reopen();
        let shared = Arc::clone(&self.shared);
        let status = &shared.config_status;
        let Some(source) = self.source.as_mut() else {
            self.reload_tls();
            return status.record(unix_now(), true);
        };
        match source.reload() {
            Ok(reloaded) => {
                self.apply(reloaded.config);
                for key in &reloaded.needs_restart {
                    log::warn!("reload: {key} changed; it takes effect at the next restart");
                }
                status.record(unix_now(), true);
                log::info!("reload: configuration applied");
            }
            Err(e) => {
                status.record(unix_now(), false);
                log::error!("reload: the configuration does not load, nothing changed: {e}");
            }
        }
    }

    /// The live part of a reloaded configuration (`live.rs`): limits to every shard
    /// through its inbox, the acceptor's own limits, operators and MOTD, history
    /// retention, and the TLS files.
    fn apply(&mut self, config: ServerConfig) {
        self.shared.apply_limits(&config);
        let limits = LiveLimits::of(&config);
        for shard in &self.shared.shards {
            shard.send(ShardMsg::Limits(limits));
        }
        self.shared.operators.set(config.operators.clone());
        if let (Some(store), Some(settings)) = (&self.shared.store, &config.store) {
            let retention = Job::Retention {
                days: settings.history_days,
                max: settings.history_max,
            };
            if store.submit(retention).is_err() {
                log::error!("reload: the store is busy; history retention is unchanged");
            }
        }
        if let (Some(tls), Some(files)) = (self.tls.as_mut(), config.tls) {
            tls.files = files;
        }
        self.reload_tls();
    }

    /// Reads the certificate and key again. New handshakes use the new files;
    /// sessions already running keep theirs; a failed reload keeps the old ones.
    fn reload_tls(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            log::info!("reload: no TLS listener, no certificate to reload");
            return;
        };
        match load_server_config(&tls.files) {
            Ok(config) => {
                tls.config = config;
                log::info!(
                    "reload: reloaded TLS certificate {} and key {}",
                    tls.files.cert.display(),
                    tls.files.key.display()
                );
            }
            Err(e) => log::error!("reload: TLS reload failed, keeping the old certificate: {e}"),
        }
    }

    /// Accepts from listener `index` until `WouldBlock`, an error that needs a
    /// pause, or the budget.
    fn accept_pending(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listeners[index].socket.accept() {
                Ok((stream, peer)) => {
                    if self.out_of_descriptors {
                        self.out_of_descriptors = false;
                        log::info!("file descriptors available again: accepting");
                    }
                    self.hand_off(stream, peer, index);
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return,
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted => continue,
                    _ if is_out_of_descriptors(&e) => {
                        self.on_out_of_descriptors(&e, index);
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

    /// Gives the connection to the next shard, or refuses it (per-address limits,
    /// `--max-connections`, TLS handshakes in progress).
    fn hand_off(&mut self, mut stream: TcpStream, peer: SocketAddr, index: usize) {
        let (protocol, tls) = (self.listeners[index].protocol, self.listeners[index].tls);
        let refused = match self.shared.addresses.admit(peer.ip(), Instant::now()) {
            Admission::Admitted => None,
            Admission::TooMany => Some((
                Refusal::TooManyFromAddress,
                &self.shared.stats.refused_per_address,
            )),
            Admission::TooFast => Some((
                Refusal::ConnectingTooFast,
                &self.shared.stats.refused_connect_rate,
            )),
        };
        if let Some((refusal, counter)) = refused {
            bump(counter);
            log::info!("{peer} refused: {}", refusal.text());
            return self.refuse(&mut stream, refusal, index);
        }
        if !self.shared.try_take_slot() {
            self.shared.addresses.release(peer.ip());
            log::warn!(
                "{peer} refused: {} connections open (--max-connections)",
                self.shared.max_connections()
            );
            bump(&self.shared.stats.refused_full);
            return self.refuse(&mut stream, Refusal::ServerFull, index);
        }
        let config = match (&self.tls, tls) {
            (Some(state), true) => Some(Arc::clone(&state.config)),
            _ => None,
        };
        if config.is_some() && !self.shared.try_begin_handshake() {
            self.shared.release(peer.ip());
            bump(&self.shared.stats.refused);
            bump(&self.shared.stats.refused_tls_handshakes);
            log::info!("{peer} refused: --max-tls-handshakes handshakes in progress");
            return;
        }
        let handshaking = config.is_some();
        let shard = self.next_shard;
        self.next_shard = (self.next_shard + 1) % self.shared.shards.len();
        let adopt = ShardMsg::Adopt {
            stream,
            peer,
            protocol,
            tls: config,
        };
        if !self.shared.shards[shard].send(adopt) {
            if handshaking {
                self.shared.end_handshake();
            }
            self.shared.release(peer.ip());
        }
    }

    /// Counts a refusal and tells the client why, in its listener's protocol; a TLS
    /// client is only closed (it could not read a plain-text line).
    fn refuse(&self, stream: &mut TcpStream, refusal: Refusal, index: usize) {
        bump(&self.shared.stats.refused);
        let listener = &self.listeners[index];
        if !listener.tls {
            write_once(stream, &self.refusal(refusal, listener.protocol));
        }
    }

    /// The one line a refused client gets, in its listener's protocol.
    fn refusal(&self, refusal: Refusal, protocol: Protocol) -> Vec<u8> {
        let event = Event::Closing(refusal);
        match protocol {
            // The status, with the line a line client would get as its body.
            Protocol::Http => {
                let body = render::line(&event);
                http::response(503, "text/plain; charset=utf-8", &body, false)
            }
            _ if protocol.speaks_irc() => {
                irc::reply(&event, &self.shared.config.server_name, "*").into_bytes()
            }
            _ => render::line(&event).to_vec(),
        }
    }

    /// EMFILE/ENFILE: refuse the waiting clients with a reason, then pause.
    fn on_out_of_descriptors(&mut self, e: &io::Error, index: usize) {
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            log::warn!(
                "out of file descriptors ({e}): refusing new connections, retrying every {ACCEPT_BACKOFF:?}"
            );
        }
        if let Some(spare) = self.spare.take() {
            drop(spare);
            for _ in 0..ACCEPTS_PER_TURN {
                let Ok((mut stream, _)) = self.listeners[index].socket.accept() else {
                    break;
                };
                bump(&self.shared.stats.refused_descriptors);
                self.refuse(&mut stream, Refusal::NoDescriptors, index);
            }
            self.spare = File::open("/dev/null").ok();
        }
        self.back_off(ACCEPT_BACKOFF);
    }

    fn shutdown_shards(self) {
        // Dropping the listeners closes them: new clients are refused by the kernel.
        drop(self.listeners);
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
