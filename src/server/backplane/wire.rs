//! What nodes say to each other through Redis: a small text format, one Redis
//! pub/sub message per [`Wire`] value.
//!
//! Redis carries bytes; this module decides what they mean. The format is ours (RESP,
//! the framing *around* it, comes from the `redis-protocol` crate): the first line is
//! `v1 KIND ORIGIN ...`, where ORIGIN is the sending node's name, and names never
//! contain spaces, so every field but the last text is one word. Room events carry the
//! origin's *epoch* (its start time, so a restarted node starts a new sequence) and a
//! sequence number per room, which is how a receiver notices a gap. Pure functions,
//! unit-tested without Redis.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::protocol::modes::{self, changes_string};
use crate::protocol::{BanInfo, Event, KlineInfo, Nick, Role, RoomName};
use crate::server::registry::{Level, RegisteredRoom};
use crate::server::room_state::RoomSnapshot;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A room event, on the room's channel.
    Room {
        /// The node whose user caused it.
        origin: String,
        /// That node's start time (ms since the Unix epoch).
        epoch: u64,
        /// Sequence number of this event among `origin`'s events in this room.
        seq: u64,
        /// The line's message id as the origin gave it (the same on every node), or
        /// 0 for an event that is not a line.
        msgid: u64,
        /// When the origin put it in the room's order (ms since the Unix epoch).
        at_ms: u64,
        /// The event (its room is the channel's).
        event: Event,
    },
    /// The last sequence number a node gave in each of its rooms (after its roster):
    /// a node that was cut off learns at once what it missed, without waiting for
    /// the origin's users to speak again.
    Seqs {
        /// The node.
        origin: String,
        /// Its epoch.
        epoch: u64,
        /// Each room and its last sequence number.
        seqs: Vec<(RoomName, u64)>,
    },
    /// An account was created (`present`) or dropped, on any node (published by
    /// the auth thread's script in the same step as the change).
    Account {
        /// The node.
        origin: String,
        /// The account, as registered.
        name: Nick,
        /// Created (true) or dropped.
        present: bool,
    },
    /// A registered room as it is now (`None`: its registration was dropped), as
    /// kept in Redis, after every change on any node.
    Registered {
        /// The node where it changed.
        origin: String,
        /// The room.
        room: RoomName,
        /// Its record.
        record: Option<Box<RegisteredRoom>>,
    },
    /// A node announces itself; every other node answers with its roster.
    Hello {
        /// The node.
        origin: String,
    },
    /// Every local user of a node, with the rooms each is in.
    Roster {
        /// The node.
        origin: String,
        /// Its users.
        users: Vec<RosterEntry>,
    },
    /// A user's nick or rooms changed (sent after every change of one user).
    User {
        /// The node.
        origin: String,
        /// The user as it is now.
        entry: RosterEntry,
        /// The nick it had before, if it changed.
        was: Option<Nick>,
    },
    /// A user of a node disconnected.
    Gone {
        /// The node.
        origin: String,
        /// The user's nick.
        nick: Nick,
    },
    /// A private message or notice to a user of the node whose channel this is.
    Private {
        /// The sender's node.
        origin: String,
        /// The sender.
        from: Nick,
        /// The recipient (on the receiving node).
        to: Nick,
        /// Sent as a notice (never answered).
        notice: bool,
        /// The text.
        text: Box<str>,
    },
    /// The state of rooms that have members on the node (on the cluster channel):
    /// sent for a room the node founded, after each change of a room's modes or topic
    /// made by one of its users, and for all its rooms in answer to [`Wire::Hello`].
    /// Every node keeps the latest, so the first member of a room on any node is
    /// admitted against the room's modes.
    Rooms {
        /// The node.
        origin: String,
        /// The rooms and their state.
        rooms: Vec<(RoomName, RoomSnapshot)>,
    },
    /// An invitation to a user of the node whose channel this is.
    Invite {
        /// The inviter's node.
        origin: String,
        /// The inviter.
        by: Nick,
        /// The invited user (on the receiving node).
        to: Nick,
        /// The room.
        room: RoomName,
    },
    /// A message to every operator of every node (`WALLOPS`), on the cluster
    /// channel.
    Wallops {
        /// The sender's node.
        origin: String,
        /// The operator.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// A notice to every user of every node (`/wall`), on the cluster channel.
    Wall {
        /// The sender's node.
        origin: String,
        /// The operator.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// An operator killed a user of the node whose channel this is.
    Kill {
        /// The operator's node.
        origin: String,
        /// The operator.
        by: Nick,
        /// The user (on the receiving node).
        to: Nick,
        /// Why.
        reason: Box<str>,
    },
    /// A k-line set (`Some`) or lifted, on the cluster channel (the hash of k-lines
    /// in Redis holds the same, for nodes that connect later).
    Kline {
        /// The node where it was set.
        origin: String,
        /// Its mask.
        mask: Box<str>,
        /// The k-line, or `None`: lifted.
        kline: Option<Box<KlineInfo>>,
    },
    /// A node's own round-trip probe through Redis (the backplane lag in `/stats`).
    Probe {
        /// The node (the only reader).
        origin: String,
        /// When it was sent, in ms since the Unix epoch.
        sent_ms: u64,
    },
}

/// One user in a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The nick.
    pub nick: Nick,
    /// When the nick was claimed (ms since the Unix epoch; shown, not decisive: the
    /// claim in Redis decides who holds a nick).
    pub claimed_ms: u64,
    /// The user speaks IRC (else the line protocol).
    pub irc: bool,
    /// The real name (a line user's is its nick).
    pub realname: Arc<str>,
    /// The away message, if the user is away.
    pub away: Option<Box<str>>,
    /// The rooms the user is in, each with its roles there. One shared list, not a
    /// list of rooms and two of roles: every node keeps an entry per user of every
    /// other node, so its size is paid once per remote user, and the cluster view
    /// gives users in the same rooms with the same roles one list (see DESIGN.md,
    /// memory).
    pub rooms: Arc<[RosterRoom]>,
}

/// One of a user's rooms, and its roles there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RosterRoom {
    /// The room.
    pub room: RoomName,
    /// An operator there (`@` before the room's name).
    pub op: bool,
    /// Voiced there (`+` before the room's name).
    pub voiced: bool,
}

impl RosterEntry {
    /// The user's role in `room` (operator wins over voice).
    pub fn role_in(&self, room: &RoomName) -> Role {
        match self.seat(room) {
            Some(seat) if seat.op => Role::Operator,
            Some(seat) if seat.voiced => Role::Voiced,
            _ => Role::Member,
        }
    }

    /// The user's place in `room`, if it is in it.
    pub fn seat(&self, room: &RoomName) -> Option<&RosterRoom> {
        self.rooms.iter().find(|seat| seat.room == *room)
    }

    /// The names of the user's rooms.
    pub fn room_names(&self) -> impl Iterator<Item = &RoomName> {
        self.rooms.iter().map(|seat| &seat.room)
    }
}

/// Why a payload could not be understood (logged and counted, never fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadWire(pub &'static str);

impl Wire {
    /// The bytes of this message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Wire::Room {
                origin,
                epoch,
                seq,
                msgid,
                at_ms,
                event,
            } => {
                // Written in place: one allocation per event on the hot path.
                let mut out = String::with_capacity(96 + text_len(event));
                let _ = write!(out, "v1 room {origin} {epoch} {seq} {msgid} {at_ms} ");
                encode_event(&mut out, event);
                out.into_bytes()
            }
            Wire::Hello { origin } => format!("v1 hello {origin}").into_bytes(),
            Wire::Registered {
                origin,
                room,
                record,
            } => match record {
                Some(record) => {
                    let text = encode_registered(room, record);
                    format!("v1 registered {origin} {room} +\n{text}").into_bytes()
                }
                None => format!("v1 registered {origin} {room} -").into_bytes(),
            },
            Wire::Account {
                origin,
                name,
                present,
            } => {
                let sign = if *present { '+' } else { '-' };
                format!("v1 account {origin} {sign} {name}").into_bytes()
            }
            Wire::Seqs {
                origin,
                epoch,
                seqs,
            } => with_lines(
                format!("v1 seqs {origin} {epoch}"),
                seqs.iter().map(|(room, seq)| format!("{room} {seq}")),
            ),
            Wire::Roster { origin, users } => with_lines(
                format!("v1 roster {origin}"),
                users.iter().map(encode_entry),
            ),
            Wire::User { origin, entry, was } => {
                let was = was.as_ref().map_or("-", Nick::as_str);
                format!("v1 user {origin} {was} {}", encode_entry(entry)).into_bytes()
            }
            Wire::Gone { origin, nick } => format!("v1 gone {origin} {nick}").into_bytes(),
            Wire::Private {
                origin,
                from,
                to,
                notice,
                text,
            } => {
                let kind = if *notice { "notice" } else { "msg" };
                format!("v1 private {origin} {from} {to} {kind} {text}").into_bytes()
            }
            other => encode_more(other),
        }
    }

    /// The node a message came from (its third word), without decoding the rest:
    /// a node drops its own room events, back from Redis, at this glance.
    pub fn origin_of(bytes: &[u8]) -> Option<&str> {
        let head = bytes.split(|&b| b == b'\n').next()?;
        let origin = head.split(|&b| b == b' ').nth(2)?;
        std::str::from_utf8(origin).ok()
    }

    /// Parses a payload received on `room`'s channel (for room events) or any other.
    pub fn decode(bytes: &[u8], room: Option<&RoomName>) -> Result<Wire, BadWire> {
        let text = std::str::from_utf8(bytes).map_err(|_| BadWire("not UTF-8"))?;
        let (head, rest) = text.split_once('\n').unwrap_or((text, ""));
        let mut words = Words(head);
        if words.next()? != "v1" {
            return Err(BadWire("unknown version"));
        }
        let kind = words.next()?;
        let origin = words.next()?.to_string();
        match kind {
            "room" => {
                let room = room.ok_or(BadWire("room event outside a room channel"))?;
                let (epoch, seq) = (words.number()?, words.number()?);
                let (msgid, at_ms) = (words.number()?, words.number()?);
                let event = decode_event(room, words)?;
                Ok(Wire::Room {
                    origin,
                    epoch,
                    seq,
                    msgid,
                    at_ms,
                    event,
                })
            }
            "hello" => Ok(Wire::Hello { origin }),
            "registered" => Ok(Wire::Registered {
                origin,
                room: room_of(words.next()?)?,
                record: match words.next()? {
                    "+" => Some(Box::new(decode_registered(rest)?)),
                    _ => None,
                },
            }),
            "account" => Ok(Wire::Account {
                origin,
                present: words.next()? == "+",
                name: nick_of(words.next()?)?,
            }),
            "seqs" => Ok(Wire::Seqs {
                origin,
                epoch: words.number()?,
                seqs: decode_seqs(rest)?,
            }),
            "roster" => {
                let users = rest.lines().map(decode_entry).collect::<Result<_, _>>()?;
                Ok(Wire::Roster { origin, users })
            }
            "user" => {
                let was = match words.next()? {
                    "-" => None,
                    nick => Some(nick_of(nick)?),
                };
                let entry = decode_entry(words.0)?;
                Ok(Wire::User { origin, entry, was })
            }
            "gone" => Ok(Wire::Gone {
                origin,
                nick: nick_of(words.next()?)?,
            }),
            "private" => decode_private(origin, words),
            "probe" => Ok(Wire::Probe {
                origin,
                sent_ms: words.number()?,
            }),
            "rooms" => {
                let rooms = rest
                    .lines()
                    .map(decode_snapshot)
                    .collect::<Result<_, _>>()?;
                Ok(Wire::Rooms { origin, rooms })
            }
            "invite" | "wallops" | "wall" | "kill" | "kline" => decode_more(kind, origin, words),
            _ => Err(BadWire("unknown kind")),
        }
    }
}

/// A registered room's record, as kept in Redis and sent to every node: the
/// founder, the access list (`NAME:op NAME:voice`, or `-`) and the state, a line each.
pub fn encode_registered(room: &RoomName, record: &RegisteredRoom) -> String {
    let access: Vec<String> = (record.access.iter())
        .map(|(name, level)| format!("{name}:{}", level.as_str()))
        .collect();
    let access = if access.is_empty() {
        "-".to_string()
    } else {
        access.join(" ")
    };
    let state = encode_snapshot(room, &record.snapshot);
    format!("{}\n{access}\n{state}", record.founder)
}

/// The record [`encode_registered`] made.
pub fn decode_registered(text: &str) -> Result<RegisteredRoom, BadWire> {
    let mut lines = text.splitn(3, '\n');
    let founder = nick_of(lines.next().ok_or(BadWire("no founder"))?)?;
    let access = (lines.next().ok_or(BadWire("no access"))?.split(' '))
        .filter(|grant| !grant.is_empty() && *grant != "-")
        .map(|grant| {
            let (name, level) = grant.split_once(':').ok_or(BadWire("bad grant"))?;
            Ok((
                nick_of(name)?,
                Level::parse(level).ok_or(BadWire("bad level"))?,
            ))
        })
        .collect::<Result<_, _>>()?;
    let (_, snapshot) = decode_snapshot(lines.next().ok_or(BadWire("no state"))?)?;
    Ok(RegisteredRoom {
        founder,
        access,
        snapshot,
    })
}

/// The rest of [`Wire::encode`]: room states, invitations, probes and the
/// operators' messages.
fn encode_more(wire: &Wire) -> Vec<u8> {
    match wire {
        Wire::Probe { origin, sent_ms } => format!("v1 probe {origin} {sent_ms}").into_bytes(),
        Wire::Rooms { origin, rooms } => with_lines(
            format!("v1 rooms {origin}"),
            rooms
                .iter()
                .map(|(room, state)| encode_snapshot(room, state)),
        ),
        Wire::Invite {
            origin,
            by,
            to,
            room,
        } => format!("v1 invite {origin} {by} {to} {room}").into_bytes(),
        Wire::Wallops { origin, from, text } => {
            format!("v1 wallops {origin} {from} {text}").into_bytes()
        }
        Wire::Wall { origin, from, text } => format!("v1 wall {origin} {from} {text}").into_bytes(),
        Wire::Kill {
            origin,
            by,
            to,
            reason,
        } => format!("v1 kill {origin} {by} {to} {reason}").into_bytes(),
        Wire::Kline {
            origin,
            mask,
            kline,
        } => match kline {
            Some(kline) => format!("v1 kline {origin} + {}", encode_kline(kline)),
            None => format!("v1 kline {origin} - {mask}"),
        }
        .into_bytes(),
        other => unreachable!("BUG: {other:?} is encoded by Wire::encode"),
    }
}

/// An invitation (`invite BY TO ROOM`) and the operators' messages: `wallops FROM
/// TEXT`, `wall FROM TEXT`, `kill BY TO REASON`, `kline + RECORD` or `kline - MASK`.
fn decode_more(kind: &str, origin: String, mut words: Words<'_>) -> Result<Wire, BadWire> {
    Ok(match kind {
        "invite" => Wire::Invite {
            origin,
            by: nick_of(words.next()?)?,
            to: nick_of(words.next()?)?,
            room: room_of(words.next()?)?,
        },
        "wallops" => Wire::Wallops {
            origin,
            from: nick_of(words.next()?)?,
            text: words.0.into(),
        },
        "wall" => Wire::Wall {
            origin,
            from: nick_of(words.next()?)?,
            text: words.0.into(),
        },
        "kill" => Wire::Kill {
            origin,
            by: nick_of(words.next()?)?,
            to: nick_of(words.next()?)?,
            reason: words.0.into(),
        },
        _ => match words.next()? {
            "+" => {
                let kline = decode_kline(words.0)?;
                Wire::Kline {
                    origin,
                    mask: kline.mask.clone(),
                    kline: Some(Box::new(kline)),
                }
            }
            _ => Wire::Kline {
                origin,
                mask: words.next()?.into(),
                kline: None,
            },
        },
    })
}

/// A k-line as the cluster keeps it (the value in Redis's hash of k-lines):
/// `MASK SETBY SETAT EXPIRES REASON`, EXPIRES `-` for one that lasts until lifted.
pub fn encode_kline(kline: &KlineInfo) -> String {
    let expires = kline
        .expires
        .map_or_else(|| "-".to_string(), |at| at.to_string());
    let (mask, by, at) = (&kline.mask, &kline.set_by, kline.set_at);
    format!("{mask} {by} {at} {expires} {}", kline.reason)
}

/// The k-line [`encode_kline`] made.
pub fn decode_kline(text: &str) -> Result<KlineInfo, BadWire> {
    let mut words = Words(text);
    let mask = words.next()?.into();
    let set_by = words.next()?.into();
    let set_at = words.number()?;
    let expires = match words.next()? {
        "-" => None,
        at => Some(at.parse().map_err(|_| BadWire("bad expiry"))?),
    };
    Ok(KlineInfo {
        mask,
        set_by,
        set_at,
        expires,
        reason: words.0.into(),
    })
}

/// `FROM TO msg|notice TEXT`.
fn decode_private(origin: String, mut words: Words<'_>) -> Result<Wire, BadWire> {
    let (from, to) = (nick_of(words.next()?)?, nick_of(words.next()?)?);
    let notice = words.next()? == "notice";
    Ok(Wire::Private {
        origin,
        from,
        to,
        notice,
        text: words.0.into(),
    })
}

/// `head`, then each of `lines` on a line of its own.
fn with_lines(head: String, lines: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = head;
    for line in lines {
        out.push('\n');
        out.push_str(&line);
    }
    out.into_bytes()
}

/// `ROOM SEQ` lines.
fn decode_seqs(lines: &str) -> Result<Vec<(RoomName, u64)>, BadWire> {
    lines
        .lines()
        .map(|line| {
            let mut words = Words(line);
            Ok((room_of(words.next()?)?, words.number()?))
        })
        .collect()
}

/// Space-separated words, the remainder being the last text field.
struct Words<'a>(&'a str);

impl<'a> Words<'a> {
    fn next(&mut self) -> Result<&'a str, BadWire> {
        if self.0.is_empty() {
            return Err(BadWire("missing field"));
        }
        let (word, rest) = self.0.split_once(' ').unwrap_or((self.0, ""));
        self.0 = rest;
        Ok(word)
    }

    fn number(&mut self) -> Result<u64, BadWire> {
        self.next()?.parse().map_err(|_| BadWire("bad number"))
    }
}

fn nick_of(word: &str) -> Result<Nick, BadWire> {
    Nick::parse(word).map_err(|_| BadWire("bad nick"))
}

fn room_of(word: &str) -> Result<RoomName, BadWire> {
    RoomName::parse(word).map_err(|_| BadWire("bad room"))
}

/// `NICK CLAIMED PROTOCOL ROOMS`, a tab, the real name (its tabs made spaces), then
/// a tab and the away message if any (PROTOCOL `irc` or `line`; ROOMS comma-separated,
/// or `-` for none, each room's name after `@` if the user is its operator and `+`
/// if voiced there: room names never start with either).
fn encode_entry(entry: &RosterEntry) -> String {
    let rooms: Vec<String> = (entry.rooms.iter())
        .map(|seat| {
            let op = if seat.op { "@" } else { "" };
            let voiced = if seat.voiced { "+" } else { "" };
            format!("{op}{voiced}{}", seat.room)
        })
        .collect();
    let protocol = if entry.irc { "irc" } else { "line" };
    let (nick, claimed) = (&entry.nick, entry.claimed_ms);
    let rooms = if rooms.is_empty() {
        "-".to_string()
    } else {
        rooms.join(",")
    };
    let realname = entry.realname.replace('\t', " ");
    let mut line = format!("{nick} {claimed} {protocol} {rooms}\t{realname}");
    if let Some(away) = &entry.away {
        line.push('\t');
        line.push_str(away);
    }
    line
}

fn decode_entry(line: &str) -> Result<RosterEntry, BadWire> {
    let mut fields = line.splitn(3, '\t');
    let mut words = Words(fields.next().unwrap_or(""));
    let realname = fields.next().ok_or(BadWire("no real name"))?;
    let away = fields.next().map(Into::into);
    let nick = nick_of(words.next()?)?;
    // A line user's real name is its nick: shared, not copied (one per remote user).
    let realname = if realname == nick.as_str() {
        nick.shared_text()
    } else {
        realname.into()
    };
    let claimed_ms = words.number()?;
    let irc = words.next()? == "irc";
    let rooms = (words.next()?.split(','))
        .filter(|r| !r.is_empty() && *r != "-")
        .map(|word| {
            let (op, word) = word.strip_prefix('@').map_or((false, word), |w| (true, w));
            let (voiced, word) = word.strip_prefix('+').map_or((false, word), |w| (true, w));
            let room = room_of(word)?;
            Ok(RosterRoom { room, op, voiced })
        })
        .collect::<Result<_, BadWire>>()?;
    Ok(RosterEntry {
        nick,
        claimed_ms,
        irc,
        realname,
        away,
        rooms,
    })
}

/// `ROOM CREATED MODES [PARAMS...]`, a tab, the bans as `MASK SETBY SETAT` triples,
/// then a tab and the topic if there is one (modes, parameters, masks and nicks never
/// contain white space; a topic may).
fn encode_snapshot(room: &RoomName, snapshot: &RoomSnapshot) -> String {
    let changes = changes_string(&snapshot.changes);
    let mut line = format!("{room} {} {changes}\t", snapshot.created);
    for (i, ban) in snapshot.bans.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        line.push_str(&format!("{sep}{} {} {}", ban.mask, ban.set_by, ban.set_at));
    }
    if let Some(topic) = &snapshot.topic {
        line.push('\t');
        line.push_str(topic);
    }
    line
}

fn decode_snapshot(line: &str) -> Result<(RoomName, RoomSnapshot), BadWire> {
    let mut fields = line.splitn(3, '\t');
    let modes = fields.next().unwrap_or("");
    let bans = fields.next().ok_or(BadWire("no bans field"))?;
    let topic = fields.next().map(Into::into);
    let mut words = Words(modes);
    let room = room_of(words.next()?)?;
    let created = words.number()?;
    let mut words = words.0.split(' ');
    let modestring = words.next().unwrap_or("");
    let params: Vec<&str> = words.collect();
    let snapshot = RoomSnapshot {
        created,
        changes: modes::parse(modestring, &params).changes,
        bans: decode_bans(bans)?,
        topic,
    };
    Ok((room, snapshot))
}

fn decode_bans(field: &str) -> Result<Vec<BanInfo>, BadWire> {
    let words: Vec<&str> = field.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.len().is_multiple_of(3) {
        return Err(BadWire("bad ban list"));
    }
    let ban = |triple: &[&str]| {
        let set_at = triple[2].parse().map_err(|_| BadWire("bad ban time"))?;
        let (mask, set_by) = (triple[0].into(), triple[1].into());
        Ok(BanInfo {
            mask,
            set_by,
            set_at,
        })
    };
    words.chunks(3).map(ban).collect()
}

/// True for the room events that cross nodes: chat lines, joins, leaves, nick
/// changes, quits, topics, kicks and mode changes (each node applies the last two to
/// its own copy of the room's state: docs/CLUSTER.md), and the away
/// and invitation notices IRC readers with `away-notify` and `invite-notify` get.
pub fn crosses_nodes(event: &Event) -> bool {
    matches!(
        event,
        Event::Message { .. }
            | Event::Action { .. }
            | Event::RoomNotice { .. }
            | Event::Joined { .. }
            | Event::Left { .. }
            | Event::NickChanged { .. }
            | Event::Quit { .. }
            | Event::TopicChanged { .. }
            | Event::Kicked { .. }
            | Event::ModeChanged { .. }
            | Event::AwayChanged { .. }
            | Event::InviteNotice { .. }
    )
}

/// The length of a line's or a topic's text, what such a wire mostly holds (0 for
/// other events: the buffer then grows as it must).
fn text_len(event: &Event) -> usize {
    match event {
        Event::Message { text, .. } | Event::Action { text, .. } => text.len(),
        Event::RoomNotice { text, .. } | Event::TopicChanged { topic: text, .. } => text.len(),
        _ => 0,
    }
}

/// `KIND NICK [MORE]`: the room events that cross nodes, after the wire's head.
fn encode_event(out: &mut String, event: &Event) {
    let _ = match event {
        Event::Message { from, text, .. } => write!(out, "msg {from} {text}"),
        Event::Action { from, text, .. } => write!(out, "act {from} {text}"),
        Event::RoomNotice { from, text, .. } => write!(out, "ntc {from} {text}"),
        Event::Joined { nick, .. } => write!(out, "join {nick}"),
        Event::Left { nick, reason, .. } => {
            write!(out, "part {nick} {}", reason.as_deref().unwrap_or(""))
        }
        Event::NickChanged { old, new, .. } => write!(out, "nick {old} {new}"),
        Event::Quit { nick, reason, .. } => write!(out, "quit {nick} {reason}"),
        Event::TopicChanged { nick, topic, .. } => write!(out, "topic {nick} {topic}"),
        Event::Kicked {
            by, nick, reason, ..
        } => write!(out, "kick {by} {nick} {reason}"),
        Event::ModeChanged { by, changes, .. } => {
            write!(out, "mode {by} {}", changes_string(changes))
        }
        Event::AwayChanged { nick, text, .. } => {
            write!(out, "away {nick} {}", text.as_deref().unwrap_or(""))
        }
        Event::InviteNotice { by, nick, .. } => write!(out, "invnote {by} {nick}"),
        other => {
            debug_assert!(false, "BUG: {other:?} is not a room event");
            write!(out, "none -")
        }
    };
}

fn decode_event(room: &RoomName, mut words: Words<'_>) -> Result<Event, BadWire> {
    let kind = words.next()?;
    let nick = nick_of(words.next()?)?;
    let room = room.clone();
    let text: Box<str> = words.0.into();
    Ok(match kind {
        "msg" => Event::Message {
            room,
            from: nick,
            text,
        },
        "act" => Event::Action {
            room,
            from: nick,
            text,
        },
        "ntc" => Event::RoomNotice {
            room,
            from: nick,
            text,
        },
        "join" => Event::Joined { room, nick },
        "part" => Event::Left {
            room,
            nick,
            reason: (!text.is_empty()).then_some(text),
        },
        "nick" => Event::NickChanged {
            room,
            old: nick,
            new: nick_of(&text)?,
        },
        "quit" => Event::Quit {
            room,
            nick,
            reason: text,
        },
        "topic" => Event::TopicChanged {
            room,
            nick,
            topic: text,
        },
        "kick" => {
            let mut rest = Words(&text);
            let kicked = nick_of(rest.next()?)?;
            Event::Kicked {
                room,
                by: nick,
                nick: kicked,
                reason: rest.0.into(),
            }
        }
        "away" => Event::AwayChanged {
            room,
            nick,
            text: (!text.is_empty()).then_some(text),
        },
        "invnote" => Event::InviteNotice {
            room,
            by: nick,
            nick: nick_of(&text)?,
        },
        "mode" => {
            let mut words = text.split(' ');
            let modestring = words.next().unwrap_or("");
            let params: Vec<&str> = words.collect();
            let changes = modes::parse(modestring, &params).changes;
            Event::ModeChanged {
                room,
                by: nick,
                changes,
            }
        }
        _ => return Err(BadWire("unknown event")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nick(n: &str) -> Nick {
        Nick::parse(n).unwrap()
    }

    fn round_trips(all: Vec<Wire>, room: &RoomName) {
        for wire in all {
            assert_eq!(Wire::decode(&wire.encode(), Some(room)), Ok(wire));
        }
    }

    #[test]
    fn room_events_round_trip() {
        let room = RoomName::parse("rust").unwrap();
        let (al, r) = (nick("al"), room.clone());
        let events = [
            Event::Message {
                room: r.clone(),
                from: al.clone(),
                text: "hi  there ".into(),
            },
            Event::Action {
                room: r.clone(),
                from: al.clone(),
                text: "waves".into(),
            },
            Event::Joined {
                room: r.clone(),
                nick: al.clone(),
            },
            Event::NickChanged {
                room: r.clone(),
                old: al.clone(),
                new: nick("alice"),
            },
            Event::Quit {
                room: r.clone(),
                nick: al.clone(),
                reason: "Ping timeout".into(),
            },
            Event::TopicChanged {
                room: r.clone(),
                nick: al.clone(),
                topic: "".into(),
            },
            Event::AwayChanged {
                room: r.clone(),
                nick: al.clone(),
                text: Some("out  to lunch".into()),
            },
            Event::AwayChanged {
                room: r.clone(),
                nick: al.clone(),
                text: None,
            },
            Event::InviteNotice {
                room: r,
                by: al,
                nick: nick("bo"),
            },
        ];
        let origin = String::from("node-a");
        let wires: Vec<Wire> = (events.into_iter())
            .map(|event| Wire::Room {
                origin: origin.clone(),
                epoch: 9,
                seq: 3,
                msgid: 77 << 12,
                at_ms: 77,
                event,
            })
            .collect();
        for wire in &wires {
            assert_eq!(Wire::origin_of(&wire.encode()), Some("node-a"));
        }
        round_trips(wires, &room);
    }

    #[test]
    fn operator_messages_round_trip() {
        let origin = || String::from("a");
        let kline = KlineInfo {
            mask: "*!*@203.0.113.0/24".into(),
            set_by: "root".into(),
            set_at: 1_700_000_000,
            expires: Some(1_700_003_600),
            reason: "spam, spam  and spam".into(),
        };
        let forever = KlineInfo {
            expires: None,
            ..kline.clone()
        };
        let all = vec![
            Wire::Wallops {
                origin: origin(),
                from: nick("root"),
                text: "restart at  noon".into(),
            },
            Wire::Wall {
                origin: origin(),
                from: nick("root"),
                text: "be nice".into(),
            },
            Wire::Kill {
                origin: origin(),
                by: nick("root"),
                to: nick("spammer"),
                reason: "no ads, please".into(),
            },
            Wire::Kline {
                origin: origin(),
                mask: kline.mask.clone(),
                kline: Some(Box::new(kline.clone())),
            },
            Wire::Kline {
                origin: origin(),
                mask: forever.mask.clone(),
                kline: Some(Box::new(forever)),
            },
            Wire::Kline {
                origin: origin(),
                mask: kline.mask.clone(),
                kline: None,
            },
        ];
        round_trips(all, &RoomName::lobby());
        assert_eq!(decode_kline(&encode_kline(&kline)), Ok(kline));
    }

    fn seat(room: &RoomName, op: bool, voiced: bool) -> RosterRoom {
        let room = room.clone();
        RosterRoom { room, op, voiced }
    }

    #[test]
    fn cluster_messages_round_trip() {
        let room = RoomName::parse("rust").unwrap();
        let other = RoomName::parse("go").unwrap();
        let entry = RosterEntry {
            nick: nick("bob"),
            claimed_ms: 5,
            irc: true,
            realname: "Bob B. Builder".into(),
            away: Some("gone \t fishing, back soon".into()),
            rooms: Arc::new([
                seat(&room, true, true),
                seat(&other, false, true),
                seat(&RoomName::lobby(), false, false),
            ]),
        };
        let b = || String::from("b");
        let all = vec![
            Wire::Hello { origin: b() },
            Wire::Registered {
                origin: b(),
                room: RoomName::parse("club").unwrap(),
                record: None,
            },
            Wire::Account {
                origin: b(),
                name: Nick::parse("Alice").unwrap(),
                present: true,
            },
            Wire::Seqs {
                origin: b(),
                epoch: 7,
                seqs: vec![(RoomName::parse("rust").unwrap(), 12)],
            },
            Wire::Roster {
                origin: b(),
                users: vec![entry.clone(), entry.clone()],
            },
            Wire::Roster {
                origin: b(),
                users: vec![],
            },
            Wire::User {
                origin: b(),
                entry: entry.clone(),
                was: Some(nick("x")),
            },
            Wire::User {
                origin: b(),
                entry,
                was: None,
            },
            Wire::Gone {
                origin: b(),
                nick: nick("bob"),
            },
            Wire::Private {
                origin: b(),
                from: nick("bob"),
                to: nick("al"),
                notice: true,
                text: "psst".into(),
            },
            Wire::Probe {
                origin: "c".into(),
                sent_ms: 77,
            },
            Wire::Invite {
                origin: b(),
                by: nick("bob"),
                to: nick("al"),
                room: room.clone(),
            },
        ];
        round_trips(all, &room);
    }

    #[test]
    fn a_room_snapshot_round_trips() {
        use crate::protocol::modes::{Flag, ModeChange, ModeKind};
        let room = RoomName::parse("rust").unwrap();
        let flag = |set, flag| ModeChange {
            set,
            kind: ModeKind::Flag(flag),
        };
        let changes = vec![
            flag(true, Flag::InviteOnly),
            flag(false, Flag::Moderated),
            flag(true, Flag::NoExternal),
            ModeChange {
                set: true,
                kind: ModeKind::Key(Some("sesame".into())),
            },
            ModeChange {
                set: false,
                kind: ModeKind::Limit(None),
            },
        ];
        let ban = |mask: &str, set_by: &str, set_at| BanInfo {
            mask: mask.into(),
            set_by: set_by.into(),
            set_at,
        };
        let bans = vec![ban("carol!*@*", "al", 5), ban("*!*@2001:db8::*", "bo", 6)];
        let snapshot = |topic: Option<&str>, bans: &[BanInfo]| RoomSnapshot {
            created: 1_700_000_000,
            changes: changes.clone(),
            bans: bans.to_vec(),
            topic: topic.map(Into::into),
        };
        let wire = Wire::Rooms {
            origin: "a".into(),
            rooms: vec![
                (room.clone(), snapshot(Some("tabs\tand  spaces"), &bans)),
                (RoomName::lobby(), snapshot(None, &[])),
                (RoomName::parse("go").unwrap(), snapshot(Some(""), &bans)),
            ],
        };
        assert_eq!(Wire::decode(&wire.encode(), None), Ok(wire));
        assert!(Wire::decode(b"v1 rooms a\nbad!room 1 +nt\t", None).is_err());
        assert!(Wire::decode(b"v1 rooms a\ngo 1 +nt\tmask al", None).is_err());
    }

    #[test]
    fn garbage_is_refused_not_fatal() {
        for bad in [
            &b""[..],
            b"v2 hello a",
            b"v1 room a 1 2 msg al hi",
            b"v1 user a",
            b"\xff",
        ] {
            assert!(Wire::decode(bad, None).is_err(), "{bad:?}");
        }
    }
}
