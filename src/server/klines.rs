//! K-lines: server-wide bans, set by operators, that keep matching clients off the
//! whole server (every node of a cluster).
//!
//! The list lives here, in memory, behind one read-write lock, because it is read at
//! the moments a client's identity becomes known (a line connection's adoption, an
//! IRC registration, a nick change) and when a k-line is set: never per message, so
//! the lock costs nothing on the hot path. Where it is kept is someone else's: the
//! store thread writes it to the data dir (`store/writer.rs`), and in a cluster Redis
//! holds the cluster's list (`miochat:klines`, written by the backplane), which every
//! node reads when it connects and follows on each change.
//!
//! A mask is a room ban's mask (`protocol/mask.rs`: `nick!user@host`, globs, a bare
//! address is a host), plus one form bans do not have: a host written `ADDRESS/BITS`
//! matches every address of that network (`203.0.113.0/24`, `2001:db8::/32`).

use std::net::IpAddr;
use std::sync::RwLock;

use crate::protocol::KlineInfo;
use crate::protocol::mask::{self, Identity, MaskError, glob_matches};

/// The k-lines in force on this node.
#[derive(Debug, Default)]
pub struct KlineList(RwLock<Vec<KlineInfo>>);

impl KlineList {
    /// A list holding `klines`.
    pub fn new(klines: Vec<KlineInfo>) -> Self {
        KlineList(RwLock::new(klines))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<KlineInfo>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<KlineInfo>> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first k-line in force at `now` (Unix seconds) that matches `who`.
    pub fn matching(&self, who: &Identity<'_>, now: u64) -> Option<KlineInfo> {
        (self.read().iter())
            .find(|kline| kline.in_force(now) && matches(&kline.mask, who))
            .cloned()
    }

    /// True if no k-line is in force (nothing to check).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Sets `kline`, replacing one with the same mask.
    pub fn put(&self, kline: KlineInfo) {
        let mut list = self.write();
        list.retain(|k| !k.mask.eq_ignore_ascii_case(&kline.mask));
        list.push(kline);
    }

    /// Lifts the k-line of `mask`; false if there was none.
    pub fn remove(&self, mask: &str) -> bool {
        let mut list = self.write();
        let before = list.len();
        list.retain(|k| !k.mask.eq_ignore_ascii_case(mask));
        list.len() != before
    }

    /// The k-line of `mask`, if one is set (in force or not).
    pub fn get(&self, mask: &str) -> Option<KlineInfo> {
        (self.read().iter())
            .find(|k| k.mask.eq_ignore_ascii_case(mask))
            .cloned()
    }

    /// The k-lines in force at `now`, oldest first (lapsed ones are forgotten).
    pub fn list(&self, now: u64) -> Vec<KlineInfo> {
        let mut list = self.write();
        list.retain(|k| k.in_force(now));
        let mut listed = list.clone();
        listed.sort_by_key(|k| k.set_at);
        listed
    }

    /// Replaces the whole list (a cluster's list, read from Redis).
    pub fn replace(&self, klines: Vec<KlineInfo>) {
        *self.write() = klines;
    }
}

/// The stored form of a typed k-line mask: a ban's normalised mask, whose host may
/// also be `ADDRESS/BITS` (checked here).
pub fn normalize(typed: &str) -> Result<String, &'static str> {
    let mask = mask::normalize(typed).map_err(|e| match e {
        MaskError::Empty => "a k-line needs a mask",
        MaskError::TooLong => "a k-line mask is at most 100 bytes",
        MaskError::BadCharacter => "a k-line mask has no spaces, commas or leading :",
    })?;
    let host = mask.rsplit_once('@').map_or("", |(_, host)| host);
    if host.contains('/') && network(host).is_none() {
        return Err("a network is ADDRESS/BITS, at most /32 for IPv4 and /128 for IPv6");
    }
    Ok(mask.to_ascii_lowercase())
}

/// True if the normalised `mask` matches `who`: as a ban matches (the shown or the
/// real `nick!user@host`), or with a network host, `nick!user` by glob and the real
/// address by network.
pub fn matches(mask: &str, who: &Identity<'_>) -> bool {
    let Some((person, host)) = mask.rsplit_once('@') else {
        return false;
    };
    match network(host) {
        Some((base, bits)) => {
            glob_matches(person, &format!("{}!{}", who.nick, who.user))
                && in_network(who.address.to_canonical(), base, bits)
        }
        None => who.matches(mask),
    }
}

/// `ADDRESS/BITS` as a network, if it is one.
fn network(host: &str) -> Option<(IpAddr, u32)> {
    let (address, bits) = host.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((address.to_canonical(), bits))
}

/// True if `address` is in the network `base/bits` (of the same family).
fn in_network(address: IpAddr, base: IpAddr, bits: u32) -> bool {
    let prefix = |value: u128, width: u32| match bits {
        0 => 0,
        _ => value >> (width - bits.min(width)),
    };
    match (address, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            prefix(u128::from(u32::from(a)), 32) == prefix(u128::from(u32::from(b)), 32)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), 128) == prefix(u128::from(b), 128),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::identity::UserHost;

    fn who<'a>(nick: &'a str, userhost: &'a UserHost, address: &str) -> Identity<'a> {
        Identity {
            nick,
            user: userhost.user(nick),
            shown_host: userhost.host(),
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn masks_are_normalised_and_networks_checked() {
        assert_eq!(normalize("203.0.113.*").unwrap(), "*!*@203.0.113.*");
        assert_eq!(normalize("Bad!*@*").unwrap(), "bad!*@*");
        assert_eq!(normalize("203.0.113.0/24").unwrap(), "*!*@203.0.113.0/24");
        assert!(normalize("203.0.113.0/33").is_err());
        assert!(normalize("*!*@nonsense/8").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn globs_and_networks_match_the_real_address() {
        let host = UserHost::new("cloak.ip");
        let alice = who("alice", &host, "203.0.113.9");
        assert!(matches("*!*@203.0.113.*", &alice));
        assert!(matches("*!*@203.0.113.0/24", &alice));
        assert!(matches("alice!*@203.0.0.0/16", &alice));
        assert!(!matches("bob!*@203.0.0.0/16", &alice));
        assert!(!matches("*!*@203.0.114.0/24", &alice));
        assert!(matches("*!*@cloak.ip", &alice));
        assert!(matches("*!*@0.0.0.0/0", &alice));
        let mapped = who("bob", &host, "::ffff:198.51.100.7");
        assert!(matches("*!*@198.51.100.0/24", &mapped));
        let six = who("carol", &host, "2001:db8::1");
        assert!(matches("*!*@2001:db8::/32", &six));
        assert!(!matches("*!*@2001:db9::/32", &six));
        assert!(!matches("*!*@10.0.0.0/8", &six));
    }

    #[test]
    fn the_list_keeps_one_kline_per_mask_and_forgets_lapsed_ones() {
        let kline = |mask: &str, expires| KlineInfo {
            mask: mask.into(),
            set_by: "op".into(),
            set_at: 1,
            expires,
            reason: "spam".into(),
        };
        let list = KlineList::default();
        list.put(kline("*!*@10.0.0.*", None));
        list.put(kline("*!*@10.0.0.*", Some(100)));
        list.put(kline("bad!*@*", Some(50)));
        assert_eq!(list.list(10).len(), 2);
        let host = UserHost::new("x");
        let bad = who("bad", &host, "192.0.2.1");
        assert!(list.matching(&bad, 10).is_some());
        assert!(list.matching(&bad, 60).is_none(), "lapsed");
        assert_eq!(list.list(60).len(), 1);
        assert!(list.remove("*!*@10.0.0.*"));
        assert!(!list.remove("*!*@10.0.0.*"));
    }
}
