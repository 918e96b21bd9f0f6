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
use std::fmt::Write as _;

use super::{Event, Nick, ProtocolError, Refusal, RoomName};

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
///
/// CR, LF and NUL may not appear inside a message (RFC 2812): such a line is refused,
/// since a bare CR echoed in a topic or quit reason would end the line early for
/// clients that split on CR, letting one user forge lines for everyone else.
pub fn parse(line: &[u8]) -> Result<Option<Message<'_>>, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
    if text.contains(['\r', '\n', '\0']) {
        return Err(ProtocolError::ControlChars);
    }
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

/// A numeric reply line: `:server NNN me PARAMS`.
fn numeric(out: &mut String, server: &str, code: &str, me: &str, params: &str) {
    let _ = write!(out, ":{server} {code} {me} {params}\r\n");
}

/// `353` lines (as many as needed) and the closing `366`.
fn names(out: &mut String, server: &str, me: &str, room: &RoomName, nicks: &[Nick]) {
    for chunk in nicks.chunks(NAMES_PER_LINE) {
        let list: Vec<&str> = chunk.iter().map(Nick::as_str).collect();
        numeric(
            out,
            server,
            "353",
            me,
            &format!("= {} :{}", chan(room), list.join(" ")),
        );
    }
    numeric(
        out,
        server,
        "366",
        me,
        &format!("{} :End of /NAMES list.", chan(room)),
    );
}

/// The IRC lines that tell `me` (a connection's current nick) about `event`.
pub fn reply(event: &Event, server: &str, me: &str) -> String {
    if let Some(line) = broadcast(event) {
        return line;
    }
    let mut out = String::new();
    match event {
        Event::Private { from, text, notice } => {
            let verb = if *notice { "NOTICE" } else { "PRIVMSG" };
            push_text_line(&mut out, &format!(":{} {verb} {me}", source(from)), text);
        }
        Event::YouJoined {
            room, topic, nicks, ..
        } => {
            let _ = write!(out, ":{me}!{me}@{HOST} JOIN {}\r\n", chan(room));
            if let Some(topic) = topic {
                numeric(
                    &mut out,
                    server,
                    "332",
                    me,
                    &format!("{} :{topic}", chan(room)),
                );
            }
            names(&mut out, server, me, room, nicks);
        }
        Event::YouLeft { room } => {
            let _ = write!(out, ":{me}!{me}@{HOST} PART {}\r\n", chan(room));
        }
        Event::NickIs { old, nick } => {
            let _ = write!(out, ":{} NICK :{nick}\r\n", source(old));
        }
        Event::Who { room, nicks, .. } => {
            for nick in nicks {
                let params = format!("{} {nick} {HOST} {server} {nick} H :0 {nick}", chan(room));
                numeric(&mut out, server, "352", me, &params);
            }
            numeric(
                &mut out,
                server,
                "315",
                me,
                &format!("{} :End of /WHO list.", chan(room)),
            );
        }
        Event::Names { room, nicks } => names(&mut out, server, me, room, nicks),
        Event::Rooms(rooms) => {
            numeric(&mut out, server, "321", me, "Channel :Users  Name");
            for info in rooms {
                let topic = info.topic.as_deref().unwrap_or("");
                let params = format!("{} {} :{topic}", chan(&info.room), info.members);
                numeric(&mut out, server, "322", me, &params);
            }
            numeric(&mut out, server, "323", me, ":End of /LIST");
        }
        Event::Topic { room, topic } => match topic {
            Some(topic) => numeric(
                &mut out,
                server,
                "332",
                me,
                &format!("{} :{topic}", chan(room)),
            ),
            None => numeric(
                &mut out,
                server,
                "331",
                me,
                &format!("{} :No topic is set", chan(room)),
            ),
        },
        Event::Whois { nick, away } => {
            numeric(
                &mut out,
                server,
                "311",
                me,
                &format!("{nick} {nick} {HOST} * :{nick}"),
            );
            numeric(
                &mut out,
                server,
                "312",
                me,
                &format!("{nick} {server} :miochat"),
            );
            if let Some(away) = away {
                numeric(&mut out, server, "301", me, &format!("{nick} :{away}"));
            }
            numeric(
                &mut out,
                server,
                "318",
                me,
                &format!("{nick} :End of /WHOIS list."),
            );
        }
        Event::Away(true) => numeric(
            &mut out,
            server,
            "306",
            me,
            ":You have been marked as being away",
        ),
        Event::Away(false) => numeric(
            &mut out,
            server,
            "305",
            me,
            ":You are no longer marked as being away",
        ),
        Event::IsAway { nick, text } => {
            numeric(&mut out, server, "301", me, &format!("{nick} :{text}"))
        }
        Event::Ison(nicks) => {
            let list: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
            numeric(&mut out, server, "303", me, &format!(":{}", list.join(" ")));
        }
        Event::Userhost(nicks) => {
            let list: Vec<String> = nicks
                .iter()
                .map(|(n, away)| format!("{n}={}{n}@{HOST}", if *away { '-' } else { '+' }))
                .collect();
            numeric(&mut out, server, "302", me, &format!(":{}", list.join(" ")));
        }
        Event::Pong(token) => {
            let _ = write!(
                out,
                ":{server} PONG {server} :{}\r\n",
                token.as_deref().unwrap_or(server)
            );
        }
        Event::Bye => {
            let _ = write!(out, "ERROR :Closing Link: {me} (Quit)\r\n");
        }
        Event::ShuttingDown => {
            let _ = write!(out, "ERROR :Closing Link: {me} (server shutting down)\r\n");
        }
        Event::Closing(refusal) => {
            let text = match refusal {
                Refusal::IdleTimeout => "Ping timeout",
                other => other.text(),
            };
            let _ = write!(out, "ERROR :Closing Link: {me} ({text})\r\n");
        }
        Event::Error(error) => error_numeric(&mut out, server, me, error),
        Event::Stats(report) => {
            let line = super::render::line(&Event::Stats(report.clone()));
            let text = String::from_utf8_lossy(&line);
            let _ = write!(out, ":{server} NOTICE {me} :{}\r\n", text.trim_end());
        }
        Event::Welcome { .. } | Event::Help => {
            let _ = write!(
                out,
                ":{server} NOTICE {me} :miochat speaks IRC; rooms are #channels\r\n"
            );
        }
        // Broadcast events were handled above.
        _ => {}
    }
    out
}

/// The numeric (or notice) for a client mistake.
fn error_numeric(out: &mut String, server: &str, me: &str, error: &ProtocolError) {
    let (code, params) = match error {
        ProtocolError::UnknownCommand(name) => ("421", format!("{name} :Unknown command")),
        ProtocolError::Usage(_) => ("461", "* :Not enough parameters".into()),
        ProtocolError::BadNick => ("432", "* :Erroneous nickname".into()),
        ProtocolError::NickTaken(nick) => ("433", format!("{nick} :Nickname is already in use")),
        ProtocolError::BadRoom => ("403", "* :No such channel".into()),
        ProtocolError::NotInRoom(room) => {
            ("442", format!("{} :You're not on that channel", chan(room)))
        }
        ProtocolError::NoRoom => ("442", "* :You're not on that channel".into()),
        ProtocolError::TooManyRooms { .. } => {
            ("405", "* :You have joined too many channels".into())
        }
        ProtocolError::NoSuchNick(nick) => ("401", format!("{nick} :No such nick/channel")),
        ProtocolError::NoSuchRoom(room) => ("403", format!("{} :No such channel", chan(room))),
        ProtocolError::LineTooLong { .. } => ("417", ":Input line was too long".into()),
        ProtocolError::CannotSendTo(room) => {
            ("404", format!("{} :Cannot send to channel", chan(room)))
        }
        ProtocolError::InvalidUtf8
        | ProtocolError::ControlChars
        | ProtocolError::TopicTooLong
        | ProtocolError::Flood => {
            let _ = write!(out, ":{server} NOTICE {me} :{error}\r\n");
            return;
        }
    };
    numeric(out, server, code, me, &params);
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
    fn cr_lf_and_nul_inside_a_line_are_refused() {
        // Found by fuzzing: a bare CR in a topic reached every member of the room.
        let forged = b"TOPIC #rust :x\r:mallory!mallory@miochat PRIVMSG #rust :forged";
        assert_eq!(parse(forged).unwrap_err(), ProtocolError::ControlChars);
        assert_eq!(
            parse(b"QUIT :a\0b").unwrap_err(),
            ProtocolError::ControlChars
        );
        assert_eq!(
            parse(b"AWAY :a\nb").unwrap_err(),
            ProtocolError::ControlChars
        );
        // Other control characters (colours, CTCP) are text, cleaned where shown.
        assert!(
            parse(b"PRIVMSG #rust :\x01ACTION waves\x01")
                .unwrap()
                .is_some()
        );
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
