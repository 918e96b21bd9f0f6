//! Flood control's timer list: connections that are not read until their budget
//! refills (ET-10).
//!
//! A paused connection's readiness edge was spent while it was paused (or its bytes
//! arrived with no edge at all: they were already in the kernel), so no event will
//! ever bring it back. This list is what does: each turn the loop asks it which pauses
//! are over, gives those connections the bytes they had left over, and reads them like
//! any ready connection. On the tick it also enforces the hard ceiling: a paused
//! connection whose unread input (bytes held here plus what waits in the kernel,
//! measured with a bounded `MSG_PEEK`) stays over `--flood-max-unread` for
//! `--flood-unread-timeout` is cut.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::server::connection::SessionInfo;
use crate::server::connection::{Conns, Turn};
use crate::server::stats::ShardStats;

/// The paused connections of one shard.
#[derive(Debug, Default)]
pub struct Pauses {
    /// Slab keys of paused connections (stale keys are dropped when met).
    paused: Vec<usize>,
    /// Buffer for measuring unread input (allocated on first use).
    peek: Vec<u8>,
}

impl Pauses {
    /// True when no connection is paused.
    pub fn is_empty(&self) -> bool {
        self.paused.is_empty()
    }

    /// How long until the first pause ends, if any connection is paused.
    pub fn next_due<S: SessionInfo>(&self, conns: &Conns<S>, now: Instant) -> Option<Duration> {
        self.paused
            .iter()
            .filter_map(|&key| Some(conns.get(key)?.paused.as_ref()?.until))
            .map(|until| until.saturating_duration_since(now))
            .min()
    }

    /// Moves the connections paused during this turn onto the list.
    pub fn take_new(&mut self, turn: &mut Turn, stats: &ShardStats) {
        stats
            .flood_pauses
            .fetch_add(turn.paused.len() as u64, Relaxed);
        self.paused.append(&mut turn.paused);
    }

    /// The connections whose pause is over, with the bytes each held: taken off the
    /// list and unpaused. The loop hands each its held bytes, then reads it.
    pub fn due<S: SessionInfo>(
        &mut self,
        conns: &mut Conns<S>,
        now: Instant,
    ) -> Vec<(usize, Vec<u8>)> {
        let mut due = Vec::new();
        self.paused.retain(|&key| {
            let Some(conn) = conns.get_mut(key) else {
                return false; // reaped
            };
            match conn.paused.as_ref().map(|paused| paused.until) {
                Some(until) if until > now => true,
                Some(_) => {
                    let held = conn.paused.take().map(|paused| paused.held);
                    due.push((key, held.unwrap_or_default()));
                    false
                }
                None => false, // a stale entry (the key was reused)
            }
        });
        due
    }

    /// The paused connections over the unread ceiling for longer than `timeout`.
    pub fn over_ceiling<S: SessionInfo>(
        &mut self,
        conns: &mut Conns<S>,
        now: Instant,
        limit: usize,
        timeout: Duration,
    ) -> Vec<usize> {
        self.peek.resize(limit + 1, 0);
        let mut over = Vec::new();
        for &key in &self.paused {
            let Some(conn) = conns.get_mut(key).filter(|c| c.is_open()) else {
                continue;
            };
            let Some(paused) = conn.paused.as_deref_mut() else {
                continue;
            };
            let room = (limit + 1).saturating_sub(paused.held.len());
            let waiting = conn
                .transport
                .socket()
                .peek(&mut self.peek[..room])
                .unwrap_or(0);
            if paused.held.len() + waiting <= limit {
                paused.over_unread_since = None;
                continue;
            }
            let since = *paused.over_unread_since.get_or_insert(now);
            if now.duration_since(since) >= timeout {
                over.push(key);
            }
        }
        over
    }
}
