//! The events the server builds from one parsed client line, per protocol.
//!
//! This module mirrors `src/server/commands/irc_session.rs` (and the relay behind it): the
//! server turns a line into chat state changes and [`Event`]s inside the shard, which
//! is not a pure function, so only the rules that decide *which* client text ends up
//! in *which* event, and *who* can receive it, are restated here, and nothing else:
//! - IRC message text goes through `clean_text`; IRC `TOPIC`, `QUIT` and `PART` text
//!   is taken as sent, `AWAY` text is cut to `MAX_AWAY_LEN` bytes, a `KICK` reason to
//!   `MAX_KICK_LEN`, a real name to 64; a topic is at most `MAX_TOPIC_LEN` bytes;
//! - a reply goes only to the sender's protocol, while room events, private messages
//!   and away notes reach users of both.
//!
//! Every event that can carry client text is built, with the longest names there can
//! be around it, so the renderers see the worst the client can send. When the
//! session code changes what it passes on, change this file with it.

use miochat::protocol::irc::{self, MAX_AWAY_LEN, Message};
use miochat::protocol::modes::{self, ModeKind, ModeRequest};
use miochat::protocol::names::{MAX_NICK_LEN, MAX_ROOM_LEN};
use miochat::protocol::{
    BanInfo, Command, Event, MAX_KICK_LEN, MAX_TOPIC_LEN, Member, Nick, ProtocolError, Role,
    RoomInfo, RoomName, WhoRow, WhoisInfo, WhowasEntry,
};

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

/// Longest real name the IRC session keeps, in bytes.
const MAX_REALNAME_LEN: usize = 64;

/// Members listed in NAMES, WHO and on join: enough for several 353 lines.
const LISTED: usize = 45;

/// The sender used when the input names none: the longest nick there can be.
pub fn longest_nick() -> Nick {
    Nick::parse(&"n".repeat(MAX_NICK_LEN)).expect("BUG: a nick of MAX_NICK_LEN letters is valid")
}

/// The longest room name there can be.
fn longest_room() -> RoomName {
    RoomName::parse(&"r".repeat(MAX_ROOM_LEN))
        .expect("BUG: a room of MAX_ROOM_LEN letters is valid")
}

/// `text` cut to at most `max` bytes at a character boundary, as the server cuts.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An operator (the longest prefix) called `nick` with real name `realname`.
fn member(nick: &Nick, realname: &str) -> Member {
    Member {
        nick: nick.clone(),
        role: Role::Operator,
        voiced: true,
        away: true,
        realname: realname.into(),
    }
}

/// The longest `user@host` a user can be shown with: a 9-character `USER` name and
/// a 63-character host.
pub fn longest_userhost() -> miochat::protocol::identity::UserHost {
    let host = "h".repeat(63);
    let user = "u".repeat(miochat::protocol::identity::USER_CHARS);
    miochat::protocol::identity::UserHost::new(&host).with_user(&user)
}

/// `WHOIS` of `nick`: a real name, an away text, and every room one may be in.
fn whois(nick: &Nick, realname: &str, away: Option<&str>) -> Event {
    let rooms = (0..irc::MAX_ROOMS).map(|_| (longest_room(), Role::Operator));
    Event::Whois(
        Box::new(WhoisInfo {
            nick: nick.clone(),
            realname: realname.into(),
            away: away.map(Into::into),
            rooms: rooms.collect(),
            idle_secs: u64::MAX,
            signon: u64::MAX,
            irc: true,
            account: Some(nick.clone()),
            node: Some("n".repeat(10).into()),
        }),
        Some(longest_userhost()),
    )
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
    let changed = Event::TopicChanged {
        room: room.clone(),
        nick: nick.clone(),
        topic: topic.clone(),
    };
    let shown = Event::Topic {
        room: room.clone(),
        topic: Some(topic.clone()),
        set_by: None,
    };
    let joined = Event::YouJoined {
        room: room.clone(),
        members: 1,
        topic: Some(topic.clone()),
        nicks: vec![member(nick, nick.as_str())],
        secret: false,
        joiner: None,
        topic_by: None,
    };
    let info = RoomInfo {
        room: room.clone(),
        members: usize::MAX,
        topic: Some(topic),
    };
    for event in [changed, shown, joined, Event::Rooms(vec![info])] {
        out.push((event, Audience::Everyone));
    }
}

/// Events about membership of `room`, with `reason` for leaving; the replies go to
/// the sender's protocol.
fn room_events(
    out: &mut Built,
    room: RoomName,
    nick: &Nick,
    reason: Option<&str>,
    sender: Audience,
) {
    let nicks = vec![member(nick, &"r".repeat(MAX_REALNAME_LEN)); LISTED];
    let (room2, nick2) = (room.clone(), nick.clone());
    let joined = Event::Joined {
        room: room2,
        nick: nick2,
    };
    out.push((joined, Audience::Everyone));
    let left = Event::Left {
        room: room.clone(),
        nick: nick.clone(),
        reason: reason.map(Into::into),
    };
    out.push((left, Audience::Everyone));
    let replies = [
        Event::YouLeft {
            room: room.clone(),
            reason: None,
        },
        Event::Names {
            room: room.clone(),
            nicks: nicks.clone(),
            secret: true,
        },
        Event::Who {
            room: room.clone(),
            rows: (nicks.iter().cloned())
                .map(|member| WhoRow {
                    room: Some(room.clone()),
                    member,
                    userhost: Some(longest_userhost()),
                })
                .collect(),
            more: usize::MAX,
        },
        Event::YouJoined {
            room,
            members: LISTED,
            topic: None,
            nicks,
            secret: true,
            joiner: None,
            topic_by: None,
        },
    ];
    out.extend(replies.into_iter().map(|reply| (reply, sender)));
}

/// Rooms named in a comma list, as the IRC session reads them.
fn channels(list: Option<&str>) -> impl Iterator<Item = RoomName> + '_ {
    list.unwrap_or("").split(',').filter_map(irc::channel)
}

/// `PRIVMSG`/`NOTICE`: cleaned text to rooms and nicks.
fn irc_message(out: &mut Built, msg: &Message<'_>, from: &Nick) {
    let Some(targets) = msg.param(0) else {
        return;
    };
    let (text, _action) = irc::clean_text(msg.param(1).unwrap_or(""));
    if text.trim().is_empty() {
        return;
    }
    for target in targets.split(',').filter(|t| !t.is_empty()) {
        match irc::channel(target) {
            Some(room) => room_text(out, &room, from, &text),
            None if target.starts_with('#') => {}
            None => private(
                out,
                target,
                from,
                &text,
                msg.command == "NOTICE",
                Audience::Irc,
            ),
        }
    }
}

/// A private message to `target`, and the answers when it is missing or away.
fn private(out: &mut Built, target: &str, from: &Nick, text: &str, notice: bool, sender: Audience) {
    let event = Event::Private {
        from: from.clone(),
        text: text.into(),
        notice,
    };
    out.push((event, Audience::Everyone));
    out.push((
        Event::Error(ProtocolError::NoSuchNick(target.into())),
        sender,
    ));
}

/// Every event the server may build from IRC message `msg` sent by `from`.
pub fn from_irc(msg: &Message<'_>, from: &Nick) -> Built {
    let mut out = Vec::new();
    let (first, second) = (msg.param(0), msg.param(1));
    let sender = Audience::Irc;
    match msg.command.as_str() {
        "PRIVMSG" | "NOTICE" => irc_message(&mut out, msg, from),
        "TOPIC" => {
            let Some(room) = channels(first).next() else {
                return out;
            };
            match msg.params.get(1) {
                Some(topic) if topic.len() > MAX_TOPIC_LEN => {
                    out.push((Event::Error(ProtocolError::TopicTooLong), sender));
                }
                Some(topic) => topic_events(&mut out, &room, from, topic),
                None => {
                    let set_by = None;
                    out.push((
                        Event::Topic {
                            room,
                            topic: None,
                            set_by,
                        },
                        sender,
                    ))
                }
            }
        }
        "JOIN" | "NAMES" | "WHO" | "PART" => {
            for room in channels(first) {
                room_events(&mut out, room, from, second, sender);
            }
        }
        "KICK" => {
            let reason = cut(msg.param(2).unwrap_or(from.as_str()), MAX_KICK_LEN);
            for room in channels(first) {
                kick_events(&mut out, room, from, second.unwrap_or(""), reason);
            }
        }
        "QUIT" => quit_events(&mut out, from, first.unwrap_or("quit"), sender),
        "AWAY" => {
            let text = first.map(|text| cut(text, MAX_AWAY_LEN));
            if let Some(text) = text {
                let note = Event::IsAway {
                    nick: from.clone(),
                    text: text.into(),
                };
                out.push((note, Audience::Everyone));
            }
            out.push((whois(from, from.as_str(), text), sender));
            out.push((Event::Away(text.is_some()), sender));
        }
        "USER" => {
            let realname = cut(msg.params.get(3).copied().unwrap_or(""), MAX_REALNAME_LEN);
            out.push((whois(from, realname, None), sender));
            let row = WhoRow {
                room: None,
                member: member(from, realname),
                userhost: Some(longest_userhost()),
            };
            let rows = vec![row; LISTED];
            out.push((
                Event::WhoMask {
                    mask: "*".into(),
                    rows,
                },
                sender,
            ));
        }
        "NICK" => nick_events(&mut out, from, first.unwrap_or(""), sender),
        "MODE" => {
            if let (Some(room), Some(modestring)) = (channels(first).next(), second) {
                let request = modes::parse(modestring, &msg.params[2..]);
                mode_events(&mut out, room, from, request, sender);
            }
        }
        _ => queries(&mut out, msg, from),
    }
    out
}

/// The IRC queries that echo what was asked: WHOIS, WHO by mask, WHOWAS, ISON,
/// USERHOST and INVITE.
fn queries(out: &mut Built, msg: &Message<'_>, from: &Nick) {
    let first = msg.param(0).unwrap_or("");
    let sender = Audience::Irc;
    match msg.command.as_str() {
        "WHOIS" => {
            let target = msg.params.last().copied().unwrap_or("");
            out.push((
                Event::Error(ProtocolError::NoSuchNick(target.into())),
                sender,
            ));
        }
        "WHO" if !first.starts_with('#') => {
            let row = WhoRow {
                room: Some(longest_room()),
                member: member(from, from.as_str()),
                userhost: Some(longest_userhost()),
            };
            let rows = vec![row; LISTED];
            out.push((
                Event::WhoMask {
                    mask: first.into(),
                    rows,
                },
                sender,
            ));
        }
        "WHOWAS" => {
            let entry = WhowasEntry {
                nick: from.clone(),
                realname: from.as_str().into(),
                userhost: longest_userhost(),
            };
            let entries = vec![entry; 3];
            out.push((
                Event::Whowas {
                    nick: first.into(),
                    entries,
                },
                sender,
            ));
            let none = Vec::new();
            out.push((
                Event::Whowas {
                    nick: first.into(),
                    entries: none,
                },
                sender,
            ));
        }
        "ISON" => {
            let words = msg.params.iter().flat_map(|p| p.split(' '));
            let online = words.filter_map(|n| Nick::parse(n).ok()).collect();
            out.push((Event::Ison(online), sender));
        }
        "USERHOST" => {
            // The server looks up at most five parameters.
            let nicks = msg
                .params
                .iter()
                .take(5)
                .filter_map(|n| Nick::parse(n).ok());
            out.push((
                Event::Userhost(
                    nicks
                        .map(|nick| (nick, true, Some(longest_userhost())))
                        .collect(),
                ),
                sender,
            ));
        }
        "INVITE" => {
            if let (Ok(nick), Some(room)) = (Nick::parse(first), channels(msg.param(1)).next()) {
                let (by, room2) = (from.clone(), room.clone());
                out.push((
                    Event::Invited {
                        room: room2,
                        by,
                        nick: nick.clone(),
                    },
                    Audience::Everyone,
                ));
                out.push((Event::Inviting { room, nick }, sender));
            }
        }
        _ => {}
    }
}

/// A kick of each nick in the comma list `nicks` with `reason`.
fn kick_events(out: &mut Built, room: RoomName, by: &Nick, nicks: &str, reason: &str) {
    for nick in nicks.split(',').filter_map(|n| Nick::parse(n).ok()) {
        let kicked = Event::Kicked {
            room: room.clone(),
            by: by.clone(),
            nick: nick.clone(),
            reason: reason.into(),
        };
        out.push((kicked, Audience::Everyone));
        out.push((
            Event::KickDone {
                room: room.clone(),
                nick,
            },
            Audience::Line,
        ));
    }
}

/// A mode request: its changes as every member sees them, its refusals, the ban list
/// it may leave and the modes it may show.
fn mode_events(out: &mut Built, room: RoomName, by: &Nick, request: ModeRequest, sender: Audience) {
    for error in request.errors {
        let room = room.clone();
        out.push((Event::Error(ProtocolError::BadMode { room, error }), sender));
    }
    let bans = request
        .changes
        .iter()
        .filter_map(|change| match &change.kind {
            ModeKind::Ban(mask) => Some(BanInfo {
                mask: mask.clone(),
                set_by: by.as_str().into(),
                set_at: u64::MAX,
            }),
            _ => None,
        });
    let bans = Event::Bans {
        room: room.clone(),
        bans: bans.collect(),
    };
    out.push((bans, sender));
    let modes = Event::Modes {
        room: room.clone(),
        modes: modes::changes_string(&request.changes).into(),
        created: u64::MAX,
    };
    out.push((modes, sender));
    let (room2, changes) = (room.clone(), request.changes.clone());
    out.push((
        Event::ModesChanged {
            room: room2,
            changes,
        },
        Audience::Line,
    ));
    // Members are told only when something changed.
    if !request.changes.is_empty() {
        let changed = Event::ModeChanged {
            room,
            by: by.clone(),
            changes: request.changes,
        };
        out.push((changed, Audience::Everyone));
    }
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
            let told = Event::NickIs {
                old: old.clone(),
                nick: new.clone(),
            };
            out.push((told, sender));
            out.push((Event::Error(ProtocolError::NickTaken(new)), sender));
        }
        Err(error) => out.push((Event::Error(error), sender)),
    }
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
        Command::Msg { to, text } => private(&mut out, to, from, text, false, sender),
        Command::Nick(nick) => nick_events(&mut out, from, nick.as_str(), sender),
        Command::Join(room) | Command::JoinWithKey { room, .. } => {
            room_events(&mut out, room.clone(), from, None, sender);
        }
        Command::Leave(room) | Command::Who(room) => {
            room_events(&mut out, room.clone().unwrap_or(lobby), from, None, sender);
        }
        Command::Topic(Some(topic)) => topic_events(&mut out, &lobby, from, topic),
        Command::Topic(None) => out.push((
            Event::Topic {
                room: lobby,
                topic: None,
                set_by: None,
            },
            sender,
        )),
        Command::Ping(token) => out.push((Event::Pong(token.map(Into::into)), sender)),
        Command::Quit(reason) => quit_events(&mut out, from, reason.unwrap_or("quit"), sender),
        Command::Kick { nick, reason, .. } => {
            let reason = cut(reason.unwrap_or(from.as_str()), MAX_KICK_LEN);
            kick_events(&mut out, lobby, from, nick, reason);
        }
        Command::Mode { request, .. } => {
            mode_events(&mut out, lobby, from, request.clone(), sender)
        }
        Command::Invite { nick, .. } => {
            if let Ok(nick) = Nick::parse(nick) {
                let (by, room) = (from.clone(), lobby.clone());
                out.push((
                    Event::Invited {
                        room,
                        by,
                        nick: nick.clone(),
                    },
                    Audience::Everyone,
                ));
                out.push((Event::Inviting { room: lobby, nick }, sender));
            }
        }
        Command::Rooms | Command::Stats | Command::Help => out.push((Event::Help, sender)),
        _ => {}
    }
    out
}
