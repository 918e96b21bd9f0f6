//! Bench payloads: who sent a message, its sequence number, when, and to which room.
//!
//! ```text
//!   SENDER.SEQ.SENT_NS.ROOM.xxxxxxxx...   (padded with 'x' to --size bytes)
//! ```
//!
//! `SENT_NS` is nanoseconds since the bench started (one process, one clock, so no
//! clock sync is needed). At a fixed rate it is the *scheduled* send time, not the
//! actual one, so a stalled sender cannot hide latency (no coordinated omission).
//! The text has no spaces, so it passes unchanged through every dialect.

use std::io::Write as _;

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// Index of the sending client.
    pub sender: u32,
    /// Per-sender sequence number, from 0.
    pub seq: u64,
    /// Send time in nanoseconds since the bench started.
    pub sent_ns: u64,
    /// Index of the room it was sent to.
    pub room: u32,
}

/// Appends the encoding of `p`, padded to `size` bytes, to `out`.
pub fn encode(p: &Payload, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}.{}.{}.{}.", p.sender, p.seq, p.sent_ns, p.room);
    let written = out.len() - start;
    out.resize(start + size.max(written), b'x');
}

/// Decodes a payload; `None` if the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<Payload> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = text.split('.');
    let mut next = || fields.next()?.parse::<u64>().ok();
    Some(Payload {
        sender: u32::try_from(next()?).ok()?,
        seq: next()?,
        sent_ns: next()?,
        room: u32::try_from(next()?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let p = Payload {
            sender: 7,
            seq: 12345,
            sent_ns: 987_654_321,
            room: 2,
        };
        let mut out = Vec::new();
        encode(&p, 64, &mut out);
        assert_eq!(out.len(), 64);
        assert!(!out.contains(&b' '));
        assert_eq!(decode(&out), Some(p));
        // A size smaller than the header is not truncated.
        out.clear();
        encode(&p, 4, &mut out);
        assert_eq!(decode(&out), Some(p));
        assert_eq!(decode(b"hello"), None);
    }
}
