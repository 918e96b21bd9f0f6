//! What every thread of one server shares: the configuration, the directory, the
//! counters, a handle to each shard's inbox, the connection count behind
//! `--max-connections`, the per-address table behind `--max-per-ip` and
//! `--connect-rate`, and the count of TLS handshakes in progress.
//!
//! Everything here is read-only after start-up, atomic, or behind a short lock taken
//! per command or per reload (docs/DESIGN.md lists each); nothing here is touched
//! per recipient.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::protocol::identity::Hosts;
use crate::protocol::{ClusterReport, StatsReport};

use super::backplane::handle::BackplaneHandle;
use super::cluster::Cluster;

use std::net::IpAddr;

use super::address_limits::AddressLimits;
use super::config::ServerConfig;
use super::directory::Directory;
use super::inbox::ShardHandle;
use super::live::ConfigStatus;
use super::registry::Registry;
use super::room_state::{RemoteRoom, unix_now};
use super::stats::Stats;
use super::store::{OpenedStore, StoreHandle};
use crate::protocol::RoomName;

/// State every thread of one server shares.
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: ServerConfig,
    /// Nicks and rooms.
    pub directory: Directory,
    /// Counters.
    pub stats: Stats,
    /// One handle per shard, by index.
    pub shards: Vec<ShardHandle>,
    /// The cluster backplane, if this server is one node of several.
    pub backplane: Option<BackplaneHandle>,
    /// What this node knows of the other nodes (empty without a backplane).
    pub cluster: Cluster,
    /// Open connections plus those in hand-off (for `--max-connections`).
    live: AtomicUsize,
    /// Connections per address (`--max-per-ip`, `--connect-rate`).
    pub addresses: AddressLimits,
    /// TLS handshakes accepted and not yet finished or closed.
    handshaking: AtomicUsize,
    /// The durable store's queues, when there is a data dir.
    pub store: Option<StoreHandle>,
    /// Accounts and registered rooms, as committed (empty without a store).
    pub registry: Registry,
    /// The last message id given out (see [`Shared::next_msgid`]).
    last_msgid: AtomicU64,
    /// How hosts are shown (`ServerConfig::hosts`, resolved at start-up; the
    /// address until then).
    pub hosts: Hosts,
    /// The operators and MOTD in force (a reload swaps the snapshot).
    pub operators: super::operators::LiveOperators,
    /// Wakes the acceptor thread, which runs reloads (see [`Shared::request_reload`]).
    pub acceptor_waker: Option<std::sync::Arc<mio::Waker>>,
    /// Set by [`Shared::request_reload`], taken by the acceptor.
    reload_requested: std::sync::atomic::AtomicBool,
    /// The k-lines in force (from the data dir, then Redis in a cluster).
    pub klines: super::klines::KlineList,
    /// How many operators each shard has.
    pub opers: super::operators::OperCounts,
    /// The queue of the thread that checks `OPER` passwords (set before start).
    pub oper_check: Option<std::sync::mpsc::SyncSender<super::operators::OperJob>>,
    /// `--max-connections` in force (a reload may change it; read by the acceptor).
    max_connections: AtomicUsize,
    /// When the configuration was last loaded, and whether that worked.
    pub config_status: ConfigStatus,
}

impl Shared {
    /// This node's name in the cluster (empty without a backplane).
    pub fn node_name(&self) -> &str {
        self.config
            .backplane
            .as_ref()
            .map_or("", |b| b.node.as_str())
    }

    /// Shared state for a server with these shards.
    pub fn new(
        config: ServerConfig,
        shards: Vec<ShardHandle>,
        backplane: Option<BackplaneHandle>,
    ) -> Self {
        let config_operators = config.operators.clone();
        let shards_len = shards.len();
        let max_connections = config.max_connections;
        let config_status = ConfigStatus::default();
        config_status.record(unix_now(), true);
        let guest_suffix = config.backplane.as_ref().map(|b| format!("-{}", b.node));
        Shared {
            addresses: AddressLimits::new(config.max_per_address, config.connect_rate),
            handshaking: AtomicUsize::new(0),
            stats: Stats::new(shards.len()),
            directory: Directory::with_guest_suffix(guest_suffix.unwrap_or_default()),
            config,
            shards,
            backplane,
            cluster: Cluster::new(),
            live: AtomicUsize::new(0),
            store: None,
            registry: Registry::default(),
            last_msgid: AtomicU64::new(0),
            hosts: Hosts::Address,
            operators: super::operators::LiveOperators::new(config_operators),
            acceptor_waker: None,
            reload_requested: std::sync::atomic::AtomicBool::new(false),
            klines: super::klines::KlineList::default(),
            opers: super::operators::OperCounts::new(shards_len),
            oper_check: None,
            max_connections: AtomicUsize::new(max_connections),
            config_status,
        }
    }

    /// What is known of `room` beyond this node's directory: its members and state on
    /// other nodes of a cluster or, if it has none there and is registered, its
    /// stored state (so its first member here meets its modes, bans and topic).
    pub fn room_outside(&self, room: &RoomName) -> RemoteRoom {
        let mut outside = self.cluster.remote_room(room);
        if outside.members == 0
            && let Some(registered) = self.registry.room(room)
        {
            outside.snapshot = Some(registered.snapshot);
            outside.registered = true;
        }
        outside
    }

    /// The store's counters for `/stats` and `/metrics` (none without a data dir):
    /// lines committed, commits, requests refused for a full queue, failed writes
    /// or reads, jobs waiting, lines pruned, accounts and registered rooms.
    pub fn store_counters(&self) -> Vec<(&'static str, u64)> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let s = &store.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("store_lines", load(&s.lines_written)),
            ("store_commits", load(&s.commits)),
            ("store_queue_full", load(&s.queue_full)),
            ("store_errors", load(&s.errors)),
            ("store_queued", load(&s.queued)),
            ("store_pruned", load(&s.pruned)),
            ("accounts", self.registry.accounts() as u64),
            ("registered_rooms", self.registry.room_count() as u64),
        ]
    }

    /// Takes the opened store's queues and what it loaded (before any thread runs).
    pub fn attach_store(&mut self, opened: &mut OpenedStore) {
        self.store = Some(opened.handle.clone());
        self.registry = std::mem::take(&mut opened.registry);
        self.klines = super::klines::KlineList::new(std::mem::take(&mut opened.klines));
        self.last_msgid.store(opened.last_id, Ordering::Relaxed);
    }

    /// Asks the acceptor thread to reload, exactly as SIGHUP does (`/rehash`). Returns
    /// false if this server has no acceptor to ask (never the case once started).
    pub fn request_reload(&self) -> bool {
        let Some(waker) = &self.acceptor_waker else {
            return false;
        };
        self.reload_requested.store(true, Ordering::Release);
        match waker.wake() {
            Ok(()) => true,
            Err(e) => {
                log::error!("reload request: cannot wake the acceptor: {e}");
                false
            }
        }
    }

    /// True once per [`Shared::request_reload`] (the acceptor asks on each wake-up).
    pub fn take_reload_request(&self) -> bool {
        self.reload_requested.swap(false, Ordering::AcqRel)
    }

    /// A new message id: the time in ms shifted left 12 bits, plus a counter, and
    /// always above the last one given out (and above every stored one, after a
    /// restart). Sortable, unique on this node, and one atomic operation per room
    /// line, never per recipient.
    pub fn next_msgid(&self) -> u64 {
        let floor = crate::protocol::outgoing::now_ms() << 12;
        let mut last = self.last_msgid.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self.last_msgid.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// What `/stats` reports, with the backplane's figures when there is one.
    pub fn report(&self) -> StatsReport {
        let mut report = self.stats.report();
        report.counters.extend(self.store_counters());
        let status = &self.config_status;
        report.counters.extend([
            ("config_loaded_at", status.loaded_at()),
            ("config_ok", u64::from(status.ok())),
        ]);
        if let Some(backplane) = &self.config.backplane {
            let counters = &self.stats.cluster;
            report.cluster = Some(ClusterReport {
                node: backplane.node.clone(),
                up: counters.up.load(Relaxed),
                subscriptions: counters.subscriptions.load(Relaxed),
                peers: self.cluster.peers(),
                lag_ms: counters.lag_ms.load(Relaxed),
                published: counters.published.load(Relaxed),
                received: counters.received.load(Relaxed),
                gaps: counters.gaps.load(Relaxed),
                unpublished: counters.unpublished.load(Relaxed),
                recovered: counters.recovered.load(Relaxed),
            });
        }
        report
    }

    /// `--max-connections` in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections.load(Relaxed)
    }

    /// A reload's live settings outside the shards: `--max-connections` and the
    /// per-address limits (the shards get theirs through their inboxes).
    pub fn apply_limits(&self, config: &ServerConfig) {
        self.max_connections.store(config.max_connections, Relaxed);
        (self.addresses).set_limits(config.max_per_address, config.connect_rate);
    }

    /// Reserves room for one more connection; false at `--max-connections`.
    pub fn try_take_slot(&self) -> bool {
        let max = self.max_connections();
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back the slot of a connection that closed (or never arrived).
    pub fn release_slot(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Gives back everything an admitted connection from `ip` held: its slot and its
    /// count in the per-address table.
    pub fn release(&self, ip: IpAddr) {
        self.release_slot();
        self.addresses.release(ip);
    }

    /// Counts one more TLS handshake in progress; false at `--max-tls-handshakes`.
    pub fn try_begin_handshake(&self) -> bool {
        let max = self.config.max_tls_handshakes;
        self.handshaking
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A handshake finished, failed, or its connection went away.
    pub fn end_handshake(&self) {
        self.handshaking.fetch_sub(1, Ordering::AcqRel);
    }
}
