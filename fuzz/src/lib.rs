//! Shared invariants and input models for the miochat fuzz targets.
//!
//! Each target in `fuzz_targets/` only says *which* input it explores; what the
//! output must look like is written once here, so every target holds the server to
//! the same rules:
//! - [`checks`]: a server line for IRC fits 512 bytes with its CRLF, carries no CR,
//!   LF or NUL inside and parses back; a line-protocol line ends in LF and carries no
//!   CR or NUL;
//! - [`events`]: the [`miochat::protocol::Event`]s the server builds from a parsed
//!   client line of either protocol. The server's own code for this is not a pure
//!   function (it reads and writes the shard's tables), so the few rules that decide
//!   which client text reaches which event are restated there;
//! - [`rooms`]: the mode parser and ban-mask matching, which need no server at all.
//!
//! Two rules are known to be broken today (see docs/RELIABILITY.md): IRC `TOPIC`,
//! `AWAY`, `QUIT`, `PART` and `KICK` text reaches line-protocol users with its control
//! characters, and `Command::to_line` drops the changes of a `/mode` that also lists
//! bans. Their checks run only with the `strict` feature (`STRICT=1
//! scripts/fuzz.sh`), so a default run can look for everything else.

pub mod checks;
pub mod events;
pub mod rooms;

/// True when the checks of the known-broken rules are compiled in (`--features strict`).
pub const STRICT: bool = cfg!(feature = "strict");

/// Server names the targets render with: the default and a 63-byte one (the longest
/// `--server-name` the server accepts), since numerics carry the name and their
/// length budget depends on it.
pub const SERVER_NAMES: [&str; 2] = [
    "miochat.local",
    "a-server-name-that-is-exactly-sixty-three-bytes-long.example.io",
];

/// Picks a server name from one fuzzer byte.
pub fn server_name(byte: u8) -> &'static str {
    SERVER_NAMES[usize::from(byte) % SERVER_NAMES.len()]
}
