//! The IRC client protocol (RFC 1459 / RFC 2812), as far as miochat speaks it.
//!
//! Pure functions, no sockets, like the rest of `protocol/`:
//! - [`decode`]: the bytes of one line → text. IRC has no declared encoding and old
//!   clients send Latin-1, so bytes that are not UTF-8 are never refused: they are
//!   kept as escapes (`raw.rs`) and reach IRC readers as they were sent;
//! - [`parse`]: one line → a [`Message`] (tags and prefix skipped, command
//!   upper-cased, middle parameters and the trailing one);
//! - [`clean_text`]: IRC message text → the text miochat keeps (CTCP ACTION becomes
//!   an action, formatting is kept); the formatting codes themselves, and their
//!   removal for line-protocol users, are in `formatting.rs`;
//! - [`broadcast`]: an [`Event`] that many receive (a room message, a join) → the IRC
//!   line, independent of the recipient, so it is rendered once per message;
//! - [`reply`]: an [`Event`] for one recipient → IRC lines and numerics addressed to it.
//!
//! A user appears as `nick!~user@host` (`identity.rs`): the sender's `user@host` is
//! given to [`broadcast`] with the event, so a broadcast line is still the same for
//! every recipient. Lines from the
//! server are at most 512 bytes with CRLF: longer text (a line-protocol user may send
//! up to `--max-line` bytes) is **truncated** at a character boundary, lists (NAMES,
//! ISON, WHOIS rooms, MODE changes) are split over as many lines as their bytes need,
//! and every other line is cut where it is written (`push_line`), so a numeric that
//! echoes a long client parameter cannot pass the limit either.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use super::formatting::FORMATTING;
use super::identity::{UNKNOWN_HOST, UserHost};
use super::modes::{self, CHANMODES, MAX_KEY_LEN, MAX_PARAM_CHANGES, ModeError};
use super::names::{MAX_NICK_LEN, MAX_ROOM_LEN};
use super::{
    Event, MAX_KICK_LEN, MAX_TOPIC_LEN, Member, Nick, ProtocolError, Refusal, Role, RoomName,
    WhoRow,
};

/// Longest IRC line without its CRLF (RFC 2812: 512 bytes including CRLF), not
/// counting message tags.
pub const MAX_IRC_LINE: usize = 510;
/// Longest tag section a client may send, `@` and the space after it included
/// (IRCv3 message-tags: 4096 bytes from clients).
pub const MAX_CLIENT_TAGS: usize = 4096;
/// The source of the server's notices about other nodes (a gap in a room's lines).
pub const HOST: &str = "miochat";
/// Most parameters a message may carry (RFC 2812).
const MAX_PARAMS: usize = 15;
/// Longest away message in bytes (`AWAYLEN=`); longer ones are cut.
pub const MAX_AWAY_LEN: usize = 200;
/// Most bans a room keeps (`MAXLIST=b:`).
pub const MAX_BANS: usize = 100;
/// Rooms a connection may be in (`CHANLIMIT=#:`).
pub const MAX_ROOMS: usize = 32;

/// The IRCv3 capabilities miochat offers, in `CAP LS` order. Each is listed only
/// because it works end to end. `sasl` offers PLAIN (logging in needs a data dir).
/// `draft/chathistory` is the `CHATHISTORY` command, answered from the store.
/// `account-notify` tells a channel's members of a login or logout, and
/// `draft/account-registration` is the `REGISTER` command (after connecting, for
/// the current nick); `account-tag` puts the sender's account on its lines, and
/// `extended-join` the joiner's account and real name on its JOIN.
pub const CAPABILITIES: &[&str] = &[
    "away-notify",
    "batch",
    "cap-notify",
    "echo-message",
    "invite-notify",
    "message-tags",
    "multi-prefix",
    "sasl",
    "server-time",
    "account-notify",
    "account-tag",
    "extended-join",
    "draft/account-registration",
    "draft/chathistory",
];

/// A `CHATHISTORY` request (IRCv3 `draft/chathistory`) as a store query, or why it
/// is refused (`FAIL CHATHISTORY CODE ...`). References are `*`, `msgid=ID` or
/// `timestamp=TIME`; a time is turned into the first id of its millisecond (ids are
/// `ms << 12`). TARGETS (which conversations had lines) is not supported.
pub fn chathistory(params: &[&str]) -> Result<ChatHistory, &'static str> {
    use super::HistoryQuery;
    let (Some(sub), Some(target)) = (params.first(), params.get(1)) else {
        return Err("NEED_MORE_PARAMS");
    };
    let limit = |at: usize| -> Result<usize, &'static str> {
        let text = params.get(at).ok_or("NEED_MORE_PARAMS")?;
        let n = text.parse::<usize>().map_err(|_| "INVALID_PARAMS")?;
        Ok(n.min(super::HISTORY_READ_MAX))
    };
    let point = |at: usize| -> Result<Option<u64>, &'static str> {
        let text = *params.get(at).ok_or("NEED_MORE_PARAMS")?;
        if text == "*" {
            return Ok(None);
        }
        let id = match text.split_once('=') {
            Some(("msgid", id)) => super::parse_msgid(id),
            Some(("timestamp", time)) => super::parse_timestamp(time).map(|ms| ms << 12),
            _ => None,
        };
        id.map(Some).ok_or("INVALID_PARAMS")
    };
    let sub = sub.to_ascii_uppercase();
    if sub == "TARGETS" {
        let (a, b) = (point(1)?, point(2)?);
        let (a, b) = (a.unwrap_or(0), b.unwrap_or(u64::MAX));
        return Ok(ChatHistory::Targets(a.min(b), a.max(b), limit(3)?));
    }
    let room = channel(target).ok_or("INVALID_TARGET")?;
    let query = match sub.as_str() {
        "LATEST" => match point(2)? {
            None => HistoryQuery::Latest(limit(3)?),
            Some(after) => HistoryQuery::LatestAfter(after, limit(3)?),
        },
        "BEFORE" => HistoryQuery::Before(point(2)?.ok_or("INVALID_PARAMS")?, limit(3)?),
        "AFTER" => HistoryQuery::AfterId(point(2)?.ok_or("INVALID_PARAMS")?, limit(3)?),
        "AROUND" => HistoryQuery::Around(point(2)?.ok_or("INVALID_PARAMS")?, limit(3)?),
        "BETWEEN" => {
            let (a, b) = (point(2)?, point(3)?);
            let (a, b) = (a.unwrap_or(0), b.unwrap_or(u64::MAX));
            HistoryQuery::Between(a.min(b), a.max(b), limit(4)?)
        }
        _ => return Err("INVALID_PARAMS"),
    };
    Ok(ChatHistory::Room(room, query))
}

/// What a `CHATHISTORY` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatHistory {
    /// Lines of one channel.
    Room(RoomName, super::HistoryQuery),
    /// `TARGETS`: the asker's channels with lines between two ids, at most so many.
    Targets(u64, u64, usize),
}

/// The `draft/chathistory-targets` batch: each channel with its newest line's time.
pub fn history_targets(targets: &[(RoomName, u64)], server: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        ":{server} BATCH +targets draft/chathistory-targets\r\n"
    );
    for (room, at_ms) in targets {
        let at = super::timestamp(*at_ms);
        let _ = write!(
            out,
            ":{server} CHATHISTORY TARGETS {} timestamp={at}\r\n",
            chan(room)
        );
    }
    let _ = write!(out, ":{server} BATCH -targets\r\n");
    out
}

/// IRCv3 `extended-join`: `:nick!nick@miochat JOIN #room ACCOUNT :REALNAME` (`*` for
/// no account), for a JOIN event; empty for anything else.
pub fn extended_join(
    event: &Event,
    account: Option<&Nick>,
    realname: &str,
    from: Option<&UserHost>,
) -> String {
    let Event::Joined { room, nick } = event else {
        return String::new();
    };
    let account = account.map_or("*", Nick::as_str);
    let mut out = String::new();
    push_text_line(
        &mut out,
        &format!(":{} JOIN {} {account}", source(nick, from), chan(room)),
        realname,
    );
    out
}

/// The IRCv3 capabilities one client enabled (`CAP REQ`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(u16);

/// Where `account-tag` and `extended-join` are in [`CAPABILITIES`]: fan-out asks for
/// both per reader, so by bit, not by name (a unit test keeps them in step).
const ACCOUNT_TAG_BIT: u16 = 1 << 10;
const EXTENDED_JOIN_BIT: u16 = 1 << 11;

impl Caps {
    /// `account-tag` and `extended-join` enabled? (Two bit tests: on the fan-out path.)
    pub fn account_extras(self) -> (bool, bool) {
        (
            self.0 & ACCOUNT_TAG_BIT != 0,
            self.0 & EXTENDED_JOIN_BIT != 0,
        )
    }

    /// The bit of a capability name from [`CAPABILITIES`], if offered.
    fn bit(name: &str) -> Option<u16> {
        let index = CAPABILITIES
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))?;
        Some(1 << index)
    }

    /// True if `name` is enabled.
    pub fn has(self, name: &str) -> bool {
        Self::bit(name).is_some_and(|bit| self.0 & bit != 0)
    }

    /// Applies a `CAP REQ` list (`a -b c`) all or nothing, as the capability
    /// negotiation spec requires: `None` (NAK) if any name is not offered.
    pub fn request(self, list: &str) -> Option<Caps> {
        let mut caps = self;
        for word in list.split(' ').filter(|w| !w.is_empty()) {
            let (off, name) = match word.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, word),
            };
            let bit = Self::bit(name)?;
            if off {
                caps.0 &= !bit;
            } else {
                caps.0 |= bit;
            }
        }
        Some(caps)
    }

    /// The enabled capabilities, space-separated (`CAP LIST`).
    pub fn list(self) -> String {
        let on: Vec<&str> = CAPABILITIES
            .iter()
            .copied()
            .filter(|name| self.has(name))
            .collect();
        on.join(" ")
    }
}

/// One parsed IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The client-only tags (`+name[=value]`, IRCv3 message-tags) as sent,
    /// `;`-separated and still escaped; empty if none.
    pub client_tags: String,
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

/// The text of one line: UTF-8 as is, each byte of an invalid sequence as an escape
/// that IRC readers get back as that byte (`raw.rs`).
pub fn decode(line: &[u8]) -> Cow<'_, str> {
    super::raw::decode(line)
}

/// True if `text` carries a character no IRC message may contain (RFC 2812): CR, LF
/// or NUL. Such a line is refused: a bare CR echoed in a topic or quit reason would
/// end the line early for clients that split on CR, letting one user forge lines for
/// everyone else (found by fuzzing).
pub fn has_forbidden_chars(text: &str) -> bool {
    text.contains(['\r', '\n', '\0'])
}

/// Parses one line (CRLF already stripped, [`decode`]d). `None` for a blank line.
pub fn parse(text: &str) -> Option<Message<'_>> {
    let mut rest = text.trim_start_matches(' ');
    let mut client_tags = String::new();
    if let Some(tagged) = rest.strip_prefix('@') {
        let (tags, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
        client_tags = tags
            .split(';')
            .filter(|tag| tag.starts_with('+') && tag.len() > 1)
            .collect::<Vec<_>>()
            .join(";");
        rest = after.trim_start_matches(' ');
    }
    if rest.starts_with(':') {
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    if rest.is_empty() {
        return None;
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
    Some(Message {
        client_tags,
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// Text of a PRIVMSG/NOTICE as miochat stores it: `(text, is_action)`. CTCP ACTION
/// (`\x01ACTION waves\x01`) becomes an action; control characters other than IRC's
/// formatting codes are removed. Formatting is kept, so IRC users see each other's
/// bold and colours; [`strip_formatting`](super::formatting::strip_formatting)
/// removes it when rendering for line users.
pub fn clean_text(text: &str) -> (Cow<'_, str>, bool) {
    let (body, action) = match text
        .strip_prefix("\x01ACTION ")
        .map(|t| t.strip_suffix('\x01').unwrap_or(t))
    {
        Some(body) => (body, true),
        None => (text, false),
    };
    let unwanted = |c: char| c.is_control() && !FORMATTING.contains(&c);
    if !body.chars().any(unwanted) {
        return (Cow::Borrowed(body), action);
    }
    (
        Cow::Owned(body.chars().filter(|&c| !unwanted(c)).collect()),
        action,
    )
}

/// `nick!user@host`, with the stand-in `nick!nick@miochat` when `from` is not
/// known here (see `identity.rs`).
fn source(nick: &Nick, from: Option<&UserHost>) -> String {
    match from {
        Some(from) => from.source(nick.as_str()).to_string(),
        None => format!("{nick}!{nick}@{UNKNOWN_HOST}"),
    }
}

/// The `user@host`s a rendering shows: of the event's source, and of its reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefixes<'a> {
    /// Whoever the event is from (a private message's sender).
    pub from: Option<&'a UserHost>,
    /// The reader (its own JOIN, PART and NICK echoes, the welcome).
    pub me: Option<&'a UserHost>,
}

/// `#room`.
fn chan(room: &RoomName) -> String {
    format!("#{room}")
}

/// Appends one line and its CRLF to `out`, the line cut at a character boundary to
/// [`MAX_IRC_LINE`] bytes. Every line whose length depends on what clients sent goes
/// through here, so that none passes 512 bytes with its CRLF (RFC 2812) whatever a
/// numeric echoes; writers that know what is long (chat text, lists) cut or split it
/// themselves first, so this cut only ever shortens a parameter that was echoed back.
fn push_line(out: &mut String, line: fmt::Arguments<'_>) {
    let start = out.len();
    let _ = out.write_fmt(line);
    if out.len() - start > MAX_IRC_LINE {
        // Measured on the wire: an escape (`raw.rs`) is one byte there.
        let kept = super::raw::cut_wire(&out[start..], MAX_IRC_LINE).len();
        out.truncate(start + kept);
    }
    out.push_str("\r\n");
}

/// Appends `:SOURCE COMMAND TARGET :TEXT\r\n`, truncating TEXT to fit 512 bytes.
fn push_text_line(out: &mut String, head: &str, text: &str) {
    let room_for_text = MAX_IRC_LINE.saturating_sub(head.len() + 2);
    let text = super::raw::cut_wire(text, room_for_text);
    push_line(out, format_args!("{head} :{text}"));
}

/// `MODE` lines for `changes`: at most `MODES=` changes per line, and fewer when their
/// parameters (ban masks of up to 100 bytes) would not fit in 512 bytes.
fn push_mode_lines(out: &mut String, head: &str, changes: &[modes::ModeChange]) {
    let fits = |chunk: &[modes::ModeChange]| {
        head.len() + 1 + modes::changes_string(chunk).len() <= MAX_IRC_LINE
    };
    let mut start = 0;
    while start < changes.len() {
        let mut end = start + 1;
        while end < changes.len() && end - start < MAX_PARAM_CHANGES && fits(&changes[start..=end])
        {
            end += 1;
        }
        let modes = modes::changes_string(&changes[start..end]);
        push_line(out, format_args!("{head} {modes}"));
        start = end;
    }
}

/// The IRC line of an event that several connections receive, or `None` if the event
/// is a reply (use [`reply`]).
pub fn broadcast(event: &Event, from: Option<&UserHost>) -> Option<String> {
    let source = |nick: &Nick| source(nick, from);
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
            let text = super::raw::cut_wire(text, budget);
            let _ = write!(out, "{head} :\x01ACTION {text}\x01\r\n");
        }
        Event::Joined { room, nick } => {
            let _ = write!(out, ":{} JOIN {}\r\n", source(nick), chan(room));
        }
        Event::Left { room, nick, reason } => match reason {
            Some(reason) => {
                let head = format!(":{} PART {}", source(nick), chan(room));
                push_text_line(&mut out, &head, reason);
            }
            None => {
                let _ = write!(out, ":{} PART {}\r\n", source(nick), chan(room));
            }
        },
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
        Event::ModeChanged { room, by, changes } => {
            let head = format!(":{} MODE {}", source(by), chan(room));
            push_mode_lines(&mut out, &head, changes);
        }
        Event::Kicked {
            room,
            by,
            nick,
            reason,
        } => {
            let head = format!(":{} KICK {} {nick}", source(by), chan(room));
            push_text_line(&mut out, &head, reason);
        }
        other => return notify(other, from),
    }
    Some(out)
}

/// The lines of IRCv3 `away-notify` and `invite-notify`, which only IRC readers with
/// the capability get; `None` for any other event.
fn notify(event: &Event, from: Option<&UserHost>) -> Option<String> {
    let source = |nick: &Nick| source(nick, from);
    let mut out = String::new();
    match event {
        Event::AwayChanged { nick, text, .. } => match text {
            Some(text) => push_text_line(&mut out, &format!(":{} AWAY", source(nick)), text),
            None => {
                let _ = write!(out, ":{} AWAY\r\n", source(nick));
            }
        },
        Event::InviteNotice { room, by, nick } => {
            let _ = write!(out, ":{} INVITE {nick} {}\r\n", source(by), chan(room));
        }
        Event::AccountChanged { nick, account, .. } => {
            let account = account.as_ref().map_or("*", Nick::as_str);
            let _ = write!(out, ":{} ACCOUNT {account}\r\n", source(nick));
        }
        Event::TagMsg { room, from } => {
            let _ = write!(out, ":{} TAGMSG {}\r\n", source(from), chan(room));
        }
        _ => return None,
    }
    Some(out)
}

/// A room's history for one IRC reader. With `batch` and `server-time` it is an
/// IRCv3 `chathistory` batch: `BATCH +ID chathistory #room`, each line as it was
/// sent with `@batch=ID;time=...`, `BATCH -ID`. Without them, server `NOTICE`s to
/// the room that say when and who (`[12:00:01] <alice> hi`), which no client
/// mistakes for live lines.
pub fn playback(room: &RoomName, lines: &[super::HistoryLine], server: &str, caps: Caps) -> String {
    let mut out = String::new();
    let batched = caps.has("batch") && caps.has("server-time");
    let id = format!("h{}", lines.first().map_or(0, |l| l.at_ms));
    if batched {
        let _ = write!(out, ":{server} BATCH +{id} chathistory {}\r\n", chan(room));
    }
    for line in lines {
        let at = super::timestamp(line.at_ms);
        let from = &line.from;
        if batched {
            let event = match line.kind {
                super::SayKind::Message => Event::Message {
                    room: room.clone(),
                    from: from.clone(),
                    text: (*line.text).into(),
                },
                super::SayKind::Action => Event::Action {
                    room: room.clone(),
                    from: from.clone(),
                    text: (*line.text).into(),
                },
                super::SayKind::Notice => Event::RoomNotice {
                    room: room.clone(),
                    from: from.clone(),
                    text: (*line.text).into(),
                },
            };
            match caps.has("message-tags") {
                true => {
                    let msgid = super::msgid_text(line.id);
                    let _ = write!(out, "@batch={id};time={at};msgid={msgid} ");
                }
                false => {
                    let _ = write!(out, "@batch={id};time={at} ");
                }
            }
            out.push_str(&broadcast(&event, None).unwrap_or_default());
        } else {
            let clock = at.get(11..19).unwrap_or("");
            let said = match line.kind {
                super::SayKind::Action => format!("[{clock}] * {from} {}", line.text),
                _ => format!("[{clock}] <{from}> {}", line.text),
            };
            push_text_line(&mut out, &format!(":{server} NOTICE {}", chan(room)), &said);
        }
    }
    if batched {
        let _ = write!(out, ":{server} BATCH -{id}\r\n");
    }
    out
}

/// Writes lines addressed to one reader: `:server NNN me PARAMS` numerics and the
/// few non-numeric lines a reply needs, all into one string.
struct Numerics<'a> {
    out: String,
    server: &'a str,
    me: &'a str,
    /// The reader enabled `multi-prefix`: listings show `@+` for a voiced operator.
    multi_prefix: bool,
    /// The reader's `user@host`, for lines from its own source.
    me_host: Option<&'a UserHost>,
    /// The `user@host` of the event's source (an invitation's inviter).
    from_host: Option<&'a UserHost>,
}

impl<'a> Numerics<'a> {
    fn new(server: &'a str, me: &'a str) -> Self {
        Numerics {
            out: String::new(),
            server,
            me,
            multi_prefix: false,
            me_host: None,
            from_host: None,
        }
    }

    /// The reader as a source: `me!user@host`.
    fn me_source(&self) -> String {
        let me = Nick::parse(self.me).ok();
        match (me, self.me_host) {
            (Some(me), host) => source(&me, host),
            (None, _) => self.me.to_string(), // `*`: before any nick
        }
    }

    /// `:server CODE me PARAMS`, cut to 512 bytes.
    fn num(&mut self, code: &str, params: fmt::Arguments<'_>) {
        let (server, me) = (self.server, self.me);
        push_line(
            &mut self.out,
            format_args!(":{server} {code} {me} {params}"),
        );
    }

    /// `:server NOTICE me :TEXT`, cut to 512 bytes.
    fn notice(&mut self, text: fmt::Arguments<'_>) {
        let (server, me) = (self.server, self.me);
        push_line(&mut self.out, format_args!(":{server} NOTICE {me} :{text}"));
    }

    /// A line from the reader's own source, `:me!user@host TEXT`, cut to 512 bytes.
    fn own(&mut self, text: fmt::Arguments<'_>) {
        let me = self.me_source();
        push_line(&mut self.out, format_args!(":{me} {text}"));
    }

    /// `:server CODE me PARAMS:ITEM ITEM ...` lines with as many items as fit in 512
    /// bytes each (`params` ends with the `:` of the trailing parameter). A list that
    /// is empty gives one line without items if `keep_empty`, else none.
    fn list<T: fmt::Display>(
        &mut self,
        code: &str,
        params: fmt::Arguments<'_>,
        items: impl IntoIterator<Item = T>,
        keep_empty: bool,
    ) {
        let head = format!(":{} {code} {} {params}", self.server, self.me);
        let mut list = String::new();
        let mut lines = 0;
        for item in items {
            let entry = item.to_string();
            if !list.is_empty() && head.len() + list.len() + 1 + entry.len() > MAX_IRC_LINE {
                push_line(&mut self.out, format_args!("{head}{list}"));
                lines += 1;
                list.clear();
            }
            if !list.is_empty() {
                list.push(' ');
            }
            list.push_str(&entry);
        }
        if !list.is_empty() || (lines == 0 && keep_empty) {
            push_line(&mut self.out, format_args!("{head}{list}"));
        }
    }

    /// `353` lines (as many as fit in 512 bytes each) and the closing `366`. The
    /// symbol is `@` for a secret room, `=` otherwise; nicks carry `@`/`+`.
    fn names(&mut self, room: &RoomName, nicks: &[Member], secret: bool) {
        let symbol = if secret { '@' } else { '=' };
        let entries: Vec<String> = nicks
            .iter()
            .map(|member| format!("{}{}", self.prefixes(member), member.nick))
            .collect();
        self.list("353", format_args!("{symbol} #{room} :"), entries, false);
        self.num("366", format_args!("#{room} :End of /NAMES list."));
    }

    /// A member's prefixes: the highest (`@` or `+`), or with `multi-prefix` all
    /// of them (`@+` for a voiced operator).
    fn prefixes(&self, member: &Member) -> String {
        match (member.role, member.voiced && self.multi_prefix) {
            (Role::Operator, true) => String::from("@+"),
            (role, _) => role.prefix().map(String::from).unwrap_or_default(),
        }
    }

    /// One `352` line: `CHANNEL user host server nick FLAGS :0 realname`.
    fn who_row(&mut self, row: &WhoRow, room: Option<&RoomName>) {
        let member = &row.member;
        let channel = room.map_or_else(|| "*".to_string(), chan);
        let here = if member.away { 'G' } else { 'H' };
        let prefix = self.prefixes(member);
        let (server, nick) = (self.server, &member.nick);
        let (user, host) = user_and_host(nick, row.userhost.as_ref());
        self.num(
            "352",
            format_args!(
                "{channel} {user} {host} {server} {nick} {here}{prefix} :0 {}",
                member.realname
            ),
        );
    }

    /// Your JOIN echo (`extended-join` if asked), the topic (`332`, `333`) and the
    /// names (`353`, `366`).
    fn joined(&mut self, event: &Event, caps: Caps) {
        let Event::YouJoined {
            room,
            topic,
            nicks,
            secret,
            joiner,
            topic_by,
            ..
        } = event
        else {
            return;
        };
        match joiner.as_ref().filter(|_| caps.has("extended-join")) {
            Some((account, realname)) => {
                let account = account.as_ref().map_or("*", Nick::as_str);
                self.own(format_args!("JOIN #{room} {account} :{realname}"))
            }
            None => self.own(format_args!("JOIN #{room}")),
        }
        if let Some(topic) = topic {
            self.topic(room, topic, topic_by.as_ref());
        }
        self.names(room, nicks, *secret);
    }

    /// `332` and, if the setter is known, `333 #room setter time`.
    fn topic(&mut self, room: &RoomName, topic: &str, set_by: Option<&super::TopicSetter>) {
        self.num("332", format_args!("#{room} :{topic}"));
        if let Some((by, at)) = set_by {
            self.num("333", format_args!("#{room} {by} {at}"));
        }
    }

    /// `ERROR :Closing Link: me (REASON)`, cut to 512 bytes.
    fn closing_link(&mut self, reason: &str) {
        let me = self.me;
        push_line(
            &mut self.out,
            format_args!("ERROR :Closing Link: {me} ({reason})"),
        );
    }
}

/// The IRC lines that tell `me` (a connection's current nick) about `event`.
pub fn reply(event: &Event, server: &str, me: &str) -> String {
    reply_with(event, server, me, Caps::default(), Prefixes::default())
}

/// `user` and `host` of `nick` as WHO and WHOIS show them (the stand-in when not
/// known here).
fn user_and_host(nick: &Nick, known: Option<&UserHost>) -> (String, String) {
    match known {
        Some(known) => (
            known.user(nick.as_str()).to_string(),
            known.host().to_string(),
        ),
        None => (nick.to_string(), UNKNOWN_HOST.to_string()),
    }
}

/// Like [`reply`], for a reader with the IRCv3 capabilities `caps` (`multi-prefix`
/// changes `NAMES` and `WHO` listings), showing the sources in `prefixes`.
pub fn reply_with(
    event: &Event,
    server: &str,
    me: &str,
    caps: Caps,
    prefixes: Prefixes<'_>,
) -> String {
    if let Some(line) = broadcast(event, prefixes.from) {
        return line;
    }
    let source = |nick: &Nick| source(nick, prefixes.from);
    let mut w = Numerics::new(server, me);
    w.multi_prefix = caps.has("multi-prefix");
    w.me_host = prefixes.me;
    w.from_host = prefixes.from;
    match event {
        Event::PrivateTagMsg { from } => {
            let _ = write!(w.out, ":{} TAGMSG {me}\r\n", source(from));
        }
        Event::Private { from, text, notice } => {
            let verb = if *notice { "NOTICE" } else { "PRIVMSG" };
            push_text_line(&mut w.out, &format!(":{} {verb} {me}", source(from)), text);
        }
        Event::YouJoined { .. } => w.joined(event, caps),
        Event::YouLeft {
            room,
            reason: Some(reason),
        } => w.own(format_args!("PART #{room} :{reason}")),
        Event::YouLeft { room, .. } => w.own(format_args!("PART #{room}")),
        Event::NickIs { old, nick } => {
            let _ = write!(
                w.out,
                ":{} NICK :{nick}\r\n",
                self::source(old, prefixes.me)
            );
        }
        Event::Names {
            room,
            nicks,
            secret,
        } => w.names(room, nicks, *secret),
        Event::Topic {
            room,
            topic: Some(topic),
            set_by,
        } => w.topic(room, topic, set_by.as_ref()),
        Event::Topic {
            room, topic: None, ..
        } => w.num("331", format_args!("#{room} :No topic is set")),
        Event::Away(true) => w.num("306", format_args!(":You have been marked as being away")),
        Event::Away(false) => w.num(
            "305",
            format_args!(":You are no longer marked as being away"),
        ),
        Event::IsAway { nick, text } => w.num("301", format_args!("{nick} :{text}")),
        // Several 303 lines when the nicks do not fit in one; clients join them.
        Event::Ison(nicks) => w.list("303", format_args!(":"), nicks, true),
        Event::Pong(token) => return pong(server, token.as_deref().unwrap_or(server)),
        other => reply_more(&mut w, other),
    }
    w.out
}

/// The rest of [`reply`]: farewells, errors, moderation replies and user queries.
fn reply_more(w: &mut Numerics<'_>, event: &Event) {
    match event {
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
        Event::Bye => w.closing_link("Quit"),
        Event::ShuttingDown => w.closing_link("server shutting down"),
        Event::Closing(Refusal::IdleTimeout) => w.closing_link("Ping timeout"),
        Event::Closing(Refusal::TooManyFromAddress) => {
            w.closing_link("Too many connections from your address")
        }
        Event::Closing(Refusal::Flood) => w.closing_link("Excess Flood"),
        Event::Closing(other) => w.closing_link(other.text()),
        Event::Error(error) => error_numeric(w, error),
        Event::Link(true) => w.notice(format_args!("*** The link to the other nodes is back")),
        Event::Link(false) => w.notice(format_args!(
            "*** The link to the other nodes is down: their users' lines wait"
        )),
        Event::Recovered { room, count } => w.notice(format_args!(
            "*** #{room}: {count} message(s) missed while the link was down were recovered"
        )),
        Event::Stats(report) => {
            let line = super::render::line(&Event::Stats(report.clone()));
            w.notice(format_args!(
                "{}",
                String::from_utf8_lossy(&line).trim_end()
            ));
        }
        Event::Done(text) => w.notice(format_args!("{text}")),
        Event::HistoryTargets(targets) => w.out.push_str(&history_targets(targets, w.server)),
        Event::Welcome { .. } | Event::Help => {
            w.notice(format_args!("miochat speaks IRC; rooms are #channels"));
        }
        Event::Modes {
            room,
            modes,
            created,
        } => {
            w.num("324", format_args!("#{room} {modes}"));
            w.num("329", format_args!("#{room} {created}"));
        }
        Event::Bans { room, bans } => {
            for ban in bans {
                let (mask, by, at) = (&ban.mask, &ban.set_by, ban.set_at);
                w.num("367", format_args!("#{room} {mask} {by} {at}"));
            }
            w.num("368", format_args!("#{room} :End of channel ban list"));
        }
        Event::Inviting { room, nick } => w.num("341", format_args!("{nick} #{room}")),
        Event::Invited { room, by, nick } => {
            let by = source(by, w.from_host);
            let _ = write!(w.out, ":{by} INVITE {nick} #{room}\r\n");
        }
        Event::Invites(rooms) => {
            for room in rooms {
                w.num("336", format_args!("#{room}"));
            }
            w.num("337", format_args!(":End of /INVITE list"));
        }
        Event::WhoMask { mask, rows } => {
            for row in rows {
                w.who_row(row, row.room.as_ref());
            }
            w.num("315", format_args!("{mask} :End of /WHO list."));
        }
        other => queries(w, other),
    }
}

/// WHO, WHOIS, WHOWAS, USERHOST and LUSERS.
fn queries(w: &mut Numerics<'_>, event: &Event) {
    let server = w.server;
    match event {
        Event::Who { room, rows, .. } => {
            for row in rows {
                w.who_row(row, Some(room));
            }
            w.num("315", format_args!("#{room} :End of /WHO list."));
        }
        Event::Userhost(nicks) => {
            let list: Vec<String> = nicks
                .iter()
                .map(|(n, away, known)| {
                    let (user, host) = user_and_host(n, known.as_ref());
                    format!("{n}={}{user}@{host}", if *away { '-' } else { '+' })
                })
                .collect();
            w.num("302", format_args!(":{}", list.join(" ")));
        }
        Event::Whois(info, known) => {
            let nick = &info.nick;
            let (user, host) = user_and_host(nick, known.as_ref());
            w.num(
                "311",
                format_args!("{nick} {user} {host} * :{}", info.realname),
            );
            match &info.node {
                Some(node) => w.num("312", format_args!("{nick} {server} :miochat node {node}")),
                None => w.num("312", format_args!("{nick} {server} :miochat")),
            }
            let rooms = info
                .rooms
                .iter()
                .map(|(room, role)| format!("{}#{room}", prefix(*role)));
            w.list("319", format_args!("{nick} :"), rooms, false);
            if let Some(away) = &info.away {
                w.num("301", format_args!("{nick} :{away}"));
            }
            if let Some(account) = &info.account {
                w.num("330", format_args!("{nick} {account} :is logged in as"));
            }
            let (idle, signon) = (info.idle_secs, info.signon);
            if info.node.is_none() {
                w.num(
                    "317",
                    format_args!("{nick} {idle} {signon} :seconds idle, signon time"),
                );
            }
            w.num("318", format_args!("{nick} :End of /WHOIS list."));
        }
        Event::Whowas { nick, entries } => {
            if entries.is_empty() {
                w.num("406", format_args!("{nick} :There was no such nickname"));
            }
            for entry in entries {
                let was = &entry.nick;
                let (user, host) = user_and_host(was, Some(&entry.userhost));
                w.num(
                    "314",
                    format_args!("{was} {user} {host} * :{}", entry.realname),
                );
                w.num("312", format_args!("{was} {server} :miochat"));
            }
            w.num("369", format_args!("{nick} :End of WHOWAS"));
        }
        Event::Lusers(report) => lusers(w, report),
        other => operator_reply(w, other),
    }
}

/// `LUSERS`: 251 to 255, 265 and 266.
fn lusers(w: &mut Numerics<'_>, report: &super::LusersReport) {
    let (users, unknown) = (report.users, report.unknown);
    let (rooms, max) = (report.rooms, report.max_users);
    w.num(
        "251",
        format_args!(":There are 0 users and {users} invisible on 1 servers"),
    );
    let operators = report.operators;
    w.num("252", format_args!("{operators} :operator(s) online"));
    w.num("253", format_args!("{unknown} :unknown connection(s)"));
    w.num("254", format_args!("{rooms} :channels formed"));
    w.num("255", format_args!(":I have {users} clients and 0 servers"));
    w.num(
        "265",
        format_args!("{users} {max} :Current local users {users}, max {max}"),
    );
    w.num(
        "266",
        format_args!("{users} {max} :Current global users {users}, max {max}"),
    );
}

/// `@`, `+` or nothing.
fn prefix(role: Role) -> String {
    role.prefix().map(String::from).unwrap_or_default()
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
        ProtocolError::NickUnavailable(nick) => w.num(
            "437",
            format_args!("{nick} :Nick is temporarily unavailable (the cluster link is down)"),
        ),
        ProtocolError::NickRegistered(nick) => w.num(
            "433",
            format_args!("{nick} :Nickname is reserved by a registered account"),
        ),
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
        ProtocolError::CannotSendTo(room) | ProtocolError::CannotSpeak(room) => {
            w.num("404", format_args!("#{room} :Cannot send to channel"))
        }
        ProtocolError::NoPrivileges => w.num(
            "481",
            format_args!(":Permission Denied- You're not an IRC operator"),
        ),
        ProtocolError::OperFailed => w.num("464", format_args!(":Password incorrect")),
        ProtocolError::NoOperHost => w.num("491", format_args!(":No O-lines for your host")),
        ProtocolError::InvalidUtf8
        | ProtocolError::ControlChars
        | ProtocolError::TopicTooLong
        | ProtocolError::Flood => w.notice(format_args!("{error}")),
        moderation => moderation_numeric(w, moderation),
    }
}

/// The numerics of refused moderation commands and joins.
fn moderation_numeric(w: &mut Numerics<'_>, error: &ProtocolError) {
    match error {
        ProtocolError::NotOperator(room) => {
            w.num("482", format_args!("#{room} :You're not channel operator"))
        }
        ProtocolError::RoomFull(room) => {
            w.num("471", format_args!("#{room} :Cannot join channel (+l)"))
        }
        ProtocolError::InviteOnly(room) => {
            w.num("473", format_args!("#{room} :Cannot join channel (+i)"))
        }
        ProtocolError::Banned(room) => {
            w.num("474", format_args!("#{room} :Cannot join channel (+b)"))
        }
        ProtocolError::BadKey(room) => {
            w.num("475", format_args!("#{room} :Cannot join channel (+k)"))
        }
        ProtocolError::NotOnRoom { nick, room } => w.num(
            "441",
            format_args!("{nick} #{room} :They aren't on that channel"),
        ),
        ProtocolError::AlreadyOnRoom { nick, room } => {
            w.num("443", format_args!("{nick} #{room} :is already on channel"))
        }
        ProtocolError::BanListFull(room) => {
            w.num("478", format_args!("#{room} b :Channel ban list is full"))
        }
        ProtocolError::BadMode { room, error } => match error {
            ModeError::Unknown(letter) => {
                w.num("472", format_args!("{letter} :is unknown mode char to me"))
            }
            ModeError::BadKey => w.num("525", format_args!("#{room} :Key is not well-formed")),
            ModeError::MissingParam(letter) => w.num(
                "696",
                format_args!("#{room} {letter} * :You must specify a parameter"),
            ),
            ModeError::BadParam(letter, param, why) => {
                w.num("696", format_args!("#{room} {letter} {param} :{why}"))
            }
        },
        other => w.notice(format_args!("{other}")),
    }
}

/// `:server PONG server :TOKEN`, cut to 512 bytes (the token is the client's).
pub fn pong(server: &str, token: &str) -> String {
    let mut out = String::new();
    push_line(&mut out, format_args!(":{server} PONG {server} :{token}"));
    out
}

/// The keepalive the server sends after `--irc-ping` of silence.
pub fn keepalive_ping(server: &str) -> String {
    let mut out = String::new();
    push_line(&mut out, format_args!("PING :{server}"));
    out
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
    /// `CAP * SUB :LIST`.
    Cap {
        /// `LS`, `LIST`, `ACK` or `NAK`.
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
    /// 409: `PING` without a token.
    NoOrigin,
    /// 366 alone: `NAMES` of a name that is no channel.
    EndOfNames(&'a str),
    /// 221: the reader's own modes (`+i`, an operator's `+ios`).
    UserModes(&'a str),
    /// The reader's own mode change, echoed back.
    UserModeChanged(&'a str),
    /// 502.
    CannotChangeOthersModes,
    /// `ERROR :Closing Link: me (REASON)`.
    ClosingLink(&'a str),
    /// `AUTHENTICATE +`: send the SASL payload.
    AuthenticateGo,
    /// `AUTHENTICATE DATA`: a server message of a SASL exchange (base64).
    AuthenticateData(&'a str),
    /// 900 and 903: logged in to this account by SASL.
    SaslSuccess(&'a str),
    /// 904: SASL authentication failed.
    SaslFailed,
    /// 908 and 904: a mechanism other than PLAIN was asked for.
    SaslMechanisms,
    /// 906: the client aborted SASL.
    SaslAborted,
    /// The nick is a registered account: identify within this many seconds.
    IdentifyWithin(u64),
    /// `REGISTER SUCCESS account :text` (`draft/account-registration`).
    RegisterSuccess(&'a str),
    /// IRCv3 standard reply `FAIL COMMAND CODE [CONTEXT] :TEXT`.
    Fail {
        /// The command that failed.
        command: &'a str,
        /// The machine-readable code.
        code: &'a str,
        /// Context parameters (may be empty).
        context: &'a str,
        /// The human text.
        text: &'a str,
    },
}

/// The account replies of [`session_reply`]: SASL, `REGISTER`, `FAIL`, the grace
/// notice.
fn account_reply(w: &mut Numerics<'_>, reply: &IrcReply<'_>) {
    let (server, me) = (w.server, w.me);
    match reply {
        IrcReply::AuthenticateGo => push_line(&mut w.out, format_args!("AUTHENTICATE +")),
        IrcReply::AuthenticateData(data) => {
            push_line(&mut w.out, format_args!("AUTHENTICATE {data}"))
        }
        IrcReply::RegisterSuccess(account) => push_line(
            &mut w.out,
            format_args!(":{server} REGISTER SUCCESS {account} :Account successfully registered"),
        ),
        IrcReply::Fail {
            command,
            code,
            context,
            text,
        } => {
            let context = if context.is_empty() {
                String::new()
            } else {
                format!(" {context}")
            };
            push_line(
                &mut w.out,
                format_args!(":{server} FAIL {command} {code}{context} :{text}"),
            );
        }
        IrcReply::SaslSuccess(account) => {
            let me = w.me_source();
            w.num(
                "900",
                format_args!("{me} {account} :You are now logged in as {account}"),
            );
            w.num("903", format_args!(":SASL authentication successful"));
        }
        IrcReply::SaslFailed => w.num("904", format_args!(":SASL authentication failed")),
        IrcReply::SaslMechanisms => {
            w.num(
                "908",
                format_args!("PLAIN,SCRAM-SHA-256 :are available SASL mechanisms"),
            );
            w.num("904", format_args!(":SASL authentication failed"));
        }
        IrcReply::SaslAborted => w.num("906", format_args!(":SASL authentication aborted")),
        IrcReply::IdentifyWithin(secs) => w.notice(format_args!(
            "{me} is a registered account: identify (SASL, or /msg NickServ IDENTIFY \
             password) within {secs} seconds, or you will be renamed"
        )),
        _ => {}
    }
}

/// The lines of an [`IrcReply`] to `me` (`*` before the client has a nick), whose
/// `user@host` is `me_host`.
pub fn session_reply(
    reply: &IrcReply<'_>,
    server: &str,
    me: &str,
    me_host: Option<&UserHost>,
) -> String {
    let mut w = Numerics::new(server, me);
    w.me_host = me_host;
    match reply {
        IrcReply::Welcome { version } => welcome(&mut w, version),
        account @ (IrcReply::AuthenticateGo
        | IrcReply::AuthenticateData(_)
        | IrcReply::RegisterSuccess(_)
        | IrcReply::Fail { .. }
        | IrcReply::SaslSuccess(_)
        | IrcReply::SaslFailed
        | IrcReply::SaslMechanisms
        | IrcReply::SaslAborted
        | IrcReply::IdentifyWithin(_)) => account_reply(&mut w, account),
        IrcReply::Cap { sub, list } => {
            push_line(&mut w.out, format_args!(":{server} CAP * {sub} :{list}"));
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
        IrcReply::NoOrigin => w.num("409", format_args!(":No origin specified")),
        IrcReply::EndOfNames(name) => w.num("366", format_args!("{name} :End of /NAMES list.")),
        IrcReply::UserModes(modes) => w.num("221", format_args!("{modes}")),
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
    let (server, me) = (w.server, w.me_source());
    w.num(
        "001",
        format_args!(":Welcome to the miochat IRC network {me}"),
    );
    w.num(
        "002",
        format_args!(":Your host is {server}, running version {version}"),
    );
    w.num(
        "003",
        format_args!(":This server speaks IRC and the miochat line protocol"),
    );
    w.num(
        "004",
        format_args!("{server} {version} ios biklmnostv bklov"),
    );
    // At most 13 tokens per 005 line (15 parameters with the nick and the trailing).
    w.num(
        "005",
        format_args!(
            "AWAYLEN={MAX_AWAY_LEN} CASEMAPPING=ascii CHANLIMIT=#:{MAX_ROOMS} \
             CHANMODES={CHANMODES} CHANNELLEN={} CHANTYPES=# KEYLEN={MAX_KEY_LEN} \
             KICKLEN={MAX_KICK_LEN} MAXLIST=b:{MAX_BANS} MODES={MAX_PARAM_CHANGES} \
             NETWORK=miochat NICKLEN={MAX_NICK_LEN} PREFIX=(ov)@+ \
             :are supported by this server",
            MAX_ROOM_LEN + 1
        ),
    );
    w.num(
        "005",
        format_args!(
            "CHATHISTORY={} MSGREFTYPES=msgid,timestamp TOPICLEN={MAX_TOPIC_LEN} \
             :are supported by this server",
            super::HISTORY_READ_MAX
        ),
    );
    // The MOTD follows (`Event::Motd`): it is the configuration's, which a reload
    // may change.
}

/// The MOTD: `375`, a `372` per line, `376`; or `422` when there is none.
fn motd(w: &mut Numerics<'_>, lines: &[String]) {
    let server = w.server;
    if lines.is_empty() {
        return w.num("422", format_args!(":MOTD File is missing"));
    }
    w.num("375", format_args!(":- {server} Message of the day -"));
    for line in lines {
        let line: String = line.chars().filter(|c| !c.is_control()).collect();
        w.num("372", format_args!(":- {line}"));
    }
    w.num("376", format_args!(":End of /MOTD command."));
}

/// The server operators' numerics and lines, and the MOTD.
fn operator_reply(w: &mut Numerics<'_>, event: &Event) {
    let (server, me) = (w.server, w.me);
    match event {
        Event::Motd { lines, .. } => motd(w, lines),
        Event::YouAreOper(_) => {
            w.num("381", format_args!(":You are now an IRC operator"));
            w.own(format_args!("MODE {me} :+os"));
        }
        Event::Wallops { from, text } => {
            let head = format!(":{} WALLOPS", source(from, w.from_host));
            push_text_line(&mut w.out, &head, text);
        }
        Event::Wall { from, text } => {
            let head = format!(":{} NOTICE {me}", source(from, w.from_host));
            push_text_line(&mut w.out, &head, &format!("[wall] {text}"));
        }
        Event::ServerNotice { kind, text } => {
            let kind = kind.as_str().to_ascii_uppercase();
            w.notice(format_args!("*** {kind}: {text}"));
        }
        Event::Killed { by, reason } => {
            let head = format!(":{} KILL {me}", source(by, w.from_host));
            push_text_line(&mut w.out, &head, reason);
            w.closing_link(&format!("Killed ({by} ({reason}))"));
        }
        Event::Klined(reason) => {
            w.num(
                "465",
                format_args!(":You are banned from this server: {reason}"),
            );
            w.closing_link(&format!("K-Lined: {reason}"));
        }
        Event::Klines(klines) => {
            for kline in klines {
                let (mask, by, reason) = (&kline.mask, &kline.set_by, &kline.reason);
                let expires = kline.expiry_text();
                w.num("216", format_args!("K {mask} {expires} {by} :{reason}"));
            }
            w.num("219", format_args!("K :End of /STATS report"));
        }
        Event::Rehashing => w.num("382", format_args!("{server} :Rehashing")),
        // Broadcast events were handled by `reply`; `ModesChanged` and `KickDone`
        // are for line clients only (IRC clients get their MODE and KICK echoed).
        _ => {}
    }
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

    #[test]
    fn the_account_capability_bits_match_their_names() {
        assert_eq!(Caps::bit("account-tag"), Some(ACCOUNT_TAG_BIT));
        assert_eq!(Caps::bit("extended-join"), Some(EXTENDED_JOIN_BIT));
        let both = Caps::default()
            .request("account-tag extended-join")
            .unwrap();
        assert_eq!(both.account_extras(), (true, true));
    }
    use crate::protocol::{WhoisInfo, mask};

    fn msg(line: &str) -> Message<'_> {
        parse(line).unwrap()
    }

    fn member(nick: &str, role: Role) -> Member {
        Member {
            nick: Nick::parse(nick).unwrap(),
            role,
            away: false,
            voiced: role == Role::Voiced,
            realname: nick.into(),
        }
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
        assert_eq!(parse("   "), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_not_refused() {
        let text = decode(b"USER x 0 * :Jos\xe9 \xff\xfe");
        let m = parse(&text).unwrap();
        let realname = m.params[3];
        assert_eq!(
            super::super::raw::to_wire(realname.into()),
            b"Jos\xe9 \xff\xfe"
        );
        assert_eq!(
            super::super::raw::to_text(realname),
            "Jos\u{fffd} \u{fffd}\u{fffd}"
        );
        assert_eq!(decode("é".as_bytes()), "é");
    }

    #[test]
    fn cr_lf_and_nul_inside_a_line_are_refused() {
        // Found by fuzzing: a bare CR in a topic reached every member of the room.
        let forged = "TOPIC #rust :x\r:mallory!mallory@miochat PRIVMSG #rust :forged";
        assert!(has_forbidden_chars(forged));
        assert!(has_forbidden_chars("QUIT :a\0b"));
        assert!(has_forbidden_chars("PRIVMSG #a :b\nc"));
        assert!(!has_forbidden_chars(
            "PRIVMSG #a :tab\tand \u{1}ACTION\u{1}"
        ));
    }

    #[test]
    fn text_cleaning() {
        assert_eq!(clean_text("hi"), (Cow::Borrowed("hi"), false));
        assert_eq!(
            clean_text("\x01ACTION waves\x01"),
            (Cow::Borrowed("waves"), true)
        );
        let formatted = "\x02bold\x02 \x0304,12red\x03";
        assert_eq!(clean_text(formatted).0, formatted, "formatting is kept");
        assert_eq!(clean_text("a\x07b").0, "ab", "other controls are not");
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
            broadcast(&m, None).unwrap(),
            ":alice!alice@miochat PRIVMSG #rust :hi\r\n"
        );
        let long = Event::Message {
            room,
            from: nick,
            text: "é".repeat(400).into(),
        };
        let line = broadcast(&long, None).unwrap();
        assert!(line.len() <= 512, "{}", line.len());
        assert!(line.ends_with("é\r\n"), "cut at a char boundary");
    }

    #[test]
    fn replies_are_addressed_to_me() {
        let room = RoomName::parse("rust").unwrap();
        let nicks = vec![member("alice", Role::Operator), member("bob", Role::Member)];
        let joined = reply(
            &Event::YouJoined {
                room: room.clone(),
                members: 2,
                topic: Some("mio".into()),
                nicks,
                secret: false,
                joiner: None,
                topic_by: Some(("al!~al@h.ip".into(), 7)),
            },
            "srv",
            "bob",
        );
        assert_eq!(
            joined,
            ":bob!bob@miochat JOIN #rust\r\n:srv 332 bob #rust :mio\r\n\
             :srv 333 bob #rust al!~al@h.ip 7\r\n:srv 353 bob = #rust :@alice bob\r\n:srv 366 bob #rust :End of /NAMES list.\r\n"
        );
        let err = reply(&Event::Error(ProtocolError::NotInRoom(room)), "srv", "bob");
        assert_eq!(err, ":srv 442 bob #rust :You're not on that channel\r\n");
    }

    #[test]
    fn names_split_within_512_bytes_and_mark_secret_rooms() {
        let room = RoomName::parse("big").unwrap();
        let nicks: Vec<Member> = (0..100)
            .map(|i| member(&format!("n{i:0>22}"), Role::Voiced))
            .collect();
        let names = reply(
            &Event::Names {
                room,
                nicks,
                secret: true,
            },
            "srv",
            "me",
        );
        let lines: Vec<&str> = names.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| l.len() <= MAX_IRC_LINE), "{lines:?}");
        assert!(lines[0].starts_with(":srv 353 me @ #big :+n"));
        let listed: usize = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.rsplit(':').next().unwrap().split(' ').count())
            .sum();
        assert_eq!(listed, 100);
    }

    #[test]
    fn moderation_lines() {
        let room = RoomName::parse("rust").unwrap();
        let by = Nick::parse("op").unwrap();
        let changes = modes::parse("+mk-o", &["key", "bob"]).changes;
        let mode = Event::ModeChanged {
            room: room.clone(),
            by: by.clone(),
            changes,
        };
        assert_eq!(
            broadcast(&mode, None).unwrap(),
            ":op!op@miochat MODE #rust +mk-o key bob\r\n"
        );
        let kick = Event::Kicked {
            room: room.clone(),
            by,
            nick: Nick::parse("bob").unwrap(),
            reason: "spam".into(),
        };
        assert_eq!(
            broadcast(&kick, None).unwrap(),
            ":op!op@miochat KICK #rust bob :spam\r\n"
        );
        let modes = Event::Modes {
            room,
            modes: "+nt".into(),
            created: 42,
        };
        assert_eq!(
            reply(&modes, "srv", "me"),
            ":srv 324 me #rust +nt\r\n:srv 329 me #rust 42\r\n"
        );
    }

    /// A 63-byte server name (the longest `--server-name`) and a 24-byte nick.
    const LONG_SERVER: &str = "a-server-name-that-is-exactly-sixty-three-bytes-long.example.io";
    const LONG_ME: &str = "nnnnnnnnnnnnnnnnnnnnnnnn";

    /// Every line of `out` fits 512 bytes with its CRLF and parses; returns them.
    fn fitting_lines(out: &str) -> Vec<&str> {
        assert!(out.ends_with("\r\n"), "{out:?}");
        let lines: Vec<&str> = out.split_terminator("\r\n").collect();
        for line in &lines {
            assert!(
                line.len() <= MAX_IRC_LINE,
                "{} bytes: {line}",
                line.len() + 2
            );
            assert!(parse(line).is_some(), "{line:?}");
        }
        lines
    }

    /// The nicks listed in the trailing parameters of `lines`.
    fn listed<'a>(lines: &[&'a str]) -> Vec<&'a str> {
        let trailing = lines
            .iter()
            .map(|l| parse(l).unwrap().params.pop().unwrap());
        trailing
            .flat_map(|t| t.split(' '))
            .filter(|n| !n.is_empty())
            .collect()
    }

    #[test]
    fn names_with_long_nicks_split_by_bytes_not_by_count() {
        let room = RoomName::parse(&"r".repeat(MAX_ROOM_LEN)).unwrap();
        let nicks: Vec<Member> = (0..60)
            .map(|i| member(&format!("{i:x>24}"), Role::Operator))
            .collect();
        let names = Event::Names {
            room,
            nicks,
            secret: false,
        };
        let out = reply(&names, LONG_SERVER, LONG_ME);
        let lines = fitting_lines(&out);
        let rows: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(" 353 "))
            .collect();
        assert_eq!(listed(&rows).len(), 60);
        // As many as fit: each line but the last could not take one more nick.
        for row in &rows[..rows.len() - 1] {
            assert!(row.len() + 1 + 25 > MAX_IRC_LINE, "{} bytes", row.len());
        }
    }

    #[test]
    fn ison_splits_by_bytes_and_answers_even_when_nobody_is_on() {
        let nicks: Vec<Nick> = (0..40)
            .map(|i| Nick::parse(&format!("{i:y>24}")).unwrap())
            .collect();
        let out = reply(&Event::Ison(nicks), LONG_SERVER, LONG_ME);
        let lines = fitting_lines(&out);
        assert!(lines.len() > 1 && lines.iter().all(|l| l.contains(" 303 ")));
        assert_eq!(listed(&lines).len(), 40);
        let none = reply(&Event::Ison(Vec::new()), "srv", "me");
        assert_eq!(none, ":srv 303 me :\r\n");
    }

    #[test]
    fn away_text_and_long_targets_are_cut_at_a_char_boundary() {
        let away = Event::IsAway {
            nick: Nick::parse(LONG_ME).unwrap(),
            text: "é".repeat(300).into(),
        };
        let out = reply(&away, LONG_SERVER, LONG_ME);
        let lines = fitting_lines(&out);
        assert!(lines[0].ends_with('é'), "{:?}", lines[0]);
        assert!(lines[0].len() > MAX_IRC_LINE - 2, "cut only at the limit");
        let target = "t".repeat(490);
        let missing = Event::Error(ProtocolError::NoSuchNick(target.as_str().into()));
        let out = reply(&missing, LONG_SERVER, LONG_ME);
        let lines = fitting_lines(&out);
        assert!(lines[0].starts_with(&format!(":{LONG_SERVER} 401 {LONG_ME} ttt")));
        let mut info = WhoisInfo {
            nick: Nick::parse(LONG_ME).unwrap(),
            realname: "r".repeat(600).into(),
            away: Some("a".repeat(600).into()),
            rooms: Vec::new(),
            idle_secs: 0,
            signon: 0,
            irc: true,
            account: Some(Nick::parse(LONG_ME).unwrap()),
            node: None,
        };
        for i in 0..MAX_ROOMS {
            let room = RoomName::parse(&format!("{i:r>32}")).unwrap();
            info.rooms.push((room, Role::Operator));
        }
        let out = reply(&Event::Whois(Box::new(info), None), LONG_SERVER, "me");
        let lines = fitting_lines(&out);
        let rooms: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(" 319 "))
            .collect();
        assert!(rooms.len() > 1);
        assert_eq!(listed(&rooms).len(), MAX_ROOMS);
    }

    #[test]
    fn session_numerics_that_echo_parameters_fit_512_bytes() {
        let long = "x".repeat(600);
        let replies = [
            IrcReply::UnknownCommand(&long),
            IrcReply::NoSuchChannel(&long),
            IrcReply::ErroneousNickname(&long),
            IrcReply::NoSuchNick(&long),
            IrcReply::InvalidCap(&long),
            IrcReply::EndOfWho(&long),
            IrcReply::Cap {
                sub: "NAK",
                list: &long,
            },
            IrcReply::NeedMoreParams(&long),
            IrcReply::NicknameInUse(&long),
            IrcReply::EndOfNames(&long),
            IrcReply::UserModeChanged(&long),
            IrcReply::ClosingLink(&long),
        ];
        for reply in &replies {
            let out = session_reply(reply, LONG_SERVER, LONG_ME, None);
            assert_eq!(fitting_lines(&out).len(), 1, "{reply:?}");
        }
        let long_pong = pong(LONG_SERVER, &"é".repeat(400));
        let lines = fitting_lines(&long_pong);
        assert!(lines[0].ends_with('é'), "cut at a char boundary");
        assert_eq!(pong("srv", "tok"), ":srv PONG srv :tok\r\n");
    }

    #[test]
    fn mode_lines_with_long_ban_masks_split_within_512_bytes() {
        let masks: Vec<String> = (0..6).map(|i| format!("{i:z>93}!u@h.io")).collect();
        assert!(masks.iter().all(|m| m.len() == mask::MAX_MASK_LEN));
        let params: Vec<&str> = masks.iter().map(String::as_str).collect();
        let changes = modes::parse("+bbbbbb", &params).changes;
        assert_eq!(changes.len(), 6);
        let mode = Event::ModeChanged {
            room: RoomName::parse(&"r".repeat(MAX_ROOM_LEN)).unwrap(),
            by: Nick::parse(LONG_ME).unwrap(),
            changes,
        };
        let out = broadcast(&mode, None).unwrap();
        let lines = fitting_lines(&out);
        assert!(lines.len() > 1);
        let set: Vec<&str> = lines
            .iter()
            .flat_map(|l| parse(l).unwrap().params[2..].to_vec())
            .collect();
        assert_eq!(set, params, "every mask whole, in order");
    }

    #[test]
    fn isupport_lines_have_at_most_13_tokens() {
        let burst = session_reply(&IrcReply::Welcome { version: "v" }, "srv", "me", None);
        let isupport: Vec<&str> = burst.lines().filter(|l| l.contains(" 005 ")).collect();
        assert_eq!(isupport.len(), 2);
        for line in isupport {
            let tokens = line.split(" :").next().unwrap().split(' ').count() - 3;
            assert!((1..=13).contains(&tokens), "{tokens} tokens: {line}");
        }
        assert!(burst.contains("PREFIX=(ov)@+ "));
        assert!(burst.contains("CHANMODES=b,k,l,imnst "));
    }
}
