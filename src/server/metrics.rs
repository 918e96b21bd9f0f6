//! What `GET /metrics` reports: the server's counters, read from the shards' stats
//! atomics and the directory at scrape time (nothing is kept for the scrape itself).
//!
//! A scrape costs one relaxed load per counter and one directory lock to count rooms
//! and members; it sends nothing to any shard's loop, so scraping every second is
//! free for the chat. The text is spelled by `protocol::exposition`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::protocol::exposition::{Exposition, Kind};
use crate::protocol::outgoing::Protocol;

use super::close_reason::CloseReason;
use super::shared::Shared;
use super::stats::{ShardStats, TURN_BUCKETS};

pub use crate::protocol::exposition::CONTENT_TYPE;

/// Which counter of a shard's stats a metric reads.
type Counter = fn(&ShardStats) -> &AtomicU64;

/// The whole scrape.
pub fn render(shared: &Shared) -> String {
    let mut out = Exposition::default();
    connections(&mut out, shared);
    traffic(&mut out, shared);
    rooms(&mut out, shared);
    loops(&mut out, shared);
    store(&mut out, shared);
    config(&mut out, shared);
    out.finish()
}

/// When the configuration was last loaded (start-up or a reload) and whether it was.
fn config(out: &mut Exposition, shared: &Shared) {
    let status = &shared.config_status;
    out.single(
        "miochat_config_last_reload_success",
        Kind::Gauge,
        "1 if the last configuration load (start-up, SIGHUP or /rehash) succeeded, else 0.",
        f64::from(u8::from(status.ok())),
    );
    out.single(
        "miochat_config_last_reload_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last configuration load, successful or not.",
        status.loaded_at() as f64,
    );
}

/// The durable store's counters (nothing with `--data-dir none`).
fn store(out: &mut Exposition, shared: &Shared) {
    for (name, value) in shared.store_counters() {
        let (metric, kind, help) = match name {
            "store_lines" => (
                "miochat_store_lines_total",
                Kind::Counter,
                "History lines committed to disk.",
            ),
            "store_commits" => (
                "miochat_store_commits_total",
                Kind::Counter,
                "Store transactions committed.",
            ),
            "store_queue_full" => (
                "miochat_store_queue_full_total",
                Kind::Counter,
                "Store requests refused because a queue was full.",
            ),
            "store_errors" => (
                "miochat_store_errors_total",
                Kind::Counter,
                "Store writes or reads that failed (a full or failing disk).",
            ),
            "store_queued" => (
                "miochat_store_queued",
                Kind::Gauge,
                "Jobs waiting for the store thread.",
            ),
            "store_pruned" => (
                "miochat_store_pruned_total",
                Kind::Counter,
                "History lines removed by retention.",
            ),
            "accounts" => ("miochat_accounts", Kind::Gauge, "Registered accounts."),
            _ => ("miochat_registered_rooms", Kind::Gauge, "Registered rooms."),
        };
        out.single(metric, kind, help, value as f64);
    }
}

fn sum(shared: &Shared, counter: Counter) -> f64 {
    shared
        .stats
        .shards
        .iter()
        .map(|s| counter(s).load(Relaxed))
        .sum::<u64>() as f64
}

fn connections(out: &mut Exposition, shared: &Shared) {
    let stats = &shared.stats;
    let name = "miochat_connections";
    out.family(
        name,
        Kind::Gauge,
        "Open connections by protocol (http: web requests not upgraded).",
    );
    for protocol in Protocol::ALL {
        let open: u64 = stats
            .shards
            .iter()
            .map(|s| s.by_protocol[protocol.index()].load(Relaxed))
            .sum();
        out.sample(name, &[("protocol", protocol.label())], open as f64);
    }
    let accepted = sum(shared, |s| &s.adopted);
    let help = "Connections accepted and handed to a shard.";
    out.single(
        "miochat_connections_accepted_total",
        Kind::Counter,
        help,
        accepted,
    );
    let name = "miochat_connections_refused_total";
    out.family(
        name,
        Kind::Counter,
        "Connections refused at accept time, by reason.",
    );
    let refused = [
        ("server_full", &stats.refused_full),
        ("per_address", &stats.refused_per_address),
        ("connect_rate", &stats.refused_connect_rate),
        ("tls_handshakes", &stats.refused_tls_handshakes),
        ("out_of_descriptors", &stats.refused_descriptors),
    ];
    for (reason, counter) in refused {
        out.sample(name, &[("reason", reason)], counter.load(Relaxed) as f64);
    }
    let name = "miochat_connections_closed_total";
    let help = "Connections closed, by reason (slow-consumer cuts, flood cuts and idle closes among them).";
    out.family(name, Kind::Counter, help);
    for reason in CloseReason::ALL {
        let closed = stats.closes_for(reason) as f64;
        out.sample(name, &[("reason", reason.label())], closed);
    }
}

fn traffic(out: &mut Exposition, shared: &Shared) {
    let rows: [(&str, &str, Counter); 6] = [
        (
            "miochat_messages_received_total",
            "Chat lines received from clients.",
            |s| &s.messages_in,
        ),
        (
            "miochat_deliveries_total",
            "Lines queued to clients (one per recipient).",
            |s| &s.deliveries_out,
        ),
        (
            "miochat_writes_total",
            "Write syscalls to client sockets.",
            |s| &s.writes,
        ),
        (
            "miochat_sent_bytes_total",
            "Bytes handed to client sockets (before TLS).",
            |s| &s.bytes_out,
        ),
        (
            "miochat_flood_pauses_total",
            "Times flood control paused reading a client (throttles).",
            |s| &s.flood_pauses,
        ),
        (
            "miochat_tls_handshakes_total",
            "TLS handshakes completed.",
            |s| &s.tls_handshakes,
        ),
    ];
    for (name, help, counter) in rows {
        out.single(name, Kind::Counter, help, sum(shared, counter));
    }
    let stats = &shared.stats;
    let cuts = [
        (
            "miochat_slow_consumer_cuts_total",
            "Clients cut for not reading (send queue past --sendq).",
            CloseReason::SlowConsumer,
        ),
        (
            "miochat_flood_cuts_total",
            "Clients cut by flood control's hard ceiling.",
            CloseReason::Flood,
        ),
        (
            "miochat_idle_closes_total",
            "Clients closed for silence (idle timeout, unanswered pings).",
            CloseReason::IdleTimeout,
        ),
    ];
    for (name, help, reason) in cuts {
        out.single(name, Kind::Counter, help, stats.closes_for(reason) as f64);
    }
}

fn rooms(out: &mut Exposition, shared: &Shared) {
    let rooms = shared.directory.rooms();
    let members: usize = rooms.iter().map(|room| room.members).sum();
    out.single(
        "miochat_rooms",
        Kind::Gauge,
        "Rooms with at least one member on this node.",
        rooms.len() as f64,
    );
    out.single(
        "miochat_room_members",
        Kind::Gauge,
        "Room memberships on this node (a client in two rooms counts twice).",
        members as f64,
    );
    let uptime = shared.stats.started.elapsed().as_secs_f64();
    out.single(
        "miochat_uptime_seconds",
        Kind::Gauge,
        "Seconds since the server started.",
        uptime,
    );
}

fn loops(out: &mut Exposition, shared: &Shared) {
    let shards = &shared.stats.shards;
    let labels: Vec<String> = (0..shards.len()).map(|i| i.to_string()).collect();
    let rows: [(&str, &str, Counter, f64); 4] = [
        (
            "miochat_loop_turns_total",
            "Event-loop turns, per shard.",
            |s| &s.turns,
            1.0,
        ),
        (
            "miochat_loop_poll_seconds_total",
            "Seconds spent waiting in poll, per shard.",
            |s| &s.poll_ns,
            1e-9,
        ),
        (
            "miochat_loop_work_seconds_total",
            "Seconds spent working between polls, per shard.",
            |s| &s.work_ns,
            1e-9,
        ),
        (
            "miochat_loop_wakes_received_total",
            "Wake-ups from other threads, per shard.",
            |s| &s.wakes_received,
            1.0,
        ),
    ];
    for (name, help, counter, scale) in rows {
        out.family(name, Kind::Counter, help);
        for (shard, label) in shards.iter().zip(&labels) {
            let value = counter(shard).load(Relaxed) as f64 * scale;
            out.sample(name, &[("shard", label)], value);
        }
    }
    let name = "miochat_turn_duration_seconds";
    out.family(
        name,
        Kind::Histogram,
        "Work per event-loop turn (after poll returns), per shard.",
    );
    for (shard, label) in shards.iter().zip(&labels) {
        let counts: Vec<u64> = shard.turn_buckets.iter().map(|c| c.load(Relaxed)).collect();
        let sum = shard.work_ns.load(Relaxed) as f64 * 1e-9;
        out.histogram(name, &[("shard", label)], &TURN_BUCKETS, &counts, sum);
    }
}
