//! The boundary between the wire and the chat core.
//!
//! The core (`server::relay`) never sees bytes and never produces bytes. It receives a
//! [`Command`] (what a client asked for) and produces [`Event`]s (what someone should be
//! told). This module defines both, plus [`ProtocolError`] for client mistakes that are
//! answered with an error line while the connection stays open.
//!
//! - [`command`]: the [`Command`] enum and everything a command means (its
//!   classification, the line a client types for it);
//! - [`parse`]: one line of the miochat line protocol → [`Command`];
//! - [`render`]: [`Event`] → the bytes of one or more lines, rendered **once** into an
//!   `Arc<[u8]>` and shared by every recipient;
//! - [`names`]: the [`Nick`] and [`RoomName`] newtypes and their validation;
//! - [`irc`]: the IRC client protocol: message parsing and rendering of the same
//!   [`Event`]s as IRC lines and numerics;
//! - [`formatting`]: IRC's colour and formatting codes, which both `irc` and `render`
//!   need, so that neither imports the other;
//! - [`modes`] and [`mask`]: room modes and ban masks, parsed and matched once for
//!   both protocols;
//! - [`websocket`]: WebSocket frames around those lines, and the decoder for a
//!   browser's frames; [`http`]: the web listener's requests and answers, including
//!   the upgrade to WebSocket.
//!
//! A second wire protocol (IRC) adds its own parser and renderer for the same types;
//! nothing in `server/` changes. Nothing in this module touches sockets, so all of it
//! is unit-tested with plain values. The exact grammar is in `docs/PROTOCOL.md`.

pub mod command;
pub mod formatting;
pub mod identity;
pub mod irc;
pub mod mask;
pub mod modes;
pub mod names;
pub mod outgoing;
pub mod parse;
pub mod raw;
pub mod redact;
pub mod render;
pub mod web;
pub use web::{exposition, http, websocket};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use command::Command;
pub use modes::{ModeChange, ModeError, ModeRequest};
pub use names::{Nick, RoomName};

/// Longest `/topic` text in bytes (InspIRCd 330, Ergo 390).
pub const MAX_TOPIC_LEN: usize = 300;
/// Longest kick reason in bytes (`KICKLEN=`); longer ones are cut.
pub const MAX_KICK_LEN: usize = 300;
/// Nicks a join/quit summary names before it says `…`.
pub const SUMMARY_NICKS: usize = 10;

/// `ms` (since the Unix epoch) as `YYYY-MM-DDThh:mm:ss.sssZ`, the form IRCv3
/// `server-time` requires and the line protocol's `HIST` lines use.
pub fn timestamp(ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| String::from("1970-01-01T00:00:00.000Z"))
}

/// A grant in a registered room's access list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessLevel {
    /// Voice on joining or logging in.
    Voice,
    /// Operator status on joining or logging in.
    Op,
}

impl AccessLevel {
    /// `op` or `voice`, as typed and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Op => "op",
            AccessLevel::Voice => "voice",
        }
    }

    /// The level named `text` (`op`, `o`, `voice` or `v`).
    pub fn parse(text: &str) -> Option<AccessLevel> {
        match text.to_ascii_lowercase().as_str() {
            "op" | "o" => Some(AccessLevel::Op),
            "voice" | "v" => Some(AccessLevel::Voice),
            _ => None,
        }
    }
}

/// Which lines of a room's history a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The newest `count`.
    Latest(usize),
    /// Up to `count` lines after message id `id` (exclusive), oldest first.
    AfterId(u64, usize),
    /// Up to `count` lines at or after `at_ms`, oldest first.
    AfterTime(u64, usize),
    /// The newest `count` lines after message id `id` (exclusive).
    LatestAfter(u64, usize),
    /// The newest `count` lines before message id `id` (exclusive), oldest first.
    Before(u64, usize),
    /// About `count` lines around message id `id`: half before it, the rest from it.
    Around(u64, usize),
    /// Up to `count` lines strictly between two ids, oldest first.
    Between(u64, u64, usize),
}

/// A message id as the wire shows it: 16 lower-case hex digits, so that ids sort
/// as text in the order they were given.
pub fn msgid_text(id: u64) -> String {
    format!("{id:016x}")
}

/// `YYYY-MM-DDThh:mm:ss[.sss]Z` (the form of [`timestamp`]) as ms since the Unix
/// epoch.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Most lines one `/history` or `CHATHISTORY` request returns.
pub const HISTORY_READ_MAX: usize = 1000;

/// A message id from its wire form.
pub fn parse_msgid(text: &str) -> Option<u64> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// A member's standing in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Role {
    /// No privileges.
    #[default]
    Member,
    /// May speak under `+m`.
    Voiced,
    /// Runs the room.
    Operator,
}

impl Role {
    /// The prefix shown before the nick (`@`, `+`), if any.
    pub fn prefix(self) -> Option<char> {
        match self {
            Role::Member => None,
            Role::Voiced => Some('+'),
            Role::Operator => Some('@'),
        }
    }
}

/// One member of a room as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The nick.
    pub nick: Nick,
    /// Operator, voiced or plain.
    pub role: Role,
    /// Whether an away message is set.
    pub away: bool,
    /// Voiced, whatever the role (an operator may be voiced too: IRC's
    /// `multi-prefix` shows `@+`).
    pub voiced: bool,
    /// The real name (IRC `USER`; the nick for line users).
    pub realname: Arc<str>,
}

impl fmt::Display for Member {
    /// `@nick`, `+nick` or `nick`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(prefix) = self.role.prefix() {
            write!(f, "{prefix}")?;
        }
        write!(f, "{}", self.nick)
    }
}

/// One line of an IRC `WHO` by nick or mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoRow {
    /// A room the user is in and the asker may see, if any.
    pub room: Option<RoomName>,
    /// The user, with its role in that room.
    pub member: Member,
    /// Its `user@host`, if known here (not for a user of another node).
    pub userhost: Option<identity::UserHost>,
}

/// What `WHOIS` tells about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisInfo {
    /// The nick.
    pub nick: Nick,
    /// The real name.
    pub realname: Arc<str>,
    /// The away message, if any.
    pub away: Option<Box<str>>,
    /// Rooms the asker may see, with the user's role in each.
    pub rooms: Vec<(RoomName, Role)>,
    /// Seconds since the user last sent a message.
    pub idle_secs: u64,
    /// When the user connected (Unix seconds).
    pub signon: u64,
    /// The user speaks IRC (else the line protocol).
    pub irc: bool,
    /// The account the user is logged in to, if any (and if known here).
    pub account: Option<Nick>,
    /// The node of a cluster that has the user, if not this one: its idle time is
    /// not known here (shown as `-`, and IRC's 317 is left out), nor its real name
    /// (its nick stands in) or away message.
    pub node: Option<Box<str>>,
}

/// One line of a room's history, as kept on the room's home shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    /// Its message id (unique, sortable: see [`msgid_text`]).
    pub id: u64,
    /// When the home shard put it in the room's order (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who said it.
    pub from: Nick,
    /// What kind of line it was.
    pub kind: SayKind,
    /// The text, as the sender wrote it (IRC formatting kept).
    /// Shared by the room's memory ring and the line on its way to the store.
    pub text: Arc<str>,
}

/// Which crowd a join/quit summary counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryKind {
    /// Members who joined.
    Joins,
    /// Members who quit or left.
    Quits,
}

/// Who set a room's topic (`nick!user@host`, or the nick alone when the host is not
/// known here) and when (Unix seconds): IRC's `333`.
pub type TopicSetter = (Box<str>, u64);

/// One user who had a nick (IRC `WHOWAS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhowasEntry {
    /// The nick as it was spelled.
    pub nick: Nick,
    /// The real name then.
    pub realname: Arc<str>,
    /// Its `user@host` then.
    pub userhost: identity::UserHost,
}

/// User, connection and room counts (IRC `LUSERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LusersReport {
    /// Registered users (line users and registered IRC users).
    pub users: usize,
    /// IRC connections still registering.
    pub unknown: usize,
    /// Rooms with members.
    pub rooms: usize,
    /// The most users there have been at once.
    pub max_users: usize,
    /// Server operators connected to this node (`252`).
    pub operators: usize,
}

/// One server-wide ban (a k-line), as listed and as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineInfo {
    /// The normalised mask (`nick!user@host`; the host may be `ADDRESS/BITS`).
    pub mask: Box<str>,
    /// The operator who set it.
    pub set_by: Box<str>,
    /// When (Unix seconds).
    pub set_at: u64,
    /// When it lapses (Unix seconds), or `None`: until lifted.
    pub expires: Option<u64>,
    /// Why.
    pub reason: Box<str>,
}

impl KlineInfo {
    /// Still in force at `now` (Unix seconds)?
    pub fn in_force(&self, now: u64) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    /// When it lapses as the wire shows it: `perm`, or a time as `HIST` shows one.
    pub fn expiry_text(&self) -> String {
        match self.expires {
            None => "perm".to_string(),
            Some(at) => timestamp(at.saturating_mul(1000)),
        }
    }
}

/// What a server notice to operators is about (IRC: `*** KIND: text`; line:
/// `EVENT * snotice KIND text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A client connected (line) or registered (IRC).
    Connect,
    /// Someone became an operator, or failed to.
    Oper,
    /// A user was killed.
    Kill,
    /// A k-line was set or lifted, or kept someone out.
    Kline,
    /// Flood control paused or cut a client.
    Flood,
}

impl NoticeKind {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Connect => "connect",
            NoticeKind::Oper => "oper",
            NoticeKind::Kill => "kill",
            NoticeKind::Kline => "kline",
            NoticeKind::Flood => "flood",
        }
    }
}

/// One entry of a room's ban list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    /// The normalised mask.
    pub mask: Box<str>,
    /// Who set it.
    pub set_by: Box<str>,
    /// When (Unix seconds).
    pub set_at: u64,
}

/// What kind of room message `SayTo` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SayKind {
    /// A plain message.
    Message,
    /// An action (`/me`, CTCP ACTION).
    Action,
    /// A notice (IRC `NOTICE #room`): shown like a message.
    Notice,
}

/// Server counters as reported by `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsReport {
    /// Open connections on each shard.
    pub per_shard: Vec<u64>,
    /// Chat lines received (room, action and private messages).
    pub messages_in: u64,
    /// Lines queued to clients (every delivery of every event).
    pub deliveries_out: u64,
    /// Write syscalls to client sockets; `deliveries_out / writes` is the average
    /// number of lines per write, the figure that decides fan-out cost.
    pub writes: u64,
    /// Connections cut because they did not read their output.
    pub slow_consumers: u64,
    /// Time since the server started.
    pub uptime: Duration,
    /// The server's process id, so a load generator on the same machine can read its
    /// CPU time and memory from `/proc`.
    pub pid: u32,
    /// The cluster backplane's figures, when the server is one node of several.
    pub cluster: Option<ClusterReport>,
    /// Further named counters, printed as `key=value` in this order (TLS, per-address
    /// refusals, flood control).
    pub counters: Vec<(&'static str, u64)>,
    /// What each shard's loop did, by shard index: the figures that show what a
    /// second shard costs.
    pub loops: Vec<LoopReport>,
}

/// One node's backplane counters (see `/stats` in docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterReport {
    /// This node's name.
    pub node: String,
    /// True while this node is connected to Redis (both links) and announced.
    pub up: bool,
    /// Channels Redis confirmed this node is subscribed to.
    pub subscriptions: u64,
    /// Other nodes heard of.
    pub peers: usize,
    /// The last round trip of a probe through Redis, in milliseconds.
    pub lag_ms: u64,
    /// Messages published to Redis.
    pub published: u64,
    /// Room events received from other nodes.
    pub received: u64,
    /// Room events of other nodes that were lost on the way (detected gaps).
    pub gaps: u64,
    /// Room events of this node that could not be published (Redis was away).
    pub unpublished: u64,
    /// Lines missed while cut off and read back from the rooms' logs.
    pub recovered: u64,
}

/// One shard's loop counters (see `/stats` in docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoopReport {
    /// Turns of the loop.
    pub turns: u64,
    /// Wakes this shard sent to other shards (eventfd writes).
    pub wakes_sent: u64,
    /// Wakes this shard received (inbox-waker events).
    pub wakes_received: u64,
    /// Inbox messages this shard handled.
    pub inbox_messages: u64,
    /// Messages this shard sent to other shards.
    pub cross_shard: u64,
    /// Time spent waiting in `poll`.
    pub poll: Duration,
    /// Time spent working between polls.
    pub work: Duration,
}

/// One room in a `/rooms` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room.
    pub room: RoomName,
    /// Members on all shards.
    pub members: usize,
    /// The topic, if set.
    pub topic: Option<Box<str>>,
}

/// Something a client should be told. Owned, so it can cross threads inside an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// First line after connecting.
    Welcome {
        /// The guest nick given to the connection.
        nick: Nick,
        /// The room it was put in.
        room: RoomName,
    },
    /// A message to a room.
    Message {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// A `/me` action in a room.
    Action {
        /// The room.
        room: RoomName,
        /// The actor.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// A private message to the recipient.
    Private {
        /// The sender.
        from: Nick,
        /// The text.
        text: Box<str>,
        /// Sent as a notice (IRC `NOTICE`), which must never be answered.
        notice: bool,
    },
    /// A notice to a room (shown to line clients as a message).
    RoomNotice {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// Someone joined a room.
    Joined {
        /// The room.
        room: RoomName,
        /// Who joined.
        nick: Nick,
    },
    /// Someone left a room.
    Left {
        /// The room.
        room: RoomName,
        /// Who left.
        nick: Nick,
        /// Why, if they said (IRC `PART #room :reason`).
        reason: Option<Box<str>>,
    },
    /// A member of a room changed nick.
    NickChanged {
        /// A room the member is in.
        room: RoomName,
        /// The nick before.
        old: Nick,
        /// The nick after.
        new: Nick,
    },
    /// A member of a room disconnected.
    Quit {
        /// A room the member was in.
        room: RoomName,
        /// Who quit.
        nick: Nick,
        /// Why (`/quit` text or the close reason).
        reason: Box<str>,
    },
    /// A room's topic changed.
    TopicChanged {
        /// The room.
        room: RoomName,
        /// Who set it.
        nick: Nick,
        /// The new topic.
        topic: Box<str>,
    },
    /// The server is shutting down; the connection closes after its output is flushed.
    ShuttingDown,
    /// Reply: you joined (or switched to) a room.
    YouJoined {
        /// The room, now current.
        room: RoomName,
        /// Members including you.
        members: usize,
        /// The topic, if set.
        topic: Option<Box<str>>,
        /// Members, for protocols that list them on join (IRC); else empty.
        nicks: Vec<Member>,
        /// The room is secret (`+s`).
        secret: bool,
        /// Your account and real name, for IRC's `extended-join` form of your JOIN.
        joiner: Option<(Option<Nick>, Arc<str>)>,
        /// Who set the topic and when (IRC `333`), if known here.
        topic_by: Option<TopicSetter>,
    },
    /// Reply: you left a room.
    YouLeft {
        /// The room.
        room: RoomName,
        /// The reason given, if any (IRC echoes it in the `PART`).
        reason: Option<Box<str>>,
    },
    /// Reply: your nick is now this.
    NickIs {
        /// The nick before.
        old: Nick,
        /// The new nick.
        nick: Nick,
    },
    /// Reply to `Names`: every member of a room (none for a room that does not
    /// exist or is secret to the asker).
    Names {
        /// The room.
        room: RoomName,
        /// Its members.
        nicks: Vec<Member>,
        /// The room is secret (`+s`).
        secret: bool,
    },
    /// Reply to `Whois` for a nick that exists, with its `user@host` if known here.
    Whois(Box<WhoisInfo>, Option<identity::UserHost>),
    /// Reply to `Away`: now away (true) or back (false).
    Away(bool),
    /// Told to a sender whose private message reached someone away.
    IsAway {
        /// The away nick.
        nick: Nick,
        /// Its away message.
        text: Box<str>,
    },
    /// Reply to `Ison`: the nicks that are online.
    Ison(Vec<Nick>),
    /// Reply to `Userhost`: the nicks that exist (with away flags and, if known
    /// here, `user@host`).
    Userhost(Vec<(Nick, bool, Option<identity::UserHost>)>),
    /// Reply to `/who`.
    Who {
        /// The room.
        room: RoomName,
        /// Members (at most a page of them), `room` left empty in each.
        rows: Vec<WhoRow>,
        /// How many more were not listed.
        more: usize,
    },
    /// Reply to `/rooms`.
    Rooms(Vec<RoomInfo>),
    /// Reply to `/topic` without text.
    Topic {
        /// The room.
        room: RoomName,
        /// The topic, if set.
        topic: Option<Box<str>>,
        /// Who set it and when (IRC `333`), if known here.
        set_by: Option<TopicSetter>,
    },
    /// Reply to `/stats`.
    Stats(StatsReport),
    /// Reply to `/help`.
    Help,
    /// Reply to `/quit`; the connection closes after it.
    Bye,
    /// Reply to `/ping`.
    Pong(Option<Box<str>>),
    /// Room modes changed; every member is told (one `EVENT` line per change).
    ModeChanged {
        /// The room.
        room: RoomName,
        /// Who changed them.
        by: Nick,
        /// What changed, as applied (changes that changed nothing are left out).
        changes: Vec<ModeChange>,
    },
    /// Someone was kicked out of a room; every member is told, the kicked one too.
    Kicked {
        /// The room.
        room: RoomName,
        /// The operator.
        by: Nick,
        /// Who was kicked.
        nick: Nick,
        /// Why.
        reason: Box<str>,
    },
    /// Told to the invited user.
    Invited {
        /// The room.
        room: RoomName,
        /// Who invited.
        by: Nick,
        /// The invited user (the reader).
        nick: Nick,
    },
    /// Reply to `Mode` without changes: the room's modes.
    Modes {
        /// The room.
        room: RoomName,
        /// The mode string and its parameters, e.g. `+klnt key 10`.
        modes: Box<str>,
        /// When the room was created (Unix seconds).
        created: u64,
    },
    /// Reply to a ban-list request.
    Bans {
        /// The room.
        room: RoomName,
        /// Its bans, oldest first.
        bans: Vec<BanInfo>,
    },
    /// Reply to a mode change, for line clients (IRC clients see their `MODE` echo):
    /// what changed (empty if nothing did).
    ModesChanged {
        /// The room.
        room: RoomName,
        /// The changes applied.
        changes: Vec<ModeChange>,
    },
    /// Reply to `Kick`, for line clients (IRC clients see the `KICK` echo).
    KickDone {
        /// The room.
        room: RoomName,
        /// Who was kicked.
        nick: Nick,
    },
    /// Reply to `Invite`: the invitation was sent.
    Inviting {
        /// The room.
        room: RoomName,
        /// Who was invited.
        nick: Nick,
    },
    /// Reply to `Invites`: rooms one has a pending invitation to.
    Invites(Vec<RoomName>),
    /// Reply to `WhoMask`.
    WhoMask {
        /// The nick or mask asked for, as given.
        mask: Box<str>,
        /// The users found.
        rows: Vec<WhoRow>,
    },
    /// Reply to `Whowas` (empty: nobody had the nick recently).
    Whowas {
        /// The nick asked for, as given.
        nick: Box<str>,
        /// The most recent first.
        entries: Vec<WhowasEntry>,
    },
    /// Reply to `Lusers`.
    Lusers(LusersReport),
    /// A client mistake; the connection stays open.
    Error(ProtocolError),
    /// The server is closing this connection, and why.
    Closing(Refusal),
    /// Reply to `/msg`: the message went to NICK (line protocol only).
    Sent(Nick),
    /// Reply to `/echo`: one's own room lines are now echoed (or not).
    EchoIs(bool),
    /// Several joins (or quits) in one room within a second, in one line for line
    /// users (IRC users get each `JOIN`/`QUIT`, which their member lists need).
    Summary {
        /// The room.
        room: RoomName,
        /// Joins or quits.
        kind: SummaryKind,
        /// How many.
        count: usize,
        /// The first few nicks.
        nicks: Vec<Nick>,
    },
    /// A room's recent lines, for one reader (on `/join`, `/history`, IRC `JOIN`).
    Playback {
        /// The room.
        room: RoomName,
        /// Oldest first.
        lines: Vec<HistoryLine>,
    },
    /// A member of a room set or cleared its away message (IRC `away-notify`; line
    /// readers are not told).
    AwayChanged {
        /// A room the member is in.
        room: RoomName,
        /// The member.
        nick: Nick,
        /// The away message, or `None`: back.
        text: Option<Box<str>>,
    },
    /// A message of client tags only, in a room (IRC `TAGMSG`; only readers with
    /// `message-tags` get it, the tags themselves ride on the `Outgoing`).
    TagMsg {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Nick,
    },
    /// A message of client tags only, to one reader (IRC `TAGMSG nick`).
    PrivateTagMsg {
        /// The sender.
        from: Nick,
    },
    /// Someone was invited to a room (IRC `invite-notify`, to the room's members).
    InviteNotice {
        /// The room.
        room: RoomName,
        /// Who invited.
        by: Nick,
        /// Who was invited.
        nick: Nick,
    },
    /// A member of a room logged in (`Some`) or out (IRC `account-notify`; line
    /// readers are not told).
    AccountChanged {
        /// A room the member is in.
        room: RoomName,
        /// The member.
        nick: Nick,
        /// The account, or `None`: logged out.
        account: Option<Nick>,
    },
    /// `CHATHISTORY TARGETS`: channels with lines in a span, and the newest one's
    /// time (ms since the Unix epoch), newest first.
    HistoryTargets(Vec<(RoomName, u64)>),
    /// A request to the store succeeded: `OK TEXT` (IRC: a NOTICE).
    Done(Box<str>),
    /// The line connection will be closed for idleness in this many seconds.
    IdleWarning(u64),
    /// Room lines from another node of the cluster were lost on the way (a Redis
    /// outage or a dropped link): told to the room's members here.
    Gap {
        /// The room.
        room: RoomName,
        /// The node whose lines were lost.
        node: Box<str>,
        /// How many.
        missed: u64,
    },
    /// The link to the other nodes of the cluster dropped (`false`) or came back
    /// (`true`): told once to each local member of a room shared with other nodes.
    Link(bool),
    /// Lines of a room that this node missed while cut off, read back from the
    /// room's shared history, are followed by this count (and `lost`, lines that
    /// had been trimmed away before they could be read).
    Recovered {
        /// The room.
        room: RoomName,
        /// Lines delivered from the history.
        count: u64,
    },
    /// The message of the day: after the welcome (`asked` false: line readers get
    /// nothing when it is empty) or asked for with `/motd`, IRC `MOTD`.
    Motd {
        /// Its lines (empty: there is none).
        lines: Vec<String>,
        /// Asked for: line readers get `OK motd N` after the lines.
        asked: bool,
    },
    /// Reply to `Oper`: the asker is a server operator now, as this `[[oper]]`.
    YouAreOper(Box<str>),
    /// A message to every operator (`WALLOPS`), from an operator.
    Wallops {
        /// The operator.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// A notice to every user of the server (`/wall`), from an operator.
    Wall {
        /// The operator.
        from: Nick,
        /// The text.
        text: Box<str>,
    },
    /// A server notice to operators: a connection, a kill, a k-line, a flood.
    ServerNotice {
        /// What about.
        kind: NoticeKind,
        /// What happened.
        text: Box<str>,
    },
    /// The reader was killed by an operator; the connection closes after it.
    Killed {
        /// The operator.
        by: Nick,
        /// Why.
        reason: Box<str>,
    },
    /// The reader matches a k-line (why: its reason); the connection closes after it.
    Klined(Box<str>),
    /// Reply to `Klines`: the k-lines in force, oldest first.
    Klines(Vec<KlineInfo>),
    /// Reply to `Rehash`: the reload was asked for.
    Rehashing,
}

impl Event {
    /// Whose `nick!user@host` an IRC reader sees as the event's source: the sender,
    /// joiner, setter, operator or inviter (for a nick change, the old nick).
    pub fn actor(&self) -> Option<&Nick> {
        match self {
            Event::Message { from, .. }
            | Event::Action { from, .. }
            | Event::RoomNotice { from, .. }
            | Event::Private { from, .. }
            | Event::TagMsg { from, .. }
            | Event::PrivateTagMsg { from } => Some(from),
            Event::Joined { nick, .. }
            | Event::Left { nick, .. }
            | Event::Quit { nick, .. }
            | Event::TopicChanged { nick, .. }
            | Event::AwayChanged { nick, .. }
            | Event::AccountChanged { nick, .. } => Some(nick),
            Event::NickChanged { old, .. } => Some(old),
            Event::ModeChanged { by, .. }
            | Event::Kicked { by, .. }
            | Event::Invited { by, .. }
            | Event::InviteNotice { by, .. } => Some(by),
            _ => None,
        }
    }
}

/// Why the server closes a connection it would otherwise keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` is reached.
    ServerFull,
    /// The process ran out of file descriptors.
    NoDescriptors,
    /// Nothing was received for `--idle-timeout`.
    IdleTimeout,
    /// More than `--sendq` bytes were waiting for this client to read.
    SlowConsumer,
    /// The client's address already holds `--max-per-ip` connections.
    TooManyFromAddress,
    /// The client's address opens connections faster than `--connect-rate`.
    ConnectingTooFast,
    /// Flood control's ceiling: too much unread input for too long.
    Flood,
}

/// A client mistake, answered with an `ERR` line; the connection stays usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// `/something` that is not a command.
    UnknownCommand(Box<str>),
    /// A command with missing or extra arguments; holds its usage text.
    Usage(&'static str),
    /// A nick that breaks the nick rules.
    BadNick,
    /// A nick someone else has.
    NickTaken(Nick),
    /// A room name that breaks the room rules.
    BadRoom,
    /// `/leave` or `/topic` for a room the client is not in.
    NotInRoom(RoomName),
    /// A message while in no room at all.
    NoRoom,
    /// `/join` past the per-connection room limit.
    TooManyRooms {
        /// The limit.
        max: usize,
    },
    /// `/msg` to a nick nobody has.
    NoSuchNick(Box<str>),
    /// `/who` for a room with no members.
    NoSuchRoom(RoomName),
    /// A line longer than `--max-line`; the rest of it was discarded.
    LineTooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// A line that is not UTF-8.
    InvalidUtf8,
    /// A line with control characters (other than tab).
    ControlChars,
    /// A topic over [`MAX_TOPIC_LEN`].
    TopicTooLong,
    /// Lines arrived faster than the flood limit allows; this one was dropped.
    Flood,
    /// A message to a room the sender is not in (IRC 404).
    CannotSendTo(RoomName),
    /// A moderation command from someone who is not an operator of the room (482).
    NotOperator(RoomName),
    /// A join refused by a ban (474).
    Banned(RoomName),
    /// A join to an invite-only room without an invitation (473).
    InviteOnly(RoomName),
    /// A join with a missing or wrong key (475).
    BadKey(RoomName),
    /// A join to a room at its limit (471).
    RoomFull(RoomName),
    /// The target of `/op`, `/kick` ... is not in the room (441).
    NotOnRoom {
        /// The target.
        nick: Nick,
        /// The room.
        room: RoomName,
    },
    /// `/invite` of someone already in the room (443).
    AlreadyOnRoom {
        /// The target.
        nick: Nick,
        /// The room.
        room: RoomName,
    },
    /// A mode change that was refused (472, 525, 696).
    BadMode {
        /// The room.
        room: RoomName,
        /// What was wrong.
        error: ModeError,
    },
    /// The ban list is full (478).
    BanListFull(RoomName),
    /// A message stopped by `+m`, `+n` or a ban (404).
    CannotSpeak(RoomName),
    /// The nick is a registered account and the asker is not logged in to it.
    NickRegistered(Nick),
    /// `/register`: the account exists already.
    AccountExists(Nick),
    /// No such account.
    NoAccount(Nick),
    /// Wrong account or password.
    BadLogin,
    /// Too many failed logins lately, for this account or from this address.
    LoginThrottled,
    /// A new password is too short or too long.
    WeakPassword {
        /// Shortest accepted.
        min: usize,
        /// Longest accepted.
        max: usize,
    },
    /// The command needs the asker to be logged in.
    NotLoggedIn,
    /// The store's queue is full: the request was not taken.
    StoreBusy,
    /// The store could not write or read (a full or failing disk).
    StoreFailed,
    /// The server runs without a data dir (`--data-dir none`).
    NoStore,
    /// `/register #ROOM` for a room that is registered already.
    AlreadyRegistered(RoomName),
    /// The room is not registered.
    RoomNotRegistered(RoomName),
    /// Only the room's founder may do that.
    NotFounder(RoomName),
    /// `/unregister PASSWORD` by the founder of a registered room.
    FounderOf(RoomName),
    /// A change was made but could not be saved (the disk failed): it is lost on
    /// restart.
    NotSaved,
    /// In a cluster, a nick cannot be claimed while Redis is unreachable (IRC 437).
    NickUnavailable(Nick),
    /// A private message to a user of another node did not reach that node.
    NotDelivered {
        /// The recipient.
        nick: Nick,
        /// Why.
        why: &'static str,
    },
    /// An operator's command from someone who is not a server operator (IRC 481).
    NoPrivileges,
    /// `/oper` with a name that is not an operator's, or the wrong password (464).
    OperFailed,
    /// `/oper` from an address or host none of the operator's masks allow (491).
    NoOperHost,
    /// Too many failed `/oper` attempts lately, from this connection or address:
    /// refused unchecked for this many more seconds.
    OperThrottled(u64),
    /// The queue of `/oper` checks is full: nothing was checked.
    OperBusy,
    /// `/unkline` of a mask that is not k-lined.
    NoSuchKline(Box<str>),
    /// A k-line mask that is refused, and why.
    BadMask(&'static str),
}

impl ProtocolError {
    /// The stable machine-readable code that follows `ERR` on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::UnknownCommand(_) => "unknown-command",
            ProtocolError::Usage(_) => "usage",
            ProtocolError::BadNick => "bad-nick",
            ProtocolError::NickTaken(_) => "nick-taken",
            ProtocolError::BadRoom => "bad-room",
            ProtocolError::NotInRoom(_) => "not-in-room",
            ProtocolError::NoRoom => "no-room",
            ProtocolError::TooManyRooms { .. } => "too-many-rooms",
            ProtocolError::NoSuchNick(_) => "no-such-nick",
            ProtocolError::NoSuchRoom(_) => "no-such-room",
            ProtocolError::LineTooLong { .. } => "line-too-long",
            ProtocolError::InvalidUtf8 => "bad-utf8",
            ProtocolError::ControlChars => "bad-text",
            ProtocolError::TopicTooLong => "topic-too-long",
            ProtocolError::Flood => "flood",
            ProtocolError::CannotSendTo(_) => "not-in-room",
            ProtocolError::NotOperator(_) => "not-operator",
            ProtocolError::Banned(_) => "banned",
            ProtocolError::InviteOnly(_) => "invite-only",
            ProtocolError::BadKey(_) => "bad-key",
            ProtocolError::RoomFull(_) => "room-full",
            ProtocolError::NotOnRoom { .. } => "not-on-room",
            ProtocolError::AlreadyOnRoom { .. } => "already-on-room",
            ProtocolError::BadMode { .. } => "bad-mode",
            ProtocolError::BanListFull(_) => "ban-list-full",
            ProtocolError::CannotSpeak(_) => "cannot-send",
            ProtocolError::NickRegistered(_) => "nick-registered",
            ProtocolError::AccountExists(_) => "account-exists",
            ProtocolError::NoAccount(_) => "no-account",
            ProtocolError::BadLogin => "bad-login",
            ProtocolError::LoginThrottled => "login-throttled",
            ProtocolError::WeakPassword { .. } => "bad-password",
            ProtocolError::NotLoggedIn => "not-logged-in",
            ProtocolError::StoreBusy => "store-busy",
            ProtocolError::StoreFailed => "store-failed",
            ProtocolError::NoStore => "no-store",
            ProtocolError::AlreadyRegistered(_) => "room-registered",
            ProtocolError::RoomNotRegistered(_) => "room-not-registered",
            ProtocolError::NotFounder(_) => "not-founder",
            ProtocolError::FounderOf(_) => "founder",
            ProtocolError::NotSaved => "store-failed",
            ProtocolError::NickUnavailable(_) => "nick-unavailable",
            ProtocolError::NotDelivered { .. } => "not-delivered",
            ProtocolError::NoPrivileges => "no-privileges",
            ProtocolError::OperFailed => "oper-failed",
            ProtocolError::NoOperHost => "no-oper-host",
            ProtocolError::OperThrottled(_) => "oper-throttled",
            ProtocolError::OperBusy => "oper-busy",
            ProtocolError::NoSuchKline(_) => "no-such-kline",
            ProtocolError::BadMask(_) => "bad-mask",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnknownCommand(name) => {
                write!(f, "/{name} is not a command; /help lists them")
            }
            ProtocolError::Usage(usage) => write!(f, "usage: {usage}"),
            ProtocolError::BadNick => write!(
                f,
                "a nick is 1-{} letters, digits, _ or -, not starting with a digit or -",
                names::MAX_NICK_LEN
            ),
            ProtocolError::NickTaken(nick) => write!(f, "{nick} is already taken"),
            ProtocolError::BadRoom => write!(
                f,
                "a room name is 1-{} of a-z, 0-9, _ or -",
                names::MAX_ROOM_LEN
            ),
            ProtocolError::NotInRoom(room) => write!(f, "you are not in {room}"),
            ProtocolError::NoRoom => write!(f, "you are in no room; /join one first"),
            ProtocolError::TooManyRooms { max } => {
                write!(f, "you are in {max} rooms already; /leave one first")
            }
            ProtocolError::NoSuchNick(nick) => write!(f, "no one is called {nick}"),
            ProtocolError::NoSuchRoom(room) => write!(f, "room {room} has no members"),
            ProtocolError::LineTooLong { max } => write!(
                f,
                "lines are limited to {max} bytes; the rest of that line was discarded"
            ),
            ProtocolError::InvalidUtf8 => write!(f, "lines must be UTF-8; that line was discarded"),
            ProtocolError::ControlChars => write!(
                f,
                "control characters are not allowed; that line was discarded"
            ),
            ProtocolError::TopicTooLong => {
                write!(f, "a topic is at most {MAX_TOPIC_LEN} bytes")
            }
            ProtocolError::Flood => write!(
                f,
                "you are sending too fast; lines are dropped until you slow down"
            ),
            ProtocolError::CannotSendTo(room) => write!(f, "you are not in {room}"),
            ProtocolError::NotOperator(room) => write!(f, "you are not an operator of {room}"),
            ProtocolError::Banned(room) => write!(f, "you are banned from {room}"),
            ProtocolError::InviteOnly(room) => write!(f, "{room} is invite-only"),
            ProtocolError::BadKey(room) => write!(f, "{room} needs the right key"),
            ProtocolError::RoomFull(room) => write!(f, "{room} is full"),
            ProtocolError::NotOnRoom { nick, room } => write!(f, "{nick} is not in {room}"),
            ProtocolError::AlreadyOnRoom { nick, room } => {
                write!(f, "{nick} is already in {room}")
            }
            ProtocolError::BadMode { room, error } => write!(f, "{room}: {error}"),
            ProtocolError::BanListFull(room) => write!(f, "the ban list of {room} is full"),
            ProtocolError::CannotSpeak(room) => write!(
                f,
                "you cannot send to {room} (moderated, outside messages or banned)"
            ),
            account => account.fmt_account(f),
        }
    }
}

impl ProtocolError {
    /// The text of the account, registration and store errors (the rest of
    /// `Display`).
    fn fmt_account(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::NickRegistered(nick) => write!(
                f,
                "{nick} is a registered account; /login {nick} PASSWORD to use it"
            ),
            ProtocolError::AccountExists(nick) => write!(f, "{nick} is registered already"),
            ProtocolError::NoAccount(nick) => write!(f, "{nick} is not a registered account"),
            ProtocolError::BadLogin => write!(f, "wrong account or password"),
            ProtocolError::LoginThrottled => write!(
                f,
                "too many failed logins; wait a minute before trying again"
            ),
            ProtocolError::WeakPassword { min, max } => {
                write!(f, "a password is {min} to {max} bytes")
            }
            ProtocolError::NotLoggedIn => write!(f, "log in first (/login NICK PASSWORD)"),
            ProtocolError::StoreBusy => write!(
                f,
                "the server's store is busy; nothing was changed, try again shortly"
            ),
            ProtocolError::StoreFailed => write!(
                f,
                "the server could not save or read that (its disk failed); nothing was changed"
            ),
            ProtocolError::NoStore => write!(
                f,
                "this server keeps nothing on disk (--data-dir none): no accounts or stored history"
            ),
            ProtocolError::AlreadyRegistered(room) => write!(f, "{room} is registered already"),
            ProtocolError::RoomNotRegistered(room) => write!(f, "{room} is not registered"),
            ProtocolError::NotFounder(room) => write!(f, "only the founder of {room} may do that"),
            ProtocolError::FounderOf(room) => write!(
                f,
                "you founded {room}: /unregister #{room} first, then your account"
            ),
            ProtocolError::NotSaved => write!(
                f,
                "done, but the server could not save it (its disk failed): it is lost on restart"
            ),
            ProtocolError::NickUnavailable(nick) => write!(
                f,
                "{nick} cannot be claimed while the link to the other nodes is down; try again soon"
            ),
            ProtocolError::NotDelivered { nick, why } => {
                write!(f, "{nick} did not get your message: {why}")
            }
            other => other.fmt_oper(f),
        }
    }

    /// The text of the server operators' errors (the rest of `Display`).
    fn fmt_oper(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::NoPrivileges => {
                write!(f, "only server operators may do that (/oper NAME PASSWORD)")
            }
            ProtocolError::OperFailed => write!(f, "wrong operator name or password"),
            ProtocolError::NoOperHost => {
                write!(f, "that operator may not connect from your address or host")
            }
            ProtocolError::OperThrottled(secs) => write!(
                f,
                "too many failed /oper attempts; wait {secs} s before trying again"
            ),
            ProtocolError::OperBusy => write!(
                f,
                "too many /oper attempts are being checked; try again shortly"
            ),
            ProtocolError::NoSuchKline(mask) => write!(f, "{mask} is not k-lined"),
            ProtocolError::BadMask(why) => write!(f, "{why}"),
            other => f.write_str(other.code()),
        }
    }
}

impl Refusal {
    /// The stable code that follows `ERR` on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server-full",
            Refusal::NoDescriptors => "server-busy",
            Refusal::IdleTimeout => "idle-timeout",
            Refusal::SlowConsumer => "slow-consumer",
            Refusal::TooManyFromAddress | Refusal::ConnectingTooFast => "server-busy",
            Refusal::Flood => "flood",
        }
    }

    /// The human text after the code.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::ServerFull => "the server is full; try again later",
            Refusal::NoDescriptors => "the server is out of file descriptors; try again later",
            Refusal::IdleTimeout => "nothing received for too long; closing",
            Refusal::SlowConsumer => "you are not reading fast enough; closing",
            Refusal::TooManyFromAddress => "too many connections from your address",
            Refusal::ConnectingTooFast => "connecting too fast from your address; try again later",
            Refusal::Flood => "you sent far more than the flood limit lets through; closing",
        }
    }
}
