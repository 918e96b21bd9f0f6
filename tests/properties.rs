//! Property tests for the sans-IO layers: framing and both protocols' parsers.
//!
//! - any byte stream, split at any points, yields the same lines as sent whole;
//! - a line over the limit is rejected exactly once and the following line is read;
//! - no input makes the parser panic (invalid UTF-8, control bytes, anything);
//! - every command survives parse(to_line(command));
//! - any sequence of room mode changes leaves a room's modes, bans and roles equal to
//!   those of a simple model (sets and options, no rules about what changed);
//! - no bytes make the IRC decoder or parser or the mode parser panic.
//! - an IRC message written back out parses to the same message, and no IRC line
//!   with a CR or NUL inside is accepted;
//! - `clean_text` leaves no control characters and is idempotent;
//! - a room message of any length becomes one IRC line of at most 512 bytes whose
//!   text is the original, cut only at the limit.
//!
//! The fuzz targets in `fuzz/` check the same rules (and more) over far more inputs;
//! these run on every `cargo test`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use miochat::framing::{FrameError, LineFramer};
use miochat::protocol::formatting::strip_formatting;
use miochat::protocol::irc::{self, MAX_IRC_LINE};
use miochat::protocol::modes::{self, Flag, ModeChange, ModeKind};
use miochat::protocol::parse::parse_line;
use miochat::protocol::raw;
use miochat::protocol::{Command, Event, Nick, Role, RoomName};
use miochat::server::room_state::RoomState;
use miochat::server::token::{ConnId, encode};
use proptest::prelude::*;

/// Feeds `chunks` to a framer; lines as byte vectors, `None` for a too-long line.
fn frame(max: usize, chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk, |item| {
            out.push(match item {
                Ok(line) => Some(line.to_vec()),
                Err(FrameError::TooLong) => None,
            });
            true
        });
    }
    out
}

/// Splits `bytes` at the given (sorted, deduplicated) points.
fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut last = 0;
    for cut in cuts {
        parts.push(&bytes[last..cut]);
        last = cut;
    }
    parts.push(&bytes[last..]);
    parts
}

fn nick() -> impl Strategy<Value = Nick> {
    "[A-Za-z_][A-Za-z0-9_-]{0,23}".prop_map(|s| Nick::parse(&s).unwrap())
}

fn room() -> impl Strategy<Value = RoomName> {
    "[a-z0-9_-]{1,32}".prop_map(|s| RoomName::parse(&s).unwrap())
}

/// Text a client can send: printable, no leading or trailing blanks.
/// Text a client can type: no control characters, and none of the characters that
/// stand for raw non-UTF-8 bytes (`protocol::raw`, U+10FF80 and up), which the server
/// makes itself and refuses from a client.
fn text() -> impl Strategy<Value = String> {
    "[^\\p{Cc}\\s/\\x{10FF80}-\\x{10FFFF}][^\\p{Cc}\\x{10FF80}-\\x{10FFFF}]{0,60}[^\\p{Cc}\\s\\x{10FF80}-\\x{10FFFF}]|[^\\p{Cc}\\s/\\x{10FF80}-\\x{10FFFF}]"
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,20}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_split_yields_the_same_lines(
        bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
        points in proptest::collection::vec(any::<usize>(), 0..12),
        max in 1usize..64,
    ) {
        let whole = frame(max, &[&bytes]);
        let parts = split_at_points(&bytes, &points);
        prop_assert_eq!(frame(max, &parts), whole);
    }

    #[test]
    fn an_over_long_line_is_rejected_once_and_the_next_is_read(
        extra in 1usize..300,
        max in 1usize..64,
        next in "[a-z]{0,16}",
        points in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = vec![b'x'; max + extra];
        stream.push(b'\n');
        stream.extend_from_slice(next.as_bytes());
        stream.push(b'\n');
        let parts = split_at_points(&stream, &points);
        let want = if next.len() <= max {
            vec![None, Some(next.into_bytes())]
        } else {
            vec![None, None]
        };
        prop_assert_eq!(frame(max, &parts), want);
    }

    #[test]
    fn the_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
        let mut slash = b"/".to_vec();
        slash.extend_from_slice(&bytes);
        let _ = parse_line(&slash);
    }

    #[test]
    fn commands_round_trip(
        choice in 0usize..14,
        n in nick(), r in room(), t in text(), w in word(), flag in any::<bool>(),
    ) {
        let command = match choice {
            0 => Command::Say(&t),
            1 => Command::Me(&t),
            2 => Command::Nick(n),
            3 => Command::Join(r),
            4 => Command::Leave(flag.then_some(r)),
            5 => Command::Msg { to: &w, text: &t },
            6 => Command::Who(flag.then_some(r)),
            7 => Command::Rooms,
            8 => Command::Topic(flag.then_some(t.as_str()).filter(|t| t.len() <= 300)),
            9 => Command::Ping(flag.then_some(w.as_str())),
            10 => Command::Stats,
            11 => Command::Quit(flag.then_some(t.as_str())),
            12 => Command::Help,
            _ => Command::Say("//escaped"),
        };
        let line = command.to_line().unwrap();
        prop_assert_eq!(parse_line(line.as_bytes()).unwrap(), Some(command), "line {:?}", line);
    }

    #[test]
    fn mode_changes_match_a_simple_model(
        steps in proptest::collection::vec((any::<bool>(), mode_kind(), 0usize..3), 0..60),
    ) {
        let mut state = RoomState::default();
        let mut model = Model {
        flags: BTreeSet::from(['n', 't']),
        ..Model::default()
    };
        for (set, kind, member) in steps {
            let change = ModeChange { set, kind };
            let id = member_id(member);
            let changed = state.apply(&change, Some(id), "op", 7).is_ok_and(|c| c);
            prop_assert_eq!(changed, model.apply(&change, member), "{:?}", change);
        }
        prop_assert_eq!(state.modes_string(true), model.modes_string());
        let bans: Vec<String> = state.bans().iter().map(|b| b.mask.to_string()).collect();
        prop_assert_eq!(bans, model.bans.clone());
        for member in 0..3 {
            prop_assert_eq!(state.role(member_id(member)), model.role(member));
        }
    }

    #[test]
    fn irc_and_mode_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = irc::decode(&bytes);
        if let Some(msg) = irc::parse(&text)
            && let Some((first, rest)) = msg.params.split_first()
        {
            let _ = modes::parse(first, rest);
        }
    }
}

fn member_id(member: usize) -> ConnId {
    ConnId::new(encode(0, member + 1), 1).unwrap()
}

/// Mode changes over a small alphabet, so that sets and unsets collide often.
fn mode_kind() -> impl Strategy<Value = ModeKind> {
    prop_oneof![
        proptest::sample::select(Flag::ALL.to_vec()).prop_map(ModeKind::Flag),
        proptest::option::of("[a-c]{1,3}").prop_map(|k| ModeKind::Key(k.map(Into::into))),
        proptest::option::of(1u32..4).prop_map(ModeKind::Limit),
        "[a-c]".prop_map(|n| ModeKind::Ban(format!("{n}!*@*").into())),
        Just(ModeKind::Op("m".into())),
        Just(ModeKind::Voice("m".into())),
    ]
}

/// The simple model: what the modes *are* after each change, as plain sets.
#[derive(Default)]
struct Model {
    flags: BTreeSet<char>,
    key: Option<String>,
    limit: Option<u32>,
    bans: Vec<String>,
    roles: BTreeMap<(usize, char), ()>,
}

impl Model {
    /// Applies a change; true if the state is different afterwards.
    fn apply(&mut self, change: &ModeChange, member: usize) -> bool {
        let before = (
            self.flags.clone(),
            self.key.clone(),
            self.limit,
            self.bans.clone(),
            self.roles.clone(),
        );
        let set = change.set;
        match &change.kind {
            ModeKind::Flag(flag) if set => drop(self.flags.insert(flag.letter())),
            ModeKind::Flag(flag) => drop(self.flags.remove(&flag.letter())),
            ModeKind::Key(key) => self.key = key.as_deref().filter(|_| set).map(String::from),
            ModeKind::Limit(limit) => self.limit = limit.filter(|_| set),
            ModeKind::Ban(mask) => {
                let mask = mask.to_string();
                if !set {
                    self.bans.retain(|ban| *ban != mask);
                } else if !self.bans.contains(&mask) {
                    self.bans.push(mask);
                }
            }
            ModeKind::Op(_) | ModeKind::Voice(_) => {
                let slot = (member, change.letter());
                if set {
                    self.roles.insert(slot, ());
                } else {
                    self.roles.remove(&slot);
                }
            }
        }
        before
            != (
                self.flags.clone(),
                self.key.clone(),
                self.limit,
                self.bans.clone(),
                self.roles.clone(),
            )
    }

    fn modes_string(&self) -> String {
        let mut letters: Vec<char> = self.flags.iter().copied().collect();
        letters.extend(self.key.as_ref().map(|_| 'k'));
        letters.extend(self.limit.map(|_| 'l'));
        letters.sort_unstable();
        let mut out: String = std::iter::once('+').chain(letters).collect();
        if let Some(key) = &self.key {
            out.push_str(&format!(" {key}"));
        }
        if let Some(limit) = self.limit {
            out.push_str(&format!(" {limit}"));
        }
        out
    }

    fn role(&self, member: usize) -> Role {
        if self.roles.contains_key(&(member, 'o')) {
            Role::Operator
        } else if self.roles.contains_key(&(member, 'v')) {
            Role::Voiced
        } else {
            Role::Member
        }
    }
}

proptest! {
    #[test]
    fn irc_messages_round_trip(line in "[ :@#a-zA-Z0-9\t\u{1}é]{0,120}") {
        let Some(msg) = irc::parse(&line) else { return Ok(()) };
        let mut line = format!(":prefix {}", msg.command);
        if let Some((last, middle)) = msg.params.split_last() {
            for param in middle {
                line = format!("{line} {param}");
            }
            line = format!("{line} :{last}");
        }
        prop_assert_eq!(irc::parse(&line), Some(msg), "line {:?}", line);
    }

    #[test]
    fn irc_lines_with_cr_or_nul_inside_are_refused(
        head in "[A-Z]{1,8} :[a-z ]{0,20}", bad in prop_oneof![Just('\r'), Just('\0')], tail in "[a-z ]{0,20}",
    ) {
        let line = format!("{head}{bad}{tail}");
        prop_assert!(irc::has_forbidden_chars(&line), "{:?} accepted", line);
    }

    #[test]
    fn clean_text_leaves_only_formatting_and_stripping_leaves_nothing(
        text in "(\\PC|\\p{Cc}){0,80}",
    ) {
        let formatting = ['\x02', '\x03', '\x04', '\x0f', '\x11', '\x16', '\x1d', '\x1e', '\x1f'];
        let (clean, _) = irc::clean_text(&text);
        let unwanted = |c: char| c.is_control() && !formatting.contains(&c);
        prop_assert!(!clean.contains(unwanted), "{:?}", clean);
        prop_assert!(!strip_formatting(&clean).contains(char::is_control));
        prop_assert_eq!(irc::clean_text(&clean), (clean.clone(), false));
    }

    #[test]
    fn room_messages_fit_one_irc_line(n in nick(), r in room(), t in "[^\\p{Cc}]{0,700}") {
        let event = Event::Message { room: r, from: n, text: t.as_str().into() };
        let line = irc::broadcast(&event, None).unwrap();
        let body = line.strip_suffix("\r\n").unwrap();
        // Measured on the wire: a raw byte a client sent (`protocol::raw`) is held as
        // one escape character of four bytes and written as the one byte.
        let wire = raw::wire_len(body);
        prop_assert!(wire <= MAX_IRC_LINE, "{} bytes on the wire", wire);
        prop_assert!(!body.contains(['\r', '\n']));
        let msg = irc::parse(body).unwrap();
        let sent = *msg.params.last().unwrap();
        prop_assert!(t.starts_with(sent));
        prop_assert!(sent.len() == t.len() || wire + 4 > MAX_IRC_LINE);
    }
}
