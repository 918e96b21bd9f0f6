//! What the bench says to a server, in three dialects, and how it reads the answers.
//!
//! - `line`: miochat's own protocol (and the threaded baseline's subset of it);
//! - `irc`: enough RFC 2812 for ngIRCd, InspIRCd or miochat's IRC listener: NICK/USER,
//!   wait for 001, JOIN, PRIVMSG, and PONG to every PING;
//! - `resp`: Redis pub/sub: SUBSCRIBE on receivers, PUBLISH from separate publisher
//!   connections (a subscribed Redis connection cannot publish);
//! - `ws`: the line protocol over WebSocket to miochat's `--http-listen` (the dialer
//!   does the upgrade and the framing; the lines are the `line` dialect's).
//!
//! Payloads contain no spaces, so the same bytes work as an IRC trailing parameter
//! and as a Redis inline-command argument.

use std::str::FromStr;

/// The wire dialect of the server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// miochat's line protocol.
    Line,
    /// IRC client protocol.
    Irc,
    /// Redis RESP pub/sub.
    Resp,
    /// miochat's line protocol over WebSocket (`--addr` is the `--http-listen`
    /// address): one line per frame, otherwise exactly [`Dialect::Line`].
    Ws,
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "line" => Ok(Dialect::Line),
            "irc" => Ok(Dialect::Irc),
            "resp" => Ok(Dialect::Resp),
            "ws" => Ok(Dialect::Ws),
            _ => Err(format!("unknown dialect {name:?} (line, irc, resp or ws)")),
        }
    }
}

/// What an incoming line means to the bench.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Registration finished (welcome / 001); the client can join.
    Registered,
    /// A join (subscribe) was confirmed.
    Joined,
    /// A chat message carrying a bench payload.
    Payload(&'a [u8]),
    /// The server wants this sent back (IRC PING).
    Reply(Vec<u8>),
    /// The answer to [`Dialect::ping`].
    Pong,
    /// An error line from the server.
    Error(&'a [u8]),
    /// Anything else (joins of others, MOTD, ...).
    Other,
}

/// Per-connection parse state (RESP pushes span several lines).
#[derive(Debug, Default, Clone, Copy)]
pub struct ParseState {
    /// RESP: lines still to skip before the payload of a `message` push, or the
    /// confirmation count of a `subscribe` push.
    resp_skip: u8,
    /// RESP: inside a `subscribe` push rather than a `message` push.
    resp_subscribe: bool,
}

impl Dialect {
    /// The dialect spoken inside the transport (WebSocket frames carry lines).
    fn spoken(self) -> Dialect {
        if self == Dialect::Ws {
            Dialect::Line
        } else {
            self
        }
    }

    /// Readies a new connection for this dialect's transport (the WebSocket upgrade).
    pub fn prepare(self, conn: &mut crate::dialer::Conn, addr: std::net::SocketAddr) {
        if self == Dialect::Ws {
            conn.use_websocket(addr);
        }
    }

    /// Whether the sender receives its own room messages (Redis subscribers do).
    pub fn echoes_sender(self) -> bool {
        self == Dialect::Resp
    }

    /// Whether publishers are connections separate from receivers.
    pub fn separate_publishers(self) -> bool {
        self == Dialect::Resp
    }

    /// Bytes to send right after connecting. A line client first leaves `lobby`, the
    /// room every connection starts in, so a bench never talks to (or is announced
    /// to) the people chatting there; with `room`, it joins that room in the same
    /// write (the `idle` scenario, which waits for no join).
    pub fn hello(self, nick: &str, room: Option<&str>) -> Vec<u8> {
        match self {
            Dialect::Line | Dialect::Ws => {
                let mut hello = format!("/leave lobby\n/nick {nick}\n");
                if let Some(room) = room {
                    hello.push_str(&format!("/join {room}\n"));
                }
                hello.into_bytes()
            }
            Dialect::Irc => format!("NICK {nick}\r\nUSER {nick} 0 * :bench\r\n").into_bytes(),
            Dialect::Resp => Vec::new(),
        }
    }

    /// Whether [`Dialect::hello`] with a room joins it in the same write (line), so
    /// the join's confirmation is the last answer to the greeting.
    pub fn joins_in_hello(self) -> bool {
        self.spoken() == Dialect::Line
    }

    /// Whether a client must join a room before it can send to it (a Redis
    /// publisher needs no subscription).
    pub fn joins_to_talk(self) -> bool {
        self != Dialect::Resp
    }

    /// True if the server sends nothing before the client may proceed.
    pub fn registered_on_connect(self) -> bool {
        self == Dialect::Resp
    }

    /// Bytes that join `room`.
    pub fn join(self, room: &str) -> Vec<u8> {
        match self {
            Dialect::Line | Dialect::Ws => format!("/join {room}\n").into_bytes(),
            Dialect::Irc => format!("JOIN #{room}\r\n").into_bytes(),
            Dialect::Resp => format!("SUBSCRIBE {room}\r\n").into_bytes(),
        }
    }

    /// Appends one room message carrying `payload` to `out`.
    pub fn message(self, room: &str, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Dialect::Line | Dialect::Ws => {}
            Dialect::Irc => {
                out.extend_from_slice(b"PRIVMSG #");
                out.extend_from_slice(room.as_bytes());
                out.extend_from_slice(b" :");
            }
            Dialect::Resp => {
                out.extend_from_slice(b"PUBLISH ");
                out.extend_from_slice(room.as_bytes());
                out.push(b' ');
            }
        }
        out.extend_from_slice(payload);
        out.extend_from_slice(match self {
            Dialect::Line | Dialect::Ws => b"\n",
            _ => b"\r\n",
        });
    }

    /// A round trip that proves the connection is alive.
    pub fn ping(self) -> &'static [u8] {
        match self {
            Dialect::Line | Dialect::Ws => b"/ping\n",
            Dialect::Irc => b"PING :bench\r\n",
            Dialect::Resp => b"PING\r\n",
        }
    }

    /// Bytes that end the session politely.
    pub fn quit(self) -> &'static [u8] {
        match self {
            Dialect::Line | Dialect::Ws => b"/quit\n",
            Dialect::Irc => b"QUIT :bench\r\n",
            Dialect::Resp => b"QUIT\r\n",
        }
    }

    /// Interprets one line (CR already stripped).
    pub fn classify<'a>(self, line: &'a [u8], state: &mut ParseState) -> Incoming<'a> {
        match self {
            Dialect::Line | Dialect::Ws => classify_line(line),
            Dialect::Irc => classify_irc(line),
            Dialect::Resp => classify_resp(line, state),
        }
    }
}

fn classify_line(line: &[u8]) -> Incoming<'_> {
    // `HIST TIME MSGID MSG ...`: a line a cluster node missed while cut off and read
    // back from the room's log counts as delivered (the verdict still checks that
    // each arrives once and in order).
    let line = match line.strip_prefix(b"HIST ") {
        Some(rest) => rest.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default(),
        None => line,
    };
    if let Some(rest) = line.strip_prefix(b"MSG ") {
        // MSG room nick payload
        let mut parts = rest.splitn(3, |&b| b == b' ');
        let _room = parts.next();
        let _nick = parts.next();
        return parts.next().map_or(Incoming::Other, Incoming::Payload);
    }
    if line.starts_with(b"OK joined ") {
        Incoming::Joined
    } else if line.starts_with(b"OK nick ") {
        // The welcome arrives before; the nick reply says our /nick took effect.
        Incoming::Registered
    } else if line.starts_with(b"PONG") {
        Incoming::Pong
    } else if line.starts_with(b"ERR unknown-command /leave")
        || line.starts_with(b"ERR not-in-room")
    {
        // The answer to `/leave lobby` from a server without /leave (the threaded
        // baseline) or without a lobby: nothing to leave, nothing wrong.
        Incoming::Other
    } else if line.starts_with(b"ERR ") {
        Incoming::Error(line)
    } else {
        Incoming::Other
    }
}

fn classify_irc(line: &[u8]) -> Incoming<'_> {
    if let Some(token) = line.strip_prefix(b"PING ") {
        let mut reply = b"PONG ".to_vec();
        reply.extend_from_slice(token);
        reply.extend_from_slice(b"\r\n");
        return Incoming::Reply(reply);
    }
    // ":prefix COMMAND params"
    let mut words = line.splitn(3, |&b| b == b' ');
    let prefix = words.next().unwrap_or_default();
    let command = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default();
    match command {
        b"PRIVMSG" => match find(rest, b" :") {
            Some(at) => Incoming::Payload(&rest[at + 2..]),
            None => Incoming::Other,
        },
        b"001" => Incoming::Registered,
        b"366" => Incoming::Joined,
        b"PONG" => Incoming::Pong,
        _ if prefix == b"ERROR" => Incoming::Error(line),
        // 422 (no MOTD) is informational; other 4xx/5xx numerics are errors
        // (433 nick in use, 421 unknown command, ...).
        b"422" => Incoming::Other,
        [b'4' | b'5', _, _] => Incoming::Error(line),
        _ => Incoming::Other,
    }
}

fn classify_resp<'a>(line: &'a [u8], state: &mut ParseState) -> Incoming<'a> {
    if state.resp_skip > 0 {
        state.resp_skip -= 1;
        if state.resp_skip == 0 {
            return if state.resp_subscribe {
                Incoming::Joined
            } else {
                Incoming::Payload(line)
            };
        }
        return Incoming::Other;
    }
    match line {
        // "*3 $7 message $N channel $N payload": payload is 4 lines on.
        b"message" => {
            state.resp_skip = 4;
            state.resp_subscribe = false;
            Incoming::Other
        }
        // "*3 $9 subscribe $N channel :count": the count is 3 lines on.
        b"subscribe" => {
            state.resp_skip = 3;
            state.resp_subscribe = true;
            Incoming::Other
        }
        b"+PONG" => Incoming::Pong,
        _ if line.starts_with(b"-") => Incoming::Error(line),
        _ => Incoming::Other,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_dialect() {
        let mut state = ParseState::default();
        let dialect = Dialect::Line;
        assert_eq!(
            dialect.classify(b"MSG bench b3 1.2.3.x", &mut state),
            Incoming::Payload(b"1.2.3.x")
        );
        assert_eq!(
            dialect.classify(
                b"HIST 2026-12-04T10:00:00.000Z 7f MSG bench b3 1.2.3.x",
                &mut state
            ),
            Incoming::Payload(b"1.2.3.x")
        );
        assert_eq!(
            dialect.classify(b"OK joined bench 4", &mut state),
            Incoming::Joined
        );
        assert_eq!(
            dialect.classify(b"ERR flood x", &mut state),
            Incoming::Error(b"ERR flood x")
        );
        let mut out = Vec::new();
        dialect.message("bench", b"p", &mut out);
        assert_eq!(out, b"p\n");
    }

    #[test]
    fn irc_dialect() {
        let mut state = ParseState::default();
        let dialect = Dialect::Irc;
        assert_eq!(
            dialect.classify(b":b1!b1@host PRIVMSG #bench :1.2.3.x", &mut state),
            Incoming::Payload(b"1.2.3.x")
        );
        assert_eq!(
            dialect.classify(b":srv 001 b1 :Welcome", &mut state),
            Incoming::Registered
        );
        assert_eq!(
            dialect.classify(b"PING :srv", &mut state),
            Incoming::Reply(b"PONG :srv\r\n".to_vec())
        );
        assert!(matches!(
            dialect.classify(b":srv 433 * b1 :Nickname is already in use", &mut state),
            Incoming::Error(_)
        ));
    }

    #[test]
    fn resp_dialect() {
        let mut state = ParseState::default();
        let dialect = Dialect::Resp;
        let sub = [&b"*3"[..], b"$9", b"subscribe", b"$5", b"bench", b":1"];
        let got: Vec<_> = sub
            .iter()
            .map(|l| dialect.classify(l, &mut state))
            .collect();
        assert_eq!(got.last(), Some(&Incoming::Joined));
        let msg = [
            &b"*3"[..],
            b"$7",
            b"message",
            b"$5",
            b"bench",
            b"$7",
            b"1.2.3.x",
        ];
        let got: Vec<_> = msg
            .iter()
            .map(|l| dialect.classify(l, &mut state))
            .collect();
        assert_eq!(got.last(), Some(&Incoming::Payload(b"1.2.3.x")));
    }
}
