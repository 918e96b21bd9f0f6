//! The backplane's Lua scripts, sent to Redis once per connection and then called
//! by name.
//!
//! `EVAL` carries the whole script with every call, and Redis hashes it (SHA-1) each
//! time to find its compiled copy: for the script that logs and publishes every room
//! line, that was a few hundred bytes more per line on the wire and a hash in Redis's
//! one thread. So each command link, as it comes up, first sends `SCRIPT LOAD` for
//! every script (`links.rs`), and calls use `EVALSHA` with the SHA-1 computed here
//! once. Redis runs one connection's commands in order, so the load always comes
//! before the first call; a Redis that restarted is a new connection, loaded again.
//! If the scripts vanish anyway (`SCRIPT FLUSH`), Redis answers `NOSCRIPT` and the
//! links start over as after an outage, which loads them again.

use std::fmt::Write;
use std::sync::OnceLock;

use sha1::{Digest, Sha1};

use super::link::encode_command;

/// One Lua script and its SHA-1 (hex, as Redis names it).
#[derive(Debug)]
pub struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    /// A script; its SHA-1 is computed on first use.
    pub const fn new(text: &'static str) -> Self {
        Script {
            text,
            sha: OnceLock::new(),
        }
    }

    /// The script's text (what `SCRIPT LOAD` sends, or an `EVAL`).
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// The script's SHA-1 in lowercase hex: the name `EVALSHA` calls it by.
    pub fn sha(&self) -> &str {
        self.sha.get_or_init(|| {
            let digest = Sha1::digest(self.text.as_bytes());
            digest.iter().fold(String::with_capacity(40), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
        })
    }
}

/// `SCRIPT LOAD` of each script, encoded: what a command link sends first.
pub fn loads(scripts: &[&Script]) -> Vec<Vec<u8>> {
    (scripts.iter())
        .filter_map(|s| encode_command(&[b"SCRIPT", b"LOAD", s.text.as_bytes()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_sha1_redis_gives() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this.
        let script = Script::new("return 1");
        assert_eq!(script.sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
