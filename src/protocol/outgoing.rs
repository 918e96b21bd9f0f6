//! Render once per protocol present: what an event costs to send to many people.
//!
//! A room line reaches every member, but its bytes depend only on the event and the
//! recipient's *protocol*, never on the recipient (IRC broadcasts name the room, not
//! the reader). So an [`Outgoing`] holds the event plus one lazily rendered byte string
//! per protocol: the first recipient that speaks IRC renders the IRC form, every later
//! one (on any shard) clones the `Arc`, and a protocol nobody in the room speaks is
//! never rendered at all. Fan-out then costs one reference-count increment per member.
//!
//! Replies to one connection (numerics, private messages, which IRC addresses to the
//! reader's nick) are rendered for that one recipient by [`render_for`].

use std::sync::{Arc, OnceLock};

use super::{Event, irc, render};

/// The wire protocol a connection speaks (decided by the listener that accepted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// miochat's line protocol.
    Line,
    /// IRC.
    Irc,
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
}

impl Outgoing {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Outgoing {
            event,
            line: OnceLock::new(),
            irc: OnceLock::new(),
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
        }
    }
}

/// `event` for one recipient who speaks `protocol` and is called `me` (IRC addresses
/// replies to the reader's nick; `server` is the IRC server name).
pub fn render_for(protocol: Protocol, event: &Event, server: &str, me: &str) -> Arc<[u8]> {
    match protocol {
        Protocol::Line => render::line(event),
        Protocol::Irc => Arc::from(irc::reply(event, server, me).into_bytes()),
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
    }
}
