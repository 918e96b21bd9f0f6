//! The line client: what `miochat connect` does when stdin or stdout is not a
//! terminal (a pipe, a file, a script), exactly as it always has.
//!
//! One `Poll` waits for two things: the server socket (a [`Conn`]: non-blocking,
//! drained to `WouldBlock`, WRITABLE only while output is pending) and lines typed on
//! stdin. Stdin is read by a helper thread that hands each line over a channel and
//! wakes the `Poll` with a `mio::Waker`, the same channel-plus-waker pattern the
//! server's shards use. Why not register stdin with the `Poll` directly: epoll refuses
//! regular files (`miochat connect < script.txt`), and making a terminal non-blocking
//! would leave the user's shell with a non-blocking terminal after we exit.
//!
//! - Stdin is a terminal (stdout is not): lines are sent as typed; Ctrl-D sends `/quit`.
//! - Scripted (stdin is a pipe or file): every line is sent; after stdin ends, output
//!   keeps printing until the server closes the connection or `--wait` seconds pass.
//! - Every minute without input, a `/ping keepalive` is sent (and its `PONG` hidden)
//!   so the server's idle timeout does not close a connection that is only reading.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Waker};

use super::terminal::Style;
use super::{
    CONNECT_TIMEOUT, ClientError, ConnectOptions, KEEPALIVE, KEEPALIVE_PONG, TOKEN_SERVER,
    TOKEN_STDIN,
};
use crate::dialer::{Conn, DialError, Ready};

/// What the stdin thread hands over.
#[derive(Debug)]
enum Input {
    Line(Vec<u8>),
    End,
}

/// Runs the line client until the connection closes.
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
        match self.conn.on_ready(writable, poll.registry()) {
            Ok(Ready::Connecting) => return Ok(true),
            Ok(Ready::JustConnected | Ready::Open) => {}
            Err(DialError::Connect(e)) => return Err(ClientError::Connect(self.addr, e)),
            Err(DialError::Write(e)) => return Err(ClientError::Lost(self.addr, e)),
        }
        let mut stdout = io::stdout().lock();
        let style = self.style;
        let open = self.conn.read_lines(&mut self.scratch, |line| {
            let line = String::from_utf8_lossy(line);
            if line != KEEPALIVE_PONG {
                let _ = writeln!(stdout, "{}", style.format(&line));
            }
        });
        let _ = stdout.flush();
        drop(stdout);
        open.map_err(|e| match self.conn.tls_handshaking() {
            true => ClientError::Connect(self.addr, e),
            false => ClientError::Lost(self.addr, e),
        })
    }
}
