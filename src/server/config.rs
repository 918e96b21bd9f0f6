//! Server configuration: every limit is a named constant with a CLI override.
//!
//! Each constant's doc says what the limit protects and what a client sees when it is
//! hit. `ServerConfig` is built from the command line by [`ServerConfig::validate`],
//! which refuses nonsense (zero workers, a send queue smaller than one line) with a
//! clear message instead of a server that misbehaves later.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::identity::Hosts;

use super::token::MAX_SHARDS;

/// Where `miochat serve` listens by default (loopback: opt in to the network).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Most open connections (Redis `maxclients` is 10000). Beyond it a new client gets
/// `ERR server-full ...` and is closed. Must stay under the process descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Longest line a client may send, in bytes without the LF. Protects memory: a
/// connection never buffers more than this. Over it: `ERR line-too-long`, the rest of
/// the line is discarded and the connection stays usable.
pub const DEFAULT_MAX_LINE: usize = 2048;

/// Bytes that may wait in one connection's send queue. Protects the server from a
/// client that never reads (without a bound, one stalled reader grows memory until
/// the process dies). Over it the client is cut as a slow
/// consumer; nobody else is slowed (ngIRCd 32 KiB, Ergo 96 KiB, InspIRCd 1 MiB).
pub const DEFAULT_SENDQ: usize = 256 * 1024;

/// Seconds without any line from a client before it is told why and closed (0 = off).
/// `/ping` counts as activity; `miochat connect` pings every minute.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 600;

/// Lines per second a client may send on average (0 = no flood control). Over it the
/// server stops reading the connection until its budget refills ("fake lag"): TCP
/// pushes back on the client and nothing it typed is lost.
pub const DEFAULT_FLOOD_RATE: u32 = 20;

/// Lines a client may send in a burst before the rate applies (pasting a few lines).
pub const DEFAULT_FLOOD_BURST: u32 = 50;

/// Unread input (held by the server plus waiting in the kernel) a flood-paused client
/// may have. Past it for [`DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS`], the client is told
/// `ERR flood` and closed: the hard ceiling behind fake lag (IRC servers call this
/// "Excess Flood"; ngIRCd's read buffer is 8 KiB).
pub const DEFAULT_FLOOD_MAX_UNREAD: usize = 64 * 1024;

/// How long a paused client's unread input may stay over [`DEFAULT_FLOOD_MAX_UNREAD`].
pub const DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS: u64 = 10;

/// Connections one address may hold at once (an IPv4 address, or an IPv6 /64); more
/// are told `ERR server-busy too many connections from your address` and closed.
/// ngIRCd's `MaxConnectionsIP` and InspIRCd's `localmax` ship with 10. 0 = no limit.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 10;

/// New connections one address may open per second, on average (0 = no limit).
pub const DEFAULT_CONNECT_RATE: u32 = 10;

/// New connections one address may open in a burst before the rate applies.
pub const DEFAULT_CONNECT_BURST: u32 = 20;

/// Seconds a TLS client has to finish its handshake before it is closed.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// TLS handshakes in progress at once, over the whole server. A handshake costs the
/// server public-key work before the client has proven anything, so a flood of
/// half-open handshakes is the cheap attack on a TLS port; past the limit new TLS
/// connections are closed at accept time (there is no plain-text way to say why).
pub const DEFAULT_MAX_TLS_HANDSHAKES: usize = 512;

/// How long a shutting-down server waits for clients to read their last lines.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 2000;

/// Bytes read from a socket per `read` call, into the shard-wide scratch buffer.
pub const READ_CHUNK: usize = 16 * 1024;

/// How often a shard checks idle and draining connections.
pub const TICK: Duration = Duration::from_millis(250);

/// Reads per connection per turn before the shard moves on to other connections
/// (fairness; ET-2). A flooding client gets at most `READ_CHUNK * READS_PER_TURN`
/// bytes handled per turn, then waits on the shard's ready list.
pub const READS_PER_TURN: usize = 4;

/// Events fetched by one `poll` call.
pub const EVENTS_CAPACITY: usize = 1024;

/// Inbox messages handled per turn before the shard returns to its sockets; the rest
/// wait for the next turn (which then polls with a zero timeout).
pub const INBOX_DRAIN_CAP: usize = 4096;

/// Connections accepted per acceptor turn before it polls again (Redis accepts 10 per
/// cycle; its loop also serves clients, our acceptor does nothing else). A
/// budgeted-out acceptor polls with zero timeout.
pub const ACCEPTS_PER_TURN: usize = 256;

/// How long the acceptor waits before accepting again after running out of file
/// descriptors (EMFILE/ENFILE) or another accept error.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Join, leave, nick and quit notices are sent only in rooms with at most this many
/// members (0 = always). In a 10 000-member lobby every join would otherwise cost
/// 10 000 deliveries: this is InspIRCd's "auditorium" idea, applied by size.
pub const DEFAULT_ANNOUNCE_MAX: usize = 500;
/// Lines each room keeps for `/history` and playback on join (`--history`; 0 = off).
/// Kept on the room's home shard, per node; see docs/BENCHMARKS.md for the memory.
pub const DEFAULT_HISTORY: usize = 100;
/// The data dir `miochat serve` uses unless told otherwise (`--data-dir`).
pub const DEFAULT_DATA_DIR: &str = "miochat-data";
/// History lines may wait this long in memory before they are committed.
pub const DEFAULT_HISTORY_SYNC_MS: u64 = 100;
/// Stored history older than this many days is pruned.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
/// Stored history keeps at most this many lines per room.
pub const DEFAULT_HISTORY_MAX: u64 = 100_000;
/// Seconds an IRC client on a registered nick has to identify.
pub const DEFAULT_NICK_GRACE_SECS: u64 = 30;
/// Lines a line client gets on `/join`, and `/history` without a count.
pub const JOIN_HISTORY: usize = 20;
/// How long before an idle close the client is warned.
pub const IDLE_WARNING: Duration = Duration::from_secs(60);
/// TCP keepalive: idle time before the first probe, and between probes; a peer
/// that answers none of [`KEEPALIVE_PROBES`] is dead and the kernel resets it.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_PROBES: u32 = 4;

/// Name the IRC listener gives itself (the source of numerics).
pub const DEFAULT_SERVER_NAME: &str = "miochat.local";
/// Longest `--server-name` in bytes (the longest DNS label). Every IRC numeric starts
/// with it, and the 512-byte line budget of each numeric is planned with this bound.
pub const MAX_SERVER_NAME_LEN: usize = 63;

/// Seconds of silence after which an IRC connection is sent `PING` (ngIRCd: 120).
pub const DEFAULT_IRC_PING_SECS: u64 = 120;

/// Seconds an IRC connection has to answer that `PING` before it is closed with
/// `ERROR :Closing Link: nick (Ping timeout)` (ngIRCd: 20).
pub const DEFAULT_IRC_PONG_TIMEOUT_SECS: u64 = 20;

/// Seconds an HTTP client has to send its whole request head before it is answered
/// `408 Request Timeout` and closed (the slow-loris bound; nginx's
/// `client_header_timeout` is 60, Apache's `RequestReadTimeout` starts at 20).
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 10;

/// Seconds of silence after which a WebSocket connection is sent a ping frame; one
/// not answered within as long again closes it (1001). Proxies drop idle WebSockets
/// after a minute or so; a ping every 30 s keeps them open.
pub const DEFAULT_WS_PING_SECS: u64 = 30;

/// Rooms one connection may be in at once (ngIRCd 10, InspIRCd 20).
pub const MAX_ROOMS_PER_CONNECTION: usize = 32;

/// Nicks listed by one `/who` reply; the rest are counted (`+N`).
pub const WHO_PAGE: usize = 200;

/// A validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The durable store (`--data-dir`); `None` keeps everything in memory only.
    /// The command line's default is [`DEFAULT_DATA_DIR`]; a configuration made in
    /// code (tests, embedding) starts without one.
    pub store: Option<super::store::StoreConfig>,
    /// How long an IRC client that took a registered nick without logging in has to
    /// identify before it is renamed (`--nick-grace`).
    pub nick_grace: Duration,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Number of shards (worker threads).
    pub workers: usize,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_LINE`].
    pub max_line: usize,
    /// See [`DEFAULT_SENDQ`].
    pub sendq: usize,
    /// See [`DEFAULT_IDLE_TIMEOUT_SECS`]; `None` = off.
    pub idle_timeout: Option<Duration>,
    /// See [`DEFAULT_FLOOD_RATE`]; `None` = off.
    pub flood: Option<FloodLimit>,
    /// See [`DEFAULT_SHUTDOWN_GRACE_MS`].
    pub shutdown_grace: Duration,
    /// See [`DEFAULT_ANNOUNCE_MAX`].
    pub announce_max: usize,
    /// See [`DEFAULT_HISTORY`].
    pub history: usize,
    /// Where the IRC listener listens (`None` = no IRC listener).
    pub irc_listen: Option<SocketAddr>,
    /// See [`DEFAULT_SERVER_NAME`].
    pub server_name: String,
    /// Password IRC clients must give with `PASS` (`None` = none needed).
    pub irc_password: Option<String>,
    /// See [`DEFAULT_IRC_PING_SECS`].
    pub irc_ping: Duration,
    /// See [`DEFAULT_IRC_PONG_TIMEOUT_SECS`].
    pub irc_pong_timeout: Duration,
    /// Set `TCP_NODELAY` on client sockets (see docs/DESIGN.md, "Nagle").
    pub nodelay: bool,
    /// Install SIGINT/SIGTERM/SIGHUP handlers (the binary does; in-process tests do not).
    pub handle_signals: bool,
    /// The cluster backplane (`--backplane`), if this server is one node of several.
    pub backplane: Option<BackplaneConfig>,
    /// See [`DEFAULT_FLOOD_MAX_UNREAD`].
    pub flood_max_unread: usize,
    /// See [`DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS`].
    pub flood_unread_timeout: Duration,
    /// See [`DEFAULT_MAX_PER_ADDRESS`]; `None` = no limit.
    pub max_per_address: Option<usize>,
    /// See [`DEFAULT_CONNECT_RATE`]; `None` = no limit.
    pub connect_rate: Option<ConnectRate>,
    /// Certificate chain and key for the TLS listeners (`None` = no TLS).
    pub tls: Option<TlsFiles>,
    /// Where the TLS line-protocol listener listens (`None` = none).
    pub tls_listen: Option<SocketAddr>,
    /// Where the TLS IRC listener listens (`None` = none).
    pub irc_tls_listen: Option<SocketAddr>,
    /// See [`DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS`].
    pub tls_handshake_timeout: Duration,
    /// See [`DEFAULT_MAX_TLS_HANDSHAKES`].
    pub max_tls_handshakes: usize,
    /// Where the web listener (page, WebSocket, metrics) listens (`None` = none).
    pub http_listen: Option<SocketAddr>,
    /// See [`DEFAULT_HTTP_TIMEOUT_SECS`].
    pub http_timeout: Duration,
    /// See [`DEFAULT_WS_PING_SECS`].
    pub ws_ping: Duration,
    /// `--hosts address`: show each user's address as its host, not a cloak.
    pub show_addresses: bool,
    /// `--cloak-key`: the cloaks' key as text (else the data dir's `cloak.key`).
    pub cloak_key: Option<String>,
    /// `--trusted-proxy`: web connections from these addresses may name the
    /// client's address in `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpAddr>,
    /// The `[[oper]]` tables and the MOTD (`[irc] motd`), as loaded at start-up;
    /// the live copy, which a reload replaces, is `Shared::operators`.
    pub operators: super::operators::OperatorsConfig,
}

/// The PEM files a TLS listener serves (read at start-up and again on SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Per-address connection rate: a token bucket of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRate {
    /// Connections per second, on average.
    pub rate: u32,
    /// Connections allowed in a burst.
    pub burst: u32,
}

/// Per-connection flood control: a token bucket of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimit {
    /// Lines per second, on average.
    pub rate: u32,
    /// Lines allowed in a burst.
    pub burst: u32,
}

impl ServerConfig {
    /// A configuration with every default, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            workers: default_workers(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_line: DEFAULT_MAX_LINE,
            sendq: DEFAULT_SENDQ,
            idle_timeout: Some(Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS)),
            flood: Some(FloodLimit {
                rate: DEFAULT_FLOOD_RATE,
                burst: DEFAULT_FLOOD_BURST,
            }),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
            announce_max: DEFAULT_ANNOUNCE_MAX,
            history: DEFAULT_HISTORY,
            irc_listen: None,
            server_name: DEFAULT_SERVER_NAME.to_string(),
            irc_password: None,
            irc_ping: Duration::from_secs(DEFAULT_IRC_PING_SECS),
            irc_pong_timeout: Duration::from_secs(DEFAULT_IRC_PONG_TIMEOUT_SECS),
            nodelay: true,
            handle_signals: false,
            backplane: None,
            flood_max_unread: DEFAULT_FLOOD_MAX_UNREAD,
            flood_unread_timeout: Duration::from_secs(DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS),
            max_per_address: Some(DEFAULT_MAX_PER_ADDRESS),
            connect_rate: Some(ConnectRate {
                rate: DEFAULT_CONNECT_RATE,
                burst: DEFAULT_CONNECT_BURST,
            }),
            tls: None,
            tls_listen: None,
            irc_tls_listen: None,
            tls_handshake_timeout: Duration::from_secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS),
            max_tls_handshakes: DEFAULT_MAX_TLS_HANDSHAKES,
            http_listen: None,
            http_timeout: Duration::from_secs(DEFAULT_HTTP_TIMEOUT_SECS),
            ws_ping: Duration::from_secs(DEFAULT_WS_PING_SECS),
            store: None,
            nick_grace: Duration::from_secs(DEFAULT_NICK_GRACE_SECS),
            show_addresses: false,
            cloak_key: None,
            trusted_proxies: Vec::new(),
            operators: super::operators::OperatorsConfig::default(),
        }
    }

    /// How hosts are shown: the address (`--hosts address`), or a cloak under the
    /// key of `--cloak-key`, else the data dir's `cloak.key` (made on the first
    /// start, so cloaks survive restarts), else (no data dir) a key for this run.
    pub fn hosts(&self) -> Result<Hosts, String> {
        use sha2::{Digest, Sha256};
        if self.show_addresses {
            return Ok(Hosts::Address);
        }
        if let Some(text) = &self.cloak_key {
            return Ok(Hosts::Cloak(Sha256::digest(text.as_bytes()).into()));
        }
        let Some(store) = &self.store else {
            return Ok(Hosts::Cloak(random_key()?));
        };
        let path = store.dir.join(CLOAK_KEY_FILE);
        let shown = path.display();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim())
                .map(Hosts::Cloak)
                .ok_or_else(|| format!("{shown}: not 64 hex digits")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_key()?;
                write_key(&path, &key).map_err(|e| format!("{shown}: {e}"))?;
                Ok(Hosts::Cloak(key))
            }
            Err(e) => Err(format!("{shown}: {e}")),
        }
    }

    /// Checks the limits against each other; the error is one line for the user.
    pub fn validate(self) -> Result<Self, String> {
        if self.workers == 0 || self.workers > MAX_SHARDS {
            return Err(format!("--workers must be 1..={MAX_SHARDS}"));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if !(16..=1 << 20).contains(&self.max_line) {
            return Err("--max-line must be 16..=1048576 bytes".into());
        }
        if self.sendq < 2 * (self.max_line + 64) {
            return Err(format!(
                "--sendq must be at least twice --max-line plus 128 ({} bytes)",
                2 * (self.max_line + 64)
            ));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        if self.server_name.is_empty() || !self.server_name.chars().all(name_ok) {
            return Err("--server-name must be letters, digits, '.' and '-'".into());
        }
        if self.http_timeout.is_zero() || self.ws_ping.is_zero() {
            return Err("--http-timeout and --ws-ping must be at least 1 second".into());
        }
        if self.server_name.len() > MAX_SERVER_NAME_LEN {
            return Err(format!(
                "--server-name must be at most {MAX_SERVER_NAME_LEN} bytes (it starts every IRC line)"
            ));
        }
        if self.irc_ping.is_zero() || self.irc_pong_timeout.is_zero() {
            return Err("--irc-ping and --irc-pong-timeout must be at least 1 second".into());
        }
        if let Some(backplane) = &self.backplane {
            validate_node_name(&backplane.node)?;
            if backplane.lease < Duration::from_secs(1) {
                return Err("--lease must be at least 1 second".into());
            }
        }
        if let Some(flood) = self.flood
            && flood.burst == 0
        {
            return Err("--flood-burst must be at least 1".into());
        }
        if self.connect_rate.is_some_and(|r| r.burst == 0) {
            return Err("--connect-burst must be at least 1".into());
        }
        Ok(self)
    }

    /// TLS listeners need a certificate and a key, and both files come together.
    /// (Separate from [`Self::validate`] because a TLS mistake exits with status 2.)
    pub fn validate_tls(&self) -> Result<(), String> {
        let listeners = self.tls_listen.is_some() || self.irc_tls_listen.is_some();
        match (&self.tls, listeners) {
            (None, true) => {
                Err("--tls-listen and --irc-tls-listen need --tls-cert and --tls-key".into())
            }
            (Some(_), false) => {
                Err("--tls-cert and --tls-key need --tls-listen or --irc-tls-listen".into())
            }
            _ if self.tls_handshake_timeout.is_zero() => {
                Err("--tls-handshake-timeout must be at least 1 second".into())
            }
            _ if self.max_tls_handshakes == 0 => {
                Err("--max-tls-handshakes must be at least 1".into())
            }
            _ => Ok(()),
        }
    }
}

/// Default `--lease`: how long a node that stopped renewing its lease is still taken
/// for alive (its users are announced as gone after this, plus a check's delay).
pub const DEFAULT_LEASE_SECS: u64 = 10;

/// Longest node name: it ends every guest nick of the node, within the nick limit.
pub const MAX_NODE_NAME: usize = 10;

/// A node name is 1–10 of `a-z 0-9`, starting with a letter (it appears in guest
/// nicks and Redis keys).
pub fn validate_node_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NODE_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--node-name must be 1-{MAX_NODE_NAME} of a-z and 0-9, starting with a letter"
        ))
    }
}

/// One shard per available core but one, and at least one. The core left over runs
/// what every delivery also costs outside the shards: the kernel's TCP work for each
/// `writev` (on loopback the receiver's processing runs in the sender's syscall), the
/// acceptor, and on a small machine the clients themselves. Measured on 2 cores
/// (docs/BENCHMARKS.md, "Where a second shard's cost goes"): a second shard adds CPU per delivery and no
/// throughput, so the default there is one shard.
pub fn default_workers() -> usize {
    workers_for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The default shard count for a machine with `cores` cores.
pub fn workers_for_cores(cores: usize) -> usize {
    cores.saturating_sub(1).clamp(1, MAX_SHARDS)
}

/// The backplane's settings.
#[derive(Debug, Clone)]
pub struct BackplaneConfig {
    /// Redis's address (a cluster's first seed).
    pub redis: SocketAddr,
    /// Every address given: the one Redis, or a Redis Cluster's seeds.
    pub seeds: Vec<SocketAddr>,
    /// A Redis Cluster (`redis-cluster://`): rooms spread over its primaries.
    pub cluster: bool,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// How long a node's lease lives without renewal.
    pub lease: Duration,
    /// Each room's shared log in Redis keeps about this many events
    /// (`--history-max`; 0: no limit).
    pub log_max: u64,
}

/// The file in the data dir that keeps the cloaks' key.
pub const CLOAK_KEY_FILE: &str = "cloak.key";

/// 32 bytes from the kernel's random source.
fn random_key() -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(key)
}

/// A key written as 64 hex digits.
fn parse_key(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Writes `key` as hex to a new file only its owner may read.
fn write_key(path: &std::path::Path, key: &[u8; 32]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{hex}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn base() -> ServerConfig {
        ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    #[test]
    fn defaults_are_valid() {
        assert!(base().validate().is_ok());
    }

    #[test]
    fn default_shards_leave_a_core_free() {
        assert_eq!(workers_for_cores(1), 1);
        assert_eq!(workers_for_cores(2), 1);
        assert_eq!(workers_for_cores(4), 3);
        assert_eq!(workers_for_cores(200), MAX_SHARDS);
    }

    #[test]
    fn nonsense_is_refused() {
        let mut c = base();
        c.workers = 0;
        assert!(c.validate().is_err());
        let mut c = base();
        c.sendq = 100;
        assert!(c.validate().is_err());
        let mut c = base();
        c.max_line = 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn server_name_is_at_most_63_bytes() {
        let mut c = base();
        c.server_name = "a".repeat(MAX_SERVER_NAME_LEN);
        assert!(c.validate().is_ok());
        let mut c = base();
        c.server_name = "a".repeat(MAX_SERVER_NAME_LEN + 1);
        let error = c.validate().unwrap_err();
        assert!(error.contains("at most 63 bytes"), "{error}");
    }
}
