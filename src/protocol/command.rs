//! What a client asked for: the [`Command`] enum and everything a command means.
//!
//! One command's meaning lives in one file: its shape (the enum), its
//! classification ([`Command::is_oper_command`], [`Command::is_notice`],
//! [`Command::is_account_command`]) and the line a client types for it
//! ([`Command::to_line`]). Adding a command is one edit here plus its parser and its
//! handler: parsing a line into a `Command` lives in `parse.rs` (and `irc.rs` for IRC
//! messages), carrying one out in `src/server/commands/`.

use super::modes::{self, ModeRequest};
use super::{AccessLevel, HistoryQuery, Nick, RoomName, SayKind};

/// What a client asked for: one parsed line. Text borrows from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A plain line: a message to the current room.
    Say(&'a str),
    /// `/me TEXT`: an action in the current room.
    Me(&'a str),
    /// `/nick NAME`.
    Nick(Nick),
    /// `/join ROOM`: join (if needed) and make it the current room.
    Join(RoomName),
    /// `/leave [ROOM]`: the current room when none is named.
    Leave(Option<RoomName>),
    /// `/msg NICK TEXT`: a private message.
    Msg {
        /// The target as typed (looked up case-insensitively).
        to: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `/who [ROOM]`: members of a room (the current one by default).
    Who(Option<RoomName>),
    /// `/rooms`: every room with its member count.
    Rooms,
    /// `/topic [TEXT]`: show or set the current room's topic.
    Topic(Option<&'a str>),
    /// `/ping [TOKEN]`: answered by `PONG [TOKEN]`; a round-trip barrier for scripts.
    Ping(Option<&'a str>),
    /// `/stats`: server counters.
    Stats,
    /// `/quit [REASON]`.
    Quit(Option<&'a str>),
    /// `/help`.
    Help,

    // Commands only the IRC listener produces (its clients name rooms explicitly).
    /// A message (or action, or notice) to a named room the sender is in.
    SayTo {
        /// The room.
        room: RoomName,
        /// The text.
        text: &'a str,
        /// Plain message, `/me`-style action, or notice.
        kind: SayKind,
    },
    /// A private notice (IRC `NOTICE nick`): like `Msg`, but never answered.
    Notice {
        /// The target as typed.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// Show or set the topic of a named room.
    TopicOf {
        /// The room.
        room: RoomName,
        /// The new topic, or `None` to show it.
        text: Option<&'a str>,
    },
    /// Members of a room, for IRC `NAMES`.
    Names(RoomName),
    /// Who is behind a nick (IRC `WHOIS`).
    Whois(&'a str),
    /// Set (`Some`) or clear (`None`) an away message.
    Away(Option<&'a str>),
    /// Which of these nicks are online (IRC `ISON`).
    Ison(Vec<&'a str>),
    /// IRC `LIST #a,#b`: those rooms only, as `Rooms` lists them.
    ListOf(Vec<RoomName>),
    /// Nick and host of these nicks (IRC `USERHOST`).
    Userhost(Vec<&'a str>),

    // Moderation (both protocols) and the IRC queries that go with it.
    /// `/join ROOM KEY`, IRC `JOIN #room key`: join a room that may have a key.
    JoinWithKey {
        /// The room.
        room: RoomName,
        /// The key offered.
        key: &'a str,
    },
    /// IRC `PART #room :reason`: leave with a reason the room is told.
    Part {
        /// The room.
        room: RoomName,
        /// Why, if given.
        reason: Option<&'a str>,
    },
    /// `/mode`, `/op`, `/ban`, `/bans` ..., IRC `MODE #room ...`: show or change a
    /// room's modes (the current room when `None`).
    Mode {
        /// The room, or the current one.
        room: Option<RoomName>,
        /// What to show or change.
        request: ModeRequest,
    },
    /// `/kick NICK [REASON]`, IRC `KICK #room nick :reason`.
    Kick {
        /// The room, or the current one.
        room: Option<RoomName>,
        /// Who.
        nick: &'a str,
        /// Why (the kicker's nick when not given).
        reason: Option<&'a str>,
    },
    /// `/invite NICK [ROOM]`, IRC `INVITE nick #room`.
    Invite {
        /// Who.
        nick: &'a str,
        /// The room, or the current one.
        room: Option<RoomName>,
    },
    /// IRC `INVITE` without parameters: the rooms one was invited to.
    Invites,
    /// IRC `WHO nick` or `WHO mask`: users matching a nick or a wildcard mask.
    WhoMask(&'a str),
    /// IRC `WHOWAS nick [count]`: who recently had a nick.
    Whowas {
        /// The nick.
        nick: &'a str,
        /// At most this many entries (0 = all kept).
        count: usize,
    },
    /// IRC `LUSERS`: user, connection and room counts.
    Lusers,
    /// `/echo on|off`: see one's own room lines (line protocol; IRC has
    /// `echo-message`).
    Echo(bool),
    /// `/history [N]`: the current room's last N lines (line protocol).
    History(Option<usize>),
    /// `/register PASSWORD`: the current nick becomes an account.
    Register(&'a str),
    /// `/register #ROOM`: the asker (logged in, an operator there) founds the room.
    RegisterRoom(RoomName),
    /// `/login NICK PASSWORD`, or `/identify [NICK] PASSWORD`.
    Login {
        /// The account (`None`: the current nick).
        account: Option<&'a str>,
        /// The password.
        password: &'a str,
    },
    /// `/logout`.
    Logout,
    /// `/passwd OLD NEW`.
    Passwd {
        /// The password now.
        old: &'a str,
        /// The new password.
        new: &'a str,
    },
    /// IRC `NickServ SET PASSWORD NEW`: a new password for the account the asker is
    /// logged in to (logged in is proof enough, as in services packages).
    SetPassword(&'a str),
    /// `/unregister PASSWORD`: drops the asker's account.
    Unregister(&'a str),
    /// `/unregister #ROOM`: drops the room's registration (its founder only).
    UnregisterRoom(RoomName),
    /// `/access #ROOM [add NICK op|voice | del NICK]`.
    Access {
        /// The room.
        room: RoomName,
        /// The change (`None` level: remove), or `None` to list the grants.
        change: Option<(&'a str, Option<AccessLevel>)>,
    },
    /// `/history #ROOM N` or `/history #ROOM since MSGID|TIME`.
    HistoryOf {
        /// The room.
        room: RoomName,
        /// Which lines.
        query: HistoryQuery,
    },
    /// IRC `TAGMSG target`: a message of tags only (IRCv3 message-tags), to a room
    /// the sender is in or to a nick.
    TagMsg(&'a str),

    // Server operators (both protocols; see `server::oper`).
    /// `/oper NAME PASSWORD`, IRC `OPER name password`: become a server operator.
    Oper {
        /// The operator's name (an `[[oper]]` table of the configuration).
        name: &'a str,
        /// Its password.
        password: &'a str,
    },
    /// `/kill NICK REASON`, IRC `KILL nick :reason`: disconnect a user.
    Kill {
        /// Who.
        nick: &'a str,
        /// Why (told to the user and, in its quit, to its rooms).
        reason: &'a str,
    },
    /// `/kline MASK DURATION [REASON]`, IRC `KLINE mask duration :reason`: a
    /// server-wide ban.
    Kline {
        /// `nick!user@host`, an address, a glob or `ADDRESS/BITS`, as typed.
        mask: &'a str,
        /// How long, in seconds (`None`: until lifted).
        duration: Option<u64>,
        /// Why (told to those it keeps out).
        reason: &'a str,
    },
    /// `/unkline MASK`, IRC `UNKLINE mask`: lifts a k-line.
    Unkline(&'a str),
    /// `/klines`, IRC `STATS k`: the k-lines in force.
    Klines,
    /// `/wallops TEXT`, IRC `WALLOPS :text`: a message to every operator.
    Wallops(&'a str),
    /// `/wall TEXT`, IRC `WALL :text`: a notice to every user of the server.
    Wall(&'a str),
    /// `/rehash`, IRC `REHASH`: reload the configuration (as SIGHUP does).
    Rehash,
    /// `/motd`, IRC `MOTD`: the message of the day again.
    Motd,
}

impl Command<'_> {
    /// True for the server operators' commands (and `/motd`, which anyone may use).
    pub fn is_oper_command(&self) -> bool {
        matches!(
            self,
            Command::Oper { .. }
                | Command::Kill { .. }
                | Command::Kline { .. }
                | Command::Unkline(_)
                | Command::Klines
                | Command::Wallops(_)
                | Command::Wall(_)
                | Command::Rehash
                | Command::Motd
        )
    }

    /// True for notices, which must never be answered, not even with an error.
    pub fn is_notice(&self) -> bool {
        matches!(
            self,
            Command::Notice { .. }
                | Command::SayTo {
                    kind: SayKind::Notice,
                    ..
                }
        )
    }

    /// True for the account, registration and stored-history commands.
    pub fn is_account_command(&self) -> bool {
        matches!(
            self,
            Command::Register(_)
                | Command::RegisterRoom(_)
                | Command::Unregister(_)
                | Command::UnregisterRoom(_)
                | Command::Login { .. }
                | Command::Logout
                | Command::Passwd { .. }
                | Command::SetPassword(_)
                | Command::Access { .. }
                | Command::HistoryOf { .. }
        )
    }

    /// The line a client types for this command (no LF): the inverse of
    /// [`parse_line`](super::parse::parse_line), used by the round-trip property tests and by scripts. `None`
    /// for the commands only the IRC listener produces.
    pub fn to_line(&self) -> Option<String> {
        let with = |name: &str, arg: Option<&str>| match arg {
            Some(arg) => format!("/{name} {arg}"),
            None => format!("/{name}"),
        };
        let line = match self {
            Command::Say(text) if text.starts_with('/') => format!("/{text}"),
            Command::Say(text) => (*text).to_string(),
            Command::Me(text) => format!("/me {text}"),
            Command::Nick(nick) => format!("/nick {nick}"),
            Command::Join(room) => format!("/join {room}"),
            Command::Leave(room) => with("leave", room.as_ref().map(RoomName::as_str)),
            Command::Msg { to, text } => format!("/msg {to} {text}"),
            Command::Who(room) => with("who", room.as_ref().map(RoomName::as_str)),
            Command::Rooms => "/rooms".into(),
            Command::Topic(topic) => with("topic", *topic),
            Command::Ping(token) => with("ping", *token),
            Command::Stats => "/stats".into(),
            Command::Quit(reason) => with("quit", *reason),
            Command::Help => "/help".into(),
            Command::Echo(on) => format!("/echo {}", if *on { "on" } else { "off" }),
            Command::History(count) => match count {
                Some(count) => format!("/history {count}"),
                None => "/history".into(),
            },
            Command::JoinWithKey { room, key } => format!("/join {room} {key}"),
            Command::Register(_)
            | Command::RegisterRoom(_)
            | Command::Unregister(_)
            | Command::UnregisterRoom(_)
            | Command::Login { .. }
            | Command::Logout
            | Command::Passwd { .. }
            | Command::SetPassword(_)
            | Command::Access { .. }
            | Command::HistoryOf { .. } => return self.account_line(),
            Command::Mode { .. } | Command::Kick { .. } | Command::Invite { .. } => {
                return moderation_line(self);
            }
            Command::SayTo {
                room,
                text,
                kind: SayKind::Message,
            } => format!("/msg #{room} {text}"),
            Command::Oper { .. }
            | Command::Kill { .. }
            | Command::Kline { .. }
            | Command::Unkline(_)
            | Command::Klines
            | Command::Wallops(_)
            | Command::Wall(_)
            | Command::Rehash
            | Command::Motd => return operator_line(self),
            Command::Part { .. }
            | Command::Invites
            | Command::WhoMask(_)
            | Command::Whowas { .. }
            | Command::Lusers
            | Command::SayTo { .. }
            | Command::TagMsg(_)
            | Command::Notice { .. }
            | Command::TopicOf { .. }
            | Command::Names(_)
            | Command::Whois(_)
            | Command::Away(_)
            | Command::Ison(_)
            | Command::ListOf(_)
            | Command::Userhost(_) => return None,
        };
        Some(line)
    }

    /// [`Command::to_line`] for the account, registration and history commands.
    fn account_line(&self) -> Option<String> {
        let line = match self {
            Command::Register(password) => format!("/register {password}"),
            Command::RegisterRoom(room) => format!("/register #{room}"),
            Command::Unregister(password) => format!("/unregister {password}"),
            Command::UnregisterRoom(room) => format!("/unregister #{room}"),
            Command::Login {
                account: Some(account),
                password,
            } => format!("/login {account} {password}"),
            Command::Login {
                account: None,
                password,
            } => format!("/identify {password}"),
            Command::Logout => "/logout".into(),
            Command::Passwd { old, new } => format!("/passwd {old} {new}"),
            Command::SetPassword(_) => return None, // NickServ's only
            Command::Access { room, change } => match change {
                None => format!("/access #{room}"),
                Some((nick, Some(level))) => {
                    format!("/access #{room} add {nick} {}", level.as_str())
                }
                Some((nick, None)) => format!("/access #{room} del {nick}"),
            },
            Command::HistoryOf { room, query } => match query {
                HistoryQuery::Latest(count) => format!("/history {room} {count}"),
                HistoryQuery::AfterId(id, _) => {
                    format!("/history {room} since {}", super::msgid_text(*id))
                }
                HistoryQuery::AfterTime(at, _) => {
                    format!("/history {room} since {}", super::timestamp(*at))
                }
                // Only IRC's CHATHISTORY asks for these.
                HistoryQuery::LatestAfter(..)
                | HistoryQuery::Before(..)
                | HistoryQuery::Around(..)
                | HistoryQuery::Between(..) => return None,
            },
            _ => return None,
        };
        Some(line)
    }
}

/// The line of a server operator's command ([`Command::to_line`]).
fn operator_line(command: &Command<'_>) -> Option<String> {
    let line = match command {
        Command::Oper { name, password } => format!("/oper {name} {password}"),
        Command::Kill { nick, reason } => format!("/kill {nick} {reason}"),
        Command::Kline {
            mask,
            duration,
            reason,
        } => {
            let duration = duration.map_or_else(|| "perm".to_string(), |s| format!("{s}s"));
            format!("/kline {mask} {duration} {reason}")
                .trim_end()
                .to_string()
        }
        Command::Unkline(mask) => format!("/unkline {mask}"),
        Command::Klines => "/klines".into(),
        Command::Wallops(text) => format!("/wallops {text}"),
        Command::Wall(text) => format!("/wall {text}"),
        Command::Rehash => "/rehash".into(),
        Command::Motd => "/motd".into(),
        _ => return None,
    };
    Some(line)
}

/// The line of `/mode`, `/kick` or `/invite` ([`Command::to_line`]); `None` for
/// what only IRC says (a refused mode, a kick naming its room).
fn moderation_line(command: &Command<'_>) -> Option<String> {
    let line = match command {
        Command::Mode { room, request } if request.errors.is_empty() => {
            mode_line(room.as_ref(), request)
        }
        Command::Kick {
            room: None,
            nick,
            reason,
        } => match reason {
            Some(reason) => format!("/kick {nick} {reason}"),
            None => format!("/kick {nick}"),
        },
        Command::Invite { nick, room } => match room {
            Some(room) => format!("/invite {nick} {room}"),
            None => format!("/invite {nick}"),
        },
        _ => return None,
    };
    Some(line)
}

/// `/mode [#ROOM] [CHANGES]` as typed.
fn mode_line(room: Option<&RoomName>, request: &ModeRequest) -> String {
    let mut line = String::from("/mode");
    if let Some(room) = room {
        line.push_str(&format!(" #{room}"));
    }
    if request.list_bans {
        line.push_str(" +b");
    } else if !request.changes.is_empty() {
        line.push(' ');
        line.push_str(&modes::changes_string(&request.changes));
    }
    line
}
