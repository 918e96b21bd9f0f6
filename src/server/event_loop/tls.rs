//! TLS on the same edge-triggered loop: rustls driven by hand on a non-blocking
//! socket, with no async runtime and no adapter crate.
//!
//! A connection's [`Transport`] is either plain TCP or TCP plus a rustls
//! `ServerConnection`; `connection.rs` reads and writes through it and the shard's
//! loop barely knows the difference. rustls is "sans-IO": it never touches the
//! socket. We feed it ciphertext (`read_tls`), ask it to decrypt
//! (`process_new_packets`), take plaintext out (`reader`), hand it plaintext
//! (`writer`) and write the ciphertext it produced (`write_tls`). Two buffers now sit
//! between the socket and the chat, and each is an edge-triggered trap (ET-9):
//!
//! - **Plaintext inside the session.** One `read_tls` can pull in several records;
//!   after the socket says `WouldBlock`, decrypted lines may still sit in rustls and
//!   no new edge will ever announce them. So [`Transport::read`] takes plaintext out
//!   *first* and goes to the socket only when rustls has none: "drained" means the
//!   socket said `WouldBlock` **and** the session is empty.
//! - **Ciphertext inside the session.** Reading can make rustls want to write (the
//!   handshake's replies, session tickets, alerts) without anything being queued for
//!   the connection; and a `write_tls` can stop at `WouldBlock` with ciphertext left.
//!   So a connection wants WRITABLE while the session wants to write, and the read
//!   path marks the connection dirty when it does, so the once-per-turn flush sends it.
//!
//! Certificates: [`load_server_config`] reads the PEM files once at start-up (a bad
//! file is a one-line error and exit status 2) and again on SIGHUP (a bad file keeps
//! the old configuration). Each accepted TLS socket carries the configuration that
//! was current when it was accepted, so a reload changes new handshakes only.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use crate::nonblocking::{IoClass, ReadOutcome, classify, read_some, write_tls_records};

use crate::server::config::{KEEPALIVE_IDLE, KEEPALIVE_PROBES, TlsFiles};

/// Reads the certificate chain and key and builds a rustls server configuration.
/// The error is one line naming the file and what is wrong with it.
pub fn load_server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let cert_path = files.cert.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read certificate {cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {cert_path}"));
    }
    let key_path = files.key.display();
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("cannot read private key {key_path}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {cert_path} with key {key_path}: {e}"))?;
    Ok(Arc::new(config))
}

/// How a connection's bytes reach its socket.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TCP with a TLS session on top (boxed: a plain connection does not pay for it).
    Tls(Box<TlsStream>),
}

/// A socket and the rustls session that encrypts it.
#[derive(Debug)]
pub struct TlsStream {
    socket: TcpStream,
    session: ServerConnection,
    /// When the handshake must be finished by; `None` once it is.
    handshake_deadline: Option<Instant>,
    /// The socket returned end of stream.
    peer_closed: bool,
}

/// How a read on a TLS transport failed, for the close reason.
#[derive(Debug)]
pub struct TlsFailure {
    /// The handshake had not finished (garbage, plain text, a truncated handshake).
    pub during_handshake: bool,
    /// What went wrong.
    pub error: io::Error,
}

impl Transport {
    /// A new connection's transport, registered with the shard's `Poll` for READABLE
    /// under `token` (a socket reaches its shard unregistered): plain, or TLS whose
    /// handshake must end by `deadline`.
    pub fn open(
        mut socket: TcpStream,
        tls: Option<Arc<ServerConfig>>,
        deadline: Instant,
        registry: &Registry,
        token: Token,
        nodelay: bool,
    ) -> io::Result<Transport> {
        registry.register(&mut socket, token, Interest::READABLE)?;
        if let Err(e) = socket.set_nodelay(nodelay) {
            log::debug!("set_nodelay: {e}");
        }
        // A peer that vanished (cable, crash, NAT timeout) is found by TCP keepalive
        // and reset by the kernel; the read error then closes it like any other.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_IDLE)
            .with_retries(KEEPALIVE_PROBES);
        if let Err(e) = socket2::SockRef::from(&socket).set_tcp_keepalive(&keepalive) {
            log::debug!("set_tcp_keepalive: {e}");
        }
        match tls {
            Some(config) => Transport::tls(socket, config, deadline),
            None => Ok(Transport::Plain(socket)),
        }
    }

    /// A TLS transport over `socket` whose handshake must end by `deadline`.
    pub fn tls(
        socket: TcpStream,
        config: Arc<ServerConfig>,
        deadline: Instant,
    ) -> io::Result<Transport> {
        let session = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Transport::Tls(Box::new(TlsStream {
            socket,
            session,
            handshake_deadline: Some(deadline),
            peer_closed: false,
        })))
    }

    /// The socket itself (to register it, peek at it, set options).
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(tls) => &mut tls.socket,
        }
    }

    /// True while a TLS handshake is in progress.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.handshake_deadline.is_some())
    }

    /// True if the handshake is still in progress at `now` past its deadline.
    pub fn handshake_expired(&self, now: Instant) -> bool {
        match self {
            Transport::Tls(tls) => tls.handshake_deadline.is_some_and(|end| now >= end),
            Transport::Plain(_) => false,
        }
    }

    /// True while the TLS session holds ciphertext not yet written (ET-9).
    pub fn wants_write(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.session.wants_write())
    }

    /// Reads plaintext once: from the TLS session first, then from the socket.
    /// Returns `Ok(WouldBlock)` only when both are empty.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadOutcome, TlsFailure> {
        match self {
            Transport::Plain(socket) => read_some(socket, buf).map_err(|error| TlsFailure {
                during_handshake: false,
                error,
            }),
            Transport::Tls(tls) => {
                let during_handshake = tls.handshake_deadline.is_some();
                tls.read(buf).map_err(|error| TlsFailure {
                    during_handshake,
                    error,
                })
            }
        }
    }

    /// True exactly once, on the first call after the handshake finished.
    pub fn take_handshake_done(&mut self) -> bool {
        match self {
            Transport::Tls(tls)
                if tls.handshake_deadline.is_some() && !tls.session.is_handshaking() =>
            {
                tls.handshake_deadline = None;
                true
            }
            _ => false,
        }
    }

    /// A writer that encrypts what it is given and writes it to the socket, counting
    /// write syscalls.
    pub fn writer(&mut self) -> TransportWriter<'_> {
        TransportWriter {
            transport: self,
            syscalls: 0,
        }
    }

    /// Best effort, never waiting: tell a TLS peer the session ends (`close_notify`).
    pub fn say_goodbye(&mut self) {
        if let Transport::Tls(tls) = self
            && !tls.session.is_handshaking()
        {
            tls.session.send_close_notify();
            let _ = tls.session.write_tls(&mut tls.socket);
        }
    }
}

impl TlsStream {
    /// The read loop of ET-9: plaintext first, then ciphertext, then decrypt.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            match self.session.reader().read(buf) {
                Ok(0) => return Ok(ReadOutcome::Eof), // close_notify received
                Ok(n) => return Ok(ReadOutcome::Data(n)),
                // The peer closed TCP without close_notify: for a chat line stream a
                // truncation is harmless (the framer drops an unfinished line).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return if self.session.is_handshaking() {
                        Err(truncated())
                    } else {
                        Ok(ReadOutcome::Eof)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.peer_closed {
                // Only reached mid-handshake: after it, rustls reports the EOF above.
                return Err(truncated());
            }
            match self.session.read_tls(&mut self.socket) {
                Ok(0) => self.peer_closed = true,
                Ok(_) => {}
                Err(e) => match classify(&e) {
                    IoClass::WouldBlock => return Ok(ReadOutcome::WouldBlock),
                    IoClass::Interrupted => continue,
                    IoClass::PeerGone | IoClass::Fatal => return Err(e),
                },
            }
            if let Err(e) = self.session.process_new_packets() {
                // rustls queued an alert saying why; send it if the socket takes it.
                let _ = self.session.write_tls(&mut self.socket);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Writes ciphertext until rustls has none or the socket would block.
    fn write_ciphertext(&mut self, syscalls: &mut u64) -> io::Result<()> {
        *syscalls += write_tls_records(&mut self.session, &mut self.socket)?;
        Ok(())
    }

    /// Encrypts as much of `bufs` as rustls takes, then writes the records. Returns
    /// `WouldBlock` (taking nothing) while earlier ciphertext is still unwritten, so
    /// the plaintext stays in the send queue, where `--sendq` counts it.
    fn write_plaintext(&mut self, bufs: &[IoSlice<'_>], syscalls: &mut u64) -> io::Result<usize> {
        self.write_ciphertext(syscalls)?;
        if self.session.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.session.writer().write_vectored(bufs)?;
        self.write_ciphertext(syscalls)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // rustls's own buffer is full (only possible mid-handshake).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the handshake was cut short")
}

/// Writes through a [`Transport`], counting write syscalls (the batching figure).
#[derive(Debug)]
pub struct TransportWriter<'a> {
    transport: &'a mut Transport,
    /// Write syscalls made so far.
    pub syscalls: u64,
}

impl TransportWriter<'_> {
    /// Writes ciphertext the session already holds (handshake replies, tickets, or
    /// records a full socket refused earlier) until done or `WouldBlock`.
    pub fn write_pending(&mut self) -> io::Result<()> {
        match self.transport {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(tls) => tls.write_ciphertext(&mut self.syscalls),
        }
    }

    /// True while ciphertext is still waiting for the socket.
    pub fn has_pending(&self) -> bool {
        self.transport.wants_write()
    }
}

impl Write for TransportWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.transport {
            Transport::Plain(socket) => {
                self.syscalls += 1;
                socket.write_vectored(bufs)
            }
            Transport::Tls(tls) => tls.write_plaintext(bufs, &mut self.syscalls),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
