//! The command line: `miochat serve | bench | connect`, parsed by `argh`.
//!
//! These structs hold raw flags only; turning them into a validated configuration is
//! done by `into_config`-style functions next to them, so `main` stays a dispatcher.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use argh::FromArgs;

use crate::server::ServerConfig;
use crate::server::config::{
    DEFAULT_ANNOUNCE_MAX, DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LINE, DEFAULT_SENDQ,
    DEFAULT_SHUTDOWN_GRACE_MS, FloodLimit, default_workers,
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
}

/// Run the chat server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// address to listen on (default 127.0.0.1:7878; port 0 picks a free port)
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
        config.nodelay = !self.nagle;
        config.handle_signals = true;
        Ok(config)
    }
}

/// Resolves `host:port` once, before any event loop runs (DNS blocks: A12).
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}
