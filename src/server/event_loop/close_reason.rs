//! Why a connection ended: one reason per close, logged once and counted in the stats.
//!
//! Its own file because everything that closes or counts connections names it (the
//! loop, the chat, the stats, the web and TLS transports), and none of them should
//! need the connection type to do so.

use std::io;

use crate::nonblocking::{IoClass, classify};

/// Why a connection ended: logged once and counted in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (read returned 0).
    PeerClosed,
    /// The connection was reset or aborted.
    Reset,
    /// The client sent `/quit`.
    Quit,
    /// The client did not read and its send queue passed `--sendq`.
    SlowConsumer,
    /// Nothing received for `--idle-timeout`.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
    /// Any other IO error.
    Io,
    /// A TLS handshake failed: garbage, plain text to a TLS port, a truncated
    /// handshake, or a protocol error before it finished.
    TlsHandshakeFailed,
    /// A TLS handshake did not finish within `--tls-handshake-timeout`.
    TlsHandshakeTimeout,
    /// A TLS protocol error after the handshake (a bad record, a fatal alert).
    TlsError,
    /// Flood-paused with more than `--flood-max-unread` bytes unread for too long.
    Flood,
    /// An HTTP request was answered (the web listener serves one per connection).
    HttpServed,
    /// An HTTP request head did not arrive within `--http-timeout`.
    HttpTimeout,
    /// A WebSocket protocol violation by the client (unmasked, oversized, bad
    /// UTF-8...).
    WebSocketError,
    /// The WebSocket client closed saying the *server* broke the protocol (close
    /// code 1002, 1003, 1007 or 1009): a server bug, logged as a warning.
    WebSocketRejected,
    /// A server operator killed the connection, or a k-line matched it.
    Killed,
}

impl CloseReason {
    /// Number of variants (size of the stats histogram).
    pub const COUNT: usize = 16;
    /// Every variant, in histogram order.
    pub const ALL: [CloseReason; Self::COUNT] = [
        CloseReason::PeerClosed,
        CloseReason::Reset,
        CloseReason::Quit,
        CloseReason::SlowConsumer,
        CloseReason::IdleTimeout,
        CloseReason::Shutdown,
        CloseReason::Io,
        CloseReason::TlsHandshakeFailed,
        CloseReason::TlsHandshakeTimeout,
        CloseReason::TlsError,
        CloseReason::Flood,
        CloseReason::HttpServed,
        CloseReason::HttpTimeout,
        CloseReason::WebSocketError,
        CloseReason::WebSocketRejected,
        CloseReason::Killed,
    ];

    /// Position in the stats histogram.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short name for logs and the totals line.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "closed",
            CloseReason::Reset => "reset",
            CloseReason::Quit => "quit",
            CloseReason::SlowConsumer => "slow-consumer",
            CloseReason::IdleTimeout => "idle-timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Io => "io-error",
            CloseReason::TlsHandshakeFailed => "tls-handshake-failed",
            CloseReason::TlsHandshakeTimeout => "tls-handshake-timeout",
            CloseReason::TlsError => "tls-error",
            CloseReason::Flood => "flood",
            CloseReason::HttpServed => "http-served",
            CloseReason::HttpTimeout => "http-timeout",
            CloseReason::WebSocketError => "websocket-error",
            CloseReason::WebSocketRejected => "websocket-rejected",
            CloseReason::Killed => "killed",
        }
    }

    /// The reason from an IO error on this connection.
    pub fn from_io(e: &io::Error) -> CloseReason {
        match classify(e) {
            IoClass::PeerGone => CloseReason::Reset,
            _ => CloseReason::Io,
        }
    }
}
