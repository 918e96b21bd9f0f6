//! Ban masks: `nick!user@host` patterns with `*` and `?` wildcards, sans-IO.
//!
//! A ban is stored in its *normalised* form, always three parts, so that two spellings
//! of one ban (`bob` and `bob!*@*`) are one entry and `/unban` finds what `/ban` set:
//!
//! | typed            | stored           | why                                   |
//! |------------------|------------------|---------------------------------------|
//! | `bob`            | `bob!*@*`        | no `!`, `@`, `.` or `:`: a nick        |
//! | `*.example.org`  | `*!*@*.example.org` | a `.` or `:` without `!`/`@`: a host |
//! | `2001:db8::*`    | `*!*@2001:db8::*`| IPv6 hosts contain `:`                 |
//! | `ann@10.0.0.*`   | `*!ann@10.0.0.*` | `user@host`                            |
//! | `bob!*`          | `bob!*@*`        | a missing host is any host             |
//!
//! Matching is ASCII case-insensitive (the server's `CASEMAPPING=ascii`: nicks and
//! room names are ASCII, so no other folding can apply) and linear in time: the
//! classic two-pointer glob with one backtrack point, never exponential, whatever the
//! pattern (`*a*a*a*a*b` against a long string of `a`s is still one pass per star).
//!
//! Who a mask is matched against is decided by the server: a ban matches if it
//! matches either the *displayed* identity, `nick!user@host` as IRC shows it (see
//! `identity.rs`: the host is a cloak by default), or the *real* one,
//! `nick!user@ADDRESS` with the peer's IP address ([`Identity`]). IPv4-mapped IPv6 addresses are shown as IPv4, so `*!*@127.0.0.1`
//! bans a local client whichever way it connected.

use std::net::IpAddr;

use super::identity::User;

/// Longest ban mask in bytes (after normalisation).
pub const MAX_MASK_LEN: usize = 100;

/// True if `text` matches the glob `pattern` (`*` any run, `?` any one character),
/// ASCII case-insensitively.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Why a mask was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskError {
    /// Empty, or only separators.
    Empty,
    /// Longer than [`MAX_MASK_LEN`] once normalised.
    TooLong,
    /// Spaces, commas, control characters or a leading `:` (which IRC would read as
    /// the start of a trailing parameter).
    BadCharacter,
}

/// The stored form of a typed mask (see the module table), or why it is refused.
pub fn normalize(typed: &str) -> Result<String, MaskError> {
    if typed.is_empty() {
        return Err(MaskError::Empty);
    }
    let bad = |c: char| c.is_whitespace() || c == ',' || c.is_control();
    if typed.starts_with(':') || typed.chars().any(bad) {
        return Err(MaskError::BadCharacter);
    }
    let or_any = |part: &str| if part.is_empty() { "*" } else { part }.to_string();
    let (nick, user, host) = match (typed.split_once('!'), typed.rsplit_once('@')) {
        (Some((nick, rest)), _) => match rest.rsplit_once('@') {
            Some((user, host)) => (or_any(nick), or_any(user), or_any(host)),
            None => (or_any(nick), or_any(rest), "*".to_string()),
        },
        (None, Some((user, host))) => ("*".to_string(), or_any(user), or_any(host)),
        (None, None) if typed.contains(['.', ':']) => {
            ("*".to_string(), "*".to_string(), typed.to_string())
        }
        (None, None) => (typed.to_string(), "*".to_string(), "*".to_string()),
    };
    let mask = format!("{nick}!{user}@{host}");
    if mask.len() > MAX_MASK_LEN {
        return Err(MaskError::TooLong);
    }
    Ok(mask)
}

/// Who a ban is matched against: a nick, the user name shown for it, the host shown
/// for it (a cloak, or the address) and the real address.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The current nick.
    pub nick: &'a str,
    /// The user name shown in `nick!user@host`.
    pub user: User<'a>,
    /// The host it is shown with.
    pub shown_host: &'a str,
    /// The peer's IP address.
    pub address: IpAddr,
}

impl Identity<'_> {
    /// True if the normalised `mask` matches the displayed or the real identity.
    pub fn matches(&self, mask: &str) -> bool {
        let address = host_of(self.address);
        [self.shown_host, address.as_str()].iter().any(|host| {
            let candidate = format!("{}!{}@{host}", self.nick, self.user);
            glob_matches(mask, &candidate)
        })
    }
}

/// An address as a host: IPv4-mapped IPv6 shown as IPv4, IPv6 in its compressed form.
pub fn host_of(address: IpAddr) -> String {
    address.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wildcards() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches(
            "*!*@*.example.org",
            "bob!bob@host.example.org"
        ));
        assert!(!glob_matches("*!*@*.example.org", "bob!bob@example.org"));
        assert!(glob_matches("b*b!*@*", "bob!x@y"));
        assert!(glob_matches("b*b!*@*", "bb!x@y"));
        assert!(!glob_matches("b*b!*@*", "b!x@y"));
        assert!(glob_matches("**a**", "a"));
        assert!(!glob_matches("abc", "abcd"));
        assert!(!glob_matches("", "a"));
        // Linear time: this would take ages with naive backtracking.
        let long = "a".repeat(5000);
        assert!(!glob_matches("*a*a*a*a*a*a*a*a*b", &long));
    }

    #[test]
    fn case_mapping_is_ascii() {
        assert!(glob_matches("BOB!*@*", "bob!bob@miochat"));
        assert!(glob_matches("*!*@MIOCHAT", "bob!bob@miochat"));
        // Only ASCII letters fold: the rfc1459 pairs ([ and {) are distinct.
        assert!(!glob_matches("a[b", "a{b"));
        assert!(!glob_matches("É", "é"));
    }

    #[test]
    fn normalisation() {
        let n = |s| normalize(s).unwrap();
        assert_eq!(n("bob"), "bob!*@*");
        assert_eq!(n("bob!*"), "bob!*@*");
        assert_eq!(n("*.example.org"), "*!*@*.example.org");
        assert_eq!(n("ann@10.0.0.*"), "*!ann@10.0.0.*");
        assert_eq!(n("2001:db8::*"), "*!*@2001:db8::*");
        assert_eq!(n("*!*@::1"), "*!*@::1");
        assert_eq!(n("a!b@c"), "a!b@c");
        assert_eq!(n("!@"), "*!*@*");
        assert_eq!(normalize(""), Err(MaskError::Empty));
        assert_eq!(normalize("a b"), Err(MaskError::BadCharacter));
        assert_eq!(normalize("a,b"), Err(MaskError::BadCharacter));
        assert_eq!(normalize(":x"), Err(MaskError::BadCharacter));
        assert_eq!(normalize(&"x".repeat(200)), Err(MaskError::TooLong));
    }

    #[test]
    fn identities_match_displayed_and_real_hosts_including_ipv6() {
        let v6 = Identity {
            nick: "Bob",
            user: User::named("Bob"),
            shown_host: "miochat",
            address: "2001:db8::5".parse().unwrap(),
        };
        assert!(v6.matches("*!*@2001:db8::*"));
        assert!(v6.matches("*!*@2001:DB8::5"));
        assert!(v6.matches("bob!*@*"));
        assert!(v6.matches("*!*@miochat"));
        assert!(!v6.matches("*!*@2001:db9::*"));
        assert!(!v6.matches("alice!*@*"));
        let mapped = Identity {
            address: "::ffff:127.0.0.1".parse().unwrap(),
            ..v6
        };
        assert!(mapped.matches("*!*@127.0.0.1"));
        assert!(mapped.matches("*!*@127.*"));
        let loopback6 = Identity {
            address: "::1".parse().unwrap(),
            ..v6
        };
        assert!(loopback6.matches(&normalize("*!*@::1").unwrap()));
    }
}
