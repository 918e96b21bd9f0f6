//! The web phase of a connection from `--http-listen`: an HTTP request head being
//! read, then, after an upgrade, a WebSocket carrying chat lines.
//!
//! It sits at the same level as `tls.rs`: below the chat, inside the connection, so
//! the shard's loop reads and flushes a web connection like any other and only asks
//! this file what the bytes were. A connection from the web listener goes through:
//!
//! ```text
//!   Http ──GET /, /metrics, /healthz, 4xx──▶ answer queued, drain, close
//!    │  └─head over 8 KiB──▶ 431 ─┘   └─no full head in --http-timeout (tick)──▶ 408
//!    └──valid upgrade──▶ 101 queued; the chat adopts it (a Session, a guest nick)
//!                        ──▶ Socket: frames ⇄ lines, ping/pong, close handshake
//! ```
//!
//! The HTTP phase has no chat session at all: a page load or a scrape never takes a
//! nick or touches the directory. The upgrade is the moment a chat connection is
//! born, exactly as adoption is for the other listeners.
//!
//! Edge-triggered notes: a request head may arrive in many reads, so it is kept here
//! between reads (bounded by `MAX_HEAD`); the head and the first frames may arrive in
//! one read, so what follows the head is handed to the WebSocket decoder at once
//! (no edge will come for it). A slow-loris client that trickles its head raises
//! edges but never finishes; the tick's deadline is what ends it (`408`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::protocol::http::{self, Route};
use crate::protocol::outgoing::Protocol;
use crate::protocol::websocket::{self, Decoder, Inbound, Violation, Wire, close_code};

use crate::server::close_reason::CloseReason;
use crate::server::metrics;
use crate::server::shared::Shared;

/// The chat page: one HTML file with its script and style, built into the binary.
pub const PAGE: &str = include_str!("../../../web/index.html");

/// Where a web connection is in its life.
#[derive(Debug)]
pub enum Web {
    /// Reading an HTTP request head.
    Http(Box<HttpRequest>),
    /// Upgraded: frames carry chat lines.
    Socket(Box<Socket>),
}

/// A request head being read.
#[derive(Debug)]
pub struct HttpRequest {
    /// The address at the other end of the socket (see `Connection::peer`).
    pub peer: SocketAddr,
    /// The head so far (at most `MAX_HEAD` plus one read).
    head: Vec<u8>,
    /// When the whole head must have arrived.
    deadline: Instant,
}

/// What a request head came to.
#[derive(Debug)]
pub enum HttpStep {
    /// The head is not complete yet.
    Waiting,
    /// Send this answer, then close.
    Answer(Vec<u8>),
    /// Send the `101` response, then speak `protocol` over WebSocket; `rest` is what
    /// the client sent after its head (already frames).
    Upgrade {
        /// The `101 Switching Protocols` response.
        response: Vec<u8>,
        /// The chat protocol the subprotocol chose.
        protocol: Protocol,
        /// Bytes after the head.
        rest: Vec<u8>,
        /// Its `X-Forwarded-For` headers, if any (see `http::client_address`).
        forwarded: Option<String>,
    },
}

impl HttpRequest {
    /// A request from `peer` that must be complete by `deadline`.
    pub fn new(peer: SocketAddr, deadline: Instant) -> Self {
        HttpRequest {
            peer,
            head: Vec::new(),
            deadline,
        }
    }

    /// Adds bytes and, once the head is complete, decides what to answer.
    pub fn feed(&mut self, bytes: &[u8], shared: &Shared) -> HttpStep {
        self.head.extend_from_slice(bytes);
        let Some(parsed) = http::parse_request(&self.head) else {
            return HttpStep::Waiting;
        };
        let body = |content_type: &str, body: &[u8]| {
            HttpStep::Answer(http::response(200, content_type, body, parsed.head_only))
        };
        match parsed.route {
            Route::Page => body("text/html; charset=utf-8", PAGE.as_bytes()),
            Route::Metrics => body(metrics::CONTENT_TYPE, metrics::render(shared).as_bytes()),
            Route::Health => body("text/plain; charset=utf-8", b"ok\n"),
            Route::Refuse(answer) => HttpStep::Answer(answer),
            Route::Upgrade {
                response,
                protocol,
                forwarded,
            } => HttpStep::Upgrade {
                response,
                protocol,
                forwarded,
                rest: self.head.split_off(parsed.used.min(self.head.len())),
            },
        }
    }

    /// True once the head is overdue (the slow-loris bound).
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

/// An upgraded connection: its decoder and keepalive.
#[derive(Debug)]
pub struct Socket {
    /// The address at the other end of the socket: a proxy's, when the client is
    /// behind a trusted one (the session holds the client's; see `Connection::peer`).
    pub peer: SocketAddr,
    /// The chat protocol inside the frames.
    pub protocol: Protocol,
    /// The client's frames, reassembled.
    pub decoder: Decoder,
    /// When the client last sent a frame.
    last_heard: Instant,
    /// When our unanswered ping went out.
    ping_sent: Option<Instant>,
    /// A close frame was queued: nothing may follow it.
    pub close_sent: bool,
    /// What went wrong when the socket closes over a protocol error (the client's,
    /// or one it says the server made), for the log line of the close.
    pub trouble: Option<String>,
}

/// Close codes with which a client says the *server* broke the protocol: bad
/// frames (1002), data it cannot take (1003), text that is not UTF-8 (1007), a
/// message too big (1009).
const SERVER_AT_FAULT: [u16; 4] = [
    close_code::PROTOCOL_ERROR,
    close_code::UNSUPPORTED_DATA,
    close_code::INVALID_PAYLOAD,
    close_code::TOO_BIG,
];

/// What the keepalive timer wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum Keepalive {
    /// Nothing.
    Quiet,
    /// Send a ping.
    Ping,
    /// The last ping went unanswered: close.
    Dead,
}

impl Socket {
    /// A fresh WebSocket from `peer` speaking `protocol`.
    pub fn new(peer: SocketAddr, protocol: Protocol, now: Instant) -> Self {
        Socket {
            peer,
            protocol,
            decoder: Decoder::default(),
            last_heard: now,
            ping_sent: None,
            close_sent: false,
            trouble: None,
        }
    }

    /// Any frame is a sign of life.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping_sent = None;
    }

    /// Binary messages are part of `binary.ircv3.net` (and accepted on
    /// `text.ircv3.net`); the line protocol is text.
    pub fn binary_ok(&self) -> bool {
        self.protocol.speaks_irc()
    }

    /// Ping after `interval` of silence; dead after as long again without an answer.
    pub fn keepalive(&mut self, now: Instant, interval: Duration) -> Keepalive {
        match self.ping_sent {
            Some(sent) if now.duration_since(sent) >= interval => Keepalive::Dead,
            Some(_) => Keepalive::Quiet,
            None if now.duration_since(self.last_heard) >= interval && !self.close_sent => {
                self.ping_sent = Some(now);
                Keepalive::Ping
            }
            None => Keepalive::Quiet,
        }
    }

    /// The close frame a connection closing for `reason` gets, once (`None` if one
    /// was already sent).
    pub fn close_for(&mut self, reason: CloseReason) -> Option<Wire> {
        let (code, text) = match reason {
            CloseReason::Quit | CloseReason::PeerClosed => (close_code::NORMAL, "bye"),
            CloseReason::Shutdown => (close_code::GOING_AWAY, "server shutting down"),
            CloseReason::IdleTimeout => (close_code::GOING_AWAY, "idle"),
            CloseReason::Flood => (close_code::POLICY, "flood"),
            _ => (close_code::GOING_AWAY, reason.label()),
        };
        self.close_with(Violation { code, why: text })
    }

    /// A close frame with `violation`'s code and reason, once.
    pub fn close_with(&mut self, violation: Violation) -> Option<Wire> {
        if self.close_sent {
            return None;
        }
        self.close_sent = true;
        Some(websocket::close_frame(violation.code, violation.why))
    }
}

/// What the shard does with one inbound frame of an upgraded connection.
#[derive(Debug)]
pub enum FrameAction<'a> {
    /// Hand this line to the chat.
    Line(&'a [u8]),
    /// Queue these bytes (a pong).
    Send(Wire),
    /// Queue these bytes (a close frame, if not sent yet) and drain for this reason.
    Close(Option<Wire>, CloseReason),
    /// Nothing to do.
    Nothing,
}

impl Socket {
    /// Turns one decoded unit (or violation) into what the shard must do. Any frame
    /// counts as a sign of life for the keepalive.
    pub fn act<'a>(
        &mut self,
        unit: Result<Inbound<'a>, Violation>,
        now: Instant,
    ) -> FrameAction<'a> {
        self.heard(now);
        match unit {
            Ok(Inbound::Message(line)) => FrameAction::Line(line),
            Ok(Inbound::Ping(payload)) => FrameAction::Send(websocket::pong_frame(payload)),
            Ok(Inbound::Pong) => FrameAction::Nothing,
            Ok(Inbound::Close(code, reason)) => self.on_close(code, reason),
            Err(violation) => {
                self.trouble = Some(format!("{} ({})", violation.why, violation.code));
                FrameAction::Close(self.close_with(violation), CloseReason::WebSocketError)
            }
        }
    }

    /// The client's close frame: answered with one (RFC 6455 §5.5.1, echoing a valid
    /// code). A code saying the server broke the protocol is kept, with the client's
    /// reason, for a warning: it is a bug here, not a goodbye.
    fn on_close<'a>(&mut self, code: Option<u16>, reason: &[u8]) -> FrameAction<'a> {
        let echoed = match code {
            Some(code @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => code,
            Some(_) => close_code::PROTOCOL_ERROR,
            None => close_code::NORMAL,
        };
        let echo = self.close_with(Violation {
            code: echoed,
            why: "",
        });
        match code {
            Some(code) if SERVER_AT_FAULT.contains(&code) => {
                let reason = String::from_utf8_lossy(reason);
                self.trouble = Some(format!(
                    "the client says the server broke the WebSocket protocol: close code {code} ({reason})"
                ));
                FrameAction::Close(echo, CloseReason::WebSocketRejected)
            }
            _ => FrameAction::Close(echo, CloseReason::PeerClosed),
        }
    }
}
