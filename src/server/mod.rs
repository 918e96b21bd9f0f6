//! The chat server: an acceptor thread and N shard threads.
//!
//! ```text
//!   acceptor ──Adopt(stream)──▶ shard 0 ◀──Room/Direct──▶ shard 1 ... shard N-1
//!               (round-robin)     │  one Poll, one Slab, LocalRooms
//!                                 └──── Directory (nicks, room → shards) ────┘
//!   shards ──try_send──▶ store thread, auth thread ──Stored (inbox)──▶ shards
//! ```
//!
//! [`Server::start`] binds the listener, creates every shard's `Poll` and `Waker` first
//! (so that every shard can hold a handle to every other), then spawns the threads and
//! returns a [`ServerHandle`]. Tests start servers in-process this way on port 0.
//!
//! Module map, in reading order: [`token`] → [`connection`] → [`shard`] (the event
//! loop) → [`inbox`] → [`relay`] (chat semantics) → [`directory`] and [`rooms`] →
//! [`acceptor`] → [`config`] and [`stats`]; the web listener's phase is [`web`] and
//! its Prometheus page [`metrics`]; the durable store's threads are [`store`], what a
//! shard must know of it at once [`registry`], and the commands that need it
//! [`services`].

pub mod acceptor;
pub mod address_limits;
pub mod backplane;
pub mod commands;
pub mod config;
pub mod event_loop;
pub mod klines;
pub mod live;
pub mod metrics;
pub mod oper_check;
pub mod operators;
pub mod shared;
pub mod state;
pub mod stats;
pub mod store;

// The grouped modules keep their flat paths (`crate::server::shard`): the folders
// show the architecture, the paths stay short.
pub use commands::{chat, delivery, irc_session, moderation, oper, relay, services, session};
pub use event_loop::{
    close_reason, conn_table, connection, effects, handler, inbox, pauses, shard, tls, token, web,
};
pub use state::{
    cluster, conn_map, directory, nick_table, registry, remote_users, room_home, room_list,
    room_state, rooms,
};

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use mio::net::TcpListener;
use mio::{Poll, Waker};

pub use config::ServerConfig;
pub use shared::Shared;

use crate::protocol::StatsReport;
use crate::protocol::outgoing::Protocol;
use acceptor::{Acceptor, TOKEN_WAKEUP};
use backplane::{Backplane, BackplaneHandle, BackplaneMsg};
use chat::Chat;
use inbox::{Inbox, ShardHandle};
use shard::Shard;
use token::INBOX_WAKER;

/// Why the server could not start: one line for the user.
#[derive(Debug)]
pub enum StartupError {
    /// The configuration is inconsistent.
    Config(String),
    /// The listening address could not be bound.
    Bind(SocketAddr, io::Error),
    /// Creating a `Poll`, `Waker`, signal handler or thread failed.
    Setup(&'static str, io::Error),
    /// The TLS certificate or key could not be loaded.
    Tls(String),
    /// The data dir could not be opened.
    Store(store::StoreError),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Config(msg) => write!(f, "invalid configuration: {msg}"),
            StartupError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartupError::Setup(what, e) => write!(f, "cannot create {what}: {e}"),
            StartupError::Tls(msg) => write!(f, "TLS: {msg}"),
            StartupError::Store(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for StartupError {}

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds, spawns the acceptor and the shards, and returns at once. A reload
    /// (SIGHUP, `/rehash`) reloads the TLS files only.
    pub fn start(config: ServerConfig) -> Result<ServerHandle, StartupError> {
        Self::start_with_source(config, None)
    }

    /// As [`Server::start`], with reloads reading the configuration from `source`.
    pub fn start_with_source(
        config: ServerConfig,
        source: Option<Box<dyn live::ConfigSource>>,
    ) -> Result<ServerHandle, StartupError> {
        config.validate_tls().map_err(StartupError::Tls)?;
        let config = config.validate().map_err(StartupError::Config)?;
        let tls = tls_state(&config)?;
        // The data dir first: a server that cannot have it opens no port at all.
        let mut store = match &config.store {
            Some(settings) => Some(store::open(settings).map_err(StartupError::Store)?),
            None => None,
        };
        let hosts = config.hosts().map_err(StartupError::Config)?;
        let (listeners, [local_addr, irc_addr, tls_addr, irc_tls_addr, http_addr]) =
            bind_listeners(&config)?;
        let local_addr = local_addr.expect("BUG: the line listener is always bound");
        let (polls, handles, inboxes) = shard_polls(config.workers)?;
        let backplane = (config.backplane.is_some())
            .then(|| Backplane::prepare().map_err(|e| StartupError::Setup("backplane poll", e)))
            .transpose()?;
        let backplane_handle = backplane.as_ref().map(|(_, _, handle)| handle.clone());
        let poll = Poll::new().map_err(|e| StartupError::Setup("acceptor poll", e))?;
        let waker = Waker::new(poll.registry(), TOKEN_WAKEUP)
            .map_err(|e| StartupError::Setup("acceptor waker", e))?;
        let waker = Arc::new(waker);
        let mut shared = Shared::new(config, handles, backplane_handle);
        shared.hosts = hosts;
        shared.acceptor_waker = Some(Arc::clone(&waker));
        let (oper_queue, oper_jobs) = oper_check::queue();
        shared.oper_check = Some(oper_queue);
        if let Some(opened) = &mut store {
            shared.attach_store(opened);
        }
        let shared = Arc::new(shared);
        let store_threads = match store {
            Some(opened) => opened
                .spawn(Arc::clone(&shared))
                .map_err(StartupError::Store)?,
            None => Vec::new(),
        };
        let checker = oper_check::OperCheck::new(Arc::clone(&shared));
        let oper_thread = spawn("oper-check".into(), move || checker.run(oper_jobs))?;
        let backplane_thread = match (backplane, shared.config.backplane.clone()) {
            (Some((poll, inbox, handle)), Some(settings)) => {
                let backplane = Backplane::new(poll, inbox, Arc::clone(&shared), settings);
                Some((spawn("backplane".into(), move || backplane.run())?, handle))
            }
            _ => None,
        };
        let threads = spawn_shards(polls, inboxes, &shared)?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = Acceptor::new(poll, listeners, tls, Arc::clone(&stop), Arc::clone(&shared))
            .map_err(|e| StartupError::Setup("listener registration or signal handler", e))?
            .with_source(source);
        let acceptor = spawn("acceptor".into(), move || acceptor.run())?;
        log::info!(
            "listening on {local_addr} with {} shard(s)",
            shared.config.workers
        );
        Ok(ServerHandle {
            local_addr,
            irc_addr,
            tls_addr,
            irc_tls_addr,
            http_addr,
            stop,
            waker,
            acceptor: Some(acceptor),
            shards: threads,
            backplane: backplane_thread,
            store: store_threads,
            oper_check: Some(oper_thread),
            shared,
        })
    }
}

/// One thread per shard, each with its own poll and inbox.
fn spawn_shards(
    polls: Vec<Poll>,
    inboxes: Vec<std::sync::mpsc::Receiver<inbox::ShardMsg>>,
    shared: &Arc<Shared>,
) -> Result<Vec<JoinHandle<()>>, StartupError> {
    let mut threads = Vec::new();
    for (index, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let inbox = Inbox::new(inbox, shared.shards[index].clone());
        let chat = Chat::new(index, Arc::clone(shared));
        let shard = Shard::new(index, poll, inbox, Arc::clone(shared), chat)
            .map_err(|e| StartupError::Setup("shard registry", e))?;
        threads.push(spawn(format!("shard-{index}"), move || shard.run())?);
    }
    Ok(threads)
}

/// The TLS listeners' certificate and key, loaded (none without `--tls-cert`).
fn tls_state(config: &ServerConfig) -> Result<Option<acceptor::TlsState>, StartupError> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    Ok(Some(acceptor::TlsState {
        files: files.clone(),
        config: tls::load_server_config(files).map_err(StartupError::Tls)?,
    }))
}

/// Binds every configured listener: line, IRC, TLS line, TLS IRC and HTTP, in that order;
/// returns them and their bound addresses (port 0 becomes a real port).
fn bind_listeners(
    config: &ServerConfig,
) -> Result<(Vec<acceptor::Listener>, [Option<SocketAddr>; 5]), StartupError> {
    let wanted = [
        (Some(config.listen), Protocol::Line, false, "listening"),
        (config.irc_listen, Protocol::Irc, false, "IRC listening"),
        (config.tls_listen, Protocol::Line, true, "TLS listening"),
        (
            config.irc_tls_listen,
            Protocol::Irc,
            true,
            "IRC over TLS listening",
        ),
        (
            config.http_listen,
            Protocol::Http,
            false,
            "web page, WebSocket and /metrics",
        ),
    ];
    let mut listeners = Vec::new();
    let mut addrs = [None; 5];
    for (slot, (addr, protocol, tls, what)) in wanted.into_iter().enumerate() {
        let Some(addr) = addr else { continue };
        let socket = TcpListener::bind(addr).map_err(|e| StartupError::Bind(addr, e))?;
        let bound = socket
            .local_addr()
            .map_err(|e| StartupError::Setup("listener address", e))?;
        if slot > 0 {
            log::info!("{what} on {bound}");
        }
        addrs[slot] = Some(bound);
        listeners.push(acceptor::Listener {
            socket,
            protocol,
            tls,
        });
    }
    Ok((listeners, addrs))
}

/// Every shard's `Poll`, the handle others use to reach it, and its inbox: all made
/// before any thread starts, so every shard can hold a handle to every other.
#[allow(clippy::type_complexity)]
fn shard_polls(
    workers: usize,
) -> Result<
    (
        Vec<Poll>,
        Vec<ShardHandle>,
        Vec<std::sync::mpsc::Receiver<inbox::ShardMsg>>,
    ),
    StartupError,
> {
    let (mut polls, mut handles, mut inboxes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..workers {
        let poll = Poll::new().map_err(|e| StartupError::Setup("shard poll", e))?;
        let waker = Waker::new(poll.registry(), INBOX_WAKER)
            .map_err(|e| StartupError::Setup("shard waker", e))?;
        let (handle, inbox) = ShardHandle::new(Arc::new(waker));
        polls.push(poll);
        handles.push(handle);
        inboxes.push(inbox);
    }
    Ok((polls, handles, inboxes))
}

fn spawn(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StartupError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|e| StartupError::Setup("thread", e))
}

/// A running server. Dropping it shuts the server down and waits for it.
#[derive(Debug)]
pub struct ServerHandle {
    /// The backplane thread and its inbox, in a cluster.
    backplane: Option<(JoinHandle<()>, BackplaneHandle)>,
    local_addr: SocketAddr,
    irc_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    irc_tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    acceptor: Option<JoinHandle<()>>,
    shards: Vec<JoinHandle<()>>,
    /// The store and auth threads, when there is a data dir.
    store: Vec<JoinHandle<()>>,
    /// The thread that checks `OPER` passwords.
    oper_check: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The IRC listener's address, if one was configured.
    pub fn irc_addr(&self) -> Option<SocketAddr> {
        self.irc_addr
    }

    /// The TLS line-protocol listener's address, if one was configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The TLS IRC listener's address, if one was configured.
    pub fn irc_tls_addr(&self) -> Option<SocketAddr> {
        self.irc_tls_addr
    }

    /// The web listener's address (page, WebSocket, metrics), if one was configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The per-address table (for tests: it must be empty once every client left).
    pub fn tracked_addresses(&self) -> usize {
        self.shared.addresses.tracked()
    }

    /// Current counters.
    pub fn stats(&self) -> StatsReport {
        self.shared.report()
    }

    /// Asks the server to shut down (as SIGTERM does); returns at once.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the acceptor for shutdown: {e}");
        }
    }

    /// Waits until the server has stopped (after a signal or [`Self::shutdown`]), logs
    /// the totals and returns them as one line.
    pub fn join(mut self) -> String {
        self.wait()
    }

    fn wait(&mut self) -> String {
        if let Some(acceptor) = self.acceptor.take()
            && acceptor.join().is_err()
        {
            log::error!("the acceptor thread panicked");
        }
        for shard in self.shards.drain(..) {
            if shard.join().is_err() {
                log::error!("a shard thread panicked");
            }
        }
        // The shards have reaped every connection (and told the backplane): now it
        // may say goodbye to the other nodes and stop.
        if let Some((thread, handle)) = self.backplane.take() {
            handle.send_batch(&mut vec![BackplaneMsg::Shutdown]);
            if thread.join().is_err() {
                log::error!("the backplane thread panicked");
            }
        }
        // No shard asks the checking thread anything more.
        if let Some(queue) = &self.shared.oper_check
            && queue.send(operators::OperJob::Stop).is_err()
        {
            log::debug!("the oper check thread had stopped already");
        }
        if let Some(thread) = self.oper_check.take()
            && thread.join().is_err()
        {
            log::error!("the oper check thread panicked");
        }
        // Then the store commits what the shards left it and stops.
        if let Some(store) = &self.shared.store {
            store.stop();
        }
        for thread in self.store.drain(..) {
            if thread.join().is_err() {
                log::error!("a store thread panicked");
            }
        }
        let totals = self.shared.stats.totals_line();
        log::info!("{totals}");
        totals
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.shutdown();
            self.wait();
        }
    }
}
