//! The configuration file's shape, as `serde` structs: one per `[table]`, every key
//! optional, unknown keys refused.
//!
//! Every key is an `Option` so that three layers can be told apart and stacked: the
//! built-in defaults ([`FileConfig::defaults`]), the file, and the command line's
//! flags (only those given). The result of stacking them is still a `FileConfig`,
//! complete this time, which `config show` prints and a reload compares key by key.
//! Values stay as the file spells them (addresses as text, durations as whole
//! seconds); `convert.rs` turns them into the server's types.

use serde::{Deserialize, Serialize};

use crate::server::config::{
    DEFAULT_ANNOUNCE_MAX, DEFAULT_CONNECT_BURST, DEFAULT_CONNECT_RATE, DEFAULT_DATA_DIR,
    DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_MAX_UNREAD, DEFAULT_FLOOD_RATE,
    DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS, DEFAULT_HISTORY, DEFAULT_HISTORY_DAYS, DEFAULT_HISTORY_MAX,
    DEFAULT_HISTORY_SYNC_MS, DEFAULT_HTTP_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_IRC_PING_SECS, DEFAULT_IRC_PONG_TIMEOUT_SECS, DEFAULT_LEASE_SECS, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LINE, DEFAULT_MAX_PER_ADDRESS, DEFAULT_MAX_TLS_HANDSHAKES,
    DEFAULT_NICK_GRACE_SECS, DEFAULT_SENDQ, DEFAULT_SERVER_NAME, DEFAULT_SHUTDOWN_GRACE_MS,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS, DEFAULT_WS_PING_SECS,
};

/// A whole configuration file (or a layer of one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[listen]`
    pub listen: ListenTable,
    /// `[limits]`
    pub limits: LimitsTable,
    /// `[flood]`
    pub flood: FloodTable,
    /// `[tls]`
    pub tls: TlsTable,
    /// `[irc]`
    pub irc: IrcTable,
    /// `[http]`
    pub http: HttpTable,
    /// `[cluster]`
    pub cluster: ClusterTable,
    /// `[store]`
    pub store: StoreTable,
    /// `[log]`
    pub log: LogTable,
    /// `[[oper]]`, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oper: Vec<OperTable>,
}

/// `[listen]`: where the server takes connections, and its threads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct ListenTable {
    pub address: Option<String>,
    pub irc: Option<String>,
    pub tls: Option<String>,
    pub irc_tls: Option<String>,
    pub http: Option<String>,
    pub workers: Option<usize>,
    pub nagle: Option<bool>,
}

/// `[limits]`: per-connection and per-address bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct LimitsTable {
    pub max_connections: Option<usize>,
    pub max_line: Option<usize>,
    pub sendq: Option<usize>,
    pub idle_timeout: Option<u64>,
    pub max_per_ip: Option<usize>,
    pub connect_rate: Option<u32>,
    pub connect_burst: Option<u32>,
    pub announce_max: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
}

/// `[flood]`: flood control.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct FloodTable {
    pub rate: Option<u32>,
    pub burst: Option<u32>,
    pub max_unread: Option<usize>,
    pub unread_timeout: Option<u64>,
}

/// `[tls]`: the certificate and the handshake bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct TlsTable {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub handshake_timeout: Option<u64>,
    pub max_handshakes: Option<usize>,
}

/// `[irc]`: the IRC side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct IrcTable {
    pub server_name: Option<String>,
    pub password: Option<String>,
    pub ping: Option<u64>,
    pub pong_timeout: Option<u64>,
    pub nick_grace: Option<u64>,
    pub hosts: Option<String>,
    pub cloak_key: Option<String>,
    pub motd: Option<String>,
}

/// `[http]`: the web listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct HttpTable {
    pub timeout: Option<u64>,
    pub ws_ping: Option<u64>,
    pub trusted_proxies: Option<Vec<String>>,
}

/// `[cluster]`: the Redis backplane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct ClusterTable {
    pub backplane: Option<String>,
    pub node_name: Option<String>,
    pub lease: Option<u64>,
}

/// `[store]`: the data dir and history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct StoreTable {
    pub data_dir: Option<String>,
    pub history: Option<usize>,
    pub history_sync_ms: Option<u64>,
    pub history_days: Option<u32>,
    pub history_max: Option<u64>,
}

/// `[log]`: level, file and protocol trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct LogTable {
    pub level: Option<String>,
    pub file: Option<String>,
    pub trace: Option<bool>,
}

/// One `[[oper]]` table: a server operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperTable {
    /// The name given to `OPER`.
    pub name: String,
    /// An argon2id PHC string (`miochat config hash-password` makes one).
    pub password: String,
    /// `nick!user@host` or address masks to connect from (empty: anywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<String>,
}

impl FileConfig {
    /// Every built-in default; keys off by default (extra listeners, TLS files, the
    /// IRC password...) and `workers` (it depends on the machine) stay unset.
    pub fn defaults() -> Self {
        FileConfig {
            listen: ListenTable {
                address: Some(DEFAULT_LISTEN.into()),
                nagle: Some(false),
                ..ListenTable::default()
            },
            limits: LimitsTable {
                max_connections: Some(DEFAULT_MAX_CONNECTIONS),
                max_line: Some(DEFAULT_MAX_LINE),
                sendq: Some(DEFAULT_SENDQ),
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT_SECS),
                max_per_ip: Some(DEFAULT_MAX_PER_ADDRESS),
                connect_rate: Some(DEFAULT_CONNECT_RATE),
                connect_burst: Some(DEFAULT_CONNECT_BURST),
                announce_max: Some(DEFAULT_ANNOUNCE_MAX),
                shutdown_grace_ms: Some(DEFAULT_SHUTDOWN_GRACE_MS),
            },
            flood: FloodTable {
                rate: Some(DEFAULT_FLOOD_RATE),
                burst: Some(DEFAULT_FLOOD_BURST),
                max_unread: Some(DEFAULT_FLOOD_MAX_UNREAD),
                unread_timeout: Some(DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS),
            },
            tls: TlsTable {
                handshake_timeout: Some(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS),
                max_handshakes: Some(DEFAULT_MAX_TLS_HANDSHAKES),
                ..TlsTable::default()
            },
            irc: IrcTable {
                server_name: Some(DEFAULT_SERVER_NAME.into()),
                ping: Some(DEFAULT_IRC_PING_SECS),
                pong_timeout: Some(DEFAULT_IRC_PONG_TIMEOUT_SECS),
                nick_grace: Some(DEFAULT_NICK_GRACE_SECS),
                hosts: Some("cloak".into()),
                ..IrcTable::default()
            },
            http: HttpTable {
                timeout: Some(DEFAULT_HTTP_TIMEOUT_SECS),
                ws_ping: Some(DEFAULT_WS_PING_SECS),
                trusted_proxies: Some(Vec::new()),
            },
            cluster: ClusterTable {
                lease: Some(DEFAULT_LEASE_SECS),
                ..ClusterTable::default()
            },
            store: StoreTable {
                data_dir: Some(DEFAULT_DATA_DIR.into()),
                history: Some(DEFAULT_HISTORY),
                history_sync_ms: Some(DEFAULT_HISTORY_SYNC_MS),
                history_days: Some(DEFAULT_HISTORY_DAYS),
                history_max: Some(DEFAULT_HISTORY_MAX),
            },
            log: LogTable {
                level: Some("info".into()),
                file: None,
                trace: Some(false),
            },
            oper: Vec::new(),
        }
    }
}
