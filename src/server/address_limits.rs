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
use std::sync::{Mutex, PoisonError};
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
    max_open: Option<usize>,
    rate: Option<ConnectRate>,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
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
            max_open,
            rate,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn enabled(&self) -> bool {
        self.max_open.is_some() || self.rate.is_some()
    }

    /// Counts a new connection from `ip`, or says why it is refused.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        if !self.enabled() {
            return Admission::Admitted;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.entries.len() >= table.sweep_at {
            self.sweep(&mut table, now);
        }
        let burst = self.rate.map_or(0.0, |r| r.burst as f32);
        let entry = table.entries.entry(address_key(ip)).or_insert(Entry {
            open: 0,
            tokens: burst,
            refilled: now,
        });
        if self.max_open.is_some_and(|max| entry.open as usize >= max) {
            return Admission::TooMany;
        }
        if let Some(rate) = self.rate {
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
        if !self.enabled() {
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let key = address_key(ip);
        if let Some(entry) = table.entries.get_mut(&key) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && self.rate.is_none() {
                table.entries.remove(&key);
            }
        }
    }

    /// Drops entries that carry no information any more.
    fn sweep(&self, table: &mut Table, now: Instant) {
        let rate = self.rate;
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

    /// Addresses in the table (for tests).
    pub fn tracked(&self) -> usize {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.entries.len()
    }
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
}
