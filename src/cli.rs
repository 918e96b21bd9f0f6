//! The command line: `miochat serve | bench | connect | backup | config`, parsed by `argh`.
//!
//! These structs hold raw flags only; turning them into a validated configuration is
//! done by `into_config`-style functions next to them, so `main` stays a dispatcher.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use argh::FromArgs;

use crate::bench::dialect::Dialect;
use crate::bench::traffic::TrafficOpts;
use crate::bench::{Common, Scenario};
use crate::server::ServerConfig;
use crate::server::config::BackplaneConfig;
use crate::server::config::{
    ConnectRate, DEFAULT_CONNECT_BURST, DEFAULT_CONNECT_RATE, DEFAULT_FLOOD_MAX_UNREAD,
    DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS, DEFAULT_HTTP_TIMEOUT_SECS, DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_TLS_HANDSHAKES, DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS, DEFAULT_WS_PING_SECS, TlsFiles,
};
use crate::server::config::{
    DEFAULT_ANNOUNCE_MAX, DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE, DEFAULT_HISTORY,
    DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_IRC_PING_SECS, DEFAULT_IRC_PONG_TIMEOUT_SECS,
    DEFAULT_LEASE_SECS, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LINE, DEFAULT_SENDQ,
    DEFAULT_SERVER_NAME, DEFAULT_SHUTDOWN_GRACE_MS, FloodLimit, default_workers,
};
use crate::server::config::{
    DEFAULT_DATA_DIR, DEFAULT_HISTORY_DAYS, DEFAULT_HISTORY_MAX, DEFAULT_HISTORY_SYNC_MS,
    DEFAULT_NICK_GRACE_SECS,
};
use crate::server::store::StoreConfig;
use crate::tls_client::{ClientTls, Trust};

/// miochat: a sharded chat server on mio, its load generator and its client.
#[derive(FromArgs, Debug)]
pub struct TopLevel {
    /// what to run
    #[argh(subcommand)]
    pub command: Command,
}

/// The subcommands (parsed once: the size of the largest does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// Run the chat server.
    Serve(ServeArgs),
    /// Load-test a server.
    Bench(BenchArgs),
    /// Chat from the terminal.
    Connect(ConnectArgs),
    /// Copy a data dir's database while the server runs.
    Backup(BackupArgs),
    /// Configuration helpers.
    Config(ConfigArgs),
}

/// Configuration helpers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub struct ConfigArgs {
    /// what to do
    #[argh(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ConfigCommand {
    /// Make a development TLS certificate and key.
    MakeCert(crate::certs::MakeCertArgs),
}

/// Copy the store's database to DEST, consistently, while a server may be running.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "backup")]
pub struct BackupArgs {
    /// the file to write (must not exist); an ordinary SQLite database
    #[argh(positional)]
    pub dest: String,
    /// the data dir to copy (default miochat-data)
    #[argh(option, default = "DEFAULT_DATA_DIR.to_string()")]
    pub data_dir: String,
}

/// Run the chat server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// address to listen on, or a bare port for 127.0.0.1 (default 127.0.0.1:7878; port 0 picks a free port)
    #[argh(option, default = "DEFAULT_LISTEN.to_string()")]
    pub listen: String,
    /// worker threads, one shard each (default: number of cores minus one, at least 1)
    #[argh(option, default = "default_workers()")]
    pub workers: usize,
    /// most open connections; more are refused with a one-line reason (default 10000)
    #[argh(option, default = "DEFAULT_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// longest accepted line in bytes (default 2048)
    #[argh(option, default = "DEFAULT_MAX_LINE")]
    pub max_line: usize,
    /// bytes that may wait for one slow client before it is cut (default 262144)
    #[argh(option, default = "DEFAULT_SENDQ")]
    pub sendq: usize,
    /// close connections that never sent a line after this many seconds (warned a minute before); 0 = never (default 600)
    #[argh(option, default = "DEFAULT_IDLE_TIMEOUT_SECS")]
    pub idle_timeout: u64,
    /// lines per second one client may send; 0 = no flood control (default 20)
    #[argh(option, default = "DEFAULT_FLOOD_RATE")]
    pub flood_rate: u32,
    /// lines one client may send in a burst (default 50)
    #[argh(option, default = "DEFAULT_FLOOD_BURST")]
    pub flood_burst: u32,
    /// announce joins/leaves/quits only in rooms of at most this many members; 0 = always (default 500)
    #[argh(option, default = "DEFAULT_ANNOUNCE_MAX")]
    pub announce_max: usize,
    /// lines each room keeps for /history and playback on join; 0 = off (default 100)
    #[argh(option, default = "DEFAULT_HISTORY")]
    pub history: usize,
    /// folder for accounts, registered rooms and history (created if missing); none = keep nothing on disk (default miochat-data)
    #[argh(option, default = "DEFAULT_DATA_DIR.to_string()")]
    pub data_dir: String,
    /// history lines are committed to disk at least this often, in ms: a crash loses at most that much (default 100)
    #[argh(option, default = "DEFAULT_HISTORY_SYNC_MS")]
    pub history_sync_ms: u64,
    /// stored history older than this many days is pruned; 0 = never (default 30)
    #[argh(option, default = "DEFAULT_HISTORY_DAYS")]
    pub history_days: u32,
    /// stored history lines kept per room; 0 = no limit (default 100000)
    #[argh(option, default = "DEFAULT_HISTORY_MAX")]
    pub history_max: u64,
    /// seconds an IRC client on a registered nick has to log in before it is renamed (default 30)
    #[argh(option, default = "DEFAULT_NICK_GRACE_SECS")]
    pub nick_grace: u64,
    /// milliseconds clients get to read the shutdown notice (default 2000)
    #[argh(option, default = "DEFAULT_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: u64,
    /// also listen for IRC clients here (off unless given; the usual port is 6667)
    #[argh(option)]
    pub irc_listen: Option<String>,
    /// the IRC server name (default miochat.local)
    #[argh(option, default = "DEFAULT_SERVER_NAME.to_string()")]
    pub server_name: String,
    /// password IRC clients must send with PASS (default: none)
    #[argh(option)]
    pub password: Option<String>,
    /// seconds of silence before an IRC client is sent PING (default 120)
    #[argh(option, default = "DEFAULT_IRC_PING_SECS")]
    pub irc_ping: u64,
    /// seconds an IRC client has to answer that PING (default 20)
    #[argh(option, default = "DEFAULT_IRC_PONG_TIMEOUT_SECS")]
    pub irc_pong_timeout: u64,
    /// unread bytes a flood-paused client may have before the hard ceiling (default 65536)
    #[argh(option, default = "DEFAULT_FLOOD_MAX_UNREAD")]
    pub flood_max_unread: usize,
    /// seconds a paused client may stay over --flood-max-unread before it is cut (default 10)
    #[argh(option, default = "DEFAULT_FLOOD_UNREAD_TIMEOUT_SECS")]
    pub flood_unread_timeout: u64,
    /// connections one address (IPv4, or IPv6 /64) may hold; 0 = no limit (default 10)
    #[argh(option, default = "DEFAULT_MAX_PER_ADDRESS")]
    pub max_per_ip: usize,
    /// new connections per second one address may open; 0 = no limit (default 10)
    #[argh(option, default = "DEFAULT_CONNECT_RATE")]
    pub connect_rate: u32,
    /// new connections one address may open in a burst (default 20)
    #[argh(option, default = "DEFAULT_CONNECT_BURST")]
    pub connect_burst: u32,
    /// PEM certificate chain for the TLS listeners
    #[argh(option)]
    pub tls_cert: Option<String>,
    /// PEM private key for the TLS listeners (reloaded with the certificate on SIGHUP)
    #[argh(option)]
    pub tls_key: Option<String>,
    /// also listen for line-protocol clients over TLS here
    #[argh(option)]
    pub tls_listen: Option<String>,
    /// also listen for IRC clients over TLS here (the usual port is 6697)
    #[argh(option)]
    pub irc_tls_listen: Option<String>,
    /// seconds a TLS client has to finish its handshake (default 10)
    #[argh(option, default = "DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS")]
    pub tls_handshake_timeout: u64,
    /// TLS handshakes in progress at once; more are closed at accept (default 512)
    #[argh(option, default = "DEFAULT_MAX_TLS_HANDSHAKES")]
    pub max_tls_handshakes: usize,
    /// serve the chat page, WebSocket chat, /metrics and /healthz here (off unless given; e.g. 127.0.0.1:8080)
    #[argh(option)]
    pub http_listen: Option<String>,
    /// seconds an HTTP client has to send its request head (default 10)
    #[argh(option, default = "DEFAULT_HTTP_TIMEOUT_SECS")]
    pub http_timeout: u64,
    /// seconds of WebSocket silence before a ping frame; as long again for the pong (default 30)
    #[argh(option, default = "DEFAULT_WS_PING_SECS")]
    pub ws_ping: u64,
    /// how IRC shows users' hosts: cloak (a keyed hash of the address) or address (default cloak)
    #[argh(option, default = "String::from(\"cloak\")")]
    pub hosts: String,
    /// key for the host cloaks (default: kept in the data dir as cloak.key; without one, new each run)
    #[argh(option)]
    pub cloak_key: Option<String>,
    /// a reverse proxy's address whose X-Forwarded-For header names the web client's address (repeatable; default: none)
    #[argh(option)]
    pub trusted_proxy: Vec<String>,
    /// leave Nagle's algorithm on (TCP_NODELAY off); see docs/DESIGN.md
    #[argh(switch)]
    pub nagle: bool,
    /// join a cluster of nodes through this Redis, as redis://HOST:PORT (default: none)
    #[argh(option)]
    pub backplane: Option<String>,
    /// this node's name in the cluster: 1-10 of a-z and 0-9 (default: n + process id)
    #[argh(option)]
    pub node_name: Option<String>,
    /// seconds a silent node is still taken for alive in the cluster (default 10)
    #[argh(option, default = "DEFAULT_LEASE_SECS")]
    pub lease: u64,
    /// log debug detail
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log warnings and errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

impl ServeArgs {
    /// The server configuration these flags describe (validated by `Server::start`).
    pub fn to_config(&self) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::new(resolve(&self.listen)?);
        config.workers = self.workers;
        config.max_connections = self.max_connections;
        config.max_line = self.max_line;
        config.sendq = self.sendq;
        config.idle_timeout =
            (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout));
        config.flood = (self.flood_rate > 0).then_some(FloodLimit {
            rate: self.flood_rate,
            burst: self.flood_burst,
        });
        config.announce_max = self.announce_max;
        config.history = self.history;
        if self.data_dir.trim().is_empty() {
            return Err("--data-dir needs a folder (or none, to keep nothing on disk)".into());
        }
        config.store = (self.data_dir != "none").then(|| StoreConfig {
            dir: self.data_dir.clone().into(),
            history_sync: Duration::from_millis(self.history_sync_ms.max(1)),
            history_days: self.history_days,
            history_max: self.history_max,
        });
        config.nick_grace = Duration::from_secs(self.nick_grace);
        config.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms);
        config.irc_listen = self.irc_listen.as_deref().map(resolve).transpose()?;
        config.server_name = self.server_name.clone();
        config.irc_password = self.password.clone();
        config.irc_ping = Duration::from_secs(self.irc_ping);
        config.irc_pong_timeout = Duration::from_secs(self.irc_pong_timeout);
        config.nodelay = !self.nagle;
        config.handle_signals = true;
        config.backplane = match &self.backplane {
            Some(url) => Some(BackplaneConfig {
                redis: resolve(redis_address(url)?)?,
                node: self
                    .node_name
                    .clone()
                    .unwrap_or_else(|| format!("n{}", std::process::id())),
                lease: Duration::from_secs(self.lease),
                log_max: self.history_max,
            }),
            None if self.node_name.is_some() => return Err("--node-name needs --backplane".into()),
            None => None,
        };
        config.flood_max_unread = self.flood_max_unread;
        config.flood_unread_timeout = Duration::from_secs(self.flood_unread_timeout);
        config.max_per_address = (self.max_per_ip > 0).then_some(self.max_per_ip);
        config.connect_rate = (self.connect_rate > 0).then_some(ConnectRate {
            rate: self.connect_rate,
            burst: self.connect_burst,
        });
        self.tls_to_config(&mut config)?;
        config.http_listen = self.http_listen.as_deref().map(resolve).transpose()?;
        config.http_timeout = Duration::from_secs(self.http_timeout);
        config.ws_ping = Duration::from_secs(self.ws_ping);
        self.hosts_to_config(&mut config)?;
        Ok(config)
    }

    /// `--hosts`, `--cloak-key`, `--trusted-proxy`: what users' hosts are.
    fn hosts_to_config(&self, config: &mut ServerConfig) -> Result<(), String> {
        config.show_addresses = match self.hosts.as_str() {
            "cloak" => false,
            "address" => true,
            other => return Err(format!("--hosts is cloak or address, not {other:?}")),
        };
        config.cloak_key = self.cloak_key.clone();
        config.trusted_proxies = (self.trusted_proxy.iter())
            .map(|text| {
                text.parse()
                    .map_err(|_| format!("--trusted-proxy takes an IP address, not {text:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// A TLS mistake in the flags themselves (exit status 2, like a bad certificate).
    pub fn tls_mistake(&self) -> Option<&'static str> {
        (self.tls_cert.is_some() != self.tls_key.is_some()).then_some(TLS_PAIR)
    }

    fn tls_to_config(&self, config: &mut ServerConfig) -> Result<(), String> {
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => return Err(TLS_PAIR.into()),
        };
        config.tls_listen = self.tls_listen.as_deref().map(resolve).transpose()?;
        config.irc_tls_listen = self.irc_tls_listen.as_deref().map(resolve).transpose()?;
        config.tls_handshake_timeout = Duration::from_secs(self.tls_handshake_timeout);
        config.max_tls_handshakes = self.max_tls_handshakes;
        Ok(())
    }
}

/// `HOST:PORT` of a `redis://HOST:PORT` address (a bare `HOST:PORT` is accepted too).
pub fn redis_address(url: &str) -> Result<&str, String> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "--backplane must look like redis://HOST:PORT, not {url:?}"
        ));
    }
    Ok(rest)
}

/// The host part of `host:port` (or `[v6]:port`): the name a certificate must carry.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

const TLS_PAIR: &str = "TLS: --tls-cert and --tls-key go together";

/// Resolves `host:port` once, before any event loop runs (DNS blocks, so never from
/// inside a loop). A bare port (`7878`) means that port on 127.0.0.1, the same
/// loopback default as the defaults of `--listen` and `connect`.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = addr.trim().parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}

/// Load-test a chat server: fanout, rooms, idle, churn or floor.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "bench")]
pub struct BenchArgs {
    /// scenario: fanout, rooms, idle, churn, or floor (a fanout run, then the same writes with nothing else, and the ratio)
    #[argh(positional)]
    pub scenario: String,
    /// server address, or several comma-separated (cluster nodes) to spread the clients over round-robin (default 127.0.0.1:7878)
    #[argh(option, default = "DEFAULT_LISTEN.to_string()")]
    pub addr: String,
    /// room to talk in, never lobby (default bench; several rooms are bench0, bench1, ...)
    #[argh(option, default = "String::from(\"bench\")")]
    pub room: String,
    /// wire dialect: line (miochat), irc, resp (Redis pub/sub) or ws (line protocol over WebSocket to --http-listen) (default line)
    #[argh(option, default = "String::from(\"line\")")]
    pub dialect: String,
    /// clients in the rooms, or connections for idle (default 10)
    #[argh(option, default = "10")]
    pub clients: usize,
    /// clients that send (default: min(10, clients))
    #[argh(option)]
    pub senders: Option<usize>,
    /// rooms (default 1 for fanout, 4 for rooms)
    #[argh(option)]
    pub rooms: Option<usize>,
    /// messages per sender (default 1000)
    #[argh(option, default = "1000")]
    pub messages: u64,
    /// send (fanout/rooms) or start sessions (churn) for this many seconds instead
    #[argh(option)]
    pub duration: Option<f64>,
    /// payload bytes per message (default 64)
    #[argh(option, default = "64")]
    pub size: usize,
    /// messages in flight per sender at full speed (default 16)
    #[argh(option, default = "16")]
    pub window: u64,
    /// fixed total rate in messages per second instead of full speed
    #[argh(option)]
    pub rate: Option<f64>,
    /// idle: seconds to hold the connections (default 10)
    #[argh(option, default = "10.0")]
    pub hold: f64,
    /// churn: sessions started per second (default 200)
    #[argh(option, default = "200.0")]
    pub churn_rate: f64,
    /// server pid(s), comma-separated, whose CPU (summed) and RSS are reported (default: asked with /stats from each server on this machine)
    #[argh(option)]
    pub server_pid: Option<String>,
    /// source addresses 127.0.0.1.. to spread connections over (default: enough for the client count)
    #[argh(option)]
    pub sources: Option<usize>,
    /// skip this many source addresses first (several load processes side by side: give each its own range) (default 0)
    #[argh(option, default = "0")]
    pub source_offset: usize,
    /// idle: hold until every connection has received a message starting `MARK.UNIX_NS` (sent by a script into the room), and report how long it took to reach them all
    #[argh(switch)]
    pub await_mark: bool,
    /// connection handshakes in flight at once (default 64)
    #[argh(option, default = "64")]
    pub connect_window: usize,
    /// seconds each phase may take before the run fails (default 60)
    #[argh(option, default = "60.0")]
    pub timeout: f64,
    /// speak TLS to the server (a TLS listener; the certificate is not verified)
    #[argh(switch)]
    pub tls: bool,
    /// print one JSON object instead of the human summary
    #[argh(switch)]
    pub json: bool,
    /// print CSV (a header line and a value line) instead of the human summary
    #[argh(switch)]
    pub csv: bool,
}

/// Ephemeral ports per source address we plan with (Linux offers about 28 000).
const PORTS_PER_SOURCE: usize = 25_000;

impl BenchArgs {
    /// The run these flags describe.
    pub fn to_run(&self) -> Result<(Common, Scenario), String> {
        let dialect: Dialect = self.dialect.parse()?;
        let secs = |v: f64, name: &str| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| format!("--{name} must be a positive number"))
        };
        if self.json && self.csv {
            return Err("choose one of --json and --csv".into());
        }
        let common = Common {
            addrs: self.addrs()?,
            dialect,
            timeout: secs(self.timeout, "timeout")?,
            sources: self
                .sources
                .unwrap_or_else(|| self.clients.div_ceil(PORTS_PER_SOURCE)),
            source_offset: self.source_offset,
            connect_window: self.connect_window.max(1),
            server_pids: self.server_pids()?,
            room: self.room.clone(),
            tls: self
                .tls
                .then(|| {
                    ClientTls::new(
                        host_of(self.addr.split(',').next().unwrap_or_default()),
                        &Trust::Insecure,
                    )
                })
                .transpose()?,
        };
        let duration = self.duration.map(|d| secs(d, "duration")).transpose()?;
        let scenario = match self.scenario.as_str() {
            "fanout" | "rooms" | "floor" => {
                let default_rooms = if self.scenario == "rooms" { 4 } else { 1 };
                let opts = TrafficOpts {
                    common: common.clone(),
                    clients: self.clients,
                    senders: self.senders.unwrap_or(self.clients.min(10)),
                    rooms: self.rooms.unwrap_or(default_rooms),
                    messages: self.messages,
                    duration,
                    size: self.size,
                    window: self.window,
                    rate: self.rate.filter(|r| *r > 0.0),
                };
                if self.scenario == "floor" {
                    Scenario::Floor(opts)
                } else {
                    Scenario::Traffic(opts)
                }
            }
            "idle" => Scenario::Idle {
                clients: self.clients,
                hold: secs(self.hold, "hold")?,
                await_mark: self.await_mark,
            },
            "churn" => {
                if self.churn_rate <= 0.0 {
                    return Err("--churn-rate must be positive".into());
                }
                Scenario::Churn {
                    rate: self.churn_rate,
                    duration: duration.unwrap_or(Duration::from_secs(10)),
                }
            }
            other => {
                return Err(format!(
                    "unknown scenario {other:?} (fanout, rooms, idle, churn, floor)"
                ));
            }
        };
        Ok((common, scenario))
    }
}

impl BenchArgs {
    /// `--addr A,B,...`, each resolved once.
    fn addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = self
            .addr
            .split(',')
            .map(str::trim)
            .filter(|addr| !addr.is_empty())
            .map(resolve)
            .collect::<Result<_, _>>()?;
        if addrs.is_empty() {
            return Err("--addr needs at least one address".into());
        }
        Ok(addrs)
    }

    /// `--server-pid P,Q,...`, or `None` to ask the servers.
    fn server_pids(&self) -> Result<Option<Vec<u32>>, String> {
        let Some(list) = &self.server_pid else {
            return Ok(None);
        };
        list.split(',')
            .map(|pid| {
                pid.trim()
                    .parse()
                    .map_err(|_| format!("--server-pid: {pid:?} is not a process id"))
            })
            .collect::<Result<Vec<u32>, String>>()
            .map(Some)
    }
}

/// Chat from the terminal (or from a script: stdin lines are sent).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "connect")]
pub struct ConnectArgs {
    /// server address, or a bare port for 127.0.0.1 (default 127.0.0.1:7878)
    #[argh(positional, default = "DEFAULT_LISTEN.to_string()")]
    pub addr: String,
    /// nick to take once connected
    #[argh(option)]
    pub nick: Option<String>,
    /// room to join once connected
    #[argh(option)]
    pub room: Option<String>,
    /// after stdin ends, keep printing for at most this many seconds (default: until the server closes)
    #[argh(option)]
    pub wait: Option<f64>,
    /// speak TLS; the server's certificate is verified against the system roots or --ca
    #[argh(switch)]
    pub tls: bool,
    /// with --tls: trust only the CA certificates in this PEM file
    #[argh(option)]
    pub ca: Option<String>,
    /// with --tls: do not verify the server's certificate (encrypted, not authenticated)
    #[argh(switch)]
    pub insecure: bool,
}

impl ConnectArgs {
    /// The client options these flags describe.
    pub fn to_options(&self) -> Result<crate::client::ConnectOptions, String> {
        let wait = self
            .wait
            .map(|w| Duration::try_from_secs_f64(w).map_err(|_| "--wait must be a positive number"))
            .transpose()?;
        let trust = match (&self.ca, self.insecure) {
            (Some(_), true) => return Err("--ca and --insecure exclude each other".into()),
            _ if !self.tls && (self.ca.is_some() || self.insecure) => {
                return Err("--ca and --insecure need --tls".into());
            }
            (Some(ca), false) => Trust::CaFile(ca.into()),
            (None, true) => Trust::Insecure,
            (None, false) => Trust::SystemRoots,
        };
        let tls = self
            .tls
            .then(|| ClientTls::new(host_of(&self.addr), &trust))
            .transpose()?;
        Ok(crate::client::ConnectOptions {
            tls,
            addr: resolve(&self.addr)?,
            nick: self.nick.clone(),
            room: self.room.clone(),
            wait,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bare_port_means_loopback() {
        let loopback = |port| Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(resolve("7878"), loopback(7878));
        assert_eq!(resolve("0"), loopback(0));
        assert_eq!(resolve("127.0.0.1:9000"), loopback(9000));
        assert_eq!(
            resolve("0.0.0.0:7878"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 7878)))
        );
        assert!(resolve("70000").is_err());
        assert!(resolve("nonsense").is_err());
    }

    #[test]
    fn serve_and_connect_take_a_bare_port() {
        let serve = ServeArgs::from_args(&["serve"], &["--listen", "7000"]).unwrap();
        assert_eq!(
            serve.to_config().unwrap().listen.to_string(),
            "127.0.0.1:7000"
        );
        let connect = ConnectArgs::from_args(&["connect"], &["7001"]).unwrap();
        assert_eq!(
            connect.to_options().unwrap().addr.to_string(),
            "127.0.0.1:7001"
        );
    }
}
