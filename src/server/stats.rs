//! Counters: per-shard atomics, read by `/stats` and summed at shutdown.
//!
//! Each shard writes only its own [`ShardStats`] (Relaxed ordering: these are counts,
//! they order nothing), so counting costs no contention. Readers sum them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::protocol::outgoing::Protocol;
use crate::protocol::{LoopReport, StatsReport};

use super::close_reason::CloseReason;

/// Counters written by one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Connections currently open on the shard.
    pub connections: AtomicU64,
    /// Connections adopted since start.
    pub adopted: AtomicU64,
    /// Chat lines received.
    pub messages_in: AtomicU64,
    /// Lines queued to clients.
    pub deliveries_out: AtomicU64,
    /// Write syscalls made to client sockets (`deliveries_out / writes` is the
    /// average number of lines each `writev` carried).
    pub writes: AtomicU64,
    /// Closes, by [`CloseReason::index`].
    pub closes: [AtomicU64; CloseReason::COUNT],
    /// Turns of the loop.
    pub turns: AtomicU64,
    /// Wakes sent to other shards.
    pub wakes_sent: AtomicU64,
    /// Inbox-waker events received.
    pub wakes_received: AtomicU64,
    /// Inbox messages handled.
    pub inbox_messages: AtomicU64,
    /// Messages sent to other shards.
    pub cross_shard: AtomicU64,
    /// Nanoseconds waiting in `poll`.
    pub poll_ns: AtomicU64,
    /// Nanoseconds working between polls.
    pub work_ns: AtomicU64,
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// Times flood control paused a connection.
    pub flood_pauses: AtomicU64,
    /// Connections open on the shard, by [`Protocol::index`] (a web connection
    /// counts as `Http` until it upgrades).
    pub by_protocol: [AtomicU64; Protocol::COUNT],
    /// Bytes handed to client sockets (plaintext, before TLS).
    pub bytes_out: AtomicU64,
    /// Turns whose work took at most [`TURN_BUCKETS`]`[i]` seconds (not cumulative;
    /// the last slot counts the longer ones).
    pub turn_buckets: [AtomicU64; TURN_BUCKETS.len() + 1],
}

/// Upper bounds, in seconds, of the turn-duration histogram's buckets: from an idle
/// wake-up (a few µs) to a turn that fans a burst out to thousands (tens of ms).
pub const TURN_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

impl ShardStats {
    /// A connection speaking `protocol` was adopted.
    pub fn on_open(&self, protocol: Protocol) {
        self.connections.fetch_add(1, Relaxed);
        bump(&self.adopted);
        bump(&self.by_protocol[protocol.index()]);
    }

    /// A web connection upgraded from HTTP to `protocol`.
    pub fn on_upgrade(&self, protocol: Protocol) {
        self.by_protocol[Protocol::Http.index()].fetch_sub(1, Relaxed);
        bump(&self.by_protocol[protocol.index()]);
    }

    /// One loop turn: `poll` waited `polling`, the work after it took `working`.
    pub fn count_turn(&self, polling: Duration, working: Duration) {
        bump(&self.turns);
        let seconds = working.as_secs_f64();
        let bucket = TURN_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(TURN_BUCKETS.len());
        bump(&self.turn_buckets[bucket]);
        self.poll_ns.fetch_add(polling.as_nanos() as u64, Relaxed);
        self.work_ns.fetch_add(working.as_nanos() as u64, Relaxed);
    }

    /// The loop's counters as reported by `/stats`.
    pub fn loop_report(&self) -> LoopReport {
        LoopReport {
            turns: self.turns.load(Relaxed),
            wakes_sent: self.wakes_sent.load(Relaxed),
            wakes_received: self.wakes_received.load(Relaxed),
            inbox_messages: self.inbox_messages.load(Relaxed),
            cross_shard: self.cross_shard.load(Relaxed),
            poll: Duration::from_nanos(self.poll_ns.load(Relaxed)),
            work: Duration::from_nanos(self.work_ns.load(Relaxed)),
        }
    }

    /// A connection speaking `protocol` was reaped.
    pub fn on_close(&self, reason: CloseReason, protocol: Protocol) {
        self.connections.fetch_sub(1, Relaxed);
        self.by_protocol[protocol.index()].fetch_sub(1, Relaxed);
        bump(&self.closes[reason.index()]);
    }
}

/// Counters of the cluster backplane (zero without one).
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Messages published to Redis.
    pub published: AtomicU64,
    /// Room events received from other nodes.
    pub received: AtomicU64,
    /// Room events of other nodes lost on the way.
    pub gaps: AtomicU64,
    /// Room events of this node not published (more than the hold while Redis was
    /// away).
    pub unpublished: AtomicU64,
    /// Lines of other nodes this node missed and read back from the rooms' logs.
    pub recovered: AtomicU64,
    /// The last probe round trip through Redis, in ms.
    pub lag_ms: AtomicU64,
    /// Channels Redis has confirmed this node listens to (its own two, and one per room
    /// with local members).
    pub subscriptions: AtomicU64,
    /// True while both Redis links are up and this node has announced itself.
    pub up: AtomicBool,
}

/// All counters of a server.
#[derive(Debug)]
pub struct Stats {
    /// When the server started (for uptime).
    pub started: Instant,
    /// One entry per shard.
    pub shards: Vec<ShardStats>,
    /// Connections refused at accept time (full, out of descriptors, per-address
    /// limits, too many TLS handshakes).
    pub refused: AtomicU64,
    /// The backplane's counters.
    pub cluster: ClusterStats,
    /// Of those, refused by `--max-per-ip`.
    pub refused_per_address: AtomicU64,
    /// Of those, refused by `--connect-rate`.
    pub refused_connect_rate: AtomicU64,
    /// Of those, TLS connections closed because `--max-tls-handshakes` were running.
    pub refused_tls_handshakes: AtomicU64,
    /// Of those, refused at `--max-connections`.
    pub refused_full: AtomicU64,
    /// Of those, refused because the process ran out of descriptors.
    pub refused_descriptors: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Stats {
    /// Zeroed counters for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Stats {
            started: Instant::now(),
            shards: (0..shards).map(|_| ShardStats::default()).collect(),
            refused: AtomicU64::new(0),
            cluster: ClusterStats::default(),
            refused_per_address: AtomicU64::new(0),
            refused_connect_rate: AtomicU64::new(0),
            refused_tls_handshakes: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            refused_descriptors: AtomicU64::new(0),
        }
    }

    /// What `/stats` reports.
    pub fn report(&self) -> StatsReport {
        let sum = |f: fn(&ShardStats) -> &AtomicU64| -> u64 {
            self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        StatsReport {
            per_shard: self
                .shards
                .iter()
                .map(|s| s.connections.load(Relaxed))
                .collect(),
            messages_in: sum(|s| &s.messages_in),
            deliveries_out: sum(|s| &s.deliveries_out),
            writes: sum(|s| &s.writes),
            slow_consumers: self.closes_for(CloseReason::SlowConsumer),
            uptime: self.started.elapsed(),
            pid: std::process::id(),
            cluster: None,
            counters: self.counters(),
            loops: self.shards.iter().map(ShardStats::loop_report).collect(),
        }
    }

    /// The named counters of `/stats` beyond the original ones (docs/PROTOCOL.md).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let sum = |f: fn(&ShardStats) -> &AtomicU64| -> u64 {
            self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        vec![
            ("tls_handshakes", sum(|s| &s.tls_handshakes)),
            (
                "tls_handshake_failed",
                self.closes_for(CloseReason::TlsHandshakeFailed),
            ),
            (
                "tls_handshake_timeout",
                self.closes_for(CloseReason::TlsHandshakeTimeout),
            ),
            ("tls_errors", self.closes_for(CloseReason::TlsError)),
            (
                "tls_handshakes_refused",
                self.refused_tls_handshakes.load(Relaxed),
            ),
            ("refused_per_ip", self.refused_per_address.load(Relaxed)),
            (
                "refused_connect_rate",
                self.refused_connect_rate.load(Relaxed),
            ),
            ("flood_pauses", sum(|s| &s.flood_pauses)),
            ("flood_cut", self.closes_for(CloseReason::Flood)),
        ]
    }

    /// Closes for one reason, over all shards.
    pub fn closes_for(&self, reason: CloseReason) -> u64 {
        self.shards
            .iter()
            .map(|s| s.closes[reason.index()].load(Relaxed))
            .sum()
    }

    /// One log line with the totals, written at shutdown.
    pub fn totals_line(&self) -> String {
        let adopted: u64 = self.shards.iter().map(|s| s.adopted.load(Relaxed)).sum();
        let report = self.report();
        let mut line = format!(
            "totals: connections={} refused={} messages_in={} deliveries_out={} writes={} uptime_s={} closes:",
            adopted,
            self.refused.load(Relaxed),
            report.messages_in,
            report.deliveries_out,
            report.writes,
            report.uptime.as_secs()
        );
        for reason in CloseReason::ALL {
            let n = self.closes_for(reason);
            if n > 0 {
                line.push_str(&format!(" {}={n}", reason.label()));
            }
        }
        for (index, shard) in report.loops.iter().enumerate() {
            line.push_str(&format!(
                " | shard{index}: turns={} wakes_sent={} wakes_received={} inbox={} cross_shard={} poll_ms={} work_ms={}",
                shard.turns,
                shard.wakes_sent,
                shard.wakes_received,
                shard.inbox_messages,
                shard.cross_shard,
                shard.poll.as_millis(),
                shard.work.as_millis()
            ));
        }
        line
    }
}
