//! What every thread of one server shares: the configuration, the directory, the
//! counters, a handle to each shard's inbox, and the connection count behind
//! `--max-connections`.
//!
//! Everything here is either read-only after start-up, atomic, or behind the
//! directory's own short lock; nothing here is touched per recipient.

use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Open connections plus those in hand-off (for `--max-connections`).
    live: AtomicUsize,
}

impl Shared {
    /// Shared state for a server with these shards.
    pub fn new(config: ServerConfig, shards: Vec<ShardHandle>) -> Self {
        Shared {
            stats: Stats::new(shards.len()),
            config,
            directory: Directory::new(),
            shards,
            live: AtomicUsize::new(0),
        }
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
}
