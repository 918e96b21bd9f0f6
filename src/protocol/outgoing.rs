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
//! reader's nick) are rendered for that one recipient by [`render_plain`], then framed
//! by [`Protocol::frame`], the one function that makes bytes a socket may take.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::identity::UserHost;
use super::websocket::{self, Framing, Wire};
use super::{Event, irc, raw, render, timestamp};

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

    /// How this protocol's bytes are framed on the socket.
    pub fn framing(self) -> Framing {
        match self {
            Protocol::WebLine | Protocol::WebIrc => Framing::Text,
            Protocol::WebIrcBinary => Framing::Binary,
            Protocol::Line | Protocol::Irc | Protocol::Http => Framing::Raw,
        }
    }

    /// The one framing function: a plain rendering (whole lines) made ready for a
    /// socket speaking this protocol, one WebSocket frame per line, or the bytes as
    /// they are (shared, not copied) off WebSocket. Every byte a connection writes
    /// is a [`Wire`] made here or a WebSocket control frame.
    pub fn frame(self, plain: &Arc<[u8]>) -> Wire {
        match self.framing() {
            // A text frame must be UTF-8: IRC bytes that are not show as U+FFFD.
            Framing::Text => websocket::frame_lines(&raw::lossy(plain), false),
            Framing::Binary => websocket::frame_lines(plain, true),
            Framing::Raw => Wire::raw(Arc::clone(plain)),
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

/// Frames of one event for browsers, by WebSocket protocol and flavour.
type WebFrames = [[OnceLock<Wire>; Flavour::COUNT]; 3];

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
    /// Made when the first browser reads the event: most events reach none, and
    /// inline, the 15 slots were more than half of every event's 912 bytes.
    web: OnceLock<Box<WebFrames>>,
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
    /// What only some IRC readers get (`account-tag`, `extended-join`); `None` for
    /// most events, so they pay one pointer for it.
    pub extras: Option<Box<Extras>>,
    /// The `user@host` of the event's source (`Event::actor`), set once before the
    /// first rendering by the shard that made the event; unset for an event from
    /// another node, whose source is shown with the stand-in (see `identity.rs`).
    source: OnceLock<UserHost>,
}

/// The sender's account (IRCv3 `account-tag`: `@account=NAME` on its lines) and, for
/// a JOIN, the joiner's real name (`extended-join`: `JOIN #room ACCOUNT :REALNAME`),
/// with their renderings, each made once per flavour for every reader who wants it.
#[derive(Debug, Default)]
pub struct Extras {
    /// The account the sender is logged in to, if any.
    pub account: Option<super::Nick>,
    /// The joiner's real name, for a JOIN.
    pub realname: Option<Arc<str>>,
    accounted: [OnceLock<Arc<[u8]>>; Flavour::COUNT],
    extended: [OnceLock<Arc<[u8]>>; Flavour::COUNT],
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

    /// Wraps `event` from another node, with the message id and time its origin gave
    /// it (so a line has one id on every node); `once` as for [`Self::once`].
    pub fn from_node(event: Event, once: Option<u64>, msgid: u64, at_ms: u64) -> Arc<Self> {
        let mut outgoing = Self::unshared(event, once);
        outgoing.at_ms = at_ms;
        outgoing.msgid = AtomicU64::new(msgid);
        Arc::new(outgoing)
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
            web: OnceLock::new(),
            msgid: AtomicU64::new(0),
            extras: None,
            source: OnceLock::new(),
        }
    }

    /// Gives the event its source's `user@host` (before any rendering; a second
    /// call changes nothing).
    pub fn set_source(&self, userhost: UserHost) {
        let _ = self.source.set(userhost);
    }

    /// The source's `user@host`, if known.
    pub fn source(&self) -> Option<&UserHost> {
        self.source.get()
    }

    /// Wraps `event` with the sender's client tags, account and (for a JOIN) real
    /// name: readers with `account-tag` and `extended-join` get them.
    pub fn with_extras(
        event: Event,
        tags: Option<&str>,
        account: Option<super::Nick>,
        realname: Option<Arc<str>>,
    ) -> Arc<Self> {
        let mut outgoing = Self::unshared(event, None);
        outgoing.client_tags = tags.filter(|t| !t.is_empty()).map(Into::into);
        if account.is_some() || realname.is_some() {
            outgoing.extras = Some(Box::new(Extras {
                account,
                realname,
                ..Extras::default()
            }));
        }
        Arc::new(outgoing)
    }

    /// What one IRC reader gets when it enabled `account-tag` or `extended-join`:
    /// the flavour's bytes, or their variant with the sender's account tag and the
    /// extended JOIN, rendered once per flavour (framed per reader on WebSocket).
    pub fn bytes_for_reader(
        &self,
        protocol: Protocol,
        flavour: Flavour,
        account_tag: bool,
        extended_join: bool,
    ) -> Wire {
        let Some(extras) = self.extras.as_deref() else {
            return self.bytes_for(protocol, flavour);
        };
        let extended = (extended_join && matches!(self.event, Event::Joined { .. }))
            .then_some(extras.realname.as_deref())
            .flatten();
        let account = extras.account.as_ref().filter(|_| account_tag);
        let slot = flavour as usize;
        let join = |realname: &str| {
            let account = extras.account.as_ref();
            let line = irc::extended_join(&self.event, account, realname, self.source());
            self.flavoured(&Arc::from(raw::to_wire(line)), flavour)
        };
        let bytes = match (extended, account) {
            (None, None) => return self.bytes_for(protocol, flavour),
            (Some(realname), None) => {
                Arc::clone(extras.extended[slot].get_or_init(|| join(realname)))
            }
            (None, Some(account)) => Arc::clone(
                extras.accounted[slot]
                    .get_or_init(|| account_tag_lines(self.bytes(flavour), account)),
            ),
            (Some(realname), Some(account)) => account_tag_lines(&join(realname), account),
        };
        protocol.frame(&bytes)
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
                let line = irc::broadcast(&self.event, self.source());
                Arc::from(raw::to_wire(line.unwrap_or_default()))
            }),
            Flavour::IrcTimed => self
                .irc_timed
                .get_or_init(|| self.flavoured(self.bytes(Flavour::Irc), flavour)),
            Flavour::IrcTagged => self
                .irc_tagged
                .get_or_init(|| self.flavoured(self.bytes(Flavour::Irc), flavour)),
            Flavour::IrcTaggedTimed => self
                .irc_tagged_timed
                .get_or_init(|| self.flavoured(self.bytes(Flavour::Irc), flavour)),
        }
    }

    /// The IRC lines `plain` with the tags of `flavour`: `time=` for `server-time`,
    /// the client's tags and `msgid=` for `message-tags`.
    fn flavoured(&self, plain: &Arc<[u8]>, flavour: Flavour) -> Arc<[u8]> {
        let time = || format!("time={}", timestamp(self.at_ms));
        match (flavour, self.message_tags()) {
            (Flavour::Line | Flavour::Irc, _) | (Flavour::IrcTagged, None) => Arc::clone(plain),
            (Flavour::IrcTimed, _) | (Flavour::IrcTaggedTimed, None) => prefix_tags(plain, &time()),
            (Flavour::IrcTagged, Some(tags)) => prefix_tags(plain, &tags),
            (Flavour::IrcTaggedTimed, Some(tags)) => {
                prefix_tags(plain, &format!("{tags};{}", time()))
            }
        }
    }

    /// What a reader of `flavour` speaking `protocol` gets: the flavour's rendering,
    /// in WebSocket frames for a browser (framed once per event, protocol and flavour).
    /// One `Arc` clone, as fan-out needs.
    pub fn bytes_for(&self, protocol: Protocol, flavour: Flavour) -> Wire {
        let slot = match protocol {
            Protocol::WebLine => 0,
            Protocol::WebIrc => 1,
            Protocol::WebIrcBinary => 2,
            _ => return protocol.frame(self.bytes(flavour)),
        };
        let framed = &self.web.get_or_init(Box::default)[slot][flavour as usize];
        framed
            .get_or_init(|| protocol.frame(self.bytes(flavour)))
            .clone()
    }
}

/// `@time=AT ` before every line of `lines` (IRCv3 `server-time`).
pub fn tag_lines(lines: &[u8], at: &str) -> Arc<[u8]> {
    prefix_tags(lines, &format!("time={at}"))
}

/// `account=NAME` added to the tags of every line of `lines` (IRCv3 `account-tag`):
/// first in a line's tags, or as its only tag. Bytes in, bytes out: an IRC line may
/// carry bytes that are not UTF-8 (`raw.rs`).
pub fn account_tag_lines(lines: &[u8], account: &super::Nick) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(lines.len() + account.as_str().len() + 12);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b"@") {
            Some(tagged) => {
                out.extend_from_slice(format!("@account={account};").as_bytes());
                out.extend_from_slice(tagged);
            }
            None => {
                out.extend_from_slice(format!("@account={account} ").as_bytes());
                out.extend_from_slice(line);
            }
        }
    }
    Arc::from(out)
}

/// `@TAGS ` before every line of `lines` (IRCv3 message tags, `;`-separated).
pub fn prefix_tags(lines: &[u8], tags: &str) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(lines.len() + tags.len() + 2);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        out.push(b'@');
        out.extend_from_slice(tags.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
    }
    Arc::from(out)
}

/// `event` for one recipient who speaks `protocol` (its dialect) and is called `me`
/// (IRC addresses replies to the reader's nick; `server` is the IRC server name):
/// plain lines, to be tagged if need be and then framed with [`Protocol::frame`].
pub fn render_plain(protocol: Protocol, event: &Event, server: &str, me: &str) -> Arc<[u8]> {
    match protocol.base() {
        Protocol::Irc => Arc::from(raw::to_wire(irc::reply(event, server, me))),
        _ => render::line(event),
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
        let frame = out.bytes_for(Protocol::WebIrc, Flavour::Irc);
        assert!(std::ptr::eq(
            frame.as_ptr(),
            out.bytes_for(Protocol::WebIrc, Flavour::Irc).as_ptr()
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
