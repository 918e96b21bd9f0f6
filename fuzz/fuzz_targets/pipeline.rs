//! Fuzz target: a byte stream cut into fuzzer-chosen chunks → `LineFramer` → each
//! protocol's parser, the path every byte from a socket takes.
//!
//! Input: a byte choosing the line-protocol limit, a byte choosing how many cuts, two
//! bytes per cut (its offset), then the stream. Checks, besides "never panics":
//! - for the line protocol (limit 1..=2048) and for IRC (limit 510), the stream cut
//!   into chunks gives the same sequence of frames *and parse results* as the whole
//!   stream in one read;
//! - no frame holds an LF or exceeds the limit, and the framer never keeps more than
//!   the limit plus one byte (a CR) between reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miochat::framing::{FrameError, LineFramer};
use miochat::protocol::irc::{self, MAX_IRC_LINE};
use miochat::protocol::parse::parse_line;

/// Most cuts one input may ask for.
const MAX_CUTS: usize = 16;

/// The two parsers a frame may go to.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// The miochat line protocol.
    Line,
    /// IRC.
    Irc,
}

/// Frames `chunks` with limit `max` and parses each line as `protocol`; every frame
/// and its parse result, as text (parse results borrow from the line, so they are
/// compared through their `Debug` form).
fn run(protocol: Protocol, max: usize, chunks: &[&[u8]]) -> Vec<String> {
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk, |frame| {
            out.push(describe(protocol, max, frame));
            true
        });
        assert!(
            framer.buffered() <= max + 1,
            "framer holds {}",
            framer.buffered()
        );
    }
    out
}

/// One frame and what its protocol's parser makes of it.
fn describe(protocol: Protocol, max: usize, frame: Result<&[u8], FrameError>) -> String {
    let line = match frame {
        Ok(line) => line,
        Err(FrameError::TooLong) => return "too long".to_owned(),
    };
    assert!(
        line.len() <= max && !line.contains(&b'\n'),
        "bad frame {line:?}"
    );
    match protocol {
        Protocol::Line => format!("{line:?} {:?}", parse_line(line)),
        Protocol::Irc => {
            let text = irc::decode(line);
            let refused = irc::has_forbidden_chars(&text);
            format!("{line:?} {refused} {:?}", irc::parse(&text))
        }
    }
}

/// Splits `bytes` at `points` (taken modulo the length, sorted, deduplicated).
fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut last = 0;
    for cut in cuts {
        parts.push(&bytes[last..cut]);
        last = cut;
    }
    parts.push(&bytes[last..]);
    parts
}

fuzz_target!(|data: &[u8]| {
    let [max_pick, cut_pick, rest @ ..] = data else {
        return;
    };
    let cut_bytes = (2 * (usize::from(*cut_pick) % (MAX_CUTS + 1))).min(rest.len());
    let (offsets, stream) = rest.split_at(cut_bytes);
    let points: Vec<usize> = offsets
        .chunks(2)
        .map(|pair| pair.iter().fold(0, |acc, &b| acc << 8 | usize::from(b)))
        .collect();
    let chunks = split_at_points(stream, &points);
    // Small limits reach the too-long paths; 2048 is the server's default.
    let line_max = match max_pick {
        0..=127 => 1 + usize::from(*max_pick) % 64,
        _ => miochat::server::config::DEFAULT_MAX_LINE,
    };
    for (protocol, max) in [(Protocol::Line, line_max), (Protocol::Irc, MAX_IRC_LINE)] {
        let whole = run(protocol, max, &[stream]);
        let split = run(protocol, max, &chunks);
        assert_eq!(
            whole, split,
            "{protocol:?}: cutting the stream changed the result"
        );
    }
});
