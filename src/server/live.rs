//! What a reload (SIGHUP or `/rehash`) may change while the server runs, and how the
//! change reaches each thread without a lock on the hot path.
//!
//! Why shaped so: the limits a shard reads per line or per write (`max_line`,
//! `sendq`, flood control, the idle timeout, the history length) are plain fields of
//! a small `Copy` value, [`LiveLimits`], that each shard owns. A reload sends every
//! shard a new value through its inbox (`ShardMsg::Limits`), the same channel every
//! other cross-thread message takes, and the shard swaps it in between two turns. So
//! the hot path reads its own memory, as it did when the limits were fixed: no lock,
//! no atomic, no allocation; a reload costs one inbox message per shard.
//!
//! What the acceptor reads (`--max-connections`, the per-address limits) is not on a
//! shard, so it is an atomic and a field under the per-address table's own lock.
//! The operators and MOTD are a snapshot swapped whole (`operators.rs`).
//!
//! Where the new configuration comes from is not the server's business: a
//! [`ConfigSource`] (the binary's `--config` file plus its flags) reads it again and
//! says which changed keys need a restart; the server applies the rest.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::protocol::irc::{MAX_CLIENT_TAGS, MAX_IRC_LINE};
use crate::protocol::outgoing::Protocol;

use super::config::{FloodLimit, ServerConfig};

/// The limits a shard applies per line, per write and per tick, as one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveLimits {
    /// `--max-line` (the line protocol's; IRC's is fixed).
    pub max_line: usize,
    /// `--sendq`.
    pub sendq: usize,
    /// `--idle-timeout`; `None` = off.
    pub idle_timeout: Option<Duration>,
    /// `--flood-rate` and `--flood-burst`; `None` = off.
    pub flood: Option<FloodLimit>,
    /// `--flood-max-unread`.
    pub flood_max_unread: usize,
    /// `--flood-unread-timeout`.
    pub flood_unread_timeout: Duration,
    /// `--history`: lines each room keeps in memory.
    pub history: usize,
    /// `--announce-max`.
    pub announce_max: usize,
}

impl LiveLimits {
    /// The live part of `config`.
    pub fn of(config: &ServerConfig) -> Self {
        LiveLimits {
            max_line: config.max_line,
            sendq: config.sendq,
            idle_timeout: config.idle_timeout,
            flood: config.flood,
            flood_max_unread: config.flood_max_unread,
            flood_unread_timeout: config.flood_unread_timeout,
            history: config.history,
            announce_max: config.announce_max,
        }
    }

    /// The longest line a connection speaking `protocol` may send (IRC's is fixed by
    /// the RFC; the line protocol's is `--max-line`).
    pub fn max_line_for(&self, protocol: Protocol) -> usize {
        if protocol.speaks_irc() {
            // IRCv3 message tags may come before the 510 bytes; the IRC session
            // checks each part.
            MAX_IRC_LINE + MAX_CLIENT_TAGS
        } else {
            self.max_line
        }
    }
}

/// A configuration read again by a [`ConfigSource`].
#[derive(Debug)]
pub struct Reloaded {
    /// The whole new configuration (validated); the server applies its live part.
    pub config: ServerConfig,
    /// Keys that changed but only take effect after a restart (logged as warnings).
    pub needs_restart: Vec<String>,
}

/// Where a reload reads the configuration again: for the binary, the `--config`
/// file with the command line's flags over it. Called on the acceptor thread.
pub trait ConfigSource: Send + fmt::Debug {
    /// Reads and validates the configuration again; the error is one line per
    /// problem, and then nothing changes.
    fn reload(&mut self) -> Result<Reloaded, String>;
}

/// When the configuration was last loaded and whether that load worked (for
/// `/stats` and `/metrics`).
#[derive(Debug, Default)]
pub struct ConfigStatus {
    loaded_at: AtomicU64,
    ok: AtomicBool,
}

impl ConfigStatus {
    /// Records a load at unix time `at`, good or not.
    pub fn record(&self, at: u64, ok: bool) {
        self.loaded_at.store(at, Relaxed);
        self.ok.store(ok, Relaxed);
    }

    /// Unix time of the last load.
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at.load(Relaxed)
    }

    /// True if the last load worked.
    pub fn ok(&self) -> bool {
        self.ok.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn irc_lines_keep_their_fixed_limit() {
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.max_line = 100;
        let limits = LiveLimits::of(&config);
        assert_eq!(limits.max_line_for(Protocol::Line), 100);
        assert_eq!(
            limits.max_line_for(Protocol::Irc),
            MAX_IRC_LINE + MAX_CLIENT_TAGS
        );
    }
}
