//! `miochat bench`: scripted load clients that measure throughput, latency and memory,
//! and prove that nothing was lost.
//!
//! The load generator is built like the server: one thread, one `mio::Poll`, many
//! non-blocking sockets (`crate::dialer::Conn`), no async runtime. It speaks three dialects
//! ([`dialect`]), so the same scenario runs against miochat, an IRC server or Redis.
//!
//! - [`traffic`]: `fanout` and `rooms` (messages, latency, the loss verdict);
//! - [`sessions`]: `idle` (memory per connection) and `churn` (connects per second);
//! - [`payload`] and [`verdict`]: what each message carries and how arrivals are judged;
//! - [`report`]: human and JSON output, and `/proc` readings of the server.
//!
//! Every run is bounded by `--timeout`; any loss, duplicate, reorder, leak or broken
//! connection makes the exit status non-zero.

pub mod dialect;
pub mod payload;
pub mod report;
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
    /// The server.
    pub addr: SocketAddr,
    /// Its wire dialect.
    pub dialect: Dialect,
    /// Upper bound on each phase of the run.
    pub timeout: Duration,
    /// Source addresses to spread connections over (127.0.0.1, .2, ...); 0 or 1 =
    /// let the kernel choose.
    pub sources: usize,
    /// Connection handshakes in flight at once.
    pub connect_window: usize,
    /// The server's pid, for CPU and memory readings from `/proc`.
    pub server_pid: Option<u32>,
    /// Speak TLS (`--tls`): every connection does a handshake first and every byte
    /// is encrypted. The certificate is not verified (the bench measures cost).
    pub tls: Option<crate::tls_client::ClientTls>,
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Usage(msg) => write!(f, "{msg}"),
            BenchError::Broken(msg) => write!(f, "{msg}"),
            BenchError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// A scenario and its own options.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// `fanout` / `rooms`.
    Traffic(traffic::TrafficOpts),
    /// `idle`: connections and hold time.
    Idle {
        /// Connections to open.
        clients: usize,
        /// How long to hold them.
        hold: Duration,
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
    match scenario {
        Scenario::Traffic(mut opts) => {
            opts.common = common;
            traffic::run(opts)
        }
        Scenario::Idle { clients, hold } => sessions::idle(&common, clients, hold),
        Scenario::Churn { rate, duration } => sessions::churn(&common, rate, duration),
    }
}
