//! One line of the miochat line protocol → a [`Command`].
//!
//! The framer has already removed the LF (and a CR before it). This module checks
//! what a line may contain (UTF-8, no control characters) and splits commands into
//! their arguments. It returns `Ok(None)` for a blank line, which is ignored, and a
//! [`ProtocolError`] for everything a client can get wrong; it never panics, whatever
//! the bytes (guarded by the unit tests here and the property tests in `tests/`).
//!
//! A line that starts with `/` is a command; `//text` sends the message `/text`;
//! any other line is a message to the current room. Command names are
//! case-insensitive. The way back, a command to its line ([`Command::to_line`]), is
//! in `command.rs` with the rest of what a command means.

use super::modes::{self, ModeKind, ModeRequest};
use super::{
    AccessLevel, Command, HISTORY_READ_MAX, HistoryQuery, MAX_TOPIC_LEN, Nick, ProtocolError,
    RoomName, SayKind, parse_msgid, parse_timestamp,
};

/// Parses one line (without its terminator).
pub fn parse_line(line: &[u8]) -> Result<Option<Command<'_>>, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
    // Control characters, and the characters that stand for IRC bytes (`raw.rs`).
    if text
        .chars()
        .any(|c| (c.is_control() && c != '\t') || super::raw::is_escape(c))
    {
        return Err(ProtocolError::ControlChars);
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.strip_prefix('/') {
        Some(escaped) if escaped.starts_with('/') => Ok(Some(Command::Say(escaped))),
        Some(command) => parse_command(command).map(Some),
        None => Ok(Some(Command::Say(text))),
    }
}

/// Parses the part of a command line after its `/`.
fn parse_command(line: &str) -> Result<Command<'_>, ProtocolError> {
    let (name, rest) = split_word(line);
    let rest = rest.trim();
    let arg = (!rest.is_empty()).then_some(rest);
    let lower = name.to_ascii_lowercase();
    let command = match lower.as_str() {
        "nick" => Command::Nick(Nick::parse(one_word(arg, "/nick NAME")?)?),
        "join" => join(arg)?,
        "leave" | "part" => Command::Leave(optional_room(arg, "/leave [ROOM]")?),
        "msg" => {
            let (to, text) = split_word(arg.ok_or(ProtocolError::Usage("/msg NICK TEXT"))?);
            let text = text.trim_start();
            if text.is_empty() {
                return Err(ProtocolError::Usage("/msg NICK TEXT"));
            }
            match to.starts_with('#') {
                // `/msg #room text`: a line to that room, which stays not current.
                true => Command::SayTo {
                    room: RoomName::parse(to)?,
                    text,
                    kind: SayKind::Message,
                },
                false => Command::Msg { to, text },
            }
        }
        "me" => Command::Me(arg.ok_or(ProtocolError::Usage("/me TEXT"))?),
        "who" => Command::Who(optional_room(arg, "/who [ROOM]")?),
        "rooms" => no_args(arg, Command::Rooms, "/rooms")?,
        "topic" => match arg {
            Some(topic) if topic.len() > MAX_TOPIC_LEN => return Err(ProtocolError::TopicTooLong),
            topic => Command::Topic(topic),
        },
        "ping" => Command::Ping(arg),
        "stats" => no_args(arg, Command::Stats, "/stats")?,
        "quit" => Command::Quit(arg),
        "help" => Command::Help,
        "op" | "deop" | "voice" | "devoice" => role(&lower, arg)?,
        "kick" => {
            let (nick, reason) = split_word(arg.ok_or(ProtocolError::Usage(KICK_USAGE))?);
            let reason = reason.trim();
            Command::Kick {
                room: None,
                nick,
                reason: (!reason.is_empty()).then_some(reason),
            }
        }
        "ban" => mode_of("+b", one_word(arg, "/ban MASK")?),
        "unban" => mode_of("-b", one_word(arg, "/unban MASK")?),
        "bans" => Command::Mode {
            room: optional_room(arg, "/bans [ROOM]")?,
            request: modes::parse("+b", &[]),
        },
        "invite" => {
            let usage = "/invite NICK [ROOM]";
            let (nick, room) = split_word(arg.ok_or(ProtocolError::Usage(usage))?);
            Command::Invite {
                nick,
                room: optional_room((!room.is_empty()).then_some(room), usage)?,
            }
        }
        "mode" => mode(arg)?,
        "whois" => Command::Whois(one_word(arg, "/whois NICK")?),
        "away" => Command::Away(arg.map(|text| cut(text, super::irc::MAX_AWAY_LEN))),
        "echo" => match arg.map(str::to_ascii_lowercase).as_deref() {
            Some("on") => Command::Echo(true),
            Some("off") => Command::Echo(false),
            _ => return Err(ProtocolError::Usage("/echo on|off")),
        },
        "history" => history(arg)?,
        "register" | "unregister" | "login" | "identify" | "logout" | "passwd" | "access" => {
            account(&lower, arg)?
        }
        "oper" | "kill" | "kline" | "unkline" | "klines" | "wallops" | "wall" | "rehash"
        | "motd" => operator(&lower, arg)?,
        _ => return Err(ProtocolError::UnknownCommand(name.into())),
    };
    Ok(command)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Usage of `/history`.
const HISTORY_USAGE: &str = "/history [N] | /history ROOM [N] | /history ROOM since MSGID|TIME";

/// `/history [N]` (the current room, from memory), `/history ROOM [N]` and
/// `/history ROOM since MSGID|TIME` (from the store when there is one).
fn history(arg: Option<&str>) -> Result<Command<'_>, ProtocolError> {
    let usage = ProtocolError::Usage(HISTORY_USAGE);
    let words: Vec<&str> = arg.unwrap_or("").split_whitespace().collect();
    let count = |word: &str| word.parse::<usize>().map_err(|_| usage.clone());
    let query = match words.as_slice() {
        [] => return Ok(Command::History(None)),
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => {
            return Ok(Command::History(Some(count(n)?)));
        }
        [_] => HistoryQuery::Latest(JOIN_LINES),
        [_, n] => HistoryQuery::Latest(count(n)?),
        [_, since, point] if since.eq_ignore_ascii_case("since") => {
            match (parse_msgid(point), parse_timestamp(point)) {
                (Some(id), _) => HistoryQuery::AfterId(id, HISTORY_READ_MAX),
                (None, Some(at)) => HistoryQuery::AfterTime(at, HISTORY_READ_MAX),
                (None, None) => return Err(usage),
            }
        }
        _ => return Err(usage),
    };
    let room = RoomName::parse(words[0])?;
    Ok(Command::HistoryOf { room, query })
}

/// Lines `/history ROOM` sends when no count is given (as many as a join's playback).
const JOIN_LINES: usize = 20;

/// The account and registration commands: `/register`, `/unregister`, `/login`
/// (`/identify`), `/logout`, `/passwd`, `/access`.
fn account<'a>(name: &str, arg: Option<&'a str>) -> Result<Command<'a>, ProtocolError> {
    let words: Vec<&'a str> = arg.unwrap_or("").split_whitespace().collect();
    let room = |word: &str| RoomName::parse(word);
    let command = match (name, words.as_slice()) {
        ("register", [word]) if word.starts_with('#') => Command::RegisterRoom(room(word)?),
        ("register", [password]) => Command::Register(password),
        ("register", _) => {
            return Err(ProtocolError::Usage("/register PASSWORD | /register #ROOM"));
        }
        ("unregister", [word]) if word.starts_with('#') => Command::UnregisterRoom(room(word)?),
        ("unregister", [password]) => Command::Unregister(password),
        ("unregister", _) => {
            return Err(ProtocolError::Usage(
                "/unregister PASSWORD | /unregister #ROOM",
            ));
        }
        ("login" | "identify", [account, password]) => Command::Login {
            account: Some(account),
            password,
        },
        ("identify", [password]) => Command::Login {
            account: None,
            password,
        },
        ("login" | "identify", _) => return Err(ProtocolError::Usage("/login NICK PASSWORD")),
        ("logout", []) => Command::Logout,
        ("logout", _) => return Err(ProtocolError::Usage("/logout")),
        ("passwd", [old, new]) => Command::Passwd { old, new },
        ("passwd", _) => return Err(ProtocolError::Usage("/passwd OLD NEW")),
        ("access", [name]) => Command::Access {
            room: room(name)?,
            change: None,
        },
        ("access", [name, add, nick, level]) if add.eq_ignore_ascii_case("add") => {
            let level = AccessLevel::parse(level).ok_or(ProtocolError::Usage(ACCESS_USAGE))?;
            Command::Access {
                room: room(name)?,
                change: Some((nick, Some(level))),
            }
        }
        ("access", [name, del, nick]) if del.eq_ignore_ascii_case("del") => Command::Access {
            room: room(name)?,
            change: Some((nick, None)),
        },
        _ => return Err(ProtocolError::Usage(ACCESS_USAGE)),
    };
    Ok(command)
}

/// Usage of `/kline`.
const KLINE_USAGE: &str = "/kline MASK DURATION [REASON] (DURATION: 30m, 2h, 7d, 0 or perm)";

/// The server operators' commands: `/oper`, `/kill`, `/kline`, `/unkline`,
/// `/klines`, `/wallops`, `/wall`, `/rehash`, and `/motd` (anyone's).
fn operator<'a>(name: &str, arg: Option<&'a str>) -> Result<Command<'a>, ProtocolError> {
    let text = |usage: &'static str| arg.ok_or(ProtocolError::Usage(usage));
    let command = match name {
        "oper" => match arg.unwrap_or("").split_whitespace().collect::<Vec<_>>()[..] {
            [name, password] => Command::Oper { name, password },
            _ => return Err(ProtocolError::Usage("/oper NAME PASSWORD")),
        },
        "kill" => {
            let (nick, reason) = split_word(text("/kill NICK REASON")?);
            match reason.trim() {
                "" => return Err(ProtocolError::Usage("/kill NICK REASON")),
                reason => Command::Kill { nick, reason },
            }
        }
        "kline" => {
            let (mask, rest) = split_word(text(KLINE_USAGE)?);
            let (duration, reason) = split_word(rest.trim_start());
            let duration = parse_duration(duration).ok_or(ProtocolError::Usage(KLINE_USAGE))?;
            let reason = reason.trim();
            Command::Kline {
                mask,
                duration,
                reason,
            }
        }
        "unkline" => Command::Unkline(one_word(arg, "/unkline MASK")?),
        "klines" => no_args(arg, Command::Klines, "/klines")?,
        "wallops" => Command::Wallops(text("/wallops TEXT")?),
        "wall" => Command::Wall(text("/wall TEXT")?),
        "rehash" => no_args(arg, Command::Rehash, "/rehash")?,
        _ => no_args(arg, Command::Motd, "/motd")?,
    };
    Ok(command)
}

/// A k-line's duration: `N` followed by `s`, `m`, `h`, `d` or `w` (a bare number is
/// minutes), or `0` / `perm` for one that lasts until lifted (`Some(None)`). `None`
/// if it is none of these.
pub fn parse_duration(word: &str) -> Option<Option<u64>> {
    if word == "0" || word.eq_ignore_ascii_case("perm") {
        return Some(None);
    }
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, unit) = word.split_at(split);
    let count: u64 = digits.parse().ok()?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    match count.checked_mul(unit)? {
        0 => Some(None),
        secs => Some(Some(secs)),
    }
}

/// Usage of `/access`.
const ACCESS_USAGE: &str = "/access ROOM [add NICK op|voice | del NICK]";

/// Usage of `/kick`.
const KICK_USAGE: &str = "/kick NICK [REASON]";

/// `/join ROOM [KEY]`.
fn join(arg: Option<&str>) -> Result<Command<'_>, ProtocolError> {
    let usage = ProtocolError::Usage("/join ROOM [KEY]");
    let mut words = arg.ok_or(usage.clone())?.split_whitespace();
    let room = RoomName::parse(words.next().ok_or(usage.clone())?)?;
    match (words.next(), words.next()) {
        (None, _) => Ok(Command::Join(room)),
        (Some(key), None) => Ok(Command::JoinWithKey { room, key }),
        (Some(_), Some(_)) => Err(usage),
    }
}

/// `/op NICK`, `/deop NICK`, `/voice NICK`, `/devoice NICK`: one mode change.
fn role<'a>(name: &str, arg: Option<&'a str>) -> Result<Command<'a>, ProtocolError> {
    let usage = match name {
        "op" => "/op NICK",
        "deop" => "/deop NICK",
        "voice" => "/voice NICK",
        _ => "/devoice NICK",
    };
    let nick = one_word(arg, usage)?.into();
    let (set, kind) = match name {
        "op" => (true, ModeKind::Op(nick)),
        "deop" => (false, ModeKind::Op(nick)),
        "voice" => (true, ModeKind::Voice(nick)),
        _ => (false, ModeKind::Voice(nick)),
    };
    Ok(Command::Mode {
        room: None,
        request: ModeRequest::one(set, kind),
    })
}

/// A mode command on the current room with one mode string and one parameter.
fn mode_of(modestring: &str, param: &str) -> Command<'static> {
    let params: &[&str] = if param.is_empty() { &[] } else { &[param] };
    Command::Mode {
        room: None,
        request: modes::parse(modestring, params),
    }
}

/// `/mode [[#]ROOM] [+-FLAGS [ARGS...]]`. Mode changes start with `+` or `-`, so a
/// first word without either names a room, with or without `#` as everywhere else.
fn mode(arg: Option<&str>) -> Result<Command<'_>, ProtocolError> {
    let mut words: Vec<&str> = arg.unwrap_or("").split_whitespace().collect();
    let room = match words.first() {
        Some(first) if !first.starts_with(['+', '-']) => Some(RoomName::parse(words.remove(0))?),
        _ => None,
    };
    let request = match words.split_first() {
        Some((modestring, params)) => modes::parse(modestring, params),
        None => ModeRequest::default(),
    };
    Ok(Command::Mode { room, request })
}

/// Splits at the first space: (first word, rest after the space).
fn split_word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// Exactly one word, or the usage error.
fn one_word<'a>(arg: Option<&'a str>, usage: &'static str) -> Result<&'a str, ProtocolError> {
    match arg {
        Some(word) if !word.contains([' ', '\t']) => Ok(word),
        _ => Err(ProtocolError::Usage(usage)),
    }
}

/// Zero or one room name.
fn optional_room(
    arg: Option<&str>,
    usage: &'static str,
) -> Result<Option<RoomName>, ProtocolError> {
    arg.map(|a| one_word(Some(a), usage).and_then(RoomName::parse))
        .transpose()
}

/// A command that takes no arguments.
fn no_args<'a>(
    arg: Option<&str>,
    command: Command<'a>,
    usage: &'static str,
) -> Result<Command<'a>, ProtocolError> {
    match arg {
        None => Ok(command),
        Some(_) => Err(ProtocolError::Usage(usage)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(line: &str) -> Command<'_> {
        parse_line(line.as_bytes()).unwrap().unwrap()
    }

    fn err(line: &[u8]) -> ProtocolError {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn every_command() {
        let nick = |s| Nick::parse(s).unwrap();
        let room = |s| RoomName::parse(s).unwrap();
        let table: Vec<(&str, Command<'_>)> = vec![
            ("hello there", Command::Say("hello there")),
            ("//slash", Command::Say("/slash")),
            ("/nick Bob", Command::Nick(nick("Bob"))),
            ("/NICK  Bob ", Command::Nick(nick("Bob"))),
            ("/join #Rust", Command::Join(room("rust"))),
            ("/leave", Command::Leave(None)),
            ("/leave rust", Command::Leave(Some(room("rust")))),
            (
                "/msg bob hi there",
                Command::Msg {
                    to: "bob",
                    text: "hi there",
                },
            ),
            (
                "/msg #Rust hi all",
                Command::SayTo {
                    room: room("rust"),
                    text: "hi all",
                    kind: SayKind::Message,
                },
            ),
            ("/me waves", Command::Me("waves")),
            ("/who", Command::Who(None)),
            ("/who lobby", Command::Who(Some(room("lobby")))),
            ("/rooms", Command::Rooms),
            ("/topic", Command::Topic(None)),
            (
                "/topic all about mio",
                Command::Topic(Some("all about mio")),
            ),
            ("/ping", Command::Ping(None)),
            ("/ping 42", Command::Ping(Some("42"))),
            ("/stats", Command::Stats),
            ("/quit", Command::Quit(None)),
            ("/quit gone fishing", Command::Quit(Some("gone fishing"))),
            ("/help", Command::Help),
        ];
        for (line, want) in table {
            assert_eq!(ok(line), want, "{line}");
            assert!(want.to_line().is_some_and(|l| ok(&l) == want), "{line}");
        }
        assert_eq!(err(b"/msg #b@d hi"), ProtocolError::BadRoom);
    }

    #[test]
    fn every_moderation_command() {
        let room = |s| RoomName::parse(s).unwrap();
        let table: Vec<(&str, Command<'_>)> = vec![
            (
                "/join rust sesame",
                Command::JoinWithKey {
                    room: room("rust"),
                    key: "sesame",
                },
            ),
            (
                "/op bob",
                Command::Mode {
                    room: None,
                    request: ModeRequest::one(true, ModeKind::Op("bob".into())),
                },
            ),
            (
                "/devoice bob",
                Command::Mode {
                    room: None,
                    request: ModeRequest::one(false, ModeKind::Voice("bob".into())),
                },
            ),
            (
                "/ban bob",
                Command::Mode {
                    room: None,
                    request: ModeRequest::one(true, ModeKind::Ban("bob!*@*".into())),
                },
            ),
            (
                "/unban *!*@10.*",
                Command::Mode {
                    room: None,
                    request: ModeRequest::one(false, ModeKind::Ban("*!*@10.*".into())),
                },
            ),
            (
                "/bans",
                Command::Mode {
                    room: None,
                    request: ModeRequest {
                        list_bans: true,
                        ..ModeRequest::default()
                    },
                },
            ),
            (
                "/bans #go",
                Command::Mode {
                    room: Some(room("go")),
                    request: ModeRequest {
                        list_bans: true,
                        ..ModeRequest::default()
                    },
                },
            ),
            (
                "/mode",
                Command::Mode {
                    room: None,
                    request: ModeRequest::default(),
                },
            ),
            (
                "/mode #go +k key",
                Command::Mode {
                    room: Some(room("go")),
                    request: ModeRequest::one(true, ModeKind::Key(Some("key".into()))),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(ok(line), want, "{line}");
        }
    }

    #[test]
    fn mode_takes_a_room_with_or_without_hash() {
        let room = |s| RoomName::parse(s).unwrap();
        let bare = Command::Mode {
            room: Some(room("club")),
            request: ModeRequest::default(),
        };
        assert_eq!(ok("/mode club"), bare);
        let unkey = Command::Mode {
            room: Some(room("go")),
            request: ModeRequest::one(false, ModeKind::Key(None)),
        };
        assert_eq!(ok("/mode go -k"), unkey);
    }

    #[test]
    fn kick_and_invite_commands() {
        let room = |s| RoomName::parse(s).unwrap();
        let table: Vec<(&str, Command<'_>)> = vec![
            (
                "/kick bob go away",
                Command::Kick {
                    room: None,
                    nick: "bob",
                    reason: Some("go away"),
                },
            ),
            (
                "/kick bob",
                Command::Kick {
                    room: None,
                    nick: "bob",
                    reason: None,
                },
            ),
            (
                "/invite bob",
                Command::Invite {
                    nick: "bob",
                    room: None,
                },
            ),
            (
                "/invite bob go",
                Command::Invite {
                    nick: "bob",
                    room: Some(room("go")),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(ok(line), want, "{line}");
        }
    }

    #[test]
    fn every_error() {
        assert_eq!(err(b"/frob"), ProtocolError::UnknownCommand("frob".into()));
        assert_eq!(err(b"/nick"), ProtocolError::Usage("/nick NAME"));
        assert_eq!(err(b"/nick a b"), ProtocolError::Usage("/nick NAME"));
        assert_eq!(err(b"/nick 9lives"), ProtocolError::BadNick);
        assert_eq!(
            err(b"/join bad room x"),
            ProtocolError::Usage("/join ROOM [KEY]")
        );
        assert_eq!(err(b"/op"), ProtocolError::Usage("/op NICK"));
        assert_eq!(err(b"/op a b"), ProtocolError::Usage("/op NICK"));
        assert_eq!(err(b"/kick"), ProtocolError::Usage(KICK_USAGE));
        assert_eq!(err(b"/ban"), ProtocolError::Usage("/ban MASK"));
        assert_eq!(err(b"/bans x y"), ProtocolError::Usage("/bans [ROOM]"));
        assert_eq!(err(b"/invite"), ProtocolError::Usage("/invite NICK [ROOM]"));
        assert_eq!(err(b"/join b@d"), ProtocolError::BadRoom);
        assert_eq!(err(b"/msg bob"), ProtocolError::Usage("/msg NICK TEXT"));
        assert_eq!(err(b"/me"), ProtocolError::Usage("/me TEXT"));
        assert_eq!(err(b"/rooms x"), ProtocolError::Usage("/rooms"));
        assert_eq!(err(b"\xff\xfe"), ProtocolError::InvalidUtf8);
        assert_eq!(err(b"bell\x07"), ProtocolError::ControlChars);
        assert_eq!(err(b"\x1b[2J"), ProtocolError::ControlChars);
        let long_topic = format!("/topic {}", "t".repeat(MAX_TOPIC_LEN + 1));
        assert_eq!(err(long_topic.as_bytes()), ProtocolError::TopicTooLong);
    }

    #[test]
    fn blank_lines_are_ignored_and_tabs_allowed() {
        assert_eq!(parse_line(b"").unwrap(), None);
        assert_eq!(parse_line(b"   ").unwrap(), None);
        assert_eq!(ok("a\tb"), Command::Say("a\tb"));
    }

    #[test]
    fn operator_commands_parse_and_round_trip() {
        let kline = |mask, duration, reason| Command::Kline {
            mask,
            duration,
            reason,
        };
        let table: Vec<(&str, Command<'_>)> = vec![
            (
                "/oper root s3cret",
                Command::Oper {
                    name: "root",
                    password: "s3cret",
                },
            ),
            (
                "/kill bob go away",
                Command::Kill {
                    nick: "bob",
                    reason: "go away",
                },
            ),
            (
                "/kline 10.0.0.* 2h spam bots",
                kline("10.0.0.*", Some(7200), "spam bots"),
            ),
            ("/kline 10.0.0.0/8 perm", kline("10.0.0.0/8", None, "")),
            ("/kline bob 30 flood", kline("bob", Some(1800), "flood")),
            ("/unkline bob", Command::Unkline("bob")),
            ("/klines", Command::Klines),
            ("/wallops hi all", Command::Wallops("hi all")),
            ("/wall hi", Command::Wall("hi")),
            ("/rehash", Command::Rehash),
            ("/motd", Command::Motd),
        ];
        for (line, want) in table {
            assert_eq!(ok(line), want, "{line}");
            let again = want.to_line().unwrap();
            assert_eq!(ok(&again), want, "{again}");
        }
        for bad in [
            "/kline bob soon",
            "/kill bob",
            "/oper root",
            "/klines x",
            "/wall",
        ] {
            assert_eq!(err(bad.as_bytes()).code(), "usage", "{bad}");
        }
        assert_eq!(parse_duration("7d"), Some(Some(604_800)));
        assert_eq!(parse_duration("1W"), Some(Some(604_800)));
        assert_eq!(parse_duration("45s"), Some(Some(45)));
        assert_eq!(parse_duration("0"), Some(None));
        assert_eq!(parse_duration("0h"), Some(None));
        assert_eq!(parse_duration("PERM"), Some(None));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999w"), None);
    }
}
