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

use std::sync::{Arc, OnceLock};

use super::{Event, irc, render, websocket};

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

/// An event on its way to several recipients, rendered at most once per protocol
/// (and not at all for a protocol none of the recipients speaks).
#[derive(Debug)]
pub struct Outgoing {
    /// What happened.
    pub event: Event,
    /// The line-protocol bytes, rendered by the first shard that needs them.
    line: OnceLock<Arc<[u8]>>,
    /// The IRC bytes, likewise.
    irc: OnceLock<Arc<[u8]>>,
    /// The WebSocket frames, by protocol (line, IRC text, IRC binary), likewise.
    web: [OnceLock<Arc<[u8]>>; 3],
}

impl Outgoing {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Outgoing {
            event,
            line: OnceLock::new(),
            irc: OnceLock::new(),
            web: Default::default(),
        })
    }

    /// The rendering for `protocol`, computed once and then shared. Only for events
    /// whose IRC form does not depend on the recipient (room events).
    pub fn bytes(&self, protocol: Protocol) -> &Arc<[u8]> {
        match protocol {
            Protocol::Line => self.line.get_or_init(|| render::line(&self.event)),
            Protocol::Irc => self.irc.get_or_init(|| {
                let line = irc::broadcast(&self.event);
                debug_assert!(line.is_some(), "BUG: {:?} has no room form", self.event);
                Arc::from(line.unwrap_or_default().into_bytes())
            }),
            Protocol::WebLine => self.web[0].get_or_init(|| self.framed(protocol)),
            Protocol::WebIrc => self.web[1].get_or_init(|| self.framed(protocol)),
            Protocol::WebIrcBinary => self.web[2].get_or_init(|| self.framed(protocol)),
            Protocol::Http => {
                debug_assert!(false, "BUG: an HTTP connection is in no room");
                self.bytes(Protocol::Line)
            }
        }
    }

    /// Frames the plain rendering (rendering it first if nobody has yet).
    fn framed(&self, protocol: Protocol) -> Arc<[u8]> {
        protocol.frame(self.bytes(protocol.base()))
    }
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
        let first = Arc::clone(out.bytes(Protocol::Irc));
        assert!(Arc::ptr_eq(&first, out.bytes(Protocol::Irc)));
        assert_eq!(&out.bytes(Protocol::Line)[..], b"MSG rust alice hi\n");
        assert_eq!(&first[..], b":alice!alice@miochat PRIVMSG #rust :hi\r\n");
        let frame = Arc::clone(out.bytes(Protocol::WebIrc));
        assert!(Arc::ptr_eq(&frame, out.bytes(Protocol::WebIrc)));
        assert_eq!(
            &frame[..],
            b"\x81\x26:alice!alice@miochat PRIVMSG #rust :hi"
        );
        assert_eq!(
            &out.bytes(Protocol::WebLine)[..],
            b"\x81\x11MSG rust alice hi"
        );
    }
}
