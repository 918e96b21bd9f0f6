//! Per-address limits: how many connections one address holds (`--max-per-ip`) and
//! how fast it may open new ones (`--connect-rate`, a token bucket with a burst).
//!
//! Why it is shaped so: the check runs on the accept path, the one thread every new
//! connection passes through, so it must be cheap; and the count must be released
//! by whichever shard reaps the connection. One `Mutex<HashMap>` in the shared state
//! does both. Per accept it costs one uncontended lock, one hash of a 16-byte key and
//! a few arithmetic operations (well under a microsecond next to the `accept` and
//! `epoll_ctl` syscalls the connection costs anyway); per close, one lock and one
//! lookup. Shards take the lock only when they reap, never per message.
//!
//! Addresses are counted as an IPv4 address or an IPv6 /64 (one host or one home
//! network usually gets a whole /64, so counting single IPv6 addresses would let
//! one host take every slot). IPv4-mapped IPv6 addresses count as IPv4.
//!
//! Entries whose connections are all gone and whose bucket has refilled carry no
//! information; they are swept when the table has grown to twice its size at the
//! last sweep, so the table stays bounded by the addresses that matter and the sweep
//! costs O(1) per accept, amortised. With both limits off the table is never touched.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::config::ConnectRate;

/// Table size below which no sweep is attempted.
const MIN_SWEEP: usize = 4096;

/// The verdict on one new connection from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted; release it when the connection is reaped.
    Admitted,
    /// The address already holds `--max-per-ip` connections.
    TooMany,
    /// The address is opening connections faster than `--connect-rate`.
    TooFast,
}

/// What one address has: open connections and its connect-rate bucket.
#[derive(Debug, Clone, Copy)]
struct Entry {
    open: u32,
    tokens: f32,
    refilled: Instant,
}

/// The shared per-address table.
#[derive(Debug)]
pub struct AddressLimits {
    /// True while either limit is on; with both off the table is never touched.
    enabled: AtomicBool,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    max_open: Option<usize>,
    rate: Option<ConnectRate>,
    entries: HashMap<u128, Entry>,
    sweep_at: usize,
}

/// The counting key of an address: the IPv4 address, or the /64 of an IPv6 one.
pub fn address_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => (0xffff_u128 << 32) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) << 64,
    }
}

impl AddressLimits {
    /// A table for these limits (`None` = that limit is off).
    pub fn new(max_open: Option<usize>, rate: Option<ConnectRate>) -> Self {
        AddressLimits {
            enabled: AtomicBool::new(max_open.is_some() || rate.is_some()),
            table: Mutex::new(Table {
                max_open,
                rate,
                entries: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reload's limits, for the next connections. Open connections keep their
    /// counts; with both limits off the table is emptied, and connections opened
    /// while both were off are not counted if a later reload turns one on (the
    /// count then errs low, never high).
    pub fn set_limits(&self, max_open: Option<usize>, rate: Option<ConnectRate>) {
        let mut table = self.lock();
        table.max_open = max_open;
        table.rate = rate;
        let enabled = max_open.is_some() || rate.is_some();
        if !enabled {
            table.entries.clear();
        }
        self.enabled.store(enabled, Ordering::Release);
    }

    /// Counts a new connection from `ip`, or says why it is refused.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        if !self.enabled.load(Ordering::Acquire) {
            return Admission::Admitted;
        }
        let mut table = self.lock();
        if table.entries.len() >= table.sweep_at {
            sweep(&mut table, now);
        }
        let (max_open, rate) = (table.max_open, table.rate);
        let burst = rate.map_or(0.0, |r| r.burst as f32);
        let entry = table.entries.entry(address_key(ip)).or_insert(Entry {
            open: 0,
            tokens: burst,
            refilled: now,
        });
        if max_open.is_some_and(|max| entry.open as usize >= max) {
            return Admission::TooMany;
        }
        if let Some(rate) = rate {
            refill(entry, rate, now);
            if entry.tokens < 1.0 {
                return Admission::TooFast;
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Admission::Admitted
    }

    /// Gives back the count of a connection from `ip` that was admitted.
    pub fn release(&self, ip: IpAddr) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let mut table = self.lock();
        let key = address_key(ip);
        let keep_buckets = table.rate.is_some();
        if let Some(entry) = table.entries.get_mut(&key) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && !keep_buckets {
                table.entries.remove(&key);
            }
        }
    }

    /// Addresses in the table (for tests).
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Drops entries that carry no information any more.
fn sweep(table: &mut Table, now: Instant) {
    let rate = table.rate;
    table.entries.retain(|_, entry| {
        if let Some(rate) = rate {
            refill(entry, rate, now);
            entry.open > 0 || entry.tokens < rate.burst as f32
        } else {
            entry.open > 0
        }
    });
    table.sweep_at = (2 * table.entries.len()).max(MIN_SWEEP);
}

fn refill(entry: &mut Entry, rate: ConnectRate, now: Instant) {
    let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f32();
    entry.tokens = (entry.tokens + elapsed * rate.rate as f32).min(rate.burst as f32);
    entry.refilled = now;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("BUG: test address")
    }

    #[test]
    fn counts_per_address_and_releases() {
        let limits = AddressLimits::new(Some(2), None);
        let now = Instant::now();
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::TooMany);
        assert_eq!(limits.admit(ip("10.0.0.2"), now), Admission::Admitted);
        limits.release(ip("10.0.0.1"));
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        for _ in 0..2 {
            limits.release(ip("10.0.0.1"));
        }
        limits.release(ip("10.0.0.2"));
        assert_eq!(limits.tracked(), 0, "released addresses leave the table");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_key(ip("::ffff:10.0.0.1")),
            address_key(ip("10.0.0.1"))
        );
    }

    #[test]
    fn connect_rate_allows_a_burst_then_the_rate() {
        let limits = AddressLimits::new(None, Some(ConnectRate { rate: 2, burst: 3 }));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.admit(ip("10.0.0.1"), t0), Admission::Admitted);
        }
        assert_eq!(limits.admit(ip("10.0.0.1"), t0), Admission::TooFast);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limits.admit(ip("10.0.0.1"), t1), Admission::Admitted);
        assert_eq!(limits.admit(ip("10.0.0.1"), t1), Admission::TooFast);
    }

    #[test]
    fn a_reload_changes_the_limit_for_the_next_connections() {
        let limits = AddressLimits::new(Some(3), None);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        }
        limits.set_limits(Some(4), None);
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::TooMany);
        limits.set_limits(Some(2), None);
        limits.release(ip("10.0.0.1"));
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::TooMany);
        limits.set_limits(None, None);
        assert_eq!(limits.tracked(), 0, "both off: the table is emptied");
        assert_eq!(limits.admit(ip("10.0.0.1"), now), Admission::Admitted);
        assert_eq!(limits.tracked(), 0, "both off: the table is not touched");
    }
}
