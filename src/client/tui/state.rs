//! What the full-screen client knows about the chat: the rooms it is in (each with its
//! own scrollback, unread count, topic and members), the current room, and the nick.
//!
//! It is a plain state machine with no IO and no clock, so that every rule can be unit
//! tested: server lines go in through [`ChatState::on_server_line`], typed lines
//! through [`ChatState::on_typed_line`], and both hand back the lines to send (an
//! automatic `/who` after a join, a `/join` that keeps the server's current room equal
//! to the one on screen). The grammar of server lines is the one in the protocol
//! documentation (`MSG`, `ME`, `PRIV`, `EVENT`, `OK kind ...`, `PONG`, `ERR code ...`).
//!
//! The server's "current room" (where plain lines go) is always the room on screen:
//! switching rooms with a key sends `/join ROOM`, which on the server makes an already
//! joined room current without joining again.

use std::collections::{BTreeSet, VecDeque};

use super::history::{self, Hist};
use super::wrap::row_count;
/// A scrollback line and its styled pieces belong to `wrap.rs`, which lays them out;
/// re-exported here for the modules that meet them as chat state.
pub use super::wrap::{Entry, Segment, Tone};

/// Lines kept per room; older ones are dropped.
pub const SCROLLBACK: usize = 2000;
/// The token of keepalive pings, whose replies are not shown.
pub const KEEPALIVE_TOKEN: &str = "keepalive";

fn seg(text: impl Into<String>, tone: Tone) -> Segment {
    Segment {
        text: text.into(),
        tone,
    }
}

/// A room the user is in, or the place for lines when the user is in none.
#[derive(Debug, Clone, Default)]
pub struct Room {
    /// The room name (`*` for the no-room buffer).
    pub name: String,
    /// Scrollback, oldest first.
    pub lines: VecDeque<Entry>,
    /// Messages that arrived while another room was on screen.
    pub unread: usize,
    /// One of those unread messages mentions the user.
    pub mentioned: bool,
    /// Members, from `/who` and kept up to date by join/leave/quit/nick events.
    pub members: Vec<String>,
    /// Members the server did not list (`+N` in a `/who` reply).
    pub more_members: usize,
    /// The topic, if set.
    pub topic: Option<String>,
    /// Screen rows scrolled up from the newest line (0 = following new lines).
    pub scroll: usize,
    /// When the user joined (ms since the epoch).
    pub joined_ms: u64,
    /// Where a join's playback goes: the index of the "you joined" line, until the
    /// playback ends (`OK history`) or a live line comes.
    pub playback_at: Option<usize>,
}

impl Room {
    fn new(name: &str) -> Room {
        Room {
            name: name.to_string(),
            ..Room::default()
        }
    }

    /// Appends a line; a view scrolled up stays on the same lines (the new line's rows
    /// at `width` columns are added to the scroll distance).
    fn push(&mut self, entry: Entry, width: usize) {
        if self.scroll > 0 {
            self.scroll += row_count(&entry, width);
        }
        if self.lines.len() == SCROLLBACK {
            self.lines.pop_front();
        }
        self.lines.push_back(entry);
    }

    /// Puts a line at `index` (history, in its place by time).
    fn insert(&mut self, index: usize, entry: Entry, width: usize) {
        if self.scroll > 0 {
            self.scroll += row_count(&entry, width);
        }
        let mut index = index.min(self.lines.len());
        if self.lines.len() == SCROLLBACK {
            self.lines.pop_front();
            index = index.saturating_sub(1);
        }
        self.lines.insert(index, entry);
    }

    /// Adds `member` as shown (`@op`, `+voiced` or a plain nick), once per nick.
    fn add_member(&mut self, member: &str) {
        let nick = bare(member);
        if !self
            .members
            .iter()
            .any(|m| bare(m).eq_ignore_ascii_case(nick))
        {
            self.members.push(member.to_string());
            self.members.sort_by_key(|m| bare(m).to_ascii_lowercase());
        }
    }

    fn remove_member(&mut self, nick: &str) -> bool {
        let before = self.members.len();
        self.members
            .retain(|m| !bare(m).eq_ignore_ascii_case(bare(nick)));
        self.members.len() != before
    }
}

/// A member as listed, without its role prefix (`@` operator, `+` voiced).
fn bare(member: &str) -> &str {
    member.trim_start_matches(['@', '+'])
}

/// Everything the client shows, updated by server lines and typed lines.
#[derive(Debug, Clone)]
pub struct ChatState {
    /// The user's nick, as the server last confirmed it.
    pub nick: String,
    /// The rooms the user is in, in the order joined.
    pub rooms: Vec<Room>,
    /// Index into `rooms` of the current room (None when in no room).
    pub current: Option<usize>,
    /// Where lines go while the user is in no room.
    pub nowhere: Room,
    /// Room names seen in `/rooms` replies, for completion.
    pub known_rooms: BTreeSet<String>,
    /// Rooms whose `/who` this client asked for itself (the reply is not shown).
    quiet_who: Vec<String>,
    /// `/join` lines sent for key switches whose `OK joined` has not come back; such
    /// a reply must not move the screen back to a room the user has since left.
    pending_switches: usize,
    /// A welcome line has been seen (later ones are reconnections).
    welcomed: bool,
    /// The last nick the user chose (`OK nick`), as opposed to one the server
    /// assigned; a reconnection asks for it again.
    chosen_nick: Option<String>,
    /// The user sent `/quit`: the server closing is expected.
    pub quitting: bool,
    /// Now, in ms since the epoch (set by the caller before each line: no clock here).
    pub now_ms: u64,
    /// Rooms of `/history` requests the user typed, not yet answered.
    asked: Vec<String>,
    /// A reconnection's history requests are out (until `PONG recovered`): their
    /// errors (no store, not in the room after a refused rejoin) are not shown.
    recovering: bool,
    /// Columns of the scrollback on screen, as last drawn.
    pub wrap_width: usize,
}

impl Default for ChatState {
    fn default() -> Self {
        ChatState::new()
    }
}

impl ChatState {
    /// Empty state, before the welcome line.
    pub fn new() -> ChatState {
        ChatState {
            nick: String::new(),
            rooms: Vec::new(),
            current: None,
            nowhere: Room::new("*"),
            known_rooms: BTreeSet::new(),
            quiet_who: Vec::new(),
            pending_switches: 0,
            welcomed: false,
            chosen_nick: None,
            quitting: false,
            now_ms: 0,
            asked: Vec::new(),
            recovering: false,
            wrap_width: 80,
        }
    }

    /// The room on screen (the no-room buffer when in none).
    pub fn current_room(&self) -> &Room {
        self.current
            .and_then(|i| self.rooms.get(i))
            .unwrap_or(&self.nowhere)
    }

    /// The room on screen, mutably.
    pub fn current_room_mut(&mut self) -> &mut Room {
        match self.current {
            Some(i) if i < self.rooms.len() => &mut self.rooms[i],
            _ => &mut self.nowhere,
        }
    }

    /// The current room's name, if the user is in one.
    pub fn current_name(&self) -> Option<&str> {
        self.current
            .and_then(|i| self.rooms.get(i))
            .map(|r| r.name.as_str())
    }

    fn index_of(&self, room: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.name == room)
    }

    /// Appends a line to the room on screen.
    pub fn note(&mut self, stamp: &str, segments: Vec<Segment>) {
        let entry = Entry {
            stamp: stamp.to_string(),
            segments,
            at_ms: self.now_ms,
            ..Entry::default()
        };
        let width = self.wrap_width;
        self.current_room_mut().push(entry, width);
    }

    /// Appends a line to `room` (created if unknown); `chat` lines count as unread
    /// when the room is not on screen.
    fn note_in(&mut self, room: &str, stamp: &str, segments: Vec<Segment>, chat: bool) {
        let entry = Entry {
            stamp: stamp.to_string(),
            segments,
            at_ms: self.now_ms,
            ..Entry::default()
        };
        self.add_in(room, entry, chat);
    }

    /// The index of `room`, created if unknown.
    fn room_index(&mut self, room: &str) -> usize {
        match self.index_of(room) {
            Some(i) => i,
            None => {
                self.rooms.push(Room::new(room));
                self.rooms.len() - 1
            }
        }
    }

    /// Appends `entry` to `room` ([`Self::note_in`]).
    fn add_in(&mut self, room: &str, entry: Entry, chat: bool) {
        let index = self.room_index(room);
        let mention = chat && self.mentions_me(&entry.segments);
        let on_screen = self.current == Some(index);
        let width = self.wrap_width;
        let target = &mut self.rooms[index];
        target.push(entry, width);
        if chat && !on_screen {
            target.unread += 1;
            target.mentioned |= mention;
        }
    }

    /// Does the text of a message (its last segment) name the user as a word?
    fn mentions_me(&self, segments: &[Segment]) -> bool {
        let Some(text) = segments.last() else {
            return false;
        };
        !self.nick.is_empty()
            && text
                .text
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .any(|word| word.eq_ignore_ascii_case(&self.nick))
    }

    fn nick_tone(&self, nick: &str) -> Tone {
        if nick.eq_ignore_ascii_case(&self.nick) {
            Tone::OwnNick
        } else {
            Tone::Nick
        }
    }

    /// Makes `index` the room on screen; returns the `/join` that makes it the
    /// server's current room too (None if nothing changed).
    pub fn switch_to(&mut self, index: usize) -> Option<String> {
        if index >= self.rooms.len() || self.current == Some(index) {
            return None;
        }
        self.current = Some(index);
        let room = &mut self.rooms[index];
        room.unread = 0;
        room.mentioned = false;
        self.pending_switches += 1;
        Some(format!("/join {}", room.name))
    }

    /// A switch whose `/join` could not be sent (no connection): no reply will come.
    pub fn switch_not_sent(&mut self) {
        self.pending_switches = self.pending_switches.saturating_sub(1);
    }

    /// The next (`forward`) or previous room, wrapping around.
    pub fn cycle(&mut self, forward: bool) -> Option<String> {
        let count = self.rooms.len();
        if count < 2 {
            return None;
        }
        let at = self.current.unwrap_or(0);
        let next = if forward {
            (at + 1) % count
        } else {
            (at + count - 1) % count
        };
        self.switch_to(next)
    }

    /// What to send right after a (re)connection: the nick, every room (the current
    /// one last, so it is current on the server too), each with a request for what
    /// was missed ([`history::since_point`]), then the ping that ends the recovery.
    pub fn rejoin_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(nick) = &self.chosen_nick {
            lines.push(format!("/nick {nick}"));
        }
        let current = self.current;
        let others = (0..self.rooms.len()).filter(|&i| Some(i) != current);
        for room in others.chain(current).filter_map(|i| self.rooms.get(i)) {
            let since = history::since_point(&room.lines, room.joined_ms);
            lines.push(format!("/join {}", room.name));
            lines.push(format!("/history {} since {since}", room.name));
        }
        if !self.rooms.is_empty() {
            self.recovering = true;
            lines.push("/ping recovered".to_string());
        }
        lines
    }

    /// A line the user typed: shows it (the server does not echo a sender's own
    /// lines) and returns what to send.
    pub fn on_typed_line(&mut self, line: &str, stamp: &str) -> String {
        let me = self.nick.clone();
        let command = line.strip_prefix('/').filter(|rest| !rest.starts_with('/'));
        match command.map(|c| c.split_once(' ').unwrap_or((c, ""))) {
            None => {
                // "//x" sends "/x" (the server strips one slash).
                let text = line.strip_prefix('/').unwrap_or(line);
                let entry = self.chat_entry(&me, text, false, stamp);
                let width = self.wrap_width;
                self.current_room_mut().push(entry, width);
            }
            Some((name, text)) if name.eq_ignore_ascii_case("me") => {
                let entry = self.chat_entry(&me, text, true, stamp);
                let width = self.wrap_width;
                self.current_room_mut().push(entry, width);
            }
            Some((name, rest)) if name.eq_ignore_ascii_case("msg") && rest.starts_with('#') => {
                // `/msg #room text`: a line to that room, shown there.
                let (room, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let room = room.trim_start_matches('#').to_ascii_lowercase();
                let entry = self.chat_entry(&me, text, false, stamp);
                self.add_in(&room, entry, false);
            }
            Some((name, rest)) if name.eq_ignore_ascii_case("history") => {
                // `/history [N]` reads the current room, `/history ROOM ...` ROOM.
                let words: Vec<&str> = rest.split_whitespace().collect();
                let named =
                    words.len() >= 2 || words.first().is_some_and(|w| w.parse::<usize>().is_err());
                let room = match (named, words.first()) {
                    (true, Some(room)) => room.trim_start_matches('#').to_ascii_lowercase(),
                    _ => self.current_name().unwrap_or("").to_string(),
                };
                self.asked.push(room);
            }
            Some((name, rest)) if name.eq_ignore_ascii_case("msg") => {
                if let Some((to, text)) = rest.split_once(' ') {
                    let shown = vec![
                        seg(format!("-> *{to}* "), Tone::Private),
                        seg(text, Tone::Plain),
                    ];
                    self.note(stamp, shown);
                }
            }
            Some((name, _)) if name.eq_ignore_ascii_case("quit") => self.quitting = true,
            Some(_) => {}
        }
        line.to_string()
    }

    /// One line from the server; returns lines to send back (may be empty).
    pub fn on_server_line(&mut self, line: &str, stamp: &str) -> Vec<String> {
        let mut words = line.splitn(4, ' ');
        let kind = words.next().unwrap_or("");
        let (a, b, rest) = (words.next(), words.next(), words.next());
        match (kind, a, b) {
            ("MSG", Some(room), Some(nick)) => {
                self.on_message(room, nick, rest.unwrap_or(""), false, stamp)
            }
            ("ME", Some(room), Some(nick)) => {
                self.on_message(room, nick, rest.unwrap_or(""), true, stamp)
            }
            ("PRIV", Some(nick), _) => {
                let text = after_words(line, 2);
                let shown = vec![
                    seg(format!("*{nick}* "), Tone::Private),
                    seg(text, Tone::Plain),
                ];
                self.note(stamp, shown);
            }
            ("EVENT", Some(room), Some(what @ ("joins" | "quits"))) => {
                return self.on_summary(room, what, rest.unwrap_or(""), stamp);
            }
            ("EVENT", Some(room), Some(what)) => {
                self.on_event(room, what, rest.unwrap_or(""), stamp)
            }
            ("HIST", _, _) => match Hist::parse(line) {
                Some(hist) => self.on_hist(&hist),
                None => self.note(stamp, vec![seg(line, Tone::Info)]),
            },
            ("OK", Some(reply), _) => return self.on_ok(reply, after_words(line, 2), stamp),
            ("PONG", Some(KEEPALIVE_TOKEN), None) => {}
            ("PONG", Some("recovered"), None) => self.recovering = false,
            ("ERR", Some(code), _) if self.recovering && RECOVERY_ERRORS.contains(&code) => {}
            ("ERR", Some(code), _) => {
                let text = format!("error: {} ({code})", after_words(line, 2));
                self.note(stamp, vec![seg(text, Tone::Error)]);
            }
            _ => self.note(stamp, vec![seg(line, Tone::Info)]),
        }
        Vec::new()
    }

    /// `EVENT ROOM joins|quits N NICK...`: several joins or quits in a second, summed
    /// up by the server with a capped list of nicks; the member list is asked for again.
    fn on_summary(&mut self, room: &str, what: &str, args: &str, stamp: &str) -> Vec<String> {
        let verb = if what == "joins" { "joined" } else { "quit" };
        let (count, nicks) = args.split_once(' ').unwrap_or((args, ""));
        let text = format!("-- {count} {verb}: {nicks}");
        self.note_in(room, stamp, vec![seg(text, Tone::Dim)], false);
        if self.index_of(room).is_none() {
            return Vec::new();
        }
        self.quiet_who.push(room.to_string());
        vec![format!("/who {room}")]
    }

    /// A chat line as shown: `nick: text` or `* nick text`, keyed for history.
    fn chat_entry(&self, nick: &str, text: &str, action: bool, stamp: &str) -> Entry {
        let tone = self.nick_tone(nick);
        let mut segments = if action {
            vec![seg("* ", Tone::Dim), seg(nick, tone), seg(" ", Tone::Plain)]
        } else {
            vec![seg(nick, tone), seg(": ", Tone::Dim)]
        };
        segments.push(seg(text, Tone::Plain));
        if tone != Tone::OwnNick
            && self.mentions_me(&segments)
            && let Some(last) = segments.last_mut()
        {
            last.tone = Tone::Mention;
        }
        Entry {
            stamp: stamp.to_string(),
            segments,
            at_ms: self.now_ms,
            id: None,
            key: Some(history::key(action, nick, text)),
        }
    }

    fn on_message(&mut self, room: &str, nick: &str, text: &str, action: bool, stamp: &str) {
        let entry = self.chat_entry(nick, text, action, stamp);
        if let Some(index) = self.index_of(room) {
            // A live line ends a join's playback: later history goes by time.
            self.rooms[index].playback_at = None;
        }
        self.add_in(room, entry, true);
    }

    /// A line from a room's history: with its own time; a join's playback above
    /// "you joined", what the user asked for at the end, anything else in its place
    /// by time and only if it is not on screen already ([`history`]).
    fn on_hist(&mut self, hist: &Hist<'_>) {
        let (stamp, day) = history::local_time(hist.at_ms, self.now_ms);
        let mut entry = self.chat_entry(hist.nick, hist.text, hist.action, &stamp);
        if let Some(day) = day {
            entry
                .segments
                .insert(0, seg(format!("[{day}] "), Tone::Dim));
        }
        entry.at_ms = hist.at_ms;
        entry.id = Some(hist.id.to_string());
        let width = self.wrap_width;
        if self.asked.iter().any(|r| r == hist.room) {
            self.add_in(hist.room, entry, false);
            return;
        }
        let index = self.room_index(hist.room);
        let room = &mut self.rooms[index];
        if history::seen(&mut room.lines, hist) {
            return;
        }
        let at = match room.playback_at.as_mut() {
            Some(at) => {
                *at += 1;
                *at - 1
            }
            None => history::place_by_time(&room.lines, hist.at_ms, hist.id),
        };
        room.insert(at, entry, width);
    }

    /// `OK history ROOM N`: the end of a history read. What the user asked for is
    /// counted; a full page of what was missed asks for the next.
    fn on_history_done(&mut self, room: &str, count: &str, stamp: &str) -> Vec<String> {
        if let Some(at) = self.asked.iter().position(|r| r == room) {
            self.asked.remove(at);
            let text = format!("-- {count} line(s) of {room}'s history above");
            self.note_in(room, stamp, vec![seg(text, Tone::Info)], false);
            return Vec::new();
        }
        let Some(index) = self.index_of(room) else {
            return Vec::new();
        };
        self.rooms[index].playback_at = None;
        match history::newest_id(&self.rooms[index].lines) {
            Some(id) if count.parse() == Ok(history::PAGE) => {
                vec![format!("/history {room} since {id}")]
            }
            _ => Vec::new(),
        }
    }

    fn on_event(&mut self, room: &str, what: &str, args: &str, stamp: &str) {
        let (first, rest) = args.split_once(' ').unwrap_or((args, ""));
        if room == "*" && matches!(what, "motd" | "wall" | "wallops" | "snotice") {
            // The message of the day, and what operators send: told, not errors.
            let text = match what {
                "motd" => args.to_string(),
                "wall" => format!("-- notice from {first}: {rest}"),
                "wallops" => format!("-- wallops from {first}: {rest}"),
                _ => format!("-- server: {first}: {rest}"),
            };
            self.note(stamp, vec![seg(text, Tone::Info)]);
            return;
        }
        if room == "*" {
            let text = match (what, first) {
                ("shutdown", _) => "the server is shutting down".to_string(),
                ("link", "down") => "the link to the other servers is down: their users' lines will come when it is back".to_string(),
                ("link", "up") => "the link to the other servers is back".to_string(),
                _ => format!("{what} {args}"),
            };
            self.note(stamp, vec![seg(format!("-- {text}"), Tone::Error)]);
            return;
        }
        let tone = self.nick_tone(first);
        let dim = |t: &str| seg(t, Tone::Dim);
        let segments = match what {
            "join" => vec![dim("-- "), seg(first, tone), dim(" joined")],
            "leave" => vec![dim("-- "), seg(first, tone), dim(" left")],
            "quit" => vec![
                dim("-- "),
                seg(first, tone),
                dim(&format!(" quit ({rest})")),
            ],
            "nick" => {
                let new_tone = self.nick_tone(rest);
                vec![
                    dim("-- "),
                    seg(first, tone),
                    dim(" is now "),
                    seg(rest, new_tone),
                ]
            }
            "topic" => vec![
                dim("-- "),
                seg(first, tone),
                dim(" set the topic: "),
                seg(rest, Tone::Plain),
            ],
            "recovered" => vec![dim(&format!(
                "-- {first} line(s) missed while the servers were cut off, read back (in place by time)"
            ))],
            "gap" => vec![dim(&format!(
                "-- {rest} line(s) from server {first} were lost"
            ))],
            _ => vec![dim(&format!("-- {what} {args}"))],
        };
        if let Some(index) = self.index_of(room) {
            let target = &mut self.rooms[index];
            match what {
                "join" => target.add_member(first),
                "leave" | "quit" => {
                    target.remove_member(first);
                }
                "nick" if target.remove_member(first) => target.add_member(rest),
                "topic" => target.topic = Some(rest.to_string()).filter(|t| !t.is_empty()),
                _ => {}
            }
        }
        self.note_in(room, stamp, segments, false);
    }

    fn on_ok(&mut self, reply: &str, args: &str, stamp: &str) -> Vec<String> {
        let mut words = args.split(' ').filter(|w| !w.is_empty());
        let info = |text: String| vec![seg(text, Tone::Info)];
        match reply {
            "welcome" => {
                self.pending_switches = 0;
                self.nick = words.next().unwrap_or("").to_string();
                let welcome_room = words.next().unwrap_or("");
                // `OK welcome NICK ROOM (greeting)`: the greeting without its brackets.
                let greeting = after_words(args, 2).trim_matches(|c| c == '(' || c == ')');
                if !self.welcomed {
                    let text = format!("-- you are {} in {welcome_room}: {greeting}", self.nick);
                    self.note(stamp, info(text));
                }
                return self.on_welcome_room(welcome_room);
            }
            "nick" => {
                let new = words.next().unwrap_or("").to_string();
                self.chosen_nick = Some(new.clone());
                let old = std::mem::replace(&mut self.nick, new.clone());
                for room in &mut self.rooms {
                    if room.remove_member(&old) {
                        room.add_member(&new);
                    }
                }
                self.note(stamp, info(format!("-- you are now {new}")));
            }
            "joined" => return self.on_joined(args, stamp),
            "history" => {
                let (room, count) = args.split_once(' ').unwrap_or((args, "0"));
                return self.on_history_done(room, count, stamp);
            }
            "left" => return self.on_left(words.next().unwrap_or(""), stamp),
            "who" => self.on_who(args, stamp),
            "topic" => {
                let (room, topic) = args.split_once(' ').unwrap_or((args, ""));
                if let Some(index) = self.index_of(room) {
                    self.rooms[index].topic = Some(topic.to_string()).filter(|t| !t.is_empty());
                }
                let text = if topic.is_empty() {
                    format!("-- {room} has no topic")
                } else {
                    format!("-- topic of {room}: {topic}")
                };
                self.note(stamp, info(text));
            }
            "rooms" => {
                for word in words {
                    if let Some((room, _)) = word.rsplit_once(':') {
                        self.known_rooms.insert(room.to_string());
                    }
                }
                self.note(stamp, info(format!("-- rooms: {}", after_words(args, 0))));
            }
            "bye" => {
                self.quitting = true;
                self.note(stamp, info("-- bye".to_string()));
            }
            _ => self.note(
                stamp,
                info(format!("{reply} {args}").trim_end().to_string()),
            ),
        }
        Vec::new()
    }

    /// The room a (re)connection starts in: kept on the first connection; on a
    /// reconnection it is left again if the user was not in it.
    fn on_welcome_room(&mut self, room: &str) -> Vec<String> {
        if room.is_empty() {
            return Vec::new();
        }
        if !std::mem::replace(&mut self.welcomed, true) {
            self.rooms.push(Room::new(room));
            self.current = Some(0);
            // Everything shown so far (the welcome) moves into the room.
            let lines = std::mem::take(&mut self.nowhere.lines);
            self.rooms[0].lines = lines;
            self.quiet_who.push(room.to_string());
            return vec![format!("/who {room}")];
        }
        if self.index_of(room).is_none() {
            return vec![format!("/leave {room}")];
        }
        Vec::new()
    }

    fn on_joined(&mut self, args: &str, stamp: &str) -> Vec<String> {
        let mut parts = args.splitn(3, ' ');
        let room = parts.next().unwrap_or("").to_string();
        let members = parts.next().unwrap_or("?");
        let topic = parts.next().map(str::to_string);
        let index = match self.index_of(&room) {
            Some(i) => i,
            None => {
                self.pending_switches = 0;
                self.rooms.push(Room::new(&room));
                let i = self.rooms.len() - 1;
                self.current = Some(i);
                // The playback (if the room has history) goes above this line.
                self.rooms[i].playback_at = Some(0);
                self.rooms[i].joined_ms = self.now_ms;
                let plural = if members == "1" { "" } else { "s" };
                self.note(
                    stamp,
                    vec![seg(
                        format!("-- you joined {room} ({members} member{plural})"),
                        Tone::Info,
                    )],
                );
                if let Some(topic) = &topic {
                    self.note(stamp, vec![seg(format!("-- topic: {topic}"), Tone::Info)]);
                }
                i
            }
        };
        if self.pending_switches > 0 {
            self.pending_switches -= 1;
        } else {
            self.current = Some(index);
        }
        let target = &mut self.rooms[index];
        target.topic = topic;
        target.unread = 0;
        target.mentioned = false;
        self.quiet_who.push(room.clone());
        vec![format!("/who {room}")]
    }

    fn on_left(&mut self, room: &str, stamp: &str) -> Vec<String> {
        let Some(index) = self.index_of(room) else {
            return Vec::new();
        };
        let was_current = self.current == Some(index);
        self.rooms.remove(index);
        let mut send = Vec::new();
        self.current = match self.current {
            _ if self.rooms.is_empty() => None,
            Some(c) if c > index => Some(c - 1),
            Some(_) if was_current => {
                // The server picks the most recently joined room; say which, so both
                // sides agree whatever order the server keeps.
                let last = self.rooms.len() - 1;
                send.push(format!("/join {}", self.rooms[last].name));
                Some(last)
            }
            other => other,
        };
        self.note(stamp, vec![seg(format!("-- you left {room}"), Tone::Info)]);
        send
    }

    fn on_who(&mut self, args: &str, stamp: &str) {
        let mut words = args.split(' ').filter(|w| !w.is_empty());
        let room = words.next().unwrap_or("").to_string();
        let mut members = Vec::new();
        let mut more = 0;
        for word in words {
            // `+3` is "three more"; `+nick` is a voiced member.
            match word.strip_prefix('+').map(str::parse::<usize>) {
                Some(Ok(n)) => more = n,
                _ => members.push(word.to_string()),
            }
        }
        let quiet = match self.quiet_who.iter().position(|r| *r == room) {
            Some(i) => {
                self.quiet_who.remove(i);
                true
            }
            None => false,
        };
        if !quiet {
            let extra = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            self.note(
                stamp,
                vec![seg(
                    format!("-- in {room}: {}{extra}", members.join(" ")),
                    Tone::Info,
                )],
            );
        }
        if let Some(index) = self.index_of(&room) {
            let target = &mut self.rooms[index];
            members.sort_by_key(|m| m.to_ascii_lowercase());
            target.members = members;
            target.more_members = more;
        }
    }

    /// Shows a local notice (disconnects, reconnects) in the room on screen.
    pub fn notice(&mut self, stamp: &str, text: &str, error: bool) {
        let tone = if error { Tone::Error } else { Tone::Info };
        self.note(stamp, vec![seg(format!("-- {text}"), tone)]);
    }
}

/// Errors a reconnection's history requests may get, not shown: no store, a busy
/// or failing one, or a room whose rejoin was refused (that refusal is shown).
const RECOVERY_ERRORS: [&str; 4] = ["no-store", "store-busy", "store-failed", "not-in-room"];

/// The text after the first `n` space-separated words of `line` (spacing kept).
fn after_words(line: &str, n: usize) -> &str {
    line.splitn(n + 1, ' ').nth(n).unwrap_or("")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn welcomed() -> ChatState {
        let mut state = ChatState::new();
        let send = state.on_server_line(
            "OK welcome guest1 lobby (welcome to miochat; /help lists the commands)",
            "10:00",
        );
        assert_eq!(send, vec!["/who lobby"]);
        state.on_server_line("OK who lobby guest1 bob", "10:00");
        state
    }

    fn texts(room: &Room) -> Vec<String> {
        room.lines.iter().map(Entry::text).collect()
    }

    #[test]
    fn welcome_puts_the_user_in_the_lobby_with_its_members() {
        let state = welcomed();
        assert_eq!(state.nick, "guest1");
        assert_eq!(state.current_name(), Some("lobby"));
        assert_eq!(state.current_room().members, vec!["bob", "guest1"]);
        // The automatic /who reply is not shown; the welcome is.
        assert_eq!(
            texts(state.current_room()),
            vec!["-- you are guest1 in lobby: welcome to miochat; /help lists the commands"]
        );
    }

    #[test]
    fn messages_go_to_their_room_and_count_as_unread_elsewhere() {
        let mut state = welcomed();
        assert_eq!(
            state.on_server_line("OK joined rust 2 all things mio", "10:01"),
            vec!["/who rust"]
        );
        assert_eq!(state.current_name(), Some("rust"));
        assert_eq!(
            state.current_room().topic.as_deref(),
            Some("all things mio")
        );
        state.on_server_line("MSG lobby bob hello guest1", "10:02");
        state.on_server_line("ME lobby bob waves", "10:02");
        state.on_server_line("MSG rust bob in rust", "10:02");
        let lobby = &state.rooms[0];
        assert_eq!(texts(lobby)[1..], ["bob: hello guest1", "* bob waves"]);
        assert_eq!((lobby.unread, lobby.mentioned), (2, true));
        assert_eq!(state.rooms[1].unread, 0);
        // Switching shows the room, clears its count and tells the server.
        assert_eq!(state.switch_to(0), Some("/join lobby".to_string()));
        assert_eq!(
            (state.rooms[0].unread, state.rooms[0].mentioned),
            (0, false)
        );
        assert_eq!(state.switch_to(0), None);
        assert_eq!(state.cycle(true), Some("/join rust".to_string()));
        assert_eq!(state.cycle(false), Some("/join lobby".to_string()));
    }

    #[test]
    fn events_keep_the_member_list() {
        let mut state = welcomed();
        state.on_server_line("EVENT lobby join carol", "10:00");
        state.on_server_line("EVENT lobby nick bob robert", "10:00");
        state.on_server_line("EVENT lobby quit carol gone fishing", "10:00");
        assert_eq!(state.current_room().members, vec!["guest1", "robert"]);
        state.on_server_line("OK nick tom", "10:00");
        assert_eq!(state.current_room().members, vec!["robert", "tom"]);
        let shown = texts(state.current_room());
        assert_eq!(
            shown[1..],
            [
                "-- carol joined",
                "-- bob is now robert",
                "-- carol quit (gone fishing)",
                "-- you are now tom"
            ]
        );
    }

    #[test]
    fn typed_lines_are_shown_and_sent() {
        let mut state = welcomed();
        assert_eq!(state.on_typed_line("hello", "10:00"), "hello");
        assert_eq!(state.on_typed_line("//etc", "10:00"), "//etc");
        assert_eq!(state.on_typed_line("/me waves", "10:00"), "/me waves");
        assert_eq!(
            state.on_typed_line("/msg bob psst", "10:00"),
            "/msg bob psst"
        );
        assert_eq!(state.on_typed_line("/who", "10:00"), "/who");
        let shown = texts(state.current_room());
        assert_eq!(
            shown[1..],
            [
                "guest1: hello",
                "guest1: /etc",
                "* guest1 waves",
                "-> *bob* psst"
            ]
        );
        assert!(!state.quitting);
        state.on_typed_line("/quit bye", "10:00");
        assert!(state.quitting);
    }

    #[test]
    fn errors_private_lines_and_replies_land_in_the_current_room() {
        let mut state = welcomed();
        state.on_server_line("ERR nick-taken bob is already taken", "10:00");
        state.on_server_line("PRIV bob psst, lunch?", "10:00");
        state.on_server_line("PONG keepalive", "10:00");
        state.on_server_line("PONG x", "10:00");
        state.on_server_line("OK who lobby bob guest1 +3", "10:00");
        state.on_server_line("EVENT * shutdown server shutting down", "10:00");
        let shown = texts(state.current_room());
        assert_eq!(
            shown[1..],
            [
                "error: bob is already taken (nick-taken)",
                "*bob* psst, lunch?",
                "PONG x",
                "-- in lobby: bob guest1 and 3 more",
                "-- the server is shutting down"
            ]
        );
        assert_eq!(state.current_room().more_members, 3);
    }

    #[test]
    fn leaving_the_current_room_picks_the_last_joined_and_says_so() {
        let mut state = welcomed();
        state.on_server_line("OK joined rust 1", "10:00");
        state.on_server_line("OK joined go 1", "10:00");
        state.switch_to(1);
        assert_eq!(
            state.on_server_line("OK left rust", "10:00"),
            vec!["/join go"]
        );
        assert_eq!(state.current_name(), Some("go"));
        assert!(state.on_server_line("OK left lobby", "10:00").is_empty());
        assert_eq!(state.current_name(), Some("go"));
        assert!(state.on_server_line("OK left go", "10:00").is_empty());
        assert_eq!(state.current_name(), None);
        assert_eq!(state.current_room().name, "*");
    }

    #[test]
    fn a_reconnection_restores_nick_and_rooms() {
        let mut state = welcomed();
        state.on_server_line("OK nick tom", "10:00");
        state.on_server_line("OK joined rust 1", "10:00");
        state.on_server_line("OK joined go 1", "10:00");
        state.switch_to(1);
        state.on_server_line("OK left lobby", "10:00");
        // rust: a live line at 100 s; go: nothing seen since joining at 0.
        state.now_ms = 100_000;
        state.on_server_line("MSG rust bob live", "10:01");
        assert_eq!(
            state.rejoin_lines(),
            vec![
                "/nick tom",
                "/join go",
                "/history go since 1970-01-01T00:00:00.000Z",
                "/join rust",
                "/history rust since 1970-01-01T00:00:40.000Z",
                "/ping recovered"
            ]
        );
        // The new connection starts in the lobby, which the user had left.
        let send = state.on_server_line("OK welcome guest7 lobby (welcome)", "10:05");
        assert_eq!(send, vec!["/leave lobby"]);
        assert_eq!(state.current_name(), Some("rust"));
        assert!(state.on_server_line("OK joined go 1", "10:05") == vec!["/who go"]);
        // The recovery's errors are not shown; later ones are.
        state.on_server_line("ERR no-store history needs a data dir", "10:05");
        state.on_server_line("PONG recovered", "10:05");
        state.on_server_line("ERR no-store history needs a data dir", "10:05");
        let shown = texts(state.current_room());
        assert_eq!(shown.iter().filter(|l| l.contains("no-store")).count(), 1);
    }

    /// A `HIST` line of `room` by bob at `secs` (UTC) with id `id`.
    fn hist(room: &str, secs: u64, id: u64, text: &str) -> String {
        let at = crate::protocol::timestamp(secs * 1000);
        format!("HIST {at} {id:016x} MSG {room} bob {text}")
    }

    #[test]
    fn a_joins_history_comes_above_you_joined_with_its_times() {
        let mut state = welcomed();
        state.now_ms = 1_000_000;
        state.on_server_line("OK joined rust 2", "10:00");
        state.on_server_line(&hist("rust", 100, 1, "first"), "10:00");
        state.on_server_line(&hist("rust", 200, 2, "second"), "10:00");
        assert!(
            state
                .on_server_line("OK history rust 2", "10:00")
                .is_empty()
        );
        state.on_server_line("MSG rust bob live", "10:00");
        let shown = texts(state.current_room());
        assert_eq!(
            shown,
            [
                "bob: first",
                "bob: second",
                "-- you joined rust (2 members)",
                "bob: live"
            ]
        );
        let lines = &state.current_room().lines;
        let (stamp, _) = history::local_time(100_000, 1_000_000);
        assert_eq!(lines[0].stamp, stamp);
        // /history typed: at the end, counted, no raw `history rust 2` line.
        state.on_typed_line("/history 2", "10:01");
        state.on_server_line(&hist("rust", 100, 1, "first"), "10:01");
        state.on_server_line(&hist("rust", 200, 2, "second"), "10:01");
        state.on_server_line("OK history rust 2", "10:01");
        let shown = texts(state.current_room());
        assert_eq!(
            shown[4..],
            [
                "bob: first",
                "bob: second",
                "-- 2 line(s) of rust's history above"
            ]
        );
    }

    #[test]
    fn what_a_reconnection_reads_back_is_shown_once_in_its_place() {
        let mut state = welcomed();
        state.now_ms = 1_000_000;
        state.on_server_line("OK joined rust 2", "10:00");
        state.on_server_line("MSG rust bob ok", "10:00");
        state.now_ms = 1_010_000;
        state.notice("10:00", "disconnected", true);
        state.now_ms = 1_050_000;
        state.notice("10:01", "reconnected", false);
        // The rejoin's playback and the since reply: the live "ok" once, then a
        // missed "ok" and a missed line, both before "reconnected".
        for _ in 0..2 {
            state.on_server_line(&hist("rust", 1_000, 7, "ok"), "10:01");
            state.on_server_line(&hist("rust", 1_020, 8, "ok"), "10:01");
            state.on_server_line(&hist("rust", 1_030, 9, "missed"), "10:01");
            state.on_server_line("OK history rust 3", "10:01");
        }
        let shown = texts(state.current_room());
        assert_eq!(
            shown[1..],
            [
                "bob: ok",
                "-- disconnected",
                "bob: ok",
                "bob: missed",
                "-- reconnected"
            ]
        );
        // A full page asks for the next one.
        let next = state.on_server_line("OK history rust 1000", "10:01");
        assert_eq!(next, ["/history rust since 0000000000000009"]);
    }
}
