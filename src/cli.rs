//! The command line: `miochat serve | bench | connect`, parsed by `argh`.
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
use crate::server::config::{
    DEFAULT_ANNOUNCE_MAX, DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_IRC_PING_SECS, DEFAULT_IRC_PONG_TIMEOUT_SECS, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_LINE, DEFAULT_SENDQ, DEFAULT_SERVER_NAME, DEFAULT_SHUTDOWN_GRACE_MS, FloodLimit,
    default_workers,
};

/// miochat: a sharded chat server on mio, its load generator and its client.
#[derive(FromArgs, Debug)]
pub struct TopLevel {
    /// what to run
    #[argh(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// Run the chat server.
    Serve(ServeArgs),
    /// Load-test a server.
    Bench(BenchArgs),
    /// Chat from the terminal.
    Connect(ConnectArgs),
}

/// Run the chat server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// address to listen on, or a bare port for 127.0.0.1 (default 127.0.0.1:7878; port 0 picks a free port)
    #[argh(option, default = "DEFAULT_LISTEN.to_string()")]
    pub listen: String,
    /// worker threads, one shard each (default: number of cores)
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
    /// close connections silent for this many seconds; 0 = never (default 600)
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
    /// leave Nagle's algorithm on (TCP_NODELAY off); see docs/DESIGN.md
    #[argh(switch)]
    pub nagle: bool,
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
        config.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms);
        config.irc_listen = self.irc_listen.as_deref().map(resolve).transpose()?;
        config.server_name = self.server_name.clone();
        config.irc_password = self.password.clone();
        config.irc_ping = Duration::from_secs(self.irc_ping);
        config.irc_pong_timeout = Duration::from_secs(self.irc_pong_timeout);
        config.nodelay = !self.nagle;
        config.handle_signals = true;
        Ok(config)
    }
}

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

/// Load-test a chat server: fanout, rooms, idle or churn.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "bench")]
pub struct BenchArgs {
    /// scenario: fanout, rooms, idle or churn
    #[argh(positional)]
    pub scenario: String,
    /// server address (default 127.0.0.1:7878)
    #[argh(option, default = "DEFAULT_LISTEN.to_string()")]
    pub addr: String,
    /// wire dialect: line (miochat), irc or resp (Redis pub/sub) (default line)
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
    /// server pid, to report its CPU per delivery and RSS per connection
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// source addresses 127.0.0.1.. to spread connections over (default: enough for the client count)
    #[argh(option)]
    pub sources: Option<usize>,
    /// connection handshakes in flight at once (default 64)
    #[argh(option, default = "64")]
    pub connect_window: usize,
    /// seconds each phase may take before the run fails (default 60)
    #[argh(option, default = "60.0")]
    pub timeout: f64,
    /// print one JSON object instead of the human summary
    #[argh(switch)]
    pub json: bool,
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
        let common = Common {
            addr: resolve(&self.addr)?,
            dialect,
            timeout: secs(self.timeout, "timeout")?,
            sources: self
                .sources
                .unwrap_or_else(|| self.clients.div_ceil(PORTS_PER_SOURCE)),
            connect_window: self.connect_window.max(1),
            server_pid: self.server_pid,
        };
        let duration = self.duration.map(|d| secs(d, "duration")).transpose()?;
        let scenario = match self.scenario.as_str() {
            "fanout" | "rooms" => {
                let default_rooms = if self.scenario == "rooms" { 4 } else { 1 };
                Scenario::Traffic(TrafficOpts {
                    common: common.clone(),
                    clients: self.clients,
                    senders: self.senders.unwrap_or(self.clients.min(10)),
                    rooms: self.rooms.unwrap_or(default_rooms),
                    messages: self.messages,
                    duration,
                    size: self.size,
                    window: self.window,
                    rate: self.rate.filter(|r| *r > 0.0),
                })
            }
            "idle" => Scenario::Idle {
                clients: self.clients,
                hold: secs(self.hold, "hold")?,
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
                    "unknown scenario {other:?} (fanout, rooms, idle, churn)"
                ));
            }
        };
        Ok((common, scenario))
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
}

impl ConnectArgs {
    /// The client options these flags describe.
    pub fn to_options(&self) -> Result<crate::client::ConnectOptions, String> {
        let wait = self
            .wait
            .map(|w| Duration::try_from_secs_f64(w).map_err(|_| "--wait must be a positive number"))
            .transpose()?;
        Ok(crate::client::ConnectOptions {
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
