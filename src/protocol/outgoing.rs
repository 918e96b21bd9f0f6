//! Render once per protocol present: what an event costs to send to many people.
//!
//! A room line reaches every member, but its bytes depend only on the event and the
//! recipient's *protocol*, never on the recipient (IRC broadcasts name the room, not
//! the reader). So an [`Outgoing`] holds the event plus one lazily rendered byte string
//! per protocol: the first recipient that speaks IRC renders the IRC form, every later
//! one (on any shard) clones the `Arc`, and a protocol nobody in the room speaks is
//! never rendered at all. Fan-out then costs one reference-count increment per member.
//!
//! WebSocket shows the idea at its best: a server frame is never masked, so the frame
//! around a line is the same bytes for every browser. A WebSocket rendering is the
//! plain rendering (itself rendered once) cut into one frame per line, also once.
//!
//! Replies to one connection (numerics, private messages, which IRC addresses to the
//! reader's nick) are rendered for that one recipient by [`render_for`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Event, irc, render, timestamp, websocket};

/// The wire protocol a connection speaks (decided by the listener that accepted it,
/// and for the web listener by the WebSocket upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// miochat's line protocol.
    Line,
    /// IRC.
    Irc,
    /// The line protocol over WebSocket, one line per text frame.
    WebLine,
    /// IRC over WebSocket (`text.ircv3.net`), one IRC line per text frame.
    WebIrc,
    /// IRC over WebSocket (`binary.ircv3.net`), one IRC line per binary frame.
    WebIrcBinary,
    /// An HTTP request not (yet) upgraded: the chat never sees one.
    Http,
}

impl Protocol {
    /// Number of protocols (size of per-protocol tables).
    pub const COUNT: usize = 6;
    /// Every protocol, in table order.
    pub const ALL: [Protocol; Self::COUNT] = [
        Protocol::Line,
        Protocol::Irc,
        Protocol::WebLine,
        Protocol::WebIrc,
        Protocol::WebIrcBinary,
        Protocol::Http,
    ];

    /// Position in per-protocol tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the IRC dialect, over TCP or WebSocket.
    pub fn speaks_irc(self) -> bool {
        matches!(
            self,
            Protocol::Irc | Protocol::WebIrc | Protocol::WebIrcBinary
        )
    }

    /// True when lines travel in WebSocket frames.
    pub fn is_websocket(self) -> bool {
        matches!(
            self,
            Protocol::WebLine | Protocol::WebIrc | Protocol::WebIrcBinary
        )
    }

    /// The same dialect over plain TCP (what is framed for a WebSocket).
    pub fn base(self) -> Protocol {
        if self.speaks_irc() {
            Protocol::Irc
        } else {
            Protocol::Line
        }
    }

    /// Label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Line => "line",
            Protocol::Irc => "irc",
            Protocol::WebLine => "ws_line",
            Protocol::WebIrc => "ws_irc",
            Protocol::WebIrcBinary => "ws_irc_binary",
            Protocol::Http => "http",
        }
    }

    /// Wraps a plain rendering (lines made for this one connection) in this
    /// protocol's frames; unchanged off WebSocket.
    pub fn frame(self, plain: &Arc<[u8]>) -> Arc<[u8]> {
        match self {
            Protocol::WebLine | Protocol::WebIrc => websocket::frame_lines(plain, false),
            Protocol::WebIrcBinary => websocket::frame_lines(plain, true),
            _ => Arc::clone(plain),
        }
    }
}

/// The bytes a room event can take: one per (protocol, capability set) that changes
/// the bytes. Of the IRCv3 capabilities only `server-time` (a `time=` tag) and
/// `message-tags` (the sender's client-only tags) do; `echo-message`, `away-notify`
/// and the rest change *who* gets a line, never its bytes, so five renderings cover
/// every recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// The line protocol.
    Line,
    /// IRC without tags.
    Irc,
    /// IRC with the `server-time` tag.
    IrcTimed,
    /// IRC with the sender's client-only tags (`message-tags`).
    IrcTagged,
    /// IRC with client-only tags and `server-time`.
    IrcTaggedTimed,
}

impl Flavour {
    /// Number of flavours (size of per-flavour tables).
    pub const COUNT: usize = 5;
}

/// An event on its way to several recipients, rendered at most once per flavour
/// (and not at all for a flavour none of the recipients needs).
#[derive(Debug)]
pub struct Outgoing {
    /// What happened.
    pub event: Event,
    /// When it was made (ms since the Unix epoch): the `server-time` of every copy.
    pub at_ms: u64,
    /// One user's quit, nick change or away change is one event per shared room;
    /// an IRC reader must see it once. Every copy of one such change carries the
    /// same number here, and a reader skips a number it has just seen.
    pub once: Option<u64>,
    /// Line readers get nothing for this event: the home shard folded it into a
    /// join/quit summary that follows.
    line_quiet: AtomicBool,
    /// IRC readers get nothing for this event: it is a held join or quit released
    /// for line readers alone (IRC readers had it at once).
    irc_quiet: AtomicBool,
    /// The line-protocol bytes, rendered by the first shard that needs them.
    line: OnceLock<Arc<[u8]>>,
    /// The IRC bytes, likewise.
    irc: OnceLock<Arc<[u8]>>,
    /// The WebSocket frames, by WebSocket protocol (line, IRC text, IRC binary) and
    /// flavour, likewise: a frame is the same bytes for every browser that reads it.
    web: [[OnceLock<Arc<[u8]>>; Flavour::COUNT]; 3],
    /// The IRC bytes with a `server-time` tag, likewise.
    irc_timed: OnceLock<Arc<[u8]>>,
    /// The sender's client-only tags (IRCv3 message-tags), `;`-separated as sent.
    pub client_tags: Option<Box<str>>,
    /// The IRC bytes with the client tags, likewise.
    irc_tagged: OnceLock<Arc<[u8]>>,
    /// The IRC bytes with the client tags and `server-time`, likewise.
    irc_tagged_timed: OnceLock<Arc<[u8]>>,
    /// The message id the room's home shard gave a line (0: none), set before the
    /// first rendering; readers with `message-tags` see it as `msgid=`.
    msgid: AtomicU64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Outgoing {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Self::unshared(event, None))
    }

    /// Wraps `event`, one of several copies of one user's change (see `once`).
    pub fn once(event: Event, once: u64) -> Arc<Self> {
        Arc::new(Self::unshared(event, Some(once)))
    }

    /// Wraps `event`, sent with the client-only tags `tags` (IRCv3 message-tags).
    pub fn tagged(event: Event, tags: Option<&str>) -> Arc<Self> {
        let mut outgoing = Self::unshared(event, None);
        outgoing.client_tags = tags.filter(|t| !t.is_empty()).map(Into::into);
        Arc::new(outgoing)
    }

    fn unshared(event: Event, once: Option<u64>) -> Self {
        Outgoing {
            event,
            at_ms: now_ms(),
            once,
            line_quiet: AtomicBool::new(false),
            irc_quiet: AtomicBool::new(false),
            line: OnceLock::new(),
            irc: OnceLock::new(),
            irc_timed: OnceLock::new(),
            client_tags: None,
            irc_tagged: OnceLock::new(),
            irc_tagged_timed: OnceLock::new(),
            web: Default::default(),
            msgid: AtomicU64::new(0),
        }
    }

    /// Gives a room line its message id (on its home shard, before any rendering).
    pub fn set_msgid(&self, id: u64) {
        self.msgid.store(id, Ordering::Relaxed);
    }

    /// The message id, if the line has one.
    pub fn msgid(&self) -> Option<u64> {
        Some(self.msgid.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// The tags a reader with `message-tags` gets: the client's, then `msgid=`.
    fn message_tags(&self) -> Option<String> {
        let id = self
            .msgid()
            .map(|id| format!("msgid={}", super::msgid_text(id)));
        match (&self.client_tags, id) {
            (Some(tags), Some(id)) => Some(format!("{tags};{id}")),
            (Some(tags), None) => Some(tags.to_string()),
            (None, id) => id,
        }
    }

    /// Line readers will get a summary instead of this event.
    pub fn quiet_for_line(&self) {
        self.line_quiet.store(true, Ordering::Relaxed);
    }

    /// IRC readers will not get this event (line readers only).
    pub fn quiet_for_irc(&self) {
        self.irc_quiet.store(true, Ordering::Relaxed);
    }

    /// True if readers of `flavour` get nothing for this event (a summarised join
    /// for line readers; a summary, which only line readers get, for IRC ones).
    pub fn is_silent_for(&self, flavour: Flavour) -> bool {
        match flavour {
            Flavour::Line => {
                self.line_quiet.load(Ordering::Relaxed) || self.bytes(Flavour::Line).is_empty()
            }
            Flavour::Irc | Flavour::IrcTimed | Flavour::IrcTagged | Flavour::IrcTaggedTimed => {
                self.irc_quiet.load(Ordering::Relaxed) || self.bytes(Flavour::Irc).is_empty()
            }
        }
    }

    /// The rendering for `flavour`, computed once and then shared. Only for events
    /// whose IRC form does not depend on the recipient (room events).
    pub fn bytes(&self, flavour: Flavour) -> &Arc<[u8]> {
        match flavour {
            Flavour::Line => self.line.get_or_init(|| render::line(&self.event)),
            Flavour::Irc => self.irc.get_or_init(|| {
                let line = irc::broadcast(&self.event);
                Arc::from(line.unwrap_or_default().into_bytes())
            }),
            Flavour::IrcTimed => self.irc_timed.get_or_init(|| {
                let plain = self.bytes(Flavour::Irc);
                tag_lines(plain, &timestamp(self.at_ms))
            }),
            Flavour::IrcTagged => self.irc_tagged.get_or_init(|| {
                let plain = self.bytes(Flavour::Irc);
                match self.message_tags() {
                    Some(tags) => prefix_tags(plain, &tags),
                    None => Arc::clone(plain),
                }
            }),
            Flavour::IrcTaggedTimed => self.irc_tagged_timed.get_or_init(|| {
                let plain = self.bytes(Flavour::Irc);
                let time = format!("time={}", timestamp(self.at_ms));
                match self.message_tags() {
                    Some(tags) => prefix_tags(plain, &format!("{tags};{time}")),
                    None => prefix_tags(plain, &time),
                }
            }),
        }
    }

    /// What a reader of `flavour` speaking `protocol` gets: the flavour's rendering,
    /// in WebSocket frames for a browser (framed once per event, protocol and flavour).
    pub fn bytes_for(&self, protocol: Protocol, flavour: Flavour) -> &Arc<[u8]> {
        let slot = match protocol {
            Protocol::WebLine => 0,
            Protocol::WebIrc => 1,
            Protocol::WebIrcBinary => 2,
            _ => return self.bytes(flavour),
        };
        self.web[slot][flavour as usize].get_or_init(|| protocol.frame(self.bytes(flavour)))
    }
}

/// `@time=AT ` before every line of `lines` (IRCv3 `server-time`).
pub fn tag_lines(lines: &[u8], at: &str) -> Arc<[u8]> {
    prefix_tags(lines, &format!("time={at}"))
}

/// `@TAGS ` before every line of `lines` (IRCv3 message tags, `;`-separated).
pub fn prefix_tags(lines: &[u8], tags: &str) -> Arc<[u8]> {
    let text = String::from_utf8_lossy(lines);
    let mut out = String::with_capacity(text.len() + tags.len() + 2);
    for line in text.split_inclusive('\n') {
        out.push('@');
        out.push_str(tags);
        out.push(' ');
        out.push_str(line);
    }
    Arc::from(out.into_bytes())
}

/// `event` for one recipient who speaks `protocol` and is called `me` (IRC addresses
/// replies to the reader's nick; `server` is the IRC server name).
pub fn render_for(protocol: Protocol, event: &Event, server: &str, me: &str) -> Arc<[u8]> {
    match protocol.base() {
        Protocol::Irc => protocol.frame(&Arc::from(irc::reply(event, server, me).into_bytes())),
        _ => protocol.frame(&render::line(event)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::{Nick, RoomName};

    #[test]
    fn each_protocol_is_rendered_once_and_shared() {
        let out = Outgoing::new(Event::Message {
            room: RoomName::parse("rust").unwrap(),
            from: Nick::parse("alice").unwrap(),
            text: "hi".into(),
        });
        let first = Arc::clone(out.bytes(Flavour::Irc));
        assert!(Arc::ptr_eq(&first, out.bytes(Flavour::Irc)));
        assert_eq!(&out.bytes(Flavour::Line)[..], b"MSG rust alice hi\n");
        assert_eq!(&first[..], b":alice!alice@miochat PRIVMSG #rust :hi\r\n");
        let frame = Arc::clone(out.bytes_for(Protocol::WebIrc, Flavour::Irc));
        assert!(Arc::ptr_eq(
            &frame,
            out.bytes_for(Protocol::WebIrc, Flavour::Irc)
        ));
        assert_eq!(
            &frame[..],
            b"\x81\x26:alice!alice@miochat PRIVMSG #rust :hi"
        );
        assert_eq!(
            &out.bytes_for(Protocol::WebLine, Flavour::Line)[..],
            b"\x81\x11MSG rust alice hi"
        );
        let timed = String::from_utf8_lossy(out.bytes(Flavour::IrcTimed)).into_owned();
        assert!(timed.starts_with("@time=20"), "{timed}");
        assert!(timed.ends_with("Z :alice!alice@miochat PRIVMSG #rust :hi\r\n"));
    }
}
