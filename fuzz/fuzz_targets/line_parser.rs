//! Fuzz target: arbitrary bytes as one line-protocol line → `parse_line` and both
//! renderers.
//!
//! Checks, besides "never panics":
//! - the verdict matches the input: `bad-utf8` exactly for invalid UTF-8, `bad-text`
//!   exactly for control characters other than tab, nothing (`Ok(None)`) exactly for
//!   a blank line, other errors only for `/commands`;
//! - a parsed command survives `parse_line(to_line(command))`;
//! - a mode command (`/mode`, `/ban`, `/op` ...) satisfies the mode rules (see
//!   `miochat_fuzz::rooms`);
//! - every event the relay may build from the command renders as line-protocol lines
//!   without CR or NUL and, where an IRC user can receive it, as valid IRC lines: at
//!   most 512 bytes with CRLF, one line per broadcast, no CR, LF or NUL inside, each
//!   parses back, and text longer than an IRC line allows is cut at a character
//!   boundary, never altered.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miochat::protocol::modes;
use miochat::protocol::parse::parse_line;
use miochat::protocol::{Command, ProtocolError};
use miochat_fuzz::{checks, events, rooms, server_name};

/// A control character the line protocol refuses.
fn refused_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// What a parse error says about the input.
fn check_error(line: &[u8], error: &ProtocolError) {
    let Ok(text) = std::str::from_utf8(line) else {
        return assert_eq!(*error, ProtocolError::InvalidUtf8);
    };
    if text.contains(refused_control) {
        return assert_eq!(*error, ProtocolError::ControlChars);
    }
    assert!(text.starts_with('/'), "{error:?} for a message: {text:?}");
    assert!(!matches!(
        error,
        ProtocolError::InvalidUtf8 | ProtocolError::ControlChars
    ));
}

/// A parsed command: the input was clean, and the command round-trips.
fn check_command(line: &[u8], command: &Command<'_>) {
    let text = std::str::from_utf8(line).expect("BUG: parsed from UTF-8");
    assert!(!text.contains(refused_control), "{text:?} accepted");
    assert!(!text.trim().is_empty(), "blank line parsed to {command:?}");
    if checks::known_round_trip_gap(command) {
        return;
    }
    if let Some(again) = command.to_line() {
        let reparsed = parse_line(again.as_bytes());
        assert_eq!(
            reparsed,
            Ok(Some(command.clone())),
            "round trip of {again:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, line @ ..] = data else { return };
    let command = match parse_line(line) {
        Err(error) => return check_error(line, &error),
        Ok(None) => {
            let text = std::str::from_utf8(line).expect("BUG: a blank line is UTF-8");
            assert!(text.trim().is_empty(), "{text:?} ignored");
            return;
        }
        Ok(Some(command)) => command,
    };
    check_command(line, &command);
    if let Command::Mode { request, .. } = &command {
        let written = modes::changes_string(&request.changes);
        let mut words = written.split(' ');
        let letters = words.next().unwrap_or("");
        rooms::mode_request(letters, &words.collect::<Vec<_>>());
    }
    let from = events::longest_nick();
    for (event, audience) in events::from_line(&command, &from) {
        checks::event(&event, audience, server_name(*pick), from.as_str());
    }
});
