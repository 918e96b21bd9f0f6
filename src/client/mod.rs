//! `miochat connect`: a chat client on mio, in two shapes chosen at start.
//!
//! - **On a terminal** (stdin and stdout both terminals): a full-screen interface
//!   ([`tui`]) with a room list, a member list, scrollback and an input line that
//!   incoming messages never touch. It reconnects with back-off when the connection
//!   breaks.
//! - **Otherwise** (a pipe, a file, a script, or output redirected): the line client
//!   ([`lines`]), which sends stdin lines as they come and prints server lines, raw
//!   when stdout is not a terminal, so scripts can parse them.
//!
//! Both keep the server socket in one `mio::Poll` and read the keyboard (or stdin) on a
//! helper thread that wakes the `Poll` through a `mio::Waker`; both dial through
//! [`crate::dialer`].
//!
//! Exit status: 0 on a clean close (EOF from the server, `--wait` expired, or the user
//! quit the full-screen client); 1 with one line on stderr if the server cannot be
//! reached or (line client only) the connection breaks.

pub mod lines;
pub mod terminal;
pub mod tui;

use std::fmt;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::time::Duration;

use mio::Token;

const TOKEN_SERVER: Token = Token(0);
const TOKEN_STDIN: Token = Token(1);

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which a keepalive ping is sent.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// The token of keepalive pings, whose PONGs are not shown.
const KEEPALIVE_PONG: &str = "PONG keepalive";

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The server.
    pub addr: SocketAddr,
    /// Sent as `/nick` once connected.
    pub nick: Option<String>,
    /// Sent as `/join` once connected.
    pub room: Option<String>,
    /// How long to keep printing after stdin ends (None = until the server closes).
    pub wait: Option<Duration>,
    /// Speak TLS (`--tls`), with this trust.
    pub tls: Option<crate::tls_client::ClientTls>,
}

/// Why the client stopped with an error.
#[derive(Debug)]
pub enum ClientError {
    /// The server could not be reached.
    Connect(SocketAddr, io::Error),
    /// The connection broke after it was established.
    Lost(SocketAddr, io::Error),
    /// A local failure (poll, stdout).
    Local(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(addr, e) => write!(f, "cannot connect to {addr}: {}", describe(e)),
            ClientError::Lost(addr, e) => {
                write!(f, "connection to {addr} lost: {}", describe(e))
            }
            ClientError::Local(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// "connection refused" rather than "Connection refused (os error 111)".
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.kind().to_string(),
        None => e.to_string(),
    }
}

/// Runs the client until the connection closes (line client) or the user quits
/// (full-screen client).
pub fn run(opts: &ConnectOptions) -> Result<(), ClientError> {
    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        tui::run(opts)
    } else {
        lines::run(opts)
    }
}
