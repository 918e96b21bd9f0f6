//! Fuzz target: one IRC line → `irc::parse`, `clean_text`, and both renderers.
//!
//! Checks, besides "never panics":
//! - a parsed message has the RFC shape: a non-empty upper-case command without
//!   spaces, at most 15 parameters, only the last of which may hold a space, start
//!   with `:` or be empty;
//! - writing the message back out (with tags and a prefix in front) parses to the
//!   same message;
//! - `clean_text` leaves no control characters, is idempotent, and reports an action
//!   exactly for CTCP ACTION;
//! - for a line the server could receive (at most 510 bytes, no LF), every event the
//!   server may build from it renders as valid IRC lines (one line per broadcast, no
//!   CR, LF or NUL inside, each parses back, chat text cut only at the limit) and as
//!   line-protocol lines without CR or NUL (see `miochat_fuzz::checks`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use miochat::protocol::ProtocolError;
use miochat::protocol::irc::{self, MAX_IRC_LINE, Message};
use miochat_fuzz::{checks, events, server_name};

/// Most parameters a message may carry (RFC 2812).
const MAX_PARAMS: usize = 15;

/// The RFC shape of a parsed message, and that it borrows from `line`.
fn check_shape(msg: &Message<'_>, line: &[u8]) {
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
    let bounds = line.as_ptr_range();
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
    let again = irc::parse(line.as_bytes());
    assert_eq!(again, Ok(Some(msg.clone())), "round trip of {line:?}");
}

/// `clean_text` on one parameter.
fn check_clean(param: &str) {
    let (clean, action) = irc::clean_text(param);
    assert!(
        !clean.contains(char::is_control),
        "control left in {clean:?}"
    );
    assert!(clean.len() <= param.len());
    assert_eq!(action, param.starts_with("\x01ACTION "));
    let (twice, twice_action) = irc::clean_text(&clean);
    assert_eq!((twice.as_ref(), twice_action), (clean.as_ref(), false));
}

/// Parse errors are exactly: not UTF-8, or a CR, LF or NUL in the line.
fn check_error(line: &[u8], error: &ProtocolError) {
    match std::str::from_utf8(line) {
        Err(_) => assert_eq!(*error, ProtocolError::InvalidUtf8),
        Ok(text) => {
            assert_eq!(*error, ProtocolError::ControlChars);
            assert!(text.contains(['\r', '\n', '\0']), "{text:?} refused");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, line @ ..] = data else { return };
    let msg = match irc::parse(line) {
        Err(error) => return check_error(line, &error),
        Ok(None) => {
            let text = std::str::from_utf8(line).expect("BUG: a blank line is UTF-8");
            let text = text.trim_start_matches(' ');
            assert!(
                text.is_empty() || text.starts_with(['@', ':']),
                "{text:?} blank"
            );
            return;
        }
        Ok(Some(msg)) => msg,
    };
    check_shape(&msg, line);
    check_round_trip(&msg);
    msg.params.iter().for_each(|param| check_clean(param));
    // Past the framer a line is at most 510 bytes and holds no LF.
    if line.len() > MAX_IRC_LINE || line.contains(&b'\n') {
        return;
    }
    let from = events::longest_nick();
    let me = if pick & 0x80 == 0 { from.as_str() } else { "*" };
    for (event, audience) in events::from_irc(&msg, &from) {
        checks::event(&event, audience, server_name(*pick), me);
    }
});
