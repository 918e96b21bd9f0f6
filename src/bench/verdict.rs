//! The correctness verdict: for every (receiver, sender) pair, did the sender's
//! messages arrive exactly once, in order, and only in the right room?
//!
//! Each pair keeps the next expected sequence number and the set of numbers skipped
//! so far (normally empty). A number above the expected one opens a gap; a number
//! inside a gap is a reorder (and closes that hole); a number already seen is a
//! duplicate. Whatever is still missing at the end is loss.

use std::collections::{HashMap, HashSet};

/// Sequence tracking for one (receiver, sender) pair.
#[derive(Debug, Default, Clone)]
struct PairTrack {
    next: u64,
    missing: HashSet<u64>,
}

/// Counts over every pair.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pairs: HashMap<(u32, u32), PairTrack>,
    /// Messages that arrived more than once.
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same sender.
    pub reordered: u64,
    /// Messages seen in a room they were not sent to.
    pub leaked: u64,
    /// Deliveries counted (including duplicates).
    pub received: u64,
}

impl Verdict {
    /// Records that `receiver`, a member of `receiver_room`, got message `seq` of
    /// `sender`, which was sent to `room`.
    pub fn record(&mut self, receiver: u32, receiver_room: u32, sender: u32, seq: u64, room: u32) {
        self.received += 1;
        if room != receiver_room {
            self.leaked += 1;
            return;
        }
        let pair = self.pairs.entry((receiver, sender)).or_default();
        if seq == pair.next {
            pair.next += 1;
        } else if seq > pair.next {
            pair.missing.extend(pair.next..seq);
            pair.next = seq + 1;
        } else if pair.missing.remove(&seq) {
            self.reordered += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Messages that never arrived, given how many each sender sent and which
    /// (receiver, sender) pairs should have seen them.
    pub fn lost(&self, expected_pairs: impl Iterator<Item = (u32, u32)>, sent: &[u64]) -> u64 {
        expected_pairs
            .map(|(receiver, sender)| {
                let total = sent[sender as usize];
                match self.pairs.get(&(receiver, sender)) {
                    Some(p) => total.saturating_sub(p.next) + p.missing.len() as u64,
                    None => total,
                }
            })
            .sum()
    }

    /// How many of `sender`'s messages `receiver` has received in order so far
    /// (the window probe).
    pub fn progress(&self, receiver: u32, sender: u32) -> u64 {
        self.pairs.get(&(receiver, sender)).map_or(0, |p| p.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_run() {
        let mut v = Verdict::default();
        for seq in 0..5 {
            v.record(1, 0, 0, seq, 0);
        }
        assert_eq!(v.lost([(1, 0)].into_iter(), &[5]), 0);
        assert_eq!((v.duplicates, v.reordered, v.leaked), (0, 0, 0));
    }

    #[test]
    fn gap_reorder_duplicate_leak_and_tail_loss() {
        let mut v = Verdict::default();
        for seq in [0, 2, 1, 1, 4] {
            v.record(1, 0, 0, seq, 0);
        }
        v.record(1, 0, 0, 9, 3); // wrong room
        assert_eq!(v.reordered, 1);
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.leaked, 1);
        // 3 missing in the middle; 5 and 6 never came.
        assert_eq!(v.lost([(1, 0)].into_iter(), &[7]), 3);
        // A pair that saw nothing lost everything.
        assert_eq!(v.lost([(2, 0)].into_iter(), &[7]), 7);
    }
}
