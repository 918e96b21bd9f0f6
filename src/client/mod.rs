//! `miochat connect`: a terminal chat client on mio.
//!
//! One `Poll` waits for two things: the server socket (a [`Conn`]: non-blocking,
//! drained to `WouldBlock`, WRITABLE only while output is pending) and lines typed on
//! stdin. Stdin is read by a helper thread that hands each line over a channel and
//! wakes the `Poll` with a `mio::Waker`, the same channel-plus-waker pattern the
//! server's shards use. Why not register stdin with the `Poll` directly: epoll refuses
//! regular files (`miochat connect < script.txt`), and making a terminal non-blocking
//! would leave the user's shell with a non-blocking terminal after we exit.
//!
//! - Interactive (stdin is a terminal): lines are sent as typed; Ctrl-D sends `/quit`.
//! - Scripted (stdin is a pipe or file): every line is sent; after stdin ends, output
//!   keeps printing until the server closes the connection or `--wait` seconds pass.
//! - Every minute without input, a `/ping keepalive` is sent (and its `PONG` hidden)
//!   so the server's idle timeout does not close a connection that is only reading.
//!
//! Exit status: 0 on a clean close (EOF from the server, or `--wait` expired); 1 with
//! one line on stderr if the server cannot be reached or the connection breaks.

pub mod terminal;

use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use crate::dialer::Conn;
use terminal::Style;

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

/// What the stdin thread hands over.
#[derive(Debug)]
enum Input {
    Line(Vec<u8>),
    End,
}

/// Runs the client until the connection closes.
pub fn run(opts: &ConnectOptions) -> Result<(), ClientError> {
    let interactive = io::stdin().is_terminal();
    let style = Style {
        pretty: io::stdout().is_terminal(),
        color: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut poll = Poll::new().map_err(ClientError::Local)?;
    let tls = opts.tls.as_ref();
    let mut conn = Conn::connect_with(opts.addr, None, poll.registry(), TOKEN_SERVER, tls)
        .map_err(|e| ClientError::Connect(opts.addr, e))?;
    let mut greeting = Vec::new();
    if let Some(nick) = &opts.nick {
        greeting.extend_from_slice(format!("/nick {nick}\n").as_bytes());
    }
    if let Some(room) = &opts.room {
        greeting.extend_from_slice(format!("/join {room}\n").as_bytes());
    }
    conn.send(&greeting, poll.registry())
        .map_err(ClientError::Local)?;
    let waker = Arc::new(Waker::new(poll.registry(), TOKEN_STDIN).map_err(ClientError::Local)?);
    let input = spawn_stdin_reader(Arc::clone(&waker));
    let mut session = Session {
        _waker: waker,
        conn,
        addr: opts.addr,
        style,
        interactive,
        wait: opts.wait,
        stdin_ended: None,
        last_sent: Instant::now(),
        started: Instant::now(),
        scratch: vec![0; 16 * 1024],
    };
    session.run(&mut poll, &input)
}

/// Reads stdin lines on a helper thread; each line is sent, then the loop is woken.
fn spawn_stdin_reader(waker: Arc<Waker>) -> Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let stdin = io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            let end = !matches!(lock.read_until(b'\n', &mut line), Ok(n) if n > 0);
            let msg = if end { Input::End } else { Input::Line(line) };
            if tx.send(msg).is_err() || waker.wake().is_err() || end {
                return;
            }
        }
    });
    rx
}

#[derive(Debug)]
struct Session {
    /// Kept alive for as long as the `Poll` runs. The stdin thread may read a short
    /// pipe, wake us and exit before we poll; if its `Arc` were the last one, the
    /// eventfd would close, and closing a descriptor removes it from epoll together
    /// with its pending event, so that wake would be lost (a bug this client had).
    _waker: Arc<Waker>,
    conn: Conn,
    addr: SocketAddr,
    style: Style,
    interactive: bool,
    wait: Option<Duration>,
    stdin_ended: Option<Instant>,
    last_sent: Instant,
    started: Instant,
    /// The read buffer, allocated once rather than zeroed per event.
    scratch: Vec<u8>,
}

impl Session {
    fn run(&mut self, poll: &mut Poll, input: &Receiver<Input>) -> Result<(), ClientError> {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = self.timeout();
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ClientError::Local(e));
            }
            for event in events.iter() {
                if event.token() == TOKEN_STDIN {
                    self.on_input(input, poll)?;
                } else if !self.on_server(poll, event.is_writable())? {
                    return Ok(());
                }
            }
            if !self.conn.connected && self.started.elapsed() > CONNECT_TIMEOUT {
                return Err(ClientError::Connect(
                    self.addr,
                    io::ErrorKind::TimedOut.into(),
                ));
            }
            if let (Some(ended), Some(wait)) = (self.stdin_ended, self.wait)
                && ended.elapsed() >= wait
            {
                return Ok(());
            }
            if self.conn.connected && self.last_sent.elapsed() >= KEEPALIVE {
                self.send(b"/ping keepalive\n", poll)?;
            }
        }
    }

    fn timeout(&self) -> Duration {
        let mut timeout = KEEPALIVE.saturating_sub(self.last_sent.elapsed());
        if !self.conn.connected {
            timeout = timeout.min(Duration::from_millis(100));
        }
        if let (Some(ended), Some(wait)) = (self.stdin_ended, self.wait) {
            timeout = timeout.min(wait.saturating_sub(ended.elapsed()));
        }
        timeout
    }

    fn send(&mut self, bytes: &[u8], poll: &Poll) -> Result<(), ClientError> {
        self.last_sent = Instant::now();
        self.conn
            .send(bytes, poll.registry())
            .map_err(|e| ClientError::Lost(self.addr, e))
    }

    /// Lines typed (or piped) since the last wake: wakes coalesce, so drain them all.
    fn on_input(&mut self, input: &Receiver<Input>, poll: &Poll) -> Result<(), ClientError> {
        loop {
            match input.try_recv() {
                Ok(Input::Line(mut line)) => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    self.send(&line, poll)?;
                }
                Ok(Input::End) | Err(TryRecvError::Disconnected) => {
                    if self.stdin_ended.is_none() {
                        self.stdin_ended = Some(Instant::now());
                        if self.interactive {
                            self.send(b"/quit\n", poll)?;
                        }
                    }
                    return Ok(());
                }
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    /// Socket readiness; false once the server has closed the connection.
    fn on_server(&mut self, poll: &Poll, writable: bool) -> Result<bool, ClientError> {
        if !self.conn.connected {
            if !writable {
                return Ok(true);
            }
            match self.conn.finish_connect() {
                Ok(true) => {}
                Ok(false) => return Ok(true),
                Err(e) => return Err(ClientError::Connect(self.addr, e)),
            }
        }
        self.conn
            .flush(poll.registry())
            .map_err(|e| ClientError::Lost(self.addr, e))?;
        let mut stdout = io::stdout().lock();
        let style = self.style;
        let open = self.conn.read_lines(&mut self.scratch, |line| {
            let line = String::from_utf8_lossy(line);
            if line != KEEPALIVE_PONG {
                let _ = writeln!(stdout, "{}", style.format(&line));
            }
        });
        let _ = stdout.flush();
        open.map_err(|e| ClientError::Lost(self.addr, e))
    }
}
