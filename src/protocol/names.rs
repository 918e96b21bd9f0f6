//! Nicks and room names: validated once, then cheap to clone and compare.
//!
//! Both wrap an `Arc<str>`: a nick is copied into every event it appears in (every
//! message names its sender), so a clone must be a reference-count bump, not an
//! allocation.
//!
//! The rules are chosen so that both names fit IRC too (an IRC listener maps room
//! `rust` to channel `#rust`): ASCII only, no spaces, no `#`, `:` or `,`.
//! - A nick is 1–[`MAX_NICK_LEN`] of `A-Z a-z 0-9 _ -`, not starting with a digit or
//!   `-`. Nicks are unique **case-insensitively** (`Alice` and `alice` are one nick) but
//!   keep the spelling their owner chose.
//! - A room is 1–[`MAX_ROOM_LEN`] of `a-z 0-9 _ -`. Input is lower-cased and one
//!   leading `#` is accepted (IRC habit), so `/join #Rust` joins `rust`.

use std::fmt;
use std::sync::{Arc, LazyLock};

use super::ProtocolError;

/// Longest nick in bytes (ngIRCd allows 9, InspIRCd 30, Ergo 32).
pub const MAX_NICK_LEN: usize = 24;
/// Longest room name in bytes, without the IRC `#`.
pub const MAX_ROOM_LEN: usize = 32;

/// A validated nick, as its owner spelled it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nick(Arc<str>);

impl Nick {
    /// Validates `s` as a nick.
    pub fn parse(s: &str) -> Result<Nick, ProtocolError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if first_ok && s.len() <= MAX_NICK_LEN && s.chars().all(valid_char) {
            Ok(Nick(Arc::from(s)))
        } else {
            Err(ProtocolError::BadNick)
        }
    }

    /// The nick as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nick's text, shared rather than copied: a line user's real name is its
    /// nick, and tens of thousands of idle users should not each pay for a copy.
    pub fn shared_text(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }

    /// The case-folded form under which uniqueness is checked. A nick that is
    /// already lower case (most are) shares its text with the key: the tables that
    /// hold a key per user (the directory's, a cluster's) pay no allocation for it.
    pub fn key(&self) -> NickKey {
        if self.0.bytes().any(|b| b.is_ascii_uppercase()) {
            NickKey(Arc::from(self.0.to_ascii_lowercase()))
        } else {
            NickKey(Arc::clone(&self.0))
        }
    }
}

/// A nick folded to lower case: the key of the nick table.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NickKey(Arc<str>);

impl NickKey {
    /// The folded nick as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated, lower-cased room name (no `#`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Validates `s` as a room name, accepting one leading `#` and any case.
    pub fn parse(s: &str) -> Result<RoomName, ProtocolError> {
        let bare = s.strip_prefix('#').unwrap_or(s);
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if !bare.is_empty() && bare.len() <= MAX_ROOM_LEN && bare.chars().all(valid_char) {
            Ok(RoomName(Arc::from(bare.to_ascii_lowercase())))
        } else {
            Err(ProtocolError::BadRoom)
        }
    }

    /// The room every connection starts in: one name shared by the whole process,
    /// not a copy per connection.
    pub fn lobby() -> RoomName {
        static LOBBY: LazyLock<RoomName> = LazyLock::new(|| RoomName(Arc::from("lobby")));
        LOBBY.clone()
    }

    /// True for the lobby (compares the text: no touch of the shared name's count,
    /// which every shard would otherwise bump on each check).
    pub fn is_lobby(&self) -> bool {
        &*self.0 == "lobby"
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nick({})", &*self.0)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nick_rules() {
        for good in ["a", "Alice", "_x", "bob-2", &"n".repeat(MAX_NICK_LEN)] {
            assert!(Nick::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "-x",
            "a b",
            "é",
            "a#",
            &"n".repeat(MAX_NICK_LEN + 1),
        ] {
            assert!(Nick::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Nick::parse("Alice").unwrap().key(),
            Nick::parse("aLICE").unwrap().key()
        );
    }

    #[test]
    fn room_rules() {
        assert_eq!(RoomName::parse("#Rust").unwrap().as_str(), "rust");
        assert_eq!(RoomName::parse("a-b_1").unwrap().as_str(), "a-b_1");
        for bad in ["", "#", "a b", "##x", "a,b", &"r".repeat(MAX_ROOM_LEN + 1)] {
            assert!(RoomName::parse(bad).is_err(), "{bad}");
        }
    }
}
