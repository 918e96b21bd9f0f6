//! What every thread of one server shares: the configuration, the directory, the
//! counters, a handle to each shard's inbox, the connection count behind
//! `--max-connections`, the per-address table behind `--max-per-ip` and
//! `--connect-rate`, and the count of TLS handshakes in progress.
//!
//! Everything here is either read-only after start-up, atomic, or behind the
//! directory's own short lock; nothing here is touched per recipient.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::protocol::{ClusterReport, StatsReport};

use super::backplane::handle::BackplaneHandle;
use super::cluster::Cluster;

use std::net::IpAddr;

use super::address_limits::AddressLimits;
use super::config::ServerConfig;
use super::directory::Directory;
use super::inbox::ShardHandle;
use super::stats::Stats;

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
        }
    }

    /// What `/stats` reports, with the backplane's figures when there is one.
    pub fn report(&self) -> StatsReport {
        let mut report = self.stats.report();
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
            });
        }
        report
    }

    /// Reserves room for one more connection; false at `--max-connections`.
    pub fn try_take_slot(&self) -> bool {
        let max = self.config.max_connections;
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
