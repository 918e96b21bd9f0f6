//! Property tests for the sans-IO layers: framing and both protocols' parsers.
//!
//! - any byte stream, split at any points, yields the same lines as sent whole;
//! - a line over the limit is rejected exactly once and the following line is read;
//! - no input makes the parser panic (invalid UTF-8, control bytes, anything);
//! - every command survives parse(to_line(command));
//! - an IRC message written back out parses to the same message, and no IRC line
//!   with a CR or NUL inside is accepted;
//! - `clean_text` leaves no control characters and is idempotent;
//! - a room message of any length becomes one IRC line of at most 512 bytes whose
//!   text is the original, cut only at the limit.
//!
//! The fuzz targets in `fuzz/` check the same rules (and more) over far more inputs;
//! these run on every `cargo test`.

#![allow(clippy::unwrap_used)]

use miochat::framing::{FrameError, LineFramer};
use miochat::protocol::irc::{self, MAX_IRC_LINE};
use miochat::protocol::parse::parse_line;
use miochat::protocol::{Command, Event, Nick, RoomName};
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
fn text() -> impl Strategy<Value = String> {
    "[^\\p{Cc}\\s/][^\\p{Cc}]{0,60}[^\\p{Cc}\\s]|[^\\p{Cc}\\s/]"
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
    fn irc_messages_round_trip(line in "[ :@#a-zA-Z0-9\t\u{1}é]{0,120}") {
        let Ok(Some(msg)) = irc::parse(line.as_bytes()) else { return Ok(()) };
        let mut line = format!(":prefix {}", msg.command);
        if let Some((last, middle)) = msg.params.split_last() {
            for param in middle {
                line = format!("{line} {param}");
            }
            line = format!("{line} :{last}");
        }
        prop_assert_eq!(irc::parse(line.as_bytes()).unwrap(), Some(msg), "line {:?}", line);
    }

    #[test]
    fn irc_lines_with_cr_or_nul_inside_are_refused(
        head in "[A-Z]{1,8} :[a-z ]{0,20}", bad in prop_oneof![Just('\r'), Just('\0')], tail in "[a-z ]{0,20}",
    ) {
        let line = format!("{head}{bad}{tail}");
        prop_assert!(irc::parse(line.as_bytes()).is_err(), "{:?} accepted", line);
    }

    #[test]
    fn clean_text_leaves_no_control_characters(text in "(\\PC|\\p{Cc}){0,80}") {
        let (clean, _) = irc::clean_text(&text);
        prop_assert!(!clean.contains(char::is_control), "{:?}", clean);
        prop_assert_eq!(irc::clean_text(&clean), (clean.clone(), false));
    }

    #[test]
    fn room_messages_fit_one_irc_line(n in nick(), r in room(), t in "[^\\p{Cc}]{0,700}") {
        let event = Event::Message { room: r, from: n, text: t.as_str().into() };
        let line = irc::broadcast(&event).unwrap();
        let body = line.strip_suffix("\r\n").unwrap();
        prop_assert!(body.len() <= MAX_IRC_LINE, "{} bytes", line.len());
        prop_assert!(!body.contains(['\r', '\n']));
        let msg = irc::parse(body.as_bytes()).unwrap().unwrap();
        let sent = *msg.params.last().unwrap();
        prop_assert!(t.starts_with(sent));
        prop_assert!(sent.len() == t.len() || body.len() + 4 > MAX_IRC_LINE);
    }
}
