//! The client side of a line connection: a dialed, non-blocking socket with its own
//! framer and output buffer, driven by a `mio::Poll`. `miochat bench` runs thousands
//! of these in one loop (the mirror image of a server shard); `miochat connect` runs
//! one.
//!
//! The same rules apply as on the server: reads drain to `WouldBlock` (edge
//! triggering), output is buffered and WRITABLE interest is held only while some of it
//! is pending. Two client-side details matter for honest numbers:
//!
//! - **Prompt ACKs.** Linux delays ACKs up to 40 ms. Against a server that leaves
//!   Nagle on, a late ACK stalls its next small write, and the benchmark would measure
//!   the client's ACK timer. After every read we re-arm `TCP_QUICKACK` (it is not
//!   sticky), as the reference measurements in `docs/BENCHMARKS.md` did.
//! - **One way to finish a connect.** A non-blocking `connect` completes when the
//!   socket turns writable; [`Conn::on_ready`] is the only code that checks for it,
//!   so the bench's scenarios and the terminal client cannot drift apart.
//! - **Source addresses.** One source IP has about 28 000 ephemeral ports; `connect`
//!   can bind to `127.0.0.x` first so an idle test can open more connections than that.
//!
//! With TLS (`Conn::connect_with`), bytes go through a rustls session
//! (`crate::tls_client`). A TLS client may have to write because it read (handshake
//! messages, key updates), and `read_lines` has no registry to ask for WRITABLE with,
//! so a TLS connection simply stays registered for both; a client has few sockets,
//! and an edge-triggered WRITABLE costs a wake-up only after a write hit `WouldBlock`.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, SockRef, Socket, Type};

use rustls::ClientConnection;

use crate::framing::{FrameError, LineFramer};
use crate::nonblocking::{ReadOutcome, is_would_block, read_some};
use crate::protocol::websocket;
use crate::tls_client::{self, ClientTls, Trust};

/// Longest line the bench accepts from a server.
pub const MAX_LINE: usize = 64 * 1024;

/// Output buffer capacity kept once everything queued is sent.
const KEPT_OUTPUT: usize = 64 * 1024;

/// How [`Conn::read_bytes`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has nothing more now (the edge-triggered readiness is used up).
    Drained,
    /// The limit was reached: there may be more, and the caller must read again
    /// before it waits for readiness.
    More,
    /// The peer closed the connection.
    Closed,
}

/// What one readiness event did to a connection's socket (see [`Conn::on_ready`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The connect is still in progress: nothing to read or write yet.
    Connecting,
    /// The connect finished with this event: time to send the greeting.
    JustConnected,
    /// Connected before this event; pending output was flushed if it was writable.
    Open,
}

/// Why a connection failed while handling a readiness event.
#[derive(Debug)]
pub enum DialError {
    /// The non-blocking connect failed (refused, unreachable, ...).
    Connect(io::Error),
    /// Writing pending output failed.
    Write(io::Error),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Connect(err) => write!(out, "connect: {err}"),
            DialError::Write(err) => write!(out, "write: {err}"),
        }
    }
}

impl std::error::Error for DialError {}

/// One client socket with its buffers.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    token: Token,
    framer: LineFramer,
    /// Bytes waiting to be written; `out[out_pos..]` is unsent.
    out: Vec<u8>,
    out_pos: usize,
    /// True once the non-blocking connect has completed.
    pub connected: bool,
    writable: bool,
    /// A write ahead found the socket full: no more until the next flush.
    full: bool,
    /// The TLS session, if this connection speaks TLS.
    tls: Option<Box<TlsLink>>,
    /// WebSocket client state, if lines travel in frames (`bench --dialect ws`).
    ws: Option<Box<WsClient>>,
}

/// A TLS session and the trust it was opened with (to explain a refused certificate).
#[derive(Debug)]
struct TlsLink {
    session: ClientConnection,
    trust: Trust,
}

/// The client side of a WebSocket carrying lines: the upgrade, then one masked frame
/// per line out and one line per frame in (`bench --dialect ws`).
#[derive(Debug, Default)]
struct WsClient {
    /// The `101` head has been read.
    upgraded: bool,
    /// Received bytes not yet parsed.
    buf: Vec<u8>,
    /// Source of masking keys (xorshift; a bench needs no secrecy).
    seed: u32,
}

impl WsClient {
    fn next_key(&mut self) -> [u8; 4] {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        self.seed.to_be_bytes()
    }
}

impl Conn {
    /// Starts a non-blocking connect to `addr`, from `source` if given, and registers
    /// for READABLE|WRITABLE (writable = the connect finished).
    pub fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Conn> {
        Self::connect_with(addr, source, registry, token, None)
    }

    /// Like [`Conn::connect`], speaking TLS if `tls` is given.
    pub fn connect_with(
        addr: SocketAddr,
        source: Option<IpAddr>,
        registry: &Registry,
        token: Token,
        tls: Option<&ClientTls>,
    ) -> io::Result<Conn> {
        let tls = match tls {
            Some(tls) => Some(Box::new(TlsLink {
                session: tls.session()?,
                trust: tls.trust.clone(),
            })),
            None => None,
        };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(EINPROGRESS) || is_would_block(&err) => {}
            Err(err) => return Err(err),
        }
        let mut stream = TcpStream::from_std(socket.into());
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Conn {
            stream,
            token,
            framer: LineFramer::new(MAX_LINE),
            out: Vec::new(),
            out_pos: 0,
            connected: false,
            writable: true,
            full: false,
            tls,
            ws: None,
        })
    }

    /// Speaks WebSocket from now on: queues the upgrade request for `/ws` (sent when
    /// the connect finishes); every later line goes out as one masked text frame, and
    /// every frame that comes in is one line. The greeting is pipelined behind the
    /// request, which miochat accepts (it decodes what follows the request head).
    pub fn use_websocket(&mut self, host: SocketAddr) {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bWlvY2hhdC1iZW5jaC0xNg==\r\n\r\n"
        );
        self.out.extend_from_slice(request.as_bytes());
        let seed = (self.token.0 as u32).wrapping_mul(2_654_435_761) | 1;
        self.ws = Some(Box::new(WsClient {
            seed,
            ..WsClient::default()
        }));
    }

    /// Appends `bytes` to the output: as they are, or one frame per line over WebSocket.
    fn queue(&mut self, bytes: &[u8]) {
        let Some(ws) = self.ws.as_mut() else {
            return self.out.extend_from_slice(bytes);
        };
        for line in bytes.split(|&byte| byte == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let key = ws.next_key();
            self.out.extend(websocket::client_frame(1, true, line, key));
        }
    }

    /// WebSocket input: skips the `101` head, then hands each data frame's payload
    /// on as a line and answers pings.
    fn feed_websocket(&mut self, bytes: &[u8], on_line: &mut impl FnMut(&[u8])) {
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        ws.buf.extend_from_slice(bytes);
        if !ws.upgraded {
            let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            if !ws.buf.starts_with(b"HTTP/1.1 101") {
                // The status line, and the body's first line if it came along (a
                // refused connection's body says why).
                let status = ws.buf.split(|&b| b == b'\r').next().unwrap_or_default();
                let body = ws.buf[end + 4..].split(|&b| b == b'\n').next();
                let mut why = b"ERR bench: the WebSocket upgrade was refused: ".to_vec();
                why.extend_from_slice(status);
                if let Some(body) = body.filter(|b| !b.is_empty()) {
                    why.extend_from_slice(b": ");
                    why.extend_from_slice(body);
                }
                on_line(&why);
            }
            ws.buf.drain(..end + 4);
            ws.upgraded = true;
        }
        let (frames, used) = websocket::server_frames(&ws.buf);
        ws.buf.drain(..used);
        for (opcode, payload) in frames {
            match opcode {
                1 | 2 => on_line(&payload),
                9 => {
                    let key = ws.next_key();
                    self.out
                        .extend(websocket::client_frame(10, true, &payload, key));
                }
                8 => on_line(b"ERR bench: the server closed the WebSocket"),
                _ => {}
            }
        }
    }

    /// Handles one readiness event's socket side, the same way for every caller:
    /// while the non-blocking connect is in progress, a writable event means it has
    /// finished (or failed); once connected, a writable event flushes pending output.
    /// Reading is left to [`Conn::read_lines`], which the caller runs next unless this
    /// returns [`Ready::Connecting`].
    pub fn on_ready(&mut self, writable: bool, registry: &Registry) -> Result<Ready, DialError> {
        if !self.connected {
            if !writable {
                return Ok(Ready::Connecting);
            }
            return match self.finish_connect() {
                Ok(false) => Ok(Ready::Connecting),
                Err(err) => Err(DialError::Connect(err)),
                Ok(true) => {
                    // Output queued before the connect finished goes out now.
                    self.flush(registry).map_err(DialError::Write)?;
                    Ok(Ready::JustConnected)
                }
            };
        }
        if writable {
            self.flush(registry).map_err(DialError::Write)?;
        }
        Ok(Ready::Open)
    }

    /// On a writable event while connecting: has the connect succeeded? This is the
    /// step inside [`Conn::on_ready`]; call that instead.
    fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(err) = self.stream.take_error()? {
            return Err(err);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Queues bytes and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8], registry: &Registry) -> io::Result<()> {
        self.queue(bytes);
        if self.connected {
            self.flush(registry)?;
        }
        Ok(())
    }

    /// Queues bytes; the caller flushes once per turn. Past [`KEPT_OUTPUT`]
    /// queued, what the socket takes is written at once (plain TCP): a burst (a
    /// backplane's 19 000 nick claims) then waits in the kernel's buffer, not
    /// whole in ours, which grew by megabytes and kept the process's resident
    /// memory up after it was freed. A write error here is left for the turn's
    /// flush, which meets it again and reports it.
    pub fn send_later(&mut self, bytes: &[u8]) {
        self.queue(bytes);
        let backlog = self.out.len() - self.out_pos;
        if self.tls.is_none() && self.connected && !self.full && backlog >= KEPT_OUTPUT {
            self.write_ahead();
        }
    }

    /// Writes queued output until the socket would block, then drops what went.
    fn write_ahead(&mut self) {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => break,
                Ok(written) => self.out_pos += written,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.full = self.out_pos < self.out.len();
        self.out.drain(..self.out_pos);
        self.out_pos = 0;
    }

    /// True while output waits for the socket.
    pub fn has_pending(&self) -> bool {
        self.out_pos < self.out.len()
            || self
                .tls
                .as_ref()
                .is_some_and(|tls| tls.session.wants_write())
    }

    /// Writes pending output until `WouldBlock`; holds WRITABLE interest only while
    /// something is left (always, for TLS: see the module doc).
    pub fn flush(&mut self, registry: &Registry) -> io::Result<()> {
        self.full = false;
        if let Some(tls) = self.tls.as_mut() {
            return flush_tls(
                &mut tls.session,
                &mut self.stream,
                &mut self.out,
                &mut self.out_pos,
            );
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.out_pos += written,
                Err(err) if is_would_block(&err) => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            // Hand back what a burst grew (a backplane's roster, say) once it is sent.
            self.out.shrink_to(KEPT_OUTPUT);
        }
        let want = self.has_pending();
        if want != self.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, self.token, interest)?;
            self.writable = want;
        }
        Ok(())
    }

    /// Reads until `WouldBlock`, calling `on_line` per complete line. Returns false at
    /// EOF. Re-arms `TCP_QUICKACK` after reading.
    ///
    /// Stopping at a short read (fewer bytes than the buffer) would save a syscall per
    /// event, and nginx does it, but only together with EPOLLRDHUP: if the peer's FIN
    /// arrived with the last data, the short read returns the data, no new edge ever
    /// comes for the FIN, and the connection hangs. Reading on to `WouldBlock` or
    /// `Ok(0)` is the rule that cannot go wrong (measured: the saving was within noise).
    pub fn read_lines(
        &mut self,
        scratch: &mut [u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> io::Result<bool> {
        let mut read_any = false;
        let open = loop {
            let outcome = match self.tls.as_mut() {
                Some(tls) => {
                    tls_client::read_plaintext(&mut tls.session, &mut self.stream, scratch)
                        .map_err(|e| tls_client::explain_io(e, &tls.trust))?
                }
                None => read_some(&mut self.stream, scratch)?,
            };
            match outcome {
                ReadOutcome::Data(len) if self.ws.is_some() => {
                    read_any = true;
                    self.feed_websocket(&scratch[..len], &mut on_line);
                }
                ReadOutcome::Data(len) => {
                    read_any = true;
                    self.framer.feed(&scratch[..len], |line| {
                        match line {
                            Ok(line) => on_line(line),
                            Err(FrameError::TooLong) => on_line(b"ERR bench: over-long line"),
                        }
                        true
                    });
                }
                ReadOutcome::WouldBlock => break true,
                ReadOutcome::Eof => break false,
            }
        };
        if read_any && open {
            // Not sticky on Linux: the kernel may fall back to delayed ACKs.
            let _ = SockRef::from(&self.stream).set_tcp_quickack(true);
        }
        Ok(open)
    }

    /// Reads, handing the raw bytes to `on_bytes` (for protocols that are not
    /// line-framed, such as Redis's RESP), until the socket would block
    /// ([`ReadEnd::Drained`]), the peer closed, or `limit` bytes were read
    /// ([`ReadEnd::More`]: the caller handles them and reads again, so a burst of
    /// thousands of messages is never held whole).
    pub fn read_bytes(
        &mut self,
        scratch: &mut [u8],
        limit: usize,
        mut on_bytes: impl FnMut(&[u8]),
    ) -> io::Result<ReadEnd> {
        let mut read = 0;
        while read < limit {
            match read_some(&mut self.stream, scratch)? {
                ReadOutcome::Data(n) => {
                    read += n;
                    on_bytes(&scratch[..n]);
                }
                ReadOutcome::WouldBlock => return Ok(ReadEnd::Drained),
                ReadOutcome::Eof => return Ok(ReadEnd::Closed),
            }
        }
        Ok(ReadEnd::More)
    }

    /// Deregisters the socket (before dropping it, so a new one may reuse the token).
    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.stream)
    }

    /// True while a TLS connection has not finished its handshake (a failure then is
    /// a failure to connect, not a lost connection).
    pub fn tls_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.session.is_handshaking())
    }

    /// The local address (for reports).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }
}

/// Encrypts pending output and writes the records until done or `WouldBlock`.
fn flush_tls(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    out_pos: &mut usize,
) -> io::Result<()> {
    while *out_pos < out.len() {
        let taken = tls_client::write_plaintext(tls, stream, &out[*out_pos..])?;
        if taken == 0 {
            break;
        }
        *out_pos += taken;
    }
    if *out_pos == out.len() {
        out.clear();
        *out_pos = 0;
    }
    tls_client::write_ciphertext(tls, stream)
}

/// `EINPROGRESS`: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

/// The source address for connection number `index` when connections are spread
/// over `sources` addresses of 127.0.0.0/8 (127.0.0.1, 127.0.0.2, ...), the first
/// `offset` of them skipped (so that several load processes use different ones);
/// `None` (the kernel chooses) when `sources` is 0 or 1 and there is no offset.
pub fn source_for(index: usize, sources: usize, offset: usize) -> Option<IpAddr> {
    if sources <= 1 && offset == 0 {
        return None;
    }
    let host = (offset + index % sources.max(1)) as u32 + 1;
    Some(IpAddr::from([
        127,
        0,
        (host >> 8) as u8,
        (host & 0xff) as u8,
    ]))
}
