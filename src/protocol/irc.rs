//! The IRC client protocol (RFC 1459 / RFC 2812), as far as miochat speaks it.
//!
//! Pure functions, no sockets, like the rest of `protocol/`:
//! - [`parse`]: one line → a [`Message`] (tags and prefix skipped, command
//!   upper-cased, middle parameters and the trailing one);
//! - [`clean_text`]: IRC message text → text safe for line-protocol users (CTCP ACTION
//!   becomes an action, colour and formatting codes are dropped);
//! - [`broadcast`]: an [`Event`] that many receive (a room message, a join) → the IRC
//!   line, independent of the recipient, so it is rendered once per message;
//! - [`reply`]: an [`Event`] for one recipient → IRC lines and numerics addressed to it.
//!
//! Every user appears as `nick!nick@miochat`: miochat keeps no user names or hosts,
//! which also keeps a broadcast line the same for every recipient. Lines from the
//! server are at most 512 bytes with CRLF: longer text (a line-protocol user may send
//! up to `--max-line` bytes) is **truncated** at a character boundary.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use super::names::{MAX_NICK_LEN, MAX_ROOM_LEN};
use super::{Event, MAX_TOPIC_LEN, Nick, ProtocolError, Refusal, RoomName};

/// Longest IRC line without its CRLF (RFC 2812: 512 bytes including CRLF).
pub const MAX_IRC_LINE: usize = 510;
/// Host part of every user's source.
pub const HOST: &str = "miochat";
/// Most parameters a message may carry (RFC 2812).
const MAX_PARAMS: usize = 15;
/// Nicks per `353` line.
const NAMES_PER_LINE: usize = 20;

/// One parsed IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The command, upper-cased (`PRIVMSG`, `NICK`, ...).
    pub command: String,
    /// Parameters, the trailing one (after ` :`) last.
    pub params: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// Parameter `i`, if present and not empty.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied().filter(|p| !p.is_empty())
    }
}

/// Parses one line (CRLF already stripped). `Ok(None)` for a blank line.
pub fn parse(line: &[u8]) -> Result<Option<Message<'_>>, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
    let mut rest = text.trim_start_matches(' ');
    if rest.starts_with('@') {
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    if rest.starts_with(':') {
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    if rest.is_empty() {
        return Ok(None);
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        if params.len() == MAX_PARAMS - 1 {
            params.push(rest);
            break;
        }
        let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(word);
        rest = after;
    }
    Ok(Some(Message {
        command: command.to_ascii_uppercase(),
        params,
    }))
}

/// Text of a PRIVMSG/NOTICE as miochat stores it: `(text, is_action)`. CTCP ACTION
/// (`\x01ACTION waves\x01`) becomes an action; IRC colour and formatting codes and
/// other control characters are removed, so they never reach a line user's terminal.
pub fn clean_text(text: &str) -> (Cow<'_, str>, bool) {
    let (body, action) = match text
        .strip_prefix("\x01ACTION ")
        .map(|t| t.strip_suffix('\x01').unwrap_or(t))
    {
        Some(body) => (body, true),
        None => (text, false),
    };
    if !body.chars().any(char::is_control) {
        return (Cow::Borrowed(body), action);
    }
    let mut clean = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x03' {
            // mIRC colour: \x03 then up to "NN,NN".
            for _ in 0..2 {
                chars.next_if(char::is_ascii_digit);
            }
            if chars.peek() == Some(&',') {
                chars.next();
                for _ in 0..2 {
                    chars.next_if(char::is_ascii_digit);
                }
            }
        } else if !c.is_control() {
            clean.push(c);
        }
    }
    (Cow::Owned(clean), action)
}

/// `nick!nick@miochat`.
fn source(nick: &Nick) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// `#room`.
fn chan(room: &RoomName) -> String {
    format!("#{room}")
}

/// Appends `:SOURCE COMMAND TARGET :TEXT\r\n`, truncating TEXT to fit 512 bytes.
fn push_text_line(out: &mut String, head: &str, text: &str) {
    let room_for_text = MAX_IRC_LINE.saturating_sub(head.len() + 2);
    let mut end = text.len().min(room_for_text);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let _ = write!(out, "{head} :{}\r\n", &text[..end]);
}

/// The IRC line of an event that several connections receive, or `None` if the event
/// is a reply (use [`reply`]).
pub fn broadcast(event: &Event) -> Option<String> {
    let mut out = String::new();
    match event {
        Event::Message { room, from, text } => {
            push_text_line(
                &mut out,
                &format!(":{} PRIVMSG {}", source(from), chan(room)),
                text,
            );
        }
        Event::RoomNotice { room, from, text } => {
            push_text_line(
                &mut out,
                &format!(":{} NOTICE {}", source(from), chan(room)),
                text,
            );
        }
        Event::Action { room, from, text } => {
            let head = format!(":{} PRIVMSG {}", source(from), chan(room));
            let budget = MAX_IRC_LINE.saturating_sub(head.len() + 2 + 9);
            let mut end = text.len().min(budget);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let _ = write!(out, "{head} :\x01ACTION {}\x01\r\n", &text[..end]);
        }
        Event::Joined { room, nick } => {
            let _ = write!(out, ":{} JOIN {}\r\n", source(nick), chan(room));
        }
        Event::Left { room, nick } => {
            let _ = write!(out, ":{} PART {}\r\n", source(nick), chan(room));
        }
        Event::NickChanged { old, new, .. } => {
            let _ = write!(out, ":{} NICK :{new}\r\n", source(old));
        }
        Event::Quit { nick, reason, .. } => {
            push_text_line(&mut out, &format!(":{} QUIT", source(nick)), reason);
        }
        Event::Gap { room, node, missed } => {
            let _ = write!(
                out,
                ":{HOST} NOTICE {} :{missed} message(s) from node {node} were lost on the way\r\n",
                chan(room)
            );
        }
        Event::TopicChanged { room, nick, topic } => {
            push_text_line(
                &mut out,
                &format!(":{} TOPIC {}", source(nick), chan(room)),
                topic,
            );
        }
        _ => return None,
    }
    Some(out)
}

/// Writes lines addressed to one reader: `:server NNN me PARAMS` numerics and the
/// few non-numeric lines a reply needs, all into one string.
struct Numerics<'a> {
    out: String,
    server: &'a str,
    me: &'a str,
}

impl<'a> Numerics<'a> {
    fn new(server: &'a str, me: &'a str) -> Self {
        Numerics {
            out: String::new(),
            server,
            me,
        }
    }

    /// `:server CODE me PARAMS`.
    fn num(&mut self, code: &str, params: fmt::Arguments<'_>) {
        let _ = write!(self.out, ":{} {code} {} {params}\r\n", self.server, self.me);
    }

    /// `:server NOTICE me :TEXT`.
    fn notice(&mut self, text: fmt::Arguments<'_>) {
        let _ = write!(self.out, ":{} NOTICE {} :{text}\r\n", self.server, self.me);
    }

    /// A line from the reader's own source, `:me!me@host TEXT`.
    fn own(&mut self, text: fmt::Arguments<'_>) {
        let me = self.me;
        let _ = write!(self.out, ":{me}!{me}@{HOST} {text}\r\n");
    }

    /// `353` lines (as many as needed) and the closing `366`.
    fn names(&mut self, room: &RoomName, nicks: &[Nick]) {
        for chunk in nicks.chunks(NAMES_PER_LINE) {
            let list: Vec<&str> = chunk.iter().map(Nick::as_str).collect();
            self.num("353", format_args!("= #{room} :{}", list.join(" ")));
        }
        self.num("366", format_args!("#{room} :End of /NAMES list."));
    }

    fn closing_link(&mut self, reason: &str) {
        let _ = write!(self.out, "ERROR :Closing Link: {} ({reason})\r\n", self.me);
    }
}

/// The IRC lines that tell `me` (a connection's current nick) about `event`.
pub fn reply(event: &Event, server: &str, me: &str) -> String {
    if let Some(line) = broadcast(event) {
        return line;
    }
    let mut w = Numerics::new(server, me);
    match event {
        Event::Private { from, text, notice } => {
            let verb = if *notice { "NOTICE" } else { "PRIVMSG" };
            push_text_line(&mut w.out, &format!(":{} {verb} {me}", source(from)), text);
        }
        Event::YouJoined {
            room, topic, nicks, ..
        } => {
            w.own(format_args!("JOIN #{room}"));
            if let Some(topic) = topic {
                w.num("332", format_args!("#{room} :{topic}"));
            }
            w.names(room, nicks);
        }
        Event::YouLeft { room } => w.own(format_args!("PART #{room}")),
        Event::NickIs { old, nick } => {
            let _ = write!(w.out, ":{} NICK :{nick}\r\n", source(old));
        }
        Event::Who { room, nicks, .. } => {
            for nick in nicks {
                w.num(
                    "352",
                    format_args!("#{room} {nick} {HOST} {server} {nick} H :0 {nick}"),
                );
            }
            w.num("315", format_args!("#{room} :End of /WHO list."));
        }
        Event::Names { room, nicks } => w.names(room, nicks),
        Event::Rooms(rooms) => {
            w.num("321", format_args!("Channel :Users  Name"));
            for info in rooms {
                let topic = info.topic.as_deref().unwrap_or("");
                w.num(
                    "322",
                    format_args!("#{} {} :{topic}", info.room, info.members),
                );
            }
            w.num("323", format_args!(":End of /LIST"));
        }
        Event::Topic {
            room,
            topic: Some(topic),
        } => w.num("332", format_args!("#{room} :{topic}")),
        Event::Topic { room, topic: None } => {
            w.num("331", format_args!("#{room} :No topic is set"))
        }
        Event::Whois { nick, away } => {
            w.num("311", format_args!("{nick} {nick} {HOST} * :{nick}"));
            w.num("312", format_args!("{nick} {server} :miochat"));
            if let Some(away) = away {
                w.num("301", format_args!("{nick} :{away}"));
            }
            w.num("318", format_args!("{nick} :End of /WHOIS list."));
        }
        Event::Away(true) => w.num("306", format_args!(":You have been marked as being away")),
        Event::Away(false) => w.num(
            "305",
            format_args!(":You are no longer marked as being away"),
        ),
        Event::IsAway { nick, text } => w.num("301", format_args!("{nick} :{text}")),
        Event::Ison(nicks) => {
            let list: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
            w.num("303", format_args!(":{}", list.join(" ")));
        }
        Event::Userhost(nicks) => {
            let list: Vec<String> = nicks
                .iter()
                .map(|(n, away)| format!("{n}={}{n}@{HOST}", if *away { '-' } else { '+' }))
                .collect();
            w.num("302", format_args!(":{}", list.join(" ")));
        }
        Event::Pong(token) => return pong(server, token.as_deref().unwrap_or(server)),
        Event::Bye => w.closing_link("Quit"),
        Event::ShuttingDown => w.closing_link("server shutting down"),
        Event::Closing(Refusal::IdleTimeout) => w.closing_link("Ping timeout"),
        Event::Closing(Refusal::TooManyFromAddress) => {
            w.closing_link("Too many connections from your address")
        }
        Event::Closing(Refusal::Flood) => w.closing_link("Excess Flood"),
        Event::Closing(other) => w.closing_link(other.text()),
        Event::Error(error) => error_numeric(&mut w, error),
        Event::Stats(report) => {
            let line = super::render::line(&Event::Stats(report.clone()));
            w.notice(format_args!(
                "{}",
                String::from_utf8_lossy(&line).trim_end()
            ));
        }
        Event::Welcome { .. } | Event::Help => {
            w.notice(format_args!("miochat speaks IRC; rooms are #channels"));
        }
        // Broadcast events were handled above.
        _ => {}
    }
    w.out
}

/// The numeric (or notice) for a client mistake.
fn error_numeric(w: &mut Numerics<'_>, error: &ProtocolError) {
    match error {
        ProtocolError::UnknownCommand(name) => {
            w.num("421", format_args!("{name} :Unknown command"))
        }
        ProtocolError::Usage(_) => w.num("461", format_args!("* :Not enough parameters")),
        ProtocolError::BadNick => w.num("432", format_args!("* :Erroneous nickname")),
        ProtocolError::NickTaken(nick) => {
            w.num("433", format_args!("{nick} :Nickname is already in use"))
        }
        ProtocolError::BadRoom => w.num("403", format_args!("* :No such channel")),
        ProtocolError::NotInRoom(room) => {
            w.num("442", format_args!("#{room} :You're not on that channel"))
        }
        ProtocolError::NoRoom => w.num("442", format_args!("* :You're not on that channel")),
        ProtocolError::TooManyRooms { .. } => {
            w.num("405", format_args!("* :You have joined too many channels"))
        }
        ProtocolError::NoSuchNick(nick) => {
            w.num("401", format_args!("{nick} :No such nick/channel"))
        }
        ProtocolError::NoSuchRoom(room) => w.num("403", format_args!("#{room} :No such channel")),
        ProtocolError::LineTooLong { .. } => w.num("417", format_args!(":Input line was too long")),
        ProtocolError::CannotSendTo(room) => {
            w.num("404", format_args!("#{room} :Cannot send to channel"))
        }
        ProtocolError::InvalidUtf8
        | ProtocolError::ControlChars
        | ProtocolError::TopicTooLong
        | ProtocolError::Flood => w.notice(format_args!("{error}")),
    }
}

/// `:server PONG server :TOKEN`.
pub fn pong(server: &str, token: &str) -> String {
    format!(":{server} PONG {server} :{token}\r\n")
}

/// The keepalive the server sends after `--irc-ping` of silence.
pub fn keepalive_ping(server: &str) -> String {
    format!("PING :{server}\r\n")
}

/// What the IRC session answers that the chat core has no [`Event`] for: numerics of
/// registration, command errors and the few queries the line protocol never asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrcReply<'a> {
    /// 001–005 and the MOTD, after registration.
    Welcome {
        /// The server's version string.
        version: &'a str,
    },
    /// `CAP * SUB :LIST` (no capabilities are offered yet).
    Cap {
        /// `LS`, `LIST` or `NAK`.
        sub: &'a str,
        /// The capability list (what was asked, for `NAK`).
        list: &'a str,
    },
    /// 410: a CAP subcommand we do not know.
    InvalidCap(&'a str),
    /// 451: a command before registration.
    NotRegistered,
    /// 462: `PASS`/`USER` after registration.
    AlreadyRegistered,
    /// 461 for this command.
    NeedMoreParams(&'a str),
    /// 421 for this command.
    UnknownCommand(&'a str),
    /// 431.
    NoNicknameGiven,
    /// 432 for this nick.
    ErroneousNickname(&'a str),
    /// 433 for this nick.
    NicknameInUse(&'a str),
    /// 464 and the closing `ERROR`.
    PasswordIncorrect,
    /// 401 for this target.
    NoSuchNick(&'a str),
    /// 403 for this name.
    NoSuchChannel(&'a str),
    /// 411 for this command.
    NoRecipient(&'a str),
    /// 412.
    NoTextToSend,
    /// 318 for this nick.
    EndOfWhois(&'a str),
    /// 315 for this mask.
    EndOfWho(&'a str),
    /// 366 for every channel (`NAMES` without a channel).
    EndOfNamesAll,
    /// 324: the channel's modes (always `+nt` for now).
    ChannelModes(&'a str),
    /// 368: an empty ban list.
    EndOfBanList(&'a str),
    /// 482.
    NotChannelOperator(&'a str),
    /// 221: the reader's own modes.
    UserModes,
    /// The reader's own mode change, echoed back.
    UserModeChanged(&'a str),
    /// 502.
    CannotChangeOthersModes,
    /// `ERROR :Closing Link: me (REASON)`.
    ClosingLink(&'a str),
}

/// The lines of an [`IrcReply`] to `me` (`*` before the client has a nick).
pub fn session_reply(reply: &IrcReply<'_>, server: &str, me: &str) -> String {
    let mut w = Numerics::new(server, me);
    match reply {
        IrcReply::Welcome { version } => welcome(&mut w, version),
        IrcReply::Cap { sub, list } => {
            let _ = write!(w.out, ":{server} CAP * {sub} :{list}\r\n");
        }
        IrcReply::InvalidCap(sub) => w.num("410", format_args!("{sub} :Invalid CAP command")),
        IrcReply::NotRegistered => w.num("451", format_args!(":You have not registered")),
        IrcReply::AlreadyRegistered => w.num("462", format_args!(":You may not reregister")),
        IrcReply::NeedMoreParams(cmd) => w.num("461", format_args!("{cmd} :Not enough parameters")),
        IrcReply::UnknownCommand(cmd) => w.num("421", format_args!("{cmd} :Unknown command")),
        IrcReply::NoNicknameGiven => w.num("431", format_args!(":No nickname given")),
        IrcReply::ErroneousNickname(nick) => {
            w.num("432", format_args!("{nick} :Erroneous nickname"))
        }
        IrcReply::NicknameInUse(nick) => {
            w.num("433", format_args!("{nick} :Nickname is already in use"))
        }
        IrcReply::PasswordIncorrect => {
            w.num("464", format_args!(":Password incorrect"));
            w.closing_link("Bad password");
        }
        IrcReply::NoSuchNick(nick) => w.num("401", format_args!("{nick} :No such nick/channel")),
        IrcReply::NoSuchChannel(name) => w.num("403", format_args!("{name} :No such channel")),
        IrcReply::NoRecipient(cmd) => w.num("411", format_args!(":No recipient given ({cmd})")),
        IrcReply::NoTextToSend => w.num("412", format_args!(":No text to send")),
        IrcReply::EndOfWhois(nick) => w.num("318", format_args!("{nick} :End of /WHOIS list.")),
        IrcReply::EndOfWho(mask) => w.num("315", format_args!("{mask} :End of /WHO list.")),
        IrcReply::EndOfNamesAll => w.num("366", format_args!("* :End of /NAMES list.")),
        IrcReply::ChannelModes(chan) => w.num("324", format_args!("{chan} +nt")),
        IrcReply::EndOfBanList(chan) => {
            w.num("368", format_args!("{chan} :End of channel ban list"))
        }
        IrcReply::NotChannelOperator(chan) => {
            w.num("482", format_args!("{chan} :You're not channel operator"))
        }
        IrcReply::UserModes => w.num("221", format_args!("+i")),
        IrcReply::UserModeChanged(modes) => w.own(format_args!("MODE {me} :{modes}")),
        IrcReply::CannotChangeOthersModes => {
            w.num("502", format_args!(":Can't change mode for other users"))
        }
        IrcReply::ClosingLink(reason) => w.closing_link(reason),
    }
    w.out
}

/// The registration burst: 001–005 and the MOTD.
fn welcome(w: &mut Numerics<'_>, version: &str) {
    let (server, me) = (w.server, w.me);
    w.num(
        "001",
        format_args!(":Welcome to the miochat IRC network {me}!{me}@{HOST}"),
    );
    w.num(
        "002",
        format_args!(":Your host is {server}, running version {version}"),
    );
    w.num(
        "003",
        format_args!(":This server speaks IRC and the miochat line protocol"),
    );
    w.num("004", format_args!("{server} {version} i nt"));
    w.num(
        "005",
        format_args!(
            "CHANTYPES=# NICKLEN={MAX_NICK_LEN} CHANNELLEN={} TOPICLEN={MAX_TOPIC_LEN} \
             CASEMAPPING=ascii NETWORK=miochat CHANMODES=,,,nt PREFIX=() \
             :are supported by this server",
            MAX_ROOM_LEN + 1
        ),
    );
    w.num("375", format_args!(":- {server} Message of the day -"));
    w.num(
        "372",
        format_args!(":- Welcome to miochat. Rooms are #channels; line-protocol users share them."),
    );
    w.num("376", format_args!(":End of /MOTD command."));
}

/// A `#room` parameter as a room: `None` unless it starts with `#` and the rest is a
/// valid room name. The one place IRC channel names become rooms.
pub fn channel(param: &str) -> Option<RoomName> {
    if !param.starts_with('#') {
        return None;
    }
    RoomName::parse(param).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(line: &str) -> Message<'_> {
        parse(line.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn parsing() {
        let m = msg("@time=x :nick!u@h privmsg #rust :hello there");
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#rust", "hello there"]);
        assert_eq!(msg("NICK alice").params, ["alice"]);
        assert_eq!(
            msg("USER a 0 * :Real Name").params,
            ["a", "0", "*", "Real Name"]
        );
        assert_eq!(msg("JOIN #a,#b").params, ["#a,#b"]);
        assert_eq!(msg("QUIT").params, Vec::<&str>::new());
        assert_eq!(msg("PRIVMSG #x :").params, ["#x", ""]);
        assert_eq!(parse(b"   ").unwrap(), None);
        assert_eq!(parse(b"\xff").unwrap_err(), ProtocolError::InvalidUtf8);
    }

    #[test]
    fn text_cleaning() {
        assert_eq!(clean_text("hi"), (Cow::Borrowed("hi"), false));
        assert_eq!(
            clean_text("\x01ACTION waves\x01"),
            (Cow::Borrowed("waves"), true)
        );
        assert_eq!(clean_text("\x02bold\x02 \x0304,12red\x03").0, "bold red");
    }

    #[test]
    fn broadcast_lines() {
        let room = RoomName::parse("rust").unwrap();
        let nick = Nick::parse("alice").unwrap();
        let m = Event::Message {
            room: room.clone(),
            from: nick.clone(),
            text: "hi".into(),
        };
        assert_eq!(
            broadcast(&m).unwrap(),
            ":alice!alice@miochat PRIVMSG #rust :hi\r\n"
        );
        let long = Event::Message {
            room,
            from: nick,
            text: "é".repeat(400).into(),
        };
        let line = broadcast(&long).unwrap();
        assert!(line.len() <= 512, "{}", line.len());
        assert!(line.ends_with("é\r\n"), "cut at a char boundary");
    }

    #[test]
    fn replies_are_addressed_to_me() {
        let room = RoomName::parse("rust").unwrap();
        let nicks = vec![Nick::parse("alice").unwrap(), Nick::parse("bob").unwrap()];
        let joined = reply(
            &Event::YouJoined {
                room: room.clone(),
                members: 2,
                topic: Some("mio".into()),
                nicks,
            },
            "srv",
            "bob",
        );
        assert_eq!(
            joined,
            ":bob!bob@miochat JOIN #rust\r\n:srv 332 bob #rust :mio\r\n\
             :srv 353 bob = #rust :alice bob\r\n:srv 366 bob #rust :End of /NAMES list.\r\n"
        );
        let err = reply(&Event::Error(ProtocolError::NotInRoom(room)), "srv", "bob");
        assert_eq!(err, ":srv 442 bob #rust :You're not on that channel\r\n");
    }
}
