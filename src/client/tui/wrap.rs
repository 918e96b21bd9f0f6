//! Breaking a scrollback line into screen rows, at word boundaries when it can.
//!
//! The client wraps lines itself instead of letting the paragraph widget do it,
//! because scrolling by screen rows (PgUp/PgDn) and keeping the view still while new
//! lines arrive both need to know how many rows each line takes at the current width.
//! Continuation rows are indented past the time stamp so the text stays in a column.
//!
//! The scrollback line itself ([`Entry`], its [`Segment`]s and their [`Tone`]) is
//! defined here, at the bottom: the chat state fills entries and the view draws the
//! rows, and both depend on this file, never the reverse.

use unicode_width::UnicodeWidthChar;

/// How a piece of text is shown; the view maps tones to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Ordinary text.
    Plain,
    /// Events and other low-key text.
    Dim,
    /// A nick, coloured by a hash of its text.
    Nick,
    /// The user's own nick.
    OwnNick,
    /// Replies from the server.
    Info,
    /// Errors and disconnects.
    Error,
    /// Private messages.
    Private,
    /// A message that mentions the user.
    Mention,
}

/// One styled piece of a scrollback line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text.
    pub text: String,
    /// How it looks.
    pub tone: Tone,
}

/// One scrollback line: a time stamp and its pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `HH:MM`, local time.
    pub stamp: String,
    /// The pieces of the line, in order.
    pub segments: Vec<Segment>,
    /// When it was said (history: the server's time) or shown, in ms since the epoch.
    pub at_ms: u64,
    /// Its message id, for a history line (or a live line matched to one).
    pub id: Option<String>,
    /// For a chat line, what identifies its content (`history::key`).
    pub key: Option<String>,
}

impl Entry {
    /// The line's text without styling (for tests and width computations).
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }
}

/// Columns taken by the time stamp (`HH:MM `), and the indent of continuation rows.
pub const STAMP_WIDTH: usize = 6;

/// The rows `entry` takes at `width` columns, each a list of styled pieces.
pub fn wrap_entry(entry: &Entry, width: usize) -> Vec<Vec<Segment>> {
    let width = width.max(1);
    let indent = if width > 3 * STAMP_WIDTH {
        STAMP_WIDTH
    } else {
        0
    };
    let mut chars: Vec<(char, Tone)> = Vec::new();
    chars.extend(
        format!("{:<5} ", entry.stamp)
            .chars()
            .map(|c| (c, Tone::Dim)),
    );
    for segment in &entry.segments {
        chars.extend(segment.text.chars().map(|c| (printable(c), segment.tone)));
    }
    let mut rows = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let room = if rows.is_empty() {
            width
        } else {
            width - indent
        };
        let end = row_end(&chars, at, room);
        let mut row: Vec<(char, Tone)> = Vec::new();
        if !rows.is_empty() {
            row.extend(std::iter::repeat_n((' ', Tone::Plain), indent));
        }
        row.extend_from_slice(&chars[at..end]);
        rows.push(group(&row));
        at = end;
        // A row cut just before a space does not start the next one with it.
        if at < chars.len() && chars[at].0 == ' ' {
            at += 1;
        }
    }
    rows
}

/// How many rows `entry` takes at `width` columns.
pub fn row_count(entry: &Entry, width: usize) -> usize {
    wrap_entry(entry, width).len()
}

/// Control characters would move the terminal's cursor: show them as `?`.
fn printable(ch: char) -> char {
    if ch.is_control() { '?' } else { ch }
}

/// The end (exclusive) of the row that starts at `start` and has `room` columns:
/// after the last space that fits, or as many characters as fit if there is none.
fn row_end(chars: &[(char, Tone)], start: usize, room: usize) -> usize {
    let mut used = 0;
    let mut end = start;
    while end < chars.len() {
        let w = chars[end].0.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        end += 1;
    }
    if end == chars.len() || end == start {
        return end.max(start + 1).min(chars.len());
    }
    // Break after a space in the row if there is one past the stamp.
    match chars[start..end].iter().rposition(|(c, _)| *c == ' ') {
        Some(space) if space + 1 > STAMP_WIDTH => start + space + 1,
        _ => end,
    }
}

/// Runs of one tone become one segment.
fn group(row: &[(char, Tone)]) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    for &(ch, tone) in row {
        match segments.last_mut() {
            Some(last) if last.tone == tone => last.text.push(ch),
            _ => segments.push(Segment {
                text: ch.to_string(),
                tone,
            }),
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(text: &str) -> Entry {
        Entry {
            stamp: "10:00".into(),
            segments: vec![Segment {
                text: text.into(),
                tone: Tone::Plain,
            }],
            ..Entry::default()
        }
    }

    fn shown(entry: &Entry, width: usize) -> Vec<String> {
        wrap_entry(entry, width)
            .iter()
            .map(|row| row.iter().map(|s| s.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn short_lines_take_one_row() {
        assert_eq!(shown(&entry("bob: hi"), 40), vec!["10:00 bob: hi"]);
        assert_eq!(row_count(&entry("bob: hi"), 40), 1);
    }

    #[test]
    fn long_lines_break_between_words_and_indent() {
        let rows = shown(&entry("the quick brown fox jumps over the lazy dog"), 26);
        assert_eq!(
            rows,
            vec![
                "10:00 the quick brown fox ",
                "      jumps over the lazy ",
                "      dog"
            ]
        );
        for row in &rows {
            assert!(row.chars().count() <= 26, "{row:?}");
        }
    }

    #[test]
    fn a_word_longer_than_a_row_is_cut_and_control_characters_are_hidden() {
        let rows = shown(&entry("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x1b"), 20);
        assert_eq!(rows[0], "10:00 aaaaaaaaaaaaaa");
        assert!(rows.iter().all(|r| r.chars().count() <= 20));
        assert!(rows.last().unwrap().ends_with('?'));
    }
}
