//! Line framing: bytes in, complete lines out. Sans-IO.
//!
//! TCP delivers a byte stream, not messages: one `read` may hold half a line, or
//! forty lines and the start of a forty-first. [`LineFramer`] turns arbitrary chunks
//! into complete lines and keeps only the unfinished tail between reads.
//!
//! Why it is shaped this way:
//! - **Need more bytes is not an error** (treating a partial frame as an error kills clients whose
//!   lines are split across reads): a partial line is kept,
//!   never reported.
//! - **Zero copy for the common case.** A line that lies wholly inside the chunk is
//!   handed out as a slice of that chunk; only a line split across reads is copied,
//!   into `partial`. So the server reads into one shard-wide scratch buffer and an
//!   idle connection owns no buffer at all (`partial` is an empty `Vec`, which does not
//!   allocate).
//! - **Bounded memory.** `partial` never grows past `max_line`. An over-long line is
//!   reported exactly once ([`FrameError::TooLong`]) and the rest of it is discarded up
//!   to the next LF; the line after it is read normally.
//! - LF ends a line; one CR before the LF is stripped, so CRLF clients work.
//!
//! The server, the bench tool and the terminal client all use this type.

/// What the framer reports besides complete lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A line grew past the limit; it is discarded up to its terminating LF.
    TooLong,
}

/// A line limit as the framer keeps it.
fn clamp(max_line: usize) -> u32 {
    u32::try_from(max_line).unwrap_or(u32::MAX)
}

/// Splits a byte stream into lines, keeping only the unfinished tail.
#[derive(Debug)]
pub struct LineFramer {
    /// Bytes of a line that started in an earlier chunk; never longer than `max_line`.
    partial: Vec<u8>,
    /// True while skipping the rest of an over-long line (after reporting it once).
    discarding: bool,
    /// Longest accepted line in bytes, not counting the LF (nor a CR before it).
    /// A `u32` beside the flag keeps the framer, and so every connection, 8 bytes
    /// smaller; a longer limit is taken as 4 GiB, which no buffer reaches.
    max_line: u32,
}

impl LineFramer {
    /// A framer that accepts lines of at most `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            partial: Vec::new(),
            discarding: false,
            max_line: clamp(max_line),
        }
    }

    /// The configured line limit.
    pub fn max_line(&self) -> usize {
        self.max_line as usize
    }

    /// Frees the buffer of a partial line when none is pending (a burst of reads
    /// that ended mid-line left it allocated).
    pub fn give_back_if_empty(&mut self) {
        if self.partial.is_empty() && self.partial.capacity() > 0 {
            self.partial = Vec::new();
        }
    }

    /// Changes the limit (a reload): a held partial line already over the new limit
    /// is reported as too long when its end arrives.
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = clamp(max_line);
    }

    /// Bytes held for an unfinished line (what this connection costs between reads).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds one chunk; calls `on_line` for each complete line (CR/LF stripped) or
    /// error, in stream order. Returns how many bytes of the chunk it consumed: all of
    /// them, unless `on_line` returned `false`, in which case it stops right after that
    /// line and the rest of the chunk is the caller's (to drop, after `/quit`, or to
    /// feed again later, when flood control pauses the connection).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(Result<&[u8], FrameError>) -> bool,
    ) -> usize {
        let mut rest = chunk;
        while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..lf], &rest[lf + 1..]);
            rest = tail;
            if self.discarding {
                // The tail of an over-long line, already reported: drop it.
                self.discarding = false;
                continue;
            }
            let keep_going = if self.partial.is_empty() {
                self.emit(head, &mut on_line)
            } else if self.partial.len() + head.len() > self.max_line() + 1 {
                // +1: the limit counts the line without a CR that may end `head`.
                self.partial.clear();
                on_line(Err(FrameError::TooLong))
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                let keep_going = self.emit(&line, &mut on_line);
                line.clear();
                // Give the allocation back only if it is small: a burst of long split
                // lines should not cost an allocation each, but idle memory matters more.
                if line.capacity() <= 256 {
                    self.partial = line;
                }
                keep_going
            };
            if !keep_going {
                return chunk.len() - rest.len();
            }
        }
        self.hold_tail(rest, &mut on_line);
        chunk.len()
    }

    /// Reports one complete line, applying the limit and stripping one trailing CR.
    fn emit(
        &self,
        line: &[u8],
        on_line: &mut impl FnMut(Result<&[u8], FrameError>) -> bool,
    ) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_line() {
            on_line(Err(FrameError::TooLong))
        } else {
            on_line(Ok(line))
        }
    }

    /// Keeps the bytes after the last LF, or starts discarding if they are too many.
    fn hold_tail(
        &mut self,
        tail: &[u8],
        on_line: &mut impl FnMut(Result<&[u8], FrameError>) -> bool,
    ) {
        if self.discarding || tail.is_empty() {
            return;
        }
        // `max_line + 1` leaves room for a CR that a CRLF client sends before its LF.
        if self.partial.len() + tail.len() > self.max_line() + 1 {
            self.partial = Vec::new();
            self.discarding = true;
            on_line(Err(FrameError::TooLong));
        } else {
            self.partial.extend_from_slice(tail);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Feeds `chunks` and returns what came out, lines as strings, errors as "!TooLong".
    fn run(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = LineFramer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.feed(chunk, |item| {
                out.push(match item {
                    Ok(line) => String::from_utf8_lossy(line).into_owned(),
                    Err(FrameError::TooLong) => "!TooLong".to_owned(),
                });
                true
            });
        }
        out
    }

    #[test]
    fn stopping_reports_what_was_consumed() {
        let mut framer = LineFramer::new(100);
        let mut seen = 0;
        let consumed = framer.feed(b"a\nbb\ncc", |_| {
            seen += 1;
            seen < 2
        });
        assert_eq!(consumed, 5, "stopped right after the second line");
        assert_eq!(framer.feed(b"cc", |_| true), 2);
    }

    #[test]
    fn whole_lines_and_crlf() {
        assert_eq!(run(100, &[b"a\nbb\r\n\nccc\n"]), ["a", "bb", "", "ccc"]);
    }

    #[test]
    fn every_split_point_yields_the_same_lines() {
        let stream: &[u8] = b"hello\r\nworld\n/join rust\nx\n";
        let whole = run(100, &[stream]);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let parts = [&stream[..i], &stream[i..j], &stream[j..]];
                assert_eq!(run(100, &parts), whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn unterminated_tail_is_held_not_reported() {
        let mut framer = LineFramer::new(10);
        let mut n = 0;
        framer.feed(b"abc", |_| {
            n += 1;
            true
        });
        assert_eq!(n, 0);
        assert_eq!(framer.buffered(), 3);
    }

    #[test]
    fn over_long_line_is_reported_once_and_next_line_survives() {
        assert_eq!(run(4, &[b"toolongline\nok\n"]), ["!TooLong", "ok"]);
        // Split across many chunks: still one report.
        assert_eq!(
            run(4, &[b"too", b"long", b"line", b"more\nok", b"\n"]),
            ["!TooLong", "ok"]
        );
        // Exactly at the limit is accepted, with or without CR.
        assert_eq!(run(4, &[b"abcd\nabcd\r\n"]), ["abcd", "abcd"]);
        assert_eq!(run(4, &[b"ab", b"cd\r", b"\n"]), ["abcd"]);
        assert_eq!(run(4, &[b"ab", b"cde\n"]), ["!TooLong"]);
    }

    #[test]
    fn memory_stays_bounded_while_discarding() {
        let mut framer = LineFramer::new(8);
        for _ in 0..1000 {
            framer.feed(&[b'x'; 100], |_| true);
        }
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn stopping_early_is_honoured() {
        let mut framer = LineFramer::new(10);
        let mut seen = 0;
        framer.feed(b"a\nb\nc\n", |_| {
            seen += 1;
            false
        });
        assert_eq!(seen, 1);
    }

    #[test]
    fn invalid_utf8_is_passed_through_as_bytes() {
        assert_eq!(run(10, &[b"\xff\xfe\n"]).len(), 1);
    }
}
