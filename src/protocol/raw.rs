//! Every byte kept: IRC text that is not UTF-8 travels through the core as text and
//! leaves for IRC readers as the bytes it came as.
//!
//! IRC declares no encoding, and old clients send Latin-1; two of them must be able
//! to talk in it through miochat. But the core, the store and the backplane keep
//! text (`str`), and the line protocol and browsers need UTF-8. So [`decode`] turns
//! each byte of an invalid sequence into one *escape*, a character of the last 128
//! code points (U+10FF80 + byte − 0x80, private use, never assigned), and the text
//! goes on as usual. Where it is rendered:
//!
//! - for IRC over TCP, TLS and binary WebSocket frames, [`to_wire`] turns escapes back
//!   into their bytes: the line arrives as sent;
//! - for the line protocol, browsers and text WebSocket frames (which must be UTF-8),
//!   [`to_text`] shows each escape as U+FFFD.
//!
//! An IRC client that sends one of those 128 characters itself (valid UTF-8) has it
//! replaced by U+FFFD on the way in ([`decode`]), and the line protocol refuses them
//! ([`is_escape`]), so an escape always means a byte. The hot path pays one scan for the byte `0xF4` (which starts every
//! escape) per rendering, not per reader; text without it is passed on as it is.

use std::borrow::Cow;

/// The code point of the escape for byte 0x80.
const FIRST: u32 = 0x10_FF80;

/// The escape for `byte` (0x80 or above).
fn escape(byte: u8) -> char {
    char::from_u32(FIRST + u32::from(byte) - 0x80).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// True if `c` is one of the escape characters (which the line protocol refuses as
/// `bad-text`: no client of it can mean one).
pub fn is_escape(c: char) -> bool {
    byte_of(c).is_some()
}

/// The byte an escape stands for, if `c` is one.
fn byte_of(c: char) -> Option<u8> {
    let code = u32::from(c);
    (code >= FIRST).then(|| u8::try_from(code - FIRST + 0x80).ok())?
}

/// Text for the bytes of one IRC line: UTF-8 as it is (escape characters sent as
/// such replaced), each byte of an invalid sequence as its escape.
pub fn decode(line: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(text) => scrub(text),
        Err(_) => Cow::Owned(decode_invalid(line)),
    }
}

fn decode_invalid(mut rest: &[u8]) -> String {
    let mut out = String::with_capacity(rest.len() + 8);
    loop {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(&scrub(text));
                return out;
            }
            Err(error) => {
                let (good, bad) = rest.split_at(error.valid_up_to());
                out.push_str(&scrub(std::str::from_utf8(good).unwrap_or_default()));
                let bad_len = error.error_len().unwrap_or(bad.len());
                out.extend(bad[..bad_len].iter().map(|&b| escape(b)));
                rest = &bad[bad_len..];
            }
        }
    }
}

/// `text` with any escape character replaced by U+FFFD (text from a client, which
/// must not be taken for bytes). Borrowed when there is none.
pub fn scrub(text: &str) -> Cow<'_, str> {
    to_text(text)
}

/// `text` for a reader that needs UTF-8: each escape shown as U+FFFD.
pub fn to_text(text: &str) -> Cow<'_, str> {
    if !text.as_bytes().contains(&0xF4) || !text.chars().any(|c| byte_of(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let shown = |c: char| match byte_of(c) {
        Some(_) => char::REPLACEMENT_CHARACTER,
        None => c,
    };
    Cow::Owned(text.chars().map(shown).collect())
}

/// Rendered text for an IRC socket: each escape back to its byte.
pub fn to_wire(text: String) -> Vec<u8> {
    if !text.as_bytes().contains(&0xF4) {
        return text.into_bytes();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut utf8 = [0u8; 4];
    for c in text.chars() {
        match byte_of(c) {
            Some(byte) => out.push(byte),
            None => out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
    out
}

/// Bytes for a reader that needs UTF-8 (a text WebSocket frame): as they are if
/// they are UTF-8, else each invalid byte as U+FFFD.
pub fn lossy(bytes: &[u8]) -> Cow<'_, [u8]> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    }
}

/// How many bytes `text` takes on an IRC socket (an escape is one).
pub fn wire_len(text: &str) -> usize {
    if !text.as_bytes().contains(&0xF4) {
        return text.len();
    }
    text.chars()
        .map(|c| byte_of(c).map_or(c.len_utf8(), |_| 1))
        .sum()
}

/// The longest start of `text` that takes at most `max` bytes on an IRC socket, cut
/// at a character boundary.
pub fn cut_wire(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += byte_of(c).map_or(c.len_utf8(), |_| 1);
        if used > max {
            return &text[..at];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_survives_the_round_trip_and_shows_as_replacement_for_text_readers() {
        let sent = b"caf\xe9 \xff ok \xc3\xa9";
        let text = decode(sent);
        assert_eq!(to_wire(text.to_string()), sent);
        assert_eq!(to_text(&text), "caf\u{fffd} \u{fffd} ok \u{e9}");
        assert_eq!(wire_len(&text), sent.len());
        assert_eq!(cut_wire(&text, 4), "caf\u{10ffe9}");
        assert!(matches!(decode(b"plain"), Cow::Borrowed("plain")));
        assert_eq!(&*lossy(b"a\xffb"), "a\u{fffd}b".as_bytes());
    }

    #[test]
    fn an_escape_sent_as_text_is_not_taken_for_a_byte() {
        let forged = "x\u{10ff8a}y";
        assert_eq!(decode(forged.as_bytes()), "x\u{fffd}y");
        assert_eq!(scrub(forged), "x\u{fffd}y");
        let other_plane16 = "\u{100000}";
        assert_eq!(to_wire(other_plane16.to_string()), other_plane16.as_bytes());
        assert_eq!(decode(b"\xf4\x8f\xbe\x8a\xff"), "\u{fffd}\u{10ffff}");
    }
}
