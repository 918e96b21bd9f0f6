//! Room history in the full-screen client: where a `HIST` line goes in the
//! scrollback, whether it was shown already, and what a reconnection asks for.
//!
//! Why this is needed: history reaches the client three ways, and each can repeat
//! what is on screen. A join's playback (the room's last lines) belongs above the
//! "you joined" line; after a reconnection the client asks `/history ROOM since ...`
//! for what it missed, and the rejoin's playback comes too; a cluster that was cut
//! off hands its members the lines it read back. Live `MSG` lines carry no message
//! id, so a history line is known as seen either by its id or by matching a live line
//! already shown: same kind, nick and text, the closest in time within [`SKEW_MS`]
//! (the live line then takes the id, so it is matched once). Other history lines are
//! put in their place by time.
//!
//! The reconnection asks from the newest line seen: by its id when it has one (it
//! came as history, or was matched), else from [`MARGIN_MS`] before its local time,
//! as the server's clock and ours may differ; matching drops what comes back twice.

use std::collections::VecDeque;

use crate::protocol::{parse_timestamp, timestamp};

use super::wrap::Entry;

/// How far a live line's local time may be from its history time (the server's).
pub const SKEW_MS: u64 = 120_000;
/// How far before the newest live line a reconnection asks for history.
pub const MARGIN_MS: u64 = 60_000;
/// A full page of `/history ROOM since`: there may be more after it.
pub const PAGE: usize = 1000;

/// One `HIST TIME MSGID MSG|ME ROOM NICK TEXT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist<'a> {
    /// When the server sequenced it, in ms since the Unix epoch.
    pub at_ms: u64,
    /// Its message id (16 hex digits, sorting as text in the server's order).
    pub id: &'a str,
    /// `/me` rather than a plain message.
    pub action: bool,
    /// The room.
    pub room: &'a str,
    /// Who said it.
    pub nick: &'a str,
    /// What was said.
    pub text: &'a str,
}

impl<'a> Hist<'a> {
    /// Parses a `HIST` line; `None` if it is not one.
    pub fn parse(line: &'a str) -> Option<Hist<'a>> {
        let mut words = line.splitn(7, ' ');
        let (marker, time, id, kind) = (words.next()?, words.next()?, words.next()?, words.next()?);
        let (room, nick) = (words.next()?, words.next()?);
        if marker != "HIST" || !matches!(kind, "MSG" | "ME") {
            return None;
        }
        Some(Hist {
            at_ms: parse_timestamp(time)?,
            id,
            action: kind == "ME",
            room,
            nick,
            text: words.next().unwrap_or(""),
        })
    }

    /// The key a live line with the same content has.
    pub fn key(&self) -> String {
        key(self.action, self.nick, self.text)
    }
}

/// What identifies a chat line's content: kind, nick and text.
pub fn key(action: bool, nick: &str, text: &str) -> String {
    let kind = if action { "ME" } else { "MSG" };
    format!("{kind} {nick} {text}")
}

/// True if the history line `hist` is on screen already: by its id, or as the
/// closest unmatched live line of the same content (which then takes the id).
pub fn seen(lines: &mut VecDeque<Entry>, hist: &Hist<'_>) -> bool {
    if lines.iter().any(|e| e.id.as_deref() == Some(hist.id)) {
        return true;
    }
    let key = hist.key();
    let closest = (lines.iter_mut())
        .filter(|e| e.id.is_none() && e.key.as_deref() == Some(key.as_str()))
        .map(|e| (e.at_ms.abs_diff(hist.at_ms), e))
        .filter(|(gap, _)| *gap <= SKEW_MS)
        .min_by_key(|(gap, _)| *gap);
    match closest {
        Some((_, entry)) => {
            entry.id = Some(hist.id.to_string());
            true
        }
        None => false,
    }
}

/// Where a line said at `at_ms` with id `id` goes: after every line that is not
/// later (ties between history lines are broken by id).
pub fn place_by_time(lines: &VecDeque<Entry>, at_ms: u64, id: &str) -> usize {
    let later = |e: &Entry| {
        e.at_ms > at_ms || (e.at_ms == at_ms && e.id.as_deref().is_some_and(|other| other > id))
    };
    let mut at = lines.len();
    while at > 0 && later(&lines[at - 1]) {
        at -= 1;
    }
    at
}

/// The newest message id in `lines`, if any.
pub fn newest_id(lines: &VecDeque<Entry>) -> Option<&str> {
    lines.iter().filter_map(|e| e.id.as_deref()).max()
}

/// What `/history ROOM since` asks for after a reconnection: the newest chat line's
/// id, or a time [`MARGIN_MS`] before it (before `joined_ms` if none was seen).
pub fn since_point(lines: &VecDeque<Entry>, joined_ms: u64) -> String {
    match lines.iter().rev().find(|e| e.key.is_some()) {
        Some(Entry { id: Some(id), .. }) => id.clone(),
        Some(entry) => timestamp(entry.at_ms.saturating_sub(MARGIN_MS)),
        None => timestamp(joined_ms.saturating_sub(MARGIN_MS)),
    }
}

/// `HH:MM` of `at_ms` in local time, and the date (`YYYY-MM-DD`) when it is not the
/// day of `now_ms`.
pub fn local_time(at_ms: u64, now_ms: u64) -> (String, Option<String>) {
    use chrono::TimeZone;
    let local = |ms: u64| {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        chrono::Local.timestamp_millis_opt(ms).single()
    };
    let (Some(at), now) = (local(at_ms), local(now_ms)) else {
        return (String::from("--:--"), None);
    };
    let day = at.format("%Y-%m-%d").to_string();
    let other_day = now.is_none_or(|now| now.format("%Y-%m-%d").to_string() != day);
    (at.format("%H:%M").to_string(), other_day.then_some(day))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn live(key_text: &str, at_ms: u64) -> Entry {
        Entry {
            key: Some(key(false, "bob", key_text)),
            at_ms,
            ..Entry::default()
        }
    }

    #[test]
    fn a_hist_line_parses_and_a_bad_one_does_not() {
        let line = "HIST 2026-11-25T13:40:02.117Z 0019a8c3e4d5a000 ME rust bob nods twice";
        let hist = Hist::parse(line).unwrap();
        assert_eq!(
            (hist.id, hist.action, hist.room, hist.nick, hist.text),
            ("0019a8c3e4d5a000", true, "rust", "bob", "nods twice")
        );
        assert_eq!(timestamp(hist.at_ms), "2026-11-25T13:40:02.117Z");
        assert_eq!(Hist::parse("HIST soon 1 MSG rust bob hi"), None);
        assert_eq!(Hist::parse("MSG rust bob hi"), None);
    }

    #[test]
    fn a_line_is_seen_by_id_or_once_by_its_live_twin() {
        let mut lines = VecDeque::from([live("ok", 1_000), live("ok", 400_000)]);
        let hist = |id, at_ms| Hist {
            at_ms,
            id,
            action: false,
            room: "rust",
            nick: "bob",
            text: "ok",
        };
        // The live line closest in time takes the id; a second "ok" is new.
        assert!(seen(&mut lines, &hist("01", 2_000)));
        assert_eq!(lines[0].id.as_deref(), Some("01"));
        assert!(seen(&mut lines, &hist("01", 2_000)));
        assert!(!seen(&mut lines, &hist("02", 3_000)));
        // Too far in time from the only unmatched twin.
        assert!(!seen(&mut lines, &hist("03", 400_000 - SKEW_MS - 1)));
        assert_eq!(newest_id(&lines), Some("01"));
    }

    #[test]
    fn history_goes_in_its_place_and_the_since_point_follows_the_newest_line() {
        let mut lines = VecDeque::from([live("a", 1_000), live("b", 5_000)]);
        assert_eq!(place_by_time(&lines, 3_000, "07"), 1);
        assert_eq!(place_by_time(&lines, 9_000, "07"), 2);
        assert_eq!(since_point(&lines, 0), timestamp(0));
        lines[1].at_ms = 100_000;
        assert_eq!(since_point(&lines, 0), timestamp(100_000 - MARGIN_MS));
        lines[1].id = Some("00000000000000aa".into());
        assert_eq!(since_point(&lines, 0), "00000000000000aa");
        assert_eq!(since_point(&VecDeque::new(), 90_000), timestamp(30_000));
    }

    #[test]
    fn local_times_name_another_day() {
        let noon = 1_764_072_000_000; // some day, 12:00 UTC
        let (_, day) = local_time(noon, noon + 60_000);
        assert_eq!(day, None);
        let (hm, day) = local_time(noon, noon + 3 * 86_400_000);
        assert_eq!(hm.len(), 5);
        assert_eq!(day.map(|d| d.len()), Some(10));
    }
}
