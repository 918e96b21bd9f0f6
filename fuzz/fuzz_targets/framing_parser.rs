//! Fuzz target: bytes → LineFramer (split at a fuzzer-chosen point) → parse_line.
//!
//! Checks, besides "never panics": splitting the stream anywhere yields the same lines
//! as feeding it whole, no reported line exceeds the limit, and every command that
//! parses survives `parse_line(to_line(command))` (but for one known gap, see
//! `miochat_fuzz::checks::known_round_trip_gap`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use miochat::framing::{FrameError, LineFramer};
use miochat::protocol::parse::parse_line;
use miochat_fuzz::checks;

fn frame(max: usize, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk, |item| {
            out.push(item.map(<[u8]>::to_vec));
            true
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let max = 1 + usize::from(*a) % 128;
    let cut = usize::from(*b) % (rest.len() + 1);
    let whole = frame(max, &[rest]);
    let split = frame(max, &[&rest[..cut], &rest[cut..]]);
    assert_eq!(whole, split, "splitting changed the lines");
    for line in whole.into_iter().flatten() {
        assert!(line.len() <= max);
        if let Ok(Some(command)) = parse_line(&line)
            && !checks::known_round_trip_gap(&command)
            && let Some(again) = command.to_line()
        {
            assert_eq!(
                parse_line(again.as_bytes()),
                Ok(Some(command)),
                "round trip of {again:?}"
            );
        }
    }
});
