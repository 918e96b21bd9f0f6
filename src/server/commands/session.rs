//! What the chat knows about one connection: its nick, its rooms, its protocol and,
//! for IRC, how far registration has come.
//!
//! A [`Session`] lives inside its [`crate::server::connection::Connection`] (so a connection
//! costs one slab slot), but only the chat reads or writes it: the event loop never
//! looks inside. That split is what lets `shard.rs` be the event loop and nothing
//! else. An idle line session owns no heap memory beyond its room list; the IRC
//! state is boxed so that line sessions, the common case, do not pay for it.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::protocol::identity::UserHost;
use crate::protocol::irc::Caps;
use crate::protocol::outgoing::{Flavour, Protocol};
use crate::protocol::{Nick, RoomName};

use crate::server::config::FloodLimit;
use crate::server::connection::SessionInfo;
use crate::server::room_list::RoomList;
use crate::server::token::ConnId;

/// The chat state of one connection.
#[derive(Debug)]
pub struct Session {
    /// Identity across threads and time (the directory knows it by this).
    pub id: ConnId,
    /// Remote address (with `peer_port`, see [`Session::peer`]): the client's
    /// (behind a trusted proxy, the one it forwarded). Kept as its two parts, 19
    /// bytes, not as a `SocketAddr`, whose IPv6 flow and scope fields no one reads:
    /// 32 bytes made every connection a size class bigger.
    peer_ip: IpAddr,
    peer_port: u16,
    /// `user@host` as IRC shows it (the directory's profile holds the same):
    /// set when the chat opens the session, given a user name by IRC `USER`.
    pub userhost: UserHost,
    /// Current nick (the directory holds the same).
    pub nick: Nick,
    /// Rooms joined, in join order.
    pub rooms: RoomList,
    /// Where plain lines go; `None` after leaving every room.
    pub current: Option<RoomName>,
    /// When the last line arrived (idle timeout, IRC keepalive, and when the flood
    /// bucket was last filled).
    pub last_active: Instant,
    /// When the current nick was claimed (ms since the Unix epoch; told to the
    /// other nodes of a cluster with the user).
    pub claimed_ms: u64,
    /// Flood control state, if enabled.
    pub flood: Option<FloodBucket>,
    /// Protocol errors logged so far (logging stops after a few per connection).
    pub errors_logged: u8,
    /// IRC registration state; `None` for a line-protocol connection.
    pub irc: Option<Box<IrcState>>,
    /// The wire protocol (the dialect, and whether it travels in WebSocket frames).
    protocol: Protocol,
    /// `/echo on` (line) or `echo-message` (IRC): the sender gets its own room lines.
    pub echo: bool,
    /// A line connection has *registered* once it sent any line; until then (and
    /// when TCP keepalive reports it dead) `--idle-timeout` applies to it.
    pub spoke_once: bool,
    /// The one-minute idle warning was sent (cleared by any line).
    pub idle_warned: bool,
    /// Its standing as a server operator, if it is one (boxed: few connections
    /// are, and every other one then pays 8 bytes for it, not 24).
    pub oper: Option<Box<OperStatus>>,
    /// Operators were told of a flood pause of this connection (once is enough).
    pub flood_noticed: bool,
}

/// A connection that is a server operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperStatus {
    /// The `[[oper]]` it is an operator as.
    pub name: Box<str>,
    /// It takes server notices (IRC user mode `+s`, on with `OPER`).
    pub snotices: bool,
}

impl Session {
    /// Remote address: the client's (behind a trusted proxy, the one it forwarded).
    pub fn peer(&self) -> SocketAddr {
        SocketAddr::new(self.peer_ip, self.peer_port)
    }

    /// A fresh session speaking `protocol`.
    pub fn new(id: ConnId, peer: SocketAddr, nick: Nick, protocol: Protocol) -> Self {
        Session {
            id,
            peer_ip: peer.ip(),
            peer_port: peer.port(),
            userhost: UserHost::unknown(),
            nick,
            rooms: RoomList::new(),
            current: None,
            last_active: Instant::now(),
            claimed_ms: crate::server::backplane::now_ms(),
            flood: None,
            errors_logged: 0,
            irc: protocol.speaks_irc().then(Box::default),
            protocol,
            echo: false,
            spoke_once: false,
            idle_warned: false,
            oper: None,
            flood_noticed: false,
        }
    }

    /// The protocol this connection speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Which rendering of a room event this connection reads.
    pub fn flavour(&self) -> Flavour {
        let Some(irc) = &self.irc else {
            return Flavour::Line;
        };
        match (irc.caps.has("message-tags"), irc.caps.has("server-time")) {
            (true, true) => Flavour::IrcTaggedTimed,
            (true, false) => Flavour::IrcTagged,
            (false, true) => Flavour::IrcTimed,
            (false, false) => Flavour::Irc,
        }
    }

    /// The IRCv3 capabilities enabled (none for a line connection).
    pub fn caps(&self) -> Caps {
        self.irc.as_ref().map(|irc| irc.caps).unwrap_or_default()
    }

    /// True if this reader should get a copy of the change numbered `once` (see
    /// `Outgoing::once`): IRC readers get one copy, line readers one per room.
    pub fn first_copy(&mut self, once: u64, now: Instant) -> bool {
        let Some(irc) = self.irc.as_mut() else {
            return true;
        };
        irc.seen
            .retain(|&(_, at)| now.duration_since(at) < SEEN_FOR);
        if irc.seen.iter().any(|&(seen, _)| seen == once) {
            return false;
        }
        if irc.seen.len() == SEEN_MAX {
            irc.seen.pop_front();
        }
        irc.seen.push_back((once, now));
        true
    }

    /// True once the session may chat: always for line connections, after the
    /// welcome burst for IRC ones.
    pub fn is_registered(&self) -> bool {
        self.irc.as_ref().is_none_or(|irc| irc.registered)
    }
}

/// What the loop reads of a session (`event_loop/handler.rs`).
impl SessionInfo for Session {
    fn protocol(&self) -> Protocol {
        Session::protocol(self)
    }

    fn conn_id(&self) -> ConnId {
        self.id
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer()
    }

    fn log_name(&self) -> &str {
        self.nick.as_str()
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
    /// IRCv3 capabilities enabled with `CAP REQ`.
    pub caps: Caps,
    /// The nick is a registered account this connection is not logged in to: by
    /// then it must identify, or it is renamed (`--nick-grace`).
    pub identify_by: Option<Instant>,
    /// Where a SASL exchange is (`AUTHENTICATE`).
    pub sasl: SaslStep,
    /// A login (SASL or NickServ) is with the auth thread; its answer is a SASL
    /// numeric (`sasl`) or a NickServ notice, and takes the nick back if `regain`.
    pub login_pending: Option<LoginKind>,
    /// Changes (quits, nick and away changes) seen lately, to drop their copies
    /// from other shared rooms.
    pub seen: VecDeque<(u64, Instant)>,
}

/// Where a SASL exchange is: which `AUTHENTICATE` the client sends next.
#[derive(Debug, Default)]
pub enum SaslStep {
    /// None is going on.
    #[default]
    Idle,
    /// `AUTHENTICATE PLAIN` was answered `+`: the payload comes next.
    Plain,
    /// `AUTHENTICATE SCRAM-SHA-256` was answered `+`: the client's first message.
    ScramFirst,
    /// The client's first message is in; the auth thread looks up the credentials.
    ScramLookup(Box<ScramExchange>),
    /// The server's first message went out: the client's final message comes next.
    ScramFinal(Box<ScramExchange>),
    /// The server's final message went out: the client answers `+`, then 903.
    ScramDone(Nick),
}

/// One SCRAM-SHA-256 exchange in progress (RFC 5802's names).
#[derive(Debug)]
pub struct ScramExchange {
    /// The account asked for (as registered, once looked up).
    pub account: Nick,
    /// The client's first message without its GS2 header.
    pub client_first_bare: String,
    /// The client's nonce, then the combined one.
    pub nonce: String,
    /// The server's first message, once sent.
    pub server_first: String,
    /// The account's credentials, once looked up.
    pub credentials: Option<crate::server::store::scram::Credentials>,
}

/// How an IRC client asked to log in: the answer's form depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// `AUTHENTICATE`: answered with 900/903 or 904.
    Sasl,
    /// `NickServ IDENTIFY`: a notice.
    Identify,
    /// `NickServ REGAIN`/`GHOST`: a notice, and the nick is taken back.
    Regain,
    /// `REGISTER` (`draft/account-registration`): `REGISTER SUCCESS` or `FAIL
    /// REGISTER`.
    Register,
}

/// How many recent changes an IRC reader remembers, and for how long: the copies of
/// one change arrive within moments of each other.
const SEEN_MAX: usize = 16;
const SEEN_FOR: Duration = Duration::from_secs(10);

impl IrcState {
    /// Everything registration waits for has arrived.
    pub fn ready_to_register(&self) -> bool {
        !self.registered && self.nick_given && self.user_given && !self.cap_negotiating
    }
}

/// Token bucket for flood control, counted in lines.
///
/// Lines are never dropped: a line that takes the last token is handled, and the
/// connection is then paused until the bucket holds a token again (fake lag).
///
/// The bucket holds its tokens only. It was last filled when the connection's last
/// line came, which the session keeps anyway (`Session::last_active`), so the
/// caller passes that time in: a second copy of an `Instant` made every connection
/// 16 bytes bigger.
#[derive(Debug, Clone, Copy)]
pub struct FloodBucket {
    tokens: f32,
}

impl FloodBucket {
    /// A full bucket.
    pub fn new(limit: FloodLimit) -> Self {
        FloodBucket {
            tokens: limit.burst as f32,
        }
    }

    /// Takes one line's token, `since` the last line (or the bucket's making).
    /// Returns `None` while the budget lasts, or the moment the next token will be
    /// there if this line took the last one: read nothing more from the connection
    /// until then.
    pub fn take(&mut self, limit: FloodLimit, since: Instant, now: Instant) -> Option<Instant> {
        let rate = limit.rate.max(1) as f32;
        let refill = now.saturating_duration_since(since).as_secs_f32() * rate;
        self.tokens = (self.tokens + refill).min(limit.burst as f32);
        // A line read before a pause took effect may find the bucket short: it is
        // handled anyway (it was read) and runs the bucket into debt.
        self.tokens -= 1.0;
        (self.tokens < 1.0).then(|| now + Duration::from_secs_f32((1.0 - self.tokens) / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_bucket_allows_burst_then_pauses_until_a_token_is_back() {
        let limit = FloodLimit { rate: 2, burst: 3 };
        let t0 = Instant::now();
        let mut bucket = FloodBucket::new(limit);
        assert_eq!(bucket.take(limit, t0, t0), None);
        assert_eq!(bucket.take(limit, t0, t0), None);
        let resume = bucket.take(limit, t0, t0).expect("the last token pauses");
        assert_eq!(
            resume,
            t0 + Duration::from_millis(500),
            "one token at 2 lines/s"
        );
        // At the resume time one line is allowed, and the connection pauses again.
        let again = bucket.take(limit, t0, resume).expect("paused again");
        assert_eq!(again, resume + Duration::from_millis(500));
        // After a long quiet spell the burst is back, and no more.
        let later = again + Duration::from_secs(60);
        assert_eq!(bucket.take(limit, again, later), None);
        assert_eq!(bucket.take(limit, later, later), None);
        assert!(bucket.take(limit, later, later).is_some());
    }
}
