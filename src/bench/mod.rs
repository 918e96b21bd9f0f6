//! `miochat bench`: scripted load clients that measure throughput, latency and memory,
//! and prove that nothing was lost.
//!
//! The load generator is built like the server: one thread, one `mio::Poll`, many
//! non-blocking sockets (`crate::dialer::Conn`), no async runtime. It speaks three dialects
//! ([`dialect`]), so the same scenario runs against miochat, an IRC server or Redis.
//!
//! - [`traffic`]: `fanout` and `rooms` (messages, latency, the loss verdict);
//! - [`floor`]: `floor`, a `fanout` run and then the same writes with nothing else
//!   (the physical limit the server is measured against);
//! - [`sessions`]: `idle` (memory per connection) and `churn` (connects per second);
//! - [`payload`] and [`verdict`]: what each message carries and how arrivals are judged;
//! - [`report`]: human, JSON and CSV output, and `/proc` readings of a process;
//! - [`servers`]: which server processes a run measures (asking `/stats` for the pid).
//!
//! Every run is bounded by `--timeout`; any loss, duplicate, reorder, leak or broken
//! connection makes the exit status non-zero.

pub mod dialect;
pub mod floor;
pub mod payload;
pub mod report;
pub mod servers;
pub mod sessions;
pub mod traffic;
pub mod verdict;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use dialect::Dialect;
use report::Report;

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct Common {
    /// The servers (several for a cluster); clients are spread over them
    /// round-robin, see [`Common::addr_for`]. Never empty.
    pub addrs: Vec<SocketAddr>,
    /// Their wire dialect.
    pub dialect: Dialect,
    /// Upper bound on each phase of the run.
    pub timeout: Duration,
    /// Source addresses to spread connections over (127.0.0.1, .2, ...); 0 or 1 =
    /// let the kernel choose.
    pub sources: usize,
    /// Source addresses to skip first (`--source-offset`): 3 makes the first source
    /// 127.0.0.4, so that load processes started side by side share none.
    pub source_offset: usize,
    /// Connection handshakes in flight at once.
    pub connect_window: usize,
    /// The server processes whose CPU and memory are reported (summed). `None`: ask
    /// each server for its pid with `/stats` (see [`servers`]).
    pub server_pids: Option<Vec<u32>>,
    /// The room the bench talks in, never `lobby` (with several rooms: `ROOM0`,
    /// `ROOM1`, ...).
    pub room: String,
    /// Speak TLS (`--tls`): every connection does a handshake first and every byte
    /// is encrypted. The certificate is not verified (the bench measures cost).
    pub tls: Option<crate::tls_client::ClientTls>,
}

impl Common {
    /// The server for the client in `slot`: slot `k` goes to address `k mod N`.
    pub fn addr_for(&self, slot: usize) -> SocketAddr {
        self.addrs[slot % self.addrs.len()]
    }

    /// The addresses as given on the command line (`A,B`).
    pub fn addrs_text(&self) -> String {
        let texts: Vec<String> = self.addrs.iter().map(SocketAddr::to_string).collect();
        texts.join(",")
    }
}

/// Why a bench run could not produce a report.
#[derive(Debug)]
pub enum BenchError {
    /// Options that make no sense.
    Usage(String),
    /// The server could not be reached, or connections broke while setting up.
    Broken(String),
    /// A local IO error (poll, socket).
    Io(std::io::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Usage(msg) => write!(out, "{msg}"),
            BenchError::Broken(msg) => write!(out, "{msg}"),
            BenchError::Io(err) => write!(out, "{err}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// A scenario and its own options. Built once per run, so the size difference between
/// its variants costs nothing worth a `Box`.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Scenario {
    /// `fanout` / `rooms`.
    Traffic(traffic::TrafficOpts),
    /// `floor`: a `fanout` run, then its floor (see [`floor`]).
    Floor(traffic::TrafficOpts),
    /// `idle`: connections and hold time.
    Idle {
        /// Connections to open.
        clients: usize,
        /// How long to hold them (at most, with `await_mark`).
        hold: Duration,
        /// Hold until every connection got a `MARK.UNIX_NS` message (`--await-mark`).
        await_mark: bool,
    },
    /// `churn`: session rate and duration.
    Churn {
        /// Sessions started per second.
        rate: f64,
        /// How long to keep starting them.
        duration: Duration,
    },
}

/// Runs one scenario.
pub fn run(common: Common, scenario: Scenario) -> Result<Report, BenchError> {
    if common.addrs.is_empty() {
        return Err(BenchError::Usage("no server address given".into()));
    }
    if common.room.eq_ignore_ascii_case("lobby") {
        return Err(BenchError::Usage(
            "--room lobby would flood the people chatting there; pick another room".into(),
        ));
    }
    match scenario {
        Scenario::Traffic(mut opts) => {
            opts.common = common;
            traffic::run(opts)
        }
        Scenario::Floor(mut opts) => {
            opts.common = common;
            floor::run(opts)
        }
        Scenario::Idle {
            clients,
            hold,
            await_mark,
        } => sessions::idle(&common, clients, hold, await_mark),
        Scenario::Churn { rate, duration } => sessions::churn(&common, rate, duration),
    }
}

impl From<std::io::Error> for BenchError {
    fn from(err: std::io::Error) -> Self {
        BenchError::Io(err)
    }
}
