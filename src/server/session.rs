//! What the chat knows about one connection: its nick, its rooms, its protocol and,
//! for IRC, how far registration has come.
//!
//! A [`Session`] lives inside its [`super::connection::Connection`] (so a connection
//! costs one slab slot), but only the chat reads or writes it: the event loop never
//! looks inside. That split is what lets `shard.rs` be the event loop and nothing
//! else. An idle line session owns no heap memory beyond its room list; the IRC
//! state is boxed so that line sessions, the common case, do not pay for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use crate::protocol::outgoing::Protocol;
use crate::protocol::{Nick, RoomName};

use super::config::FloodLimit;
use super::token::ConnId;

/// The chat state of one connection.
#[derive(Debug)]
pub struct Session {
    /// Identity across threads and time (the directory knows it by this).
    pub id: ConnId,
    /// Remote address, for logs.
    pub peer: SocketAddr,
    /// Current nick (the directory holds the same).
    pub nick: Nick,
    /// Rooms joined, in join order.
    pub rooms: Vec<RoomName>,
    /// Where plain lines go; `None` after leaving every room.
    pub current: Option<RoomName>,
    /// When the last line arrived (idle timeout, IRC keepalive).
    pub last_active: Instant,
    /// Flood control state, if enabled.
    pub flood: Option<FloodBucket>,
    /// Protocol errors logged so far (logging stops after a few per connection).
    pub errors_logged: u8,
    /// IRC registration state; `None` for a line-protocol connection.
    pub irc: Option<Box<IrcState>>,
    /// When this connection last sent a message (Unix seconds; 0 = never). Written
    /// here without a lock; the directory's profile holds the same `Arc` and reads it
    /// for `WHOIS` idle times.
    pub spoke_at: Arc<AtomicU64>,
}

impl Session {
    /// A fresh session speaking `protocol`.
    pub fn new(id: ConnId, peer: SocketAddr, nick: Nick, protocol: Protocol) -> Self {
        Session {
            id,
            peer,
            nick,
            rooms: Vec::new(),
            current: None,
            last_active: Instant::now(),
            flood: None,
            errors_logged: 0,
            irc: (protocol == Protocol::Irc).then(Box::default),
            spoke_at: Arc::default(),
        }
    }

    /// The protocol this connection speaks.
    pub fn protocol(&self) -> Protocol {
        if self.irc.is_some() {
            Protocol::Irc
        } else {
            Protocol::Line
        }
    }

    /// True once the session may chat: always for line connections, after the
    /// welcome burst for IRC ones.
    pub fn is_registered(&self) -> bool {
        self.irc.as_ref().is_none_or(|irc| irc.registered)
    }
}

/// Registration and keepalive state of one IRC connection.
#[derive(Debug, Default)]
pub struct IrcState {
    /// True after the welcome burst: chat commands are allowed.
    pub registered: bool,
    /// A valid `NICK` was received (and claimed in the directory).
    pub nick_given: bool,
    /// `USER` was received.
    pub user_given: bool,
    /// `PASS` matched `--password` (or none is required).
    pub pass_ok: bool,
    /// Inside `CAP LS` ... `CAP END`: registration waits for the end.
    pub cap_negotiating: bool,
    /// When we sent a keepalive `PING` that is not answered yet.
    pub ping_sent: Option<Instant>,
    /// The real name from `USER`, until registration hands it to the directory.
    pub realname: Option<Box<str>>,
}

impl IrcState {
    /// Everything registration waits for has arrived.
    pub fn ready_to_register(&self) -> bool {
        !self.registered && self.nick_given && self.user_given && !self.cap_negotiating
    }
}

/// Token bucket for flood control, counted in lines.
#[derive(Debug, Clone, Copy)]
pub struct FloodBucket {
    tokens: f32,
    last: Instant,
    /// True once the client was told about this flood episode.
    warned: bool,
}

impl FloodBucket {
    /// A full bucket.
    pub fn new(limit: FloodLimit, now: Instant) -> Self {
        FloodBucket {
            tokens: limit.burst as f32,
            last: now,
            warned: false,
        }
    }

    /// Takes one line's token. `Ok(())` = allowed; `Err(first)` = dropped, with
    /// `first` true for the first drop of an episode (the one the client is told of).
    pub fn take(&mut self, limit: FloodLimit, now: Instant) -> Result<(), bool> {
        let refill = now.duration_since(self.last).as_secs_f32() * limit.rate as f32;
        self.tokens = (self.tokens + refill).min(limit.burst as f32);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            Ok(())
        } else {
            let first = !self.warned;
            self.warned = true;
            Err(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn flood_bucket_allows_burst_then_rate_and_warns_once() {
        let limit = FloodLimit { rate: 2, burst: 3 };
        let t0 = Instant::now();
        let mut bucket = FloodBucket::new(limit, t0);
        for _ in 0..3 {
            assert_eq!(bucket.take(limit, t0), Ok(()));
        }
        assert_eq!(bucket.take(limit, t0), Err(true));
        assert_eq!(bucket.take(limit, t0), Err(false));
        // Half a second refills one line at 2 lines/s.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(bucket.take(limit, t1), Ok(()));
        assert_eq!(
            bucket.take(limit, t1),
            Err(true),
            "a new episode warns again"
        );
    }
}
