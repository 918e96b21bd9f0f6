//! The events the server builds from one parsed client line, per protocol.
//!
//! The server turns a line into chat state changes and [`Event`]s inside the shard,
//! which is not a pure function; this module restates *which* client text ends up in
//! *which* event, and *who* can receive it, following the server's rules: IRC message
//! text goes through `clean_text`; IRC `TOPIC`, `AWAY` and `QUIT` text is taken as
//! sent; a topic is at most `MAX_TOPIC_LEN` bytes; a reply goes only to the sender's
//! protocol, while room events, private messages and away notes reach users of both.
//! Every event that can carry client text is built, so the renderers see the worst
//! the client can send.

use miochat::protocol::irc::{self, Message};
use miochat::protocol::{Command, Event, MAX_TOPIC_LEN, Nick, ProtocolError, RoomInfo, RoomName};

/// Which protocols' users can receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Users of both protocols (room events, private messages).
    Everyone,
    /// Only IRC users.
    Irc,
    /// Only line-protocol users.
    Line,
}

/// Events with the protocols that can receive them.
pub type Built = Vec<(Event, Audience)>;

/// The sender used when the input names none: the longest nick there can be.
pub fn longest_nick() -> Nick {
    Nick::parse(&"n".repeat(miochat::protocol::names::MAX_NICK_LEN))
        .expect("BUG: a nick of MAX_NICK_LEN letters is valid")
}

/// Events about room `room` that carry `text` (a message, action or notice).
fn room_text(out: &mut Built, room: &RoomName, from: &Nick, text: &str) {
    let (room, from, text): (RoomName, Nick, Box<str>) = (room.clone(), from.clone(), text.into());
    for event in [
        Event::Message {
            room: room.clone(),
            from: from.clone(),
            text: text.clone(),
        },
        Event::Action {
            room: room.clone(),
            from: from.clone(),
            text: text.clone(),
        },
        Event::RoomNotice { room, from, text },
    ] {
        out.push((event, Audience::Everyone));
    }
}

/// Events that carry a topic; anyone can ask for a topic later.
fn topic_events(out: &mut Built, room: &RoomName, nick: &Nick, topic: &str) {
    let topic: Box<str> = topic.into();
    for event in [
        Event::TopicChanged {
            room: room.clone(),
            nick: nick.clone(),
            topic: topic.clone(),
        },
        Event::Topic {
            room: room.clone(),
            topic: Some(topic.clone()),
        },
        Event::YouJoined {
            room: room.clone(),
            members: 1,
            topic: Some(topic.clone()),
            nicks: vec![nick.clone()],
        },
        Event::Rooms(vec![RoomInfo {
            room: room.clone(),
            members: 1,
            topic: Some(topic),
        }]),
    ] {
        out.push((event, Audience::Everyone));
    }
}

/// Events about membership of `room`; the replies go to the sender's protocol.
fn room_events(out: &mut Built, room: RoomName, nick: &Nick, sender: Audience) {
    let nicks = vec![nick.clone(); 45];
    out.push((
        Event::Joined {
            room: room.clone(),
            nick: nick.clone(),
        },
        Audience::Everyone,
    ));
    out.push((
        Event::Left {
            room: room.clone(),
            nick: nick.clone(),
        },
        Audience::Everyone,
    ));
    for reply in [
        Event::YouLeft { room: room.clone() },
        Event::Names {
            room: room.clone(),
            nicks: nicks.clone(),
        },
        Event::Who {
            room: room.clone(),
            nicks: nicks.clone(),
            more: 3,
        },
        Event::YouJoined {
            room,
            members: 45,
            topic: None,
            nicks,
        },
    ] {
        out.push((reply, sender));
    }
}

/// Rooms named in a comma list, with the `#` IRC requires.
fn channels(list: &str) -> impl Iterator<Item = RoomName> + '_ {
    list.split(',')
        .filter(|name| name.starts_with('#'))
        .filter_map(|name| RoomName::parse(name).ok())
}

/// `PRIVMSG`/`NOTICE`: cleaned text to rooms and nicks.
fn irc_message(out: &mut Built, msg: &Message<'_>, from: &Nick) {
    let (Some(targets), Some(raw)) = (msg.param(0), msg.param(1)) else {
        return;
    };
    let (text, _action) = irc::clean_text(raw);
    let notice = msg.command == "NOTICE";
    for target in targets.split(',').filter(|t| !t.is_empty()) {
        if target.starts_with('#') {
            match RoomName::parse(target) {
                Ok(room) => room_text(out, &room, from, &text),
                Err(error) => out.push((Event::Error(error), Audience::Irc)),
            }
        } else {
            let private = Event::Private {
                from: from.clone(),
                text: (*text).into(),
                notice,
            };
            out.push((private, Audience::Everyone));
            lookups(out, target, from, Audience::Irc);
        }
    }
}

/// Every event the server may build from IRC message `msg` sent by `from`.
pub fn from_irc(msg: &Message<'_>, from: &Nick) -> Built {
    let mut out = Vec::new();
    let first = msg.param(0);
    match msg.command.as_str() {
        "PRIVMSG" | "NOTICE" => irc_message(&mut out, msg, from),
        "TOPIC" => {
            let Some(room) = first.and_then(|list| channels(list).next()) else {
                return out;
            };
            match msg.params.get(1) {
                Some(topic) if topic.len() > MAX_TOPIC_LEN => {
                    out.push((Event::Error(ProtocolError::TopicTooLong), Audience::Irc));
                }
                Some(topic) => topic_events(&mut out, &room, from, topic),
                None => out.push((Event::Topic { room, topic: None }, Audience::Irc)),
            }
        }
        "QUIT" => quit_events(&mut out, from, first.unwrap_or("quit"), Audience::Irc),
        "AWAY" => {
            if let Some(text) = first {
                let whois = Event::Whois {
                    nick: from.clone(),
                    away: Some(text.into()),
                };
                out.push((whois, Audience::Irc));
                let note = Event::IsAway {
                    nick: from.clone(),
                    text: text.into(),
                };
                out.push((note, Audience::Everyone));
            }
            out.push((Event::Away(first.is_some()), Audience::Irc));
        }
        "NICK" => nick_events(&mut out, from, first.unwrap_or(""), Audience::Irc),
        "JOIN" | "PART" | "NAMES" | "WHO" => {
            for room in first.into_iter().flat_map(channels) {
                room_events(&mut out, room, from, Audience::Irc);
            }
        }
        "WHOIS" => lookups(
            &mut out,
            msg.params.last().copied().unwrap_or(""),
            from,
            Audience::Irc,
        ),
        "ISON" => {
            let words = msg.params.iter().flat_map(|p| p.split(' '));
            let online = words.filter_map(|n| Nick::parse(n).ok()).collect();
            out.push((Event::Ison(online), Audience::Irc));
        }
        "USERHOST" => {
            // The server looks up at most five parameters.
            let nicks = msg
                .params
                .iter()
                .take(5)
                .filter_map(|n| Nick::parse(n).ok());
            let found = nicks.map(|nick| (nick, true)).collect();
            out.push((Event::Userhost(found), Audience::Irc));
        }
        _ => {}
    }
    out
}

/// The announcement of a quit with `reason`, and the goodbye to the sender.
fn quit_events(out: &mut Built, nick: &Nick, reason: &str, sender: Audience) {
    let quit = Event::Quit {
        room: RoomName::lobby(),
        nick: nick.clone(),
        reason: reason.into(),
    };
    out.push((quit, Audience::Everyone));
    out.push((Event::Bye, sender));
}

/// A nick change to `wanted`, or the error for a bad nick.
fn nick_events(out: &mut Built, old: &Nick, wanted: &str, sender: Audience) {
    match Nick::parse(wanted) {
        Ok(new) => {
            let changed = Event::NickChanged {
                room: RoomName::lobby(),
                old: old.clone(),
                new: new.clone(),
            };
            out.push((changed, Audience::Everyone));
            out.push((
                Event::NickIs {
                    old: old.clone(),
                    nick: new.clone(),
                },
                sender,
            ));
            out.push((Event::Error(ProtocolError::NickTaken(new)), sender));
        }
        Err(error) => out.push((Event::Error(error), sender)),
    }
}

/// The answers to looking up `target`: found (as `found`, for WHOIS) or not found.
fn lookups(out: &mut Built, target: &str, found: &Nick, sender: Audience) {
    let whois = Event::Whois {
        nick: found.clone(),
        away: None,
    };
    out.push((whois, Audience::Irc));
    out.push((
        Event::Error(ProtocolError::NoSuchNick(target.into())),
        sender,
    ));
}

/// Every event the relay may build from line-protocol command `command` sent by
/// `from`. Line users' text is as long as `--max-line` allows, so the IRC renderers
/// must cut it wherever an IRC user can receive it.
pub fn from_line(command: &Command<'_>, from: &Nick) -> Built {
    let lobby = RoomName::lobby();
    let sender = Audience::Line;
    let mut out = Vec::new();
    match command {
        Command::Say(text) | Command::Me(text) => room_text(&mut out, &lobby, from, text),
        Command::Msg { to, text } => {
            let private = Event::Private {
                from: from.clone(),
                text: (*text).into(),
                notice: false,
            };
            out.push((private, Audience::Everyone));
            out.push((
                Event::Error(ProtocolError::NoSuchNick((*to).into())),
                sender,
            ));
        }
        Command::Nick(nick) => nick_events(&mut out, from, nick.as_str(), sender),
        Command::Join(room) => room_events(&mut out, room.clone(), from, sender),
        Command::Leave(room) | Command::Who(room) => {
            room_events(&mut out, room.clone().unwrap_or(lobby), from, sender);
        }
        Command::Topic(Some(topic)) => topic_events(&mut out, &lobby, from, topic),
        Command::Topic(None) => out.push((
            Event::Topic {
                room: lobby,
                topic: None,
            },
            sender,
        )),
        Command::Ping(token) => out.push((Event::Pong(token.map(Into::into)), sender)),
        Command::Quit(reason) => quit_events(&mut out, from, reason.unwrap_or("quit"), sender),
        Command::Rooms | Command::Stats | Command::Help => out.push((Event::Help, sender)),
        _ => {}
    }
    out
}
