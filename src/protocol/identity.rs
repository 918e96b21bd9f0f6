//! Who a user is on IRC after the nick: `nick!user@host`.
//!
//! IRC clients key ignore lists, ban masks and their user lists on `user@host`, and
//! conformance suites check it in every prefix and in `WHO`/`WHOIS`/`WHOWAS`. So each
//! connection has one [`UserHost`], made when it connects and fixed by `USER`, and
//! every place that shows a user shows that one value:
//!
//! - **user**: the `USER` name with `~` before it, as servers without ident show it
//!   (`~` + at most 9 characters, the usual `USERLEN=10`); a line-protocol user sends
//!   no `USER`, so its user is `~` + its nick *as the line names it* (a rename shows
//!   the old one in the `NICK` line's prefix, like any other prefix);
//! - **host**: by default a *cloak*, a keyed hash of the address (IPv6: of its /64,
//!   as the per-address limits count), so a public server does not hand every user's
//!   address to everyone, yet one address always has one host and `*!*@host` bans
//!   work; or, with `--hosts address`, the address itself.
//!
//! Where the server does not know a sender's user and host (a user of another node
//! of a cluster, a line played back from history), `nick!nick@miochat` stands in
//! (no `~`: nothing was looked up), as every user was shown before.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The host shown where the real one is not known here.
pub const UNKNOWN_HOST: &str = "miochat";
/// Characters of a `USER` name kept after the `~` (`USERLEN=10` with the `~`).
pub const USER_CHARS: usize = 9;

/// `user@host`: what IRC shows after `nick!`.
///
/// One shared text, `USER@HOST` (`USER` empty when no `USER` name was given), so a
/// value is a single allocation that the session and the directory share. Every
/// connection has one: two separate strings behind an `Arc` cost three allocator
/// chunks per idle connection, this one. A user field never holds `@`
/// ([`user_name`] keeps none), so the first `@` splits the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHost(Arc<str>);

impl UserHost {
    /// A user without a `USER` name (line protocol, or IRC before `USER`) at `host`.
    pub fn new(host: &str) -> Self {
        UserHost(Arc::from(format!("@{host}")))
    }

    /// A session's value until the chat gives it its host (never shown).
    pub fn unknown() -> Self {
        Self::new(UNKNOWN_HOST)
    }

    /// The same host with the user name from IRC `USER` (see [`user_name`]).
    pub fn with_user(&self, given: &str) -> Self {
        let user = user_name(given).unwrap_or_default();
        UserHost(Arc::from(format!("{user}@{}", self.host())))
    }

    /// The `USER` name as shown (`~name`), if one was given.
    fn given(&self) -> Option<&str> {
        let (user, _) = self.0.split_once('@').unwrap_or(("", &self.0));
        (!user.is_empty()).then_some(user)
    }

    /// The user field for `nick`: `~name`, or `~nick`.
    pub fn user<'a>(&'a self, nick: &'a str) -> User<'a> {
        User {
            given: self.given(),
            nick,
        }
    }

    /// The host field.
    pub fn host(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(_, host)| host)
    }

    /// `nick!user@host`, the source of a line.
    pub fn source<'a>(&'a self, nick: &'a str) -> Source<'a> {
        Source { nick, of: self }
    }
}

/// The user field of a [`UserHost`] for one nick (displayed without allocating).
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    given: Option<&'a str>,
    nick: &'a str,
}

impl<'a> User<'a> {
    /// A user field given as it is shown (`~name`).
    pub fn named(user: &'a str) -> Self {
        User {
            given: Some(user),
            nick: "",
        }
    }
}

impl fmt::Display for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.given {
            Some(user) => f.write_str(user),
            None => write!(f, "~{}", self.nick),
        }
    }
}

/// `nick!user@host` (displayed without allocating).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    nick: &'a str,
    of: &'a UserHost,
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (nick, of) = (self.nick, self.of);
        write!(f, "{nick}!{}@{}", of.user(nick), of.host())
    }
}

/// The user field for a `USER` name: `~` and its first [`USER_CHARS`] characters of
/// letters, digits and `-_.[]{}\`^|` (anything else could break a prefix or a mask:
/// `!`, `@`, spaces, bytes that are not text). `None` if nothing is left.
pub fn user_name(given: &str) -> Option<Box<str>> {
    let allowed = |c: &char| c.is_ascii_alphanumeric() || "-_.[]{}\\`^|".contains(*c);
    let kept: String = given
        .trim_start_matches('~')
        .chars()
        .filter(allowed)
        .take(USER_CHARS)
        .collect();
    (!kept.is_empty()).then(|| format!("~{kept}").into())
}

/// How hosts are shown (`--hosts`).
#[derive(Clone, PartialEq, Eq)]
pub enum Hosts {
    /// A keyed hash of the address, never the address (the default).
    Cloak([u8; 32]),
    /// The address itself.
    Address,
}

impl fmt::Debug for Hosts {
    /// The key is never printed (it would let anyone reverse a cloak by trying
    /// addresses).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hosts::Cloak(_) => f.write_str("Cloak(..)"),
            Hosts::Address => f.write_str("Address"),
        }
    }
}

impl Hosts {
    /// The host shown for a peer at `address`.
    pub fn host_for(&self, address: IpAddr) -> String {
        match self {
            Hosts::Address => crate::protocol::mask::host_of(address),
            Hosts::Cloak(key) => cloak(key, address),
        }
    }
}

/// The cloak of `address`: HMAC-SHA-256 under `key` of the IPv4 address, or of the
/// first 64 bits of an IPv6 one, as 16 hex digits and `.ip`: stable while the key
/// is, and the address cannot be read back from it without the key.
pub fn cloak(key: &[u8; 32], address: IpAddr) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return UNKNOWN_HOST.to_string(), // HMAC takes keys of any length
    };
    match address.to_canonical() {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()[..8]),
    }
    let digest = mac.finalize().into_bytes();
    let mut host = String::with_capacity(19);
    for byte in &digest[..8] {
        host.push_str(&format!("{byte:02x}"));
    }
    host.push_str(".ip");
    host
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn user_names_get_a_tilde_and_at_most_nine_characters() {
        assert_eq!(user_name("myusernam").as_deref(), Some("~myusernam"));
        assert_eq!(user_name("myusername").as_deref(), Some("~myusernam"));
        assert_eq!(user_name("~al!ce@x").as_deref(), Some("~alcex"));
        assert_eq!(user_name("\u{e9}\u{e9}"), None);
        let at = UserHost::new("h.ip");
        assert_eq!(at.source("bob").to_string(), "bob!~bob@h.ip");
        let named = at.with_user("robert");
        assert_eq!(named.source("bob").to_string(), "bob!~robert@h.ip");
        assert_eq!(at.with_user("!!").source("b").to_string(), "b!~b@h.ip");
        // One text holds both fields; the host comes back whole, colons and all.
        let v6 = UserHost::new("2001:db8::1").with_user("r@b");
        assert_eq!(
            (v6.host(), v6.user("n").to_string()),
            ("2001:db8::1", "~rb".into())
        );
        let renamed = named.with_user("al");
        assert_eq!(renamed.source("x").to_string(), "x!~al@h.ip");
    }

    #[test]
    fn a_cloak_is_stable_per_key_and_hides_the_address() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(cloak(&a, v4), cloak(&a, v4));
        assert_eq!(cloak(&a, v4), cloak(&a, mapped), "one address, one host");
        assert_ne!(cloak(&a, v4), cloak(&b, v4), "another key, another host");
        assert!(!cloak(&a, v4).contains("192"));
        assert_eq!(cloak(&a, v4).len(), 19);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2::99".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(cloak(&a, one), cloak(&a, two), "one /64, one host");
        assert_ne!(cloak(&a, one), cloak(&a, other));
        assert_eq!(Hosts::Address.host_for(mapped), "192.0.2.7");
    }
}
