//! IRC's colour and formatting codes: which control characters they are, and how to
//! remove them.
//!
//! Both sides of the protocol need this: the IRC side keeps these codes in the text
//! it takes in (`irc::clean_text` drops every other control character), and the
//! line renderer (`render.rs`) strips them for a line user's terminal with
//! [`strip_formatting`]. It lives apart so that neither imports the other for it:
//! `irc.rs` uses `render.rs` (the `/stats` lines), and `render.rs` imports nothing
//! from `irc.rs`.

use std::borrow::Cow;

/// IRC formatting codes: bold, colour, hex colour, reset, monospace, reverse,
/// italic, strikethrough, underline. Kept between IRC users.
pub(super) const FORMATTING: &[char] = &[
    '\x02', '\x03', '\x04', '\x0f', '\x11', '\x16', '\x1d', '\x1e', '\x1f',
];

/// `text` without IRC colour and formatting codes (and any other control
/// character), for a line user's terminal. Borrowed when there is nothing to strip,
/// which is always the case for text a line user wrote.
pub fn strip_formatting(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // mIRC colour: \x03 then up to "NN,NN".
            '\x03' => skip_colour(&mut chars, |c| c.is_ascii_digit(), 2),
            // Hex colour: \x04 then up to "RRGGBB,RRGGBB".
            '\x04' => skip_colour(&mut chars, |c| c.is_ascii_hexdigit(), 6),
            c if !c.is_control() => clean.push(c),
            _ => {}
        }
    }
    Cow::Owned(clean)
}

/// Skips a colour code's `FG[,BG]`, each at most `width` characters of `digit`.
fn skip_colour(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    digit: fn(&char) -> bool,
    width: usize,
) {
    let mut skipped = 0;
    while skipped < width && chars.next_if(digit).is_some() {
        skipped += 1;
    }
    if skipped > 0 && chars.peek() == Some(&',') {
        let mut ahead = chars.clone();
        ahead.next();
        if ahead.peek().is_some_and(digit) {
            chars.next();
            for _ in 0..width {
                chars.next_if(digit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_stripped() {
        let formatted = "\x02bold\x02 \x0304,12red\x03";
        assert_eq!(strip_formatting(formatted), "bold red");
        assert_eq!(strip_formatting("\x0312,x"), ",x");
        assert_eq!(strip_formatting("\x04FF0000hex"), "hex");
    }
}
