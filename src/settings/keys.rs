//! Every key of the configuration file, in the order `config example` prints them:
//! its table, the `serve` flag that overrides it, whether a reload applies it while
//! the server runs, and one line of help.
//!
//! One list serves four readers: the example file is printed from it, `config
//! check` suggests keys from it ("did you mean"), a reload sorts changed keys into
//! live and restart-only with it, and error messages are translated between flag
//! names (`--max-per-ip`) and key names (`limits.max-per-ip`) through it. A unit
//! test keeps it and the `serde` structs of `tables.rs` in step.

/// One key of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The table: `limits` for `[limits]`.
    pub table: &'static str,
    /// The key within it.
    pub name: &'static str,
    /// The `serve` flag that overrides it, without `--` (none for `irc.motd`; the
    /// log level's are `-v`/`-q`).
    pub flag: Option<&'static str>,
    /// True if a reload applies it while the server runs.
    pub live: bool,
    /// One line of help (the example file's comment).
    pub help: &'static str,
    /// A value to show, commented out, for a key that is off by default.
    pub example: Option<&'static str>,
}

impl Key {
    /// `table.name`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.table, self.name)
    }
}

/// The tables, in file order (`oper` is the array of `[[oper]]` tables).
pub const TABLES: [&str; 10] = [
    "listen", "limits", "flood", "tls", "irc", "http", "cluster", "store", "log", "oper",
];

/// The keys of one `[[oper]]` table.
pub const OPER_KEYS: [&str; 3] = ["name", "password", "masks"];

const fn key(
    table: &'static str,
    name: &'static str,
    flag: Option<&'static str>,
    live: bool,
    help: &'static str,
) -> Key {
    Key {
        table,
        name,
        flag,
        live,
        help,
        example: None,
    }
}

const fn off(
    table: &'static str,
    name: &'static str,
    flag: Option<&'static str>,
    live: bool,
    help: &'static str,
    example: &'static str,
) -> Key {
    Key {
        example: Some(example),
        ..key(table, name, flag, live, help)
    }
}

/// Every key but the `[[oper]]` tables', in file order.
pub const KEYS: [Key; 46] = [
    key(
        "listen",
        "address",
        Some("listen"),
        false,
        "line protocol: host:port, or a bare port for 127.0.0.1 (0 picks a free port)",
    ),
    off(
        "listen",
        "irc",
        Some("irc-listen"),
        false,
        "IRC clients (off unless set; the usual port is 6667)",
        "\"127.0.0.1:6667\"",
    ),
    off(
        "listen",
        "tls",
        Some("tls-listen"),
        false,
        "line protocol over TLS (needs [tls] cert and key)",
        "\"127.0.0.1:7879\"",
    ),
    off(
        "listen",
        "irc-tls",
        Some("irc-tls-listen"),
        false,
        "IRC over TLS (the usual port is 6697)",
        "\"127.0.0.1:6697\"",
    ),
    off(
        "listen",
        "http",
        Some("http-listen"),
        false,
        "chat page, WebSocket, /metrics and /healthz",
        "\"127.0.0.1:8080\"",
    ),
    off(
        "listen",
        "workers",
        Some("workers"),
        false,
        "worker threads, one shard each (default: cores minus one, at least 1)",
        "1",
    ),
    key(
        "listen",
        "nagle",
        Some("nagle"),
        false,
        "leave Nagle's algorithm on (TCP_NODELAY off)",
    ),
    key(
        "limits",
        "max-connections",
        Some("max-connections"),
        true,
        "open connections; more are refused with a one-line reason",
    ),
    key(
        "limits",
        "max-line",
        Some("max-line"),
        true,
        "longest line protocol line, in bytes (16..=1048576)",
    ),
    key(
        "limits",
        "sendq",
        Some("sendq"),
        true,
        "bytes that may wait for one slow client before it is cut",
    ),
    key(
        "limits",
        "idle-timeout",
        Some("idle-timeout"),
        true,
        "seconds before a connection that never sent a line is closed; 0 = never",
    ),
    key(
        "limits",
        "max-per-ip",
        Some("max-per-ip"),
        true,
        "connections one address (IPv4, or IPv6 /64) may hold; 0 = no limit",
    ),
    key(
        "limits",
        "connect-rate",
        Some("connect-rate"),
        true,
        "new connections per second one address may open; 0 = no limit",
    ),
    key(
        "limits",
        "connect-burst",
        Some("connect-burst"),
        true,
        "new connections one address may open in a burst",
    ),
    key(
        "limits",
        "announce-max",
        Some("announce-max"),
        true,
        "announce joins/quits only in rooms of at most this many members; 0 = always",
    ),
    key(
        "limits",
        "shutdown-grace-ms",
        Some("shutdown-grace-ms"),
        false,
        "milliseconds clients get to read the shutdown notice",
    ),
    key(
        "flood",
        "rate",
        Some("flood-rate"),
        true,
        "lines per second one client may send; 0 = no flood control",
    ),
    key(
        "flood",
        "burst",
        Some("flood-burst"),
        true,
        "lines one client may send in a burst",
    ),
    key(
        "flood",
        "max-unread",
        Some("flood-max-unread"),
        true,
        "unread bytes a flood-paused client may have",
    ),
    key(
        "flood",
        "unread-timeout",
        Some("flood-unread-timeout"),
        true,
        "seconds a paused client may stay over max-unread before it is cut",
    ),
    off(
        "tls",
        "cert",
        Some("tls-cert"),
        true,
        "PEM certificate chain (read again on each reload)",
        "\"/etc/miochat/cert.pem\"",
    ),
    off(
        "tls",
        "key",
        Some("tls-key"),
        true,
        "PEM private key",
        "\"/etc/miochat/key.pem\"",
    ),
    key(
        "tls",
        "handshake-timeout",
        Some("tls-handshake-timeout"),
        false,
        "seconds a TLS client has to finish its handshake",
    ),
    key(
        "tls",
        "max-handshakes",
        Some("max-tls-handshakes"),
        false,
        "TLS handshakes in progress at once",
    ),
    key(
        "irc",
        "server-name",
        Some("server-name"),
        false,
        "the IRC server name",
    ),
    off(
        "irc",
        "password",
        Some("password"),
        false,
        "password IRC clients must send with PASS",
        "\"secret\"",
    ),
    key(
        "irc",
        "ping",
        Some("irc-ping"),
        false,
        "seconds of silence before an IRC client is sent PING",
    ),
    key(
        "irc",
        "pong-timeout",
        Some("irc-pong-timeout"),
        false,
        "seconds an IRC client has to answer that PING",
    ),
    key(
        "irc",
        "nick-grace",
        Some("nick-grace"),
        false,
        "seconds a client on a registered nick has to log in",
    ),
    key(
        "irc",
        "hosts",
        Some("hosts"),
        false,
        "how users' hosts are shown: cloak or address",
    ),
    off(
        "irc",
        "cloak-key",
        Some("cloak-key"),
        false,
        "key for the host cloaks (default: the data dir's cloak.key)",
        "\"a long random string\"",
    ),
    off(
        "irc",
        "motd",
        None,
        true,
        "message of the day: a text file (read again on each reload)",
        "\"/etc/miochat/motd.txt\"",
    ),
    key(
        "http",
        "timeout",
        Some("http-timeout"),
        false,
        "seconds an HTTP client has to send its request head",
    ),
    key(
        "http",
        "ws-ping",
        Some("ws-ping"),
        false,
        "seconds of WebSocket silence before a ping frame",
    ),
    key(
        "http",
        "trusted-proxies",
        Some("trusted-proxy"),
        false,
        "reverse proxies whose X-Forwarded-For names the client",
    ),
    off(
        "cluster",
        "backplane",
        Some("backplane"),
        false,
        "join a cluster through this Redis, or a Redis Cluster (redis-cluster://H:P,H:P)",
        "\"redis://127.0.0.1:6379\"",
    ),
    off(
        "cluster",
        "node-name",
        Some("node-name"),
        false,
        "this node's name: 1-10 of a-z and 0-9 (default: n + process id)",
        "\"n1\"",
    ),
    key(
        "cluster",
        "lease",
        Some("lease"),
        false,
        "seconds a silent node is still taken for alive",
    ),
    key(
        "store",
        "data-dir",
        Some("data-dir"),
        false,
        "folder for accounts, registered rooms and history; \"none\" = keep nothing",
    ),
    key(
        "store",
        "history",
        Some("history"),
        true,
        "lines each room keeps in memory for /history and join playback; 0 = off",
    ),
    key(
        "store",
        "history-sync-ms",
        Some("history-sync-ms"),
        false,
        "history is committed to disk at least this often, in ms",
    ),
    key(
        "store",
        "history-days",
        Some("history-days"),
        true,
        "stored history older than this many days is pruned; 0 = never",
    ),
    key(
        "store",
        "history-max",
        Some("history-max"),
        true,
        "stored history lines kept per room; 0 = no limit",
    ),
    key(
        "log",
        "level",
        None,
        true,
        "error, warn, info, debug or trace (-q is warn, -v debug)",
    ),
    off(
        "log",
        "file",
        Some("log-file"),
        true,
        "append the log to this file, reopened on SIGHUP (default: stderr)",
        "\"/var/log/miochat.log\"",
    ),
    key(
        "log",
        "trace",
        None,
        true,
        "log every line in and out, passwords masked (-vv)",
    ),
];

/// The key `table.name`.
pub fn find(table: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.table == table && k.name == name)
}

/// True if `dotted` (`limits.max-per-ip`) is a key a reload applies live.
pub fn is_live(dotted: &str) -> bool {
    KEYS.iter().any(|k| k.live && k.dotted() == dotted)
}

/// The key a `serve` flag (without `--`) overrides.
pub fn by_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.flag == Some(flag))
}

/// The closest of `candidates` to `typed`, if it is close enough to be a typo
/// (an edit distance of at most a third of the length, and at least 1 allowed).
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (typed.len() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(typed, c), c))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, with `_` and `-` taken as the same (`max_line` is a typo
/// of `max-line`, not a different word).
fn distance(a: &str, b: &str) -> usize {
    let norm = |c: char| {
        if c == '_' {
            '-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let limits = KEYS.iter().filter(|k| k.table == "limits").map(|k| k.name);
        assert_eq!(closest("max-per-ipp", limits.clone()), Some("max-per-ip"));
        assert_eq!(closest("max_line", limits.clone()), Some("max-line"));
        assert_eq!(closest("colour", limits), None);
        assert_eq!(closest("limit", TABLES), Some("limits"));
    }

    #[test]
    fn flags_and_keys_are_one_to_one() {
        for key in KEYS {
            if let Some(flag) = key.flag {
                assert_eq!(by_flag(flag), Some(&key), "{flag}");
            }
            assert_eq!(find(key.table, key.name), Some(&key));
            assert!(TABLES.contains(&key.table), "{}", key.dotted());
        }
    }
}
