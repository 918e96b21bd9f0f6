//! Fuzz target: one IRC line → `irc::decode`, `irc::parse`, `clean_text`, the mode
//! parser, ban masks, and both renderers.
//!
//! Checks, besides "never panics":
//! - `decode` keeps UTF-8 as is and replaces anything else (never refuses);
//!   `parse` gives `None` exactly for a line without a command;
//! - a parsed message has the RFC shape: a non-empty upper-case command without
//!   spaces, at most 15 parameters, only the last of which may hold a space, start
//!   with `:` or be empty; every parameter is a slice of the line;
//! - writing the message back out (with tags and a prefix in front) parses to the
//!   same message;
//! - `clean_text` leaves no control characters, is idempotent, and reports an action
//!   exactly for CTCP ACTION;
//! - the first parameter as a mode string and the rest as its parameters satisfy the
//!   mode rules, and every parameter as a typed ban mask and the first two as glob
//!   pattern and text satisfy the mask rules (see `miochat_fuzz::rooms`);
//! - for a line the server could act on (at most 510 bytes, no CR, LF or NUL), every
//!   session numeric that echoes a word of it and every event the server may build
//!   from it renders as valid IRC lines (at most 512 bytes with CRLF, no CR, LF or NUL
//!   inside, each parses back, one line per broadcast, chat text cut only at the
//!   limit) and as line-protocol lines without CR or NUL (see `miochat_fuzz::checks`).

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use miochat::protocol::formatting::strip_formatting;
use miochat::protocol::irc::{self, MAX_IRC_LINE, Message};
use miochat_fuzz::{checks, events, rooms, server_name};

/// Most parameters a message may carry (RFC 2812).
const MAX_PARAMS: usize = 15;

/// The RFC shape of a parsed message, and that it borrows from `line`.
fn check_shape(msg: &Message<'_>, line: &str) {
    let command = msg.command.as_str();
    assert!(!command.is_empty() && !command.contains(' '), "{command:?}");
    assert_eq!(command, command.to_ascii_uppercase());
    assert!(
        msg.params.len() <= MAX_PARAMS,
        "{} params",
        msg.params.len()
    );
    if let Some((_, middle)) = msg.params.split_last() {
        for param in middle {
            assert!(!param.is_empty() && !param.contains(' ') && !param.starts_with(':'));
        }
    }
    let bounds = line.as_bytes().as_ptr_range();
    for param in &msg.params {
        let inside = bounds.contains(&param.as_ptr()) || param.is_empty();
        assert!(inside, "parameter {param:?} is not a slice of the line");
    }
}

/// Writes `msg` back out with tags and a prefix; it must parse to the same message.
fn check_round_trip(msg: &Message<'_>) {
    let mut line = format!("@time=1 :nick!user@host {}", msg.command);
    if let Some((last, middle)) = msg.params.split_last() {
        for param in middle {
            line.push(' ');
            line.push_str(param);
        }
        line.push_str(" :");
        line.push_str(last);
    }
    let again = irc::parse(&line);
    assert_eq!(again, Some(msg.clone()), "round trip of {line:?}");
}

/// IRC's formatting codes, which `clean_text` keeps (IRC users see each other's
/// bold and colours) and `strip_formatting` removes for line users.
const FORMATTING: &[char] = &[
    '\x02', '\x03', '\x04', '\x0f', '\x11', '\x16', '\x1d', '\x1e', '\x1f',
];

/// `clean_text` on one parameter: no control character but formatting is left, and
/// nothing at all once stripped for a line user.
fn check_clean(param: &str) {
    let (clean, action) = irc::clean_text(param);
    assert!(
        !clean.contains(|c: char| c.is_control() && !FORMATTING.contains(&c)),
        "control left in {clean:?}"
    );
    let plain = strip_formatting(&clean);
    assert!(
        !plain.contains(char::is_control),
        "control left for line users in {plain:?}"
    );
    assert!(clean.len() <= param.len());
    assert_eq!(action, param.starts_with("\x01ACTION "));
    let (twice, twice_action) = irc::clean_text(&clean);
    assert_eq!((twice.as_ref(), twice_action), (clean.as_ref(), false));
}

/// `decode`: UTF-8 borrowed as is, anything else replaced, never longer than 3 bytes
/// per input byte.
fn check_decode(line: &[u8], text: &str, borrowed: bool) {
    match std::str::from_utf8(line) {
        Ok(valid) => assert!(borrowed && text == valid),
        Err(_) => assert!(text.contains('\u{fffd}') && text.len() <= 3 * line.len()),
    }
}

/// The mode parser and the mask rules on the words of `msg`.
fn check_rooms(msg: &Message<'_>) {
    if let Some((modestring, params)) = msg.params.split_first() {
        rooms::mode_request(modestring, params);
    }
    msg.params.iter().for_each(|param| rooms::typed_mask(param));
    if let [pattern, text, ..] = msg.params.as_slice() {
        rooms::glob(pattern, text);
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, line @ ..] = data else { return };
    let text = irc::decode(line);
    check_decode(line, &text, matches!(text, Cow::Borrowed(_)));
    let Some(msg) = irc::parse(&text) else {
        let rest = text.trim_start_matches(' ');
        let skipped = rest.is_empty() || rest.starts_with(['@', ':']);
        assert!(skipped, "{rest:?} blank");
        return;
    };
    check_shape(&msg, &text);
    check_round_trip(&msg);
    msg.params.iter().for_each(|param| check_clean(param));
    check_rooms(&msg);
    // Past the framer a line is at most 510 bytes; the session refuses CR, LF, NUL.
    if line.len() > MAX_IRC_LINE || irc::has_forbidden_chars(&text) {
        return;
    }
    let server = server_name(*pick);
    let from = events::longest_nick();
    let me = if pick & 0x80 == 0 { from.as_str() } else { "*" };
    checks::session_replies(&msg.command, server, me);
    msg.params
        .iter()
        .for_each(|param| checks::session_replies(param, server, me));
    for (event, audience) in events::from_irc(&msg, &from) {
        checks::event(&event, audience, server, me);
    }
});
