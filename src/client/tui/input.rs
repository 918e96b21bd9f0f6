//! The input line of the full-screen client: editing, history and Tab completion.
//!
//! Kept apart from the screen and the socket so that it can be tested as plain data:
//! the text is a `Vec<char>` with a cursor index (so cursor moves never split a
//! character), history is a list of sent lines walked with Up/Down (the line being
//! typed is kept as a draft), and completion replaces the word before the cursor with
//! each candidate in turn on repeated Tab presses.

/// Lines of history kept.
const HISTORY: usize = 500;

/// Commands offered by Tab completion at the start of a line.
pub const COMMANDS: &[&str] = &[
    "/help", "/join", "/leave", "/me", "/msg", "/nick", "/ping", "/quit", "/rooms", "/stats",
    "/topic", "/who",
];

/// Commands whose first argument is a room.
const ROOM_COMMANDS: &[&str] = &["/join", "/leave", "/part", "/who"];

/// An ongoing Tab completion: which word is being replaced and by what.
#[derive(Debug, Clone)]
struct Completion {
    /// Where the completed word starts.
    start: usize,
    /// Characters currently inserted for the candidate (including its suffix).
    inserted: usize,
    candidates: Vec<String>,
    /// The candidate shown now.
    index: usize,
    /// Added after each candidate (": " for a nick at the start of a line, else " ").
    suffix: &'static str,
}

/// The line being typed.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    text: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// Position in `history` while walking it (None = editing the draft).
    walking: Option<usize>,
    draft: Vec<char>,
    completion: Option<Completion>,
}

impl LineEditor {
    /// The text typed so far.
    pub fn text(&self) -> String {
        self.text.iter().collect()
    }

    /// The cursor position, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// True when nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn edited(&mut self) {
        self.completion = None;
    }

    /// Inserts a character at the cursor.
    pub fn insert(&mut self, ch: char) {
        self.edited();
        self.text.insert(self.cursor, ch);
        self.cursor += 1;
    }

    /// Inserts pasted text (line breaks become spaces: one paste is one line).
    pub fn insert_str(&mut self, text: &str) {
        for ch in text.chars() {
            self.insert(if ch.is_control() { ' ' } else { ch });
        }
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        self.edited();
        if self.cursor > 0 {
            self.cursor -= 1;
            self.text.remove(self.cursor);
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        self.edited();
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    /// Moves the cursor one character left.
    pub fn left(&mut self) {
        self.edited();
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves the cursor one character right.
    pub fn right(&mut self) {
        self.edited();
        self.cursor = (self.cursor + 1).min(self.text.len());
    }

    /// Moves the cursor to the start of the line.
    pub fn home(&mut self) {
        self.edited();
        self.cursor = 0;
    }

    /// Moves the cursor to the end of the line.
    pub fn end(&mut self) {
        self.edited();
        self.cursor = self.text.len();
    }

    /// Deletes everything before the cursor.
    pub fn kill_to_start(&mut self) {
        self.edited();
        self.text.drain(..self.cursor);
        self.cursor = 0;
    }

    /// Deletes the word before the cursor (and the spaces after it).
    pub fn delete_word(&mut self) {
        self.edited();
        let mut start = self.cursor;
        while start > 0 && self.text[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && self.text[start - 1] != ' ' {
            start -= 1;
        }
        self.text.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Takes the line to send: it is cleared and remembered in the history.
    pub fn submit(&mut self) -> String {
        self.edited();
        let line = self.text();
        self.text.clear();
        self.cursor = 0;
        self.walking = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    /// Up: the previous line of history (the typed line is kept as a draft).
    pub fn history_prev(&mut self) {
        self.edited();
        let at = match self.walking {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.walking = Some(at);
        self.text = self.history[at].chars().collect();
        self.cursor = self.text.len();
    }

    /// Down: the next line of history, and finally the draft again.
    pub fn history_next(&mut self) {
        self.edited();
        let Some(at) = self.walking else {
            return;
        };
        if at + 1 < self.history.len() {
            self.walking = Some(at + 1);
            self.text = self.history[at + 1].chars().collect();
        } else {
            self.walking = None;
            self.text = std::mem::take(&mut self.draft);
        }
        self.cursor = self.text.len();
    }

    /// Tab: completes the word before the cursor (a command at the start of the line,
    /// a room after `/join` and friends or after `#`, a nick otherwise); pressed again,
    /// shows the next candidate.
    pub fn complete(&mut self, nicks: &[String], rooms: &[String]) {
        if let Some(mut completion) = self.completion.take() {
            completion.index = (completion.index + 1) % completion.candidates.len();
            self.replace_word(&mut completion);
            self.completion = Some(completion);
            return;
        }
        let start = self.text[..self.cursor]
            .iter()
            .rposition(|c| *c == ' ')
            .map_or(0, |i| i + 1);
        let word: String = self.text[start..self.cursor].iter().collect();
        let before: String = self.text[..start].iter().collect();
        let first_word = before.split(' ').next().unwrap_or("");
        let is_first_arg = before.trim_end().split(' ').count() == 1 && start > 0;
        let (pool, suffix): (Vec<String>, &'static str) = if start == 0 && word.starts_with('/') {
            (COMMANDS.iter().map(|c| c.to_string()).collect(), " ")
        } else if word.starts_with('#') || (is_first_arg && ROOM_COMMANDS.contains(&first_word)) {
            (rooms.to_vec(), " ")
        } else if start == 0 {
            (nicks.to_vec(), ": ")
        } else {
            (nicks.to_vec(), " ")
        };
        let wanted = word.trim_start_matches('#').to_ascii_lowercase();
        if wanted.is_empty() && !word.starts_with('/') {
            return;
        }
        let mut candidates: Vec<String> = pool
            .into_iter()
            .filter(|c| c.to_ascii_lowercase().starts_with(&wanted))
            .collect();
        candidates.sort_by_key(|c| c.to_ascii_lowercase());
        candidates.dedup();
        if candidates.is_empty() {
            return;
        }
        let mut completion = Completion {
            start,
            inserted: self.cursor - start,
            candidates,
            index: 0,
            suffix,
        };
        self.replace_word(&mut completion);
        self.completion = Some(completion);
    }

    /// Puts the current candidate of `completion` in place of the previous one.
    fn replace_word(&mut self, completion: &mut Completion) {
        let end = completion.start + completion.inserted;
        let new: Vec<char> = completion.candidates[completion.index]
            .chars()
            .chain(completion.suffix.chars())
            .collect();
        completion.inserted = new.len();
        self.cursor = completion.start + new.len();
        self.text.splice(completion.start..end, new);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn typed(text: &str) -> LineEditor {
        let mut editor = LineEditor::default();
        editor.insert_str(text);
        editor
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn editing_moves_and_deletes_by_character() {
        let mut editor = typed("héllo wörld");
        editor.left();
        editor.backspace();
        assert_eq!(editor.text(), "héllo wörd");
        editor.home();
        editor.delete();
        editor.end();
        editor.delete_word();
        assert_eq!(editor.text(), "éllo ");
        editor.left();
        editor.kill_to_start();
        assert_eq!((editor.text(), editor.cursor()), (" ".to_string(), 0));
    }

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut editor = typed("one");
        editor.submit();
        editor.insert_str("two");
        assert_eq!(editor.submit(), "two");
        editor.insert_str("dra");
        editor.history_prev();
        assert_eq!(editor.text(), "two");
        editor.history_prev();
        editor.history_prev();
        assert_eq!(editor.text(), "one");
        editor.history_next();
        assert_eq!(editor.text(), "two");
        editor.history_next();
        assert_eq!(editor.text(), "dra");
    }

    #[test]
    fn tab_completes_nicks_rooms_and_commands_and_cycles() {
        let nicks = names(&["alice", "albert", "bob"]);
        let rooms = names(&["lobby", "rust"]);
        let mut editor = typed("al");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "albert: ");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "alice: ");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "albert: ");

        let mut editor = typed("hi B");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "hi bob ");

        let mut editor = typed("/jo");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "/join ");
        editor.insert('r');
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "/join rust ");

        let mut editor = typed("see #lo");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "see lobby ");

        let mut editor = typed("zz");
        editor.complete(&nicks, &rooms);
        assert_eq!(editor.text(), "zz");
    }

    #[test]
    fn completion_in_the_middle_keeps_the_rest() {
        let nicks = names(&["bob"]);
        let mut editor = typed("hi b, how");
        for _ in 0..5 {
            editor.left();
        }
        editor.complete(&nicks, &[]);
        assert_eq!(editor.text(), "hi bob , how");
        assert_eq!(editor.cursor(), 7);
    }
}
