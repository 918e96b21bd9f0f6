//! The command line: `miochat serve | bench | connect | backup | config`, parsed by `argh`.
//!
//! These structs hold raw flags only; turning them into a validated configuration is
//! done by `into_config`-style functions next to them, so `main` stays a dispatcher.

use std::net::SocketAddr;
use std::time::Duration;

use argh::FromArgs;

use crate::bench::dialect::Dialect;
use crate::bench::traffic::TrafficOpts;
use crate::bench::{Common, Scenario};
use crate::server::ServerConfig;
use crate::server::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use crate::settings::convert::resolve;
use crate::settings::{self, FileConfig, tables::LogTable};
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
    /// Write, check or show a configuration file.
    Config(ConfigArgs),
}

/// The configuration file: an example, a check, what is in force, operator hashes.
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
    /// Print a complete, commented configuration with every default.
    Example(ExampleArgs),
    /// Check a configuration file.
    Check(CheckArgs),
    /// Print the configuration in force, secrets masked.
    Show(ShowArgs),
    /// Print an argon2id hash of a password for an [[oper]] table.
    HashPassword(HashPasswordArgs),
}

/// Print a complete, commented configuration file with every default.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "example")]
pub struct ExampleArgs {}

/// Check a configuration file: OK, or each problem at its line and column (exit 2).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// the file to check
    #[argh(positional)]
    pub path: String,
}

/// Print the configuration in force (the file's keys under the flags), as TOML,
/// secrets masked. Takes `--config PATH` and every flag of `miochat serve`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
pub struct ShowArgs {
    /// flags of `miochat serve`, --config PATH among them
    #[argh(positional, greedy)]
    pub serve_flags: Vec<String>,
}

/// Read a password (without echo on a terminal, else one line of stdin) and print
/// its argon2id hash for an [[oper]] table's `password`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "hash-password")]
pub struct HashPasswordArgs {}

/// Parses the command line: as argh does, except that `-vv` counts as `-v -v`, and
/// `config show` takes `serve`'s flags (argh has no way to share a struct's flags
/// between two subcommands).
pub fn parse(args: &[String]) -> Result<Invocation, argh::EarlyExit> {
    let args: Vec<&str> = args
        .iter()
        .flat_map(|arg| match arg.as_str() {
            "-vv" => vec!["-v", "-v"],
            other => vec![other],
        })
        .collect();
    if let ["config", "show", rest @ ..] = args.as_slice() {
        let serve = ServeArgs::from_args(&["miochat config show"], rest)?;
        return Ok(Invocation::ShowConfig(serve));
    }
    TopLevel::from_args(&["miochat"], &args).map(|top| Invocation::Run(top.command))
}

/// What the command line asks for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Invocation {
    /// A subcommand as argh parsed it.
    Run(Command),
    /// `config show` with `serve`'s flags.
    ShowConfig(ServeArgs),
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
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// read this TOML configuration file (see `miochat config example`); flags override its keys
    #[argh(option)]
    pub config: Option<String>,
    /// append the log to this file instead of stderr; reopened on SIGHUP
    #[argh(option)]
    pub log_file: Option<String>,
    /// address to listen on, or a bare port for 127.0.0.1 (default 127.0.0.1:7878; port 0 picks a free port)
    #[argh(option)]
    pub listen: Option<String>,
    /// worker threads, one shard each (default: number of cores minus one, at least 1)
    #[argh(option)]
    pub workers: Option<usize>,
    /// most open connections; more are refused with a one-line reason (default 10000)
    #[argh(option)]
    pub max_connections: Option<usize>,
    /// longest accepted line in bytes (default 2048)
    #[argh(option)]
    pub max_line: Option<usize>,
    /// bytes that may wait for one slow client before it is cut (default 262144)
    #[argh(option)]
    pub sendq: Option<usize>,
    /// close connections that never sent a line after this many seconds (warned a minute before); 0 = never (default 600)
    #[argh(option)]
    pub idle_timeout: Option<u64>,
    /// lines per second one client may send; 0 = no flood control (default 20)
    #[argh(option)]
    pub flood_rate: Option<u32>,
    /// lines one client may send in a burst (default 50)
    #[argh(option)]
    pub flood_burst: Option<u32>,
    /// announce joins/leaves/quits only in rooms of at most this many members; 0 = always (default 500)
    #[argh(option)]
    pub announce_max: Option<usize>,
    /// lines each room keeps for /history and playback on join; 0 = off (default 100)
    #[argh(option)]
    pub history: Option<usize>,
    /// folder for accounts, registered rooms and history (created if missing); none = keep nothing on disk (default miochat-data)
    #[argh(option)]
    pub data_dir: Option<String>,
    /// history lines are committed to disk at least this often, in ms: a crash loses at most that much (default 100)
    #[argh(option)]
    pub history_sync_ms: Option<u64>,
    /// stored history older than this many days is pruned; 0 = never (default 30)
    #[argh(option)]
    pub history_days: Option<u32>,
    /// stored history lines kept per room; 0 = no limit (default 100000)
    #[argh(option)]
    pub history_max: Option<u64>,
    /// seconds an IRC client on a registered nick has to log in before it is renamed (default 30)
    #[argh(option)]
    pub nick_grace: Option<u64>,
    /// milliseconds clients get to read the shutdown notice (default 2000)
    #[argh(option)]
    pub shutdown_grace_ms: Option<u64>,
    /// also listen for IRC clients here (off unless given; the usual port is 6667)
    #[argh(option)]
    pub irc_listen: Option<String>,
    /// the IRC server name (default miochat.local)
    #[argh(option)]
    pub server_name: Option<String>,
    /// password IRC clients must send with PASS (default: none)
    #[argh(option)]
    pub password: Option<String>,
    /// seconds of silence before an IRC client is sent PING (default 120)
    #[argh(option)]
    pub irc_ping: Option<u64>,
    /// seconds an IRC client has to answer that PING (default 20)
    #[argh(option)]
    pub irc_pong_timeout: Option<u64>,
    /// unread bytes a flood-paused client may have before the hard ceiling (default 65536)
    #[argh(option)]
    pub flood_max_unread: Option<usize>,
    /// seconds a paused client may stay over --flood-max-unread before it is cut (default 10)
    #[argh(option)]
    pub flood_unread_timeout: Option<u64>,
    /// connections one address (IPv4, or IPv6 /64) may hold; 0 = no limit (default 10)
    #[argh(option)]
    pub max_per_ip: Option<usize>,
    /// new connections per second one address may open; 0 = no limit (default 10)
    #[argh(option)]
    pub connect_rate: Option<u32>,
    /// new connections one address may open in a burst (default 20)
    #[argh(option)]
    pub connect_burst: Option<u32>,
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
    #[argh(option)]
    pub tls_handshake_timeout: Option<u64>,
    /// TLS handshakes in progress at once; more are closed at accept (default 512)
    #[argh(option)]
    pub max_tls_handshakes: Option<usize>,
    /// serve the chat page, WebSocket chat, /metrics and /healthz here (off unless given; e.g. 127.0.0.1:8080)
    #[argh(option)]
    pub http_listen: Option<String>,
    /// seconds an HTTP client has to send its request head (default 10)
    #[argh(option)]
    pub http_timeout: Option<u64>,
    /// seconds of WebSocket silence before a ping frame; as long again for the pong (default 30)
    #[argh(option)]
    pub ws_ping: Option<u64>,
    /// how IRC shows users' hosts: cloak (a keyed hash of the address) or address (default cloak)
    #[argh(option)]
    pub hosts: Option<String>,
    /// key for the host cloaks (default: kept in the data dir as cloak.key; without one, new each run)
    #[argh(option)]
    pub cloak_key: Option<String>,
    /// a reverse proxy's address whose X-Forwarded-For header names the web client's address (repeatable; default: none)
    #[argh(option)]
    pub trusted_proxy: Vec<String>,
    /// leave Nagle's algorithm on (TCP_NODELAY off); see docs/DESIGN.md
    #[argh(switch)]
    pub nagle: bool,
    /// join a cluster of nodes through this Redis, as redis://HOST:PORT, or a Redis
    /// Cluster, as redis-cluster://HOST:PORT,HOST:PORT,... (default: none)
    #[argh(option)]
    pub backplane: Option<String>,
    /// this node's name in the cluster: 1-10 of a-z and 0-9 (default: n + process id)
    #[argh(option)]
    pub node_name: Option<String>,
    /// seconds a silent node is still taken for alive in the cluster (default 10)
    #[argh(option)]
    pub lease: Option<u64>,
    /// log debug detail; twice (-vv), also every line in and out (passwords masked)
    #[argh(switch, short = 'v')]
    pub verbose: u8,
    /// log warnings and errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

impl ServeArgs {
    /// The keys these flags give, as a layer over the configuration file (a flag not
    /// given gives nothing, so the file's key, or the default, stays).
    pub fn overlay(&self) -> FileConfig {
        let mut c = FileConfig::default();
        let l = &mut c.listen;
        (l.address, l.irc, l.tls) = (
            self.listen.clone(),
            self.irc_listen.clone(),
            self.tls_listen.clone(),
        );
        (l.irc_tls, l.http) = (self.irc_tls_listen.clone(), self.http_listen.clone());
        (l.workers, l.nagle) = (self.workers, self.nagle.then_some(true));
        let m = &mut c.limits;
        (m.max_connections, m.max_line, m.sendq) =
            (self.max_connections, self.max_line, self.sendq);
        (m.idle_timeout, m.max_per_ip) = (self.idle_timeout, self.max_per_ip);
        (m.connect_rate, m.connect_burst) = (self.connect_rate, self.connect_burst);
        (m.announce_max, m.shutdown_grace_ms) = (self.announce_max, self.shutdown_grace_ms);
        let f = &mut c.flood;
        (f.rate, f.burst) = (self.flood_rate, self.flood_burst);
        (f.max_unread, f.unread_timeout) = (self.flood_max_unread, self.flood_unread_timeout);
        let t = &mut c.tls;
        (t.cert, t.key) = (self.tls_cert.clone(), self.tls_key.clone());
        (t.handshake_timeout, t.max_handshakes) =
            (self.tls_handshake_timeout, self.max_tls_handshakes);
        let i = &mut c.irc;
        (i.server_name, i.password) = (self.server_name.clone(), self.password.clone());
        (i.ping, i.pong_timeout, i.nick_grace) =
            (self.irc_ping, self.irc_pong_timeout, self.nick_grace);
        (i.hosts, i.cloak_key) = (self.hosts.clone(), self.cloak_key.clone());
        let h = &mut c.http;
        (h.timeout, h.ws_ping) = (self.http_timeout, self.ws_ping);
        h.trusted_proxies = (!self.trusted_proxy.is_empty()).then(|| self.trusted_proxy.clone());
        let b = &mut c.cluster;
        (b.backplane, b.node_name, b.lease) =
            (self.backplane.clone(), self.node_name.clone(), self.lease);
        let d = &mut c.store;
        (d.data_dir, d.history, d.history_sync_ms) =
            (self.data_dir.clone(), self.history, self.history_sync_ms);
        (d.history_days, d.history_max) = (self.history_days, self.history_max);
        c.log = LogTable {
            level: match (self.verbose, self.quiet) {
                (0, false) => None,
                (0, true) => Some("warn".into()),
                _ => Some("debug".into()),
            },
            file: self.log_file.clone(),
            trace: (self.verbose >= 2).then_some(true),
        };
        c
    }

    /// The configuration these flags describe, without a file (validated as
    /// `serve` does).
    pub fn to_config(&self) -> Result<ServerConfig, String> {
        settings::load(None, &self.overlay())
            .map(|loaded| loaded.server)
            .map_err(|failure| failure.lines.join("; "))
    }

    /// A TLS mistake in the flags themselves (exit status 2, like a bad certificate).
    pub fn tls_mistake(&self) -> Option<&'static str> {
        (self.tls_cert.is_some() != self.tls_key.is_some()).then_some(TLS_PAIR)
    }
}

const TLS_PAIR: &str = "TLS: --tls-cert and --tls-key go together";

/// The host part of `host:port` (or `[v6]:port`): the name a certificate must carry.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
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
