//! The send queue: rendered lines waiting for a socket to accept them. Sans-IO.
//!
//! A line sent to a room is rendered **once** into an `Arc<[u8]>` and every recipient's
//! queue holds a clone of that `Arc` (a reference count bump, never a copy per recipient).
//! The queue keeps an offset into its front entry, because a non-blocking `write` may
//! take only part of it.
//!
//! [`SendQueue::flush_to`] hands the kernel as many queued lines as fit in one
//! `write_vectored` call (up to [`MAX_IOVECS`]) and repeats until the queue is empty or
//! the socket says `WouldBlock`. This is the batching that decides fan-out speed: one
//! loopback `write` costs microseconds however small it is, so forty lines in one
//! syscall cost little more than one.
//!
//! The queue counts its bytes so its owner can enforce `--sendq`; the queue itself
//! never refuses. The owner (`server::connection`) checks `--sendq` *after* the
//! end-of-turn flush, when what is still unsent really is the client's backlog, and
//! only a hard cap of four times `--sendq` at enqueue, which bounds memory within one
//! turn.
//!
//! An empty `VecDeque` does not allocate, and a queue that stayed empty for a tick
//! gives its ring back, so an idle connection's queue costs only its header.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Most entries handed to one `write_vectored` call (Linux `UIO_MAXIOV` is 1024; 64
/// lines of chat are already tens of KiB, more than a loopback socket takes at once).
pub const MAX_IOVECS: usize = 64;

/// The ring buffer a drained queue keeps (the smallest a `VecDeque` allocates): a
/// connection that gets a line or two per turn reuses it, and a larger one is freed.
const KEPT_CAPACITY: usize = 4;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is now in the kernel.
    Drained,
    /// The socket is full (`WouldBlock`); the rest waits for a writable event.
    Pending,
}

/// Lines queued for one socket, with byte accounting.
#[derive(Debug, Default)]
pub struct SendQueue {
    /// Rendered lines, shared with every other recipient of the same line.
    entries: VecDeque<Arc<[u8]>>,
    /// Bytes of `entries[0]` already written (a `u32`, with `lately` beside it,
    /// keeps the queue, and so every connection, 8 bytes smaller: one line is never
    /// near 4 GiB).
    front_offset: u32,
    /// A line was pushed since the last [`Self::give_back_if_idle`].
    lately: bool,
    /// Bytes not yet written, over all entries (what `--sendq` limits).
    queued_bytes: usize,
}

impl SendQueue {
    /// An empty queue; allocates nothing until the first push.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one rendered line.
    pub fn push(&mut self, line: Arc<[u8]>) {
        self.lately = true;
        self.queued_bytes += line.len();
        self.entries.push_back(line);
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frees the ring buffer of a queue that is empty and had no line pushed since the
    /// last call (the shard calls this every tick): an idle connection then costs no
    /// buffer at all, while a busy one keeps reusing its ring. Redis trims the
    /// buffers of its idle clients the same way.
    pub fn give_back_if_idle(&mut self) {
        if !self.lately && self.entries.is_empty() && self.entries.capacity() > 0 {
            self.entries = VecDeque::new();
        }
        self.lately = false;
    }

    /// Drops everything queued and frees the buffer (used when a connection is cut).
    pub fn clear(&mut self) {
        *self = SendQueue::default();
    }

    /// Writes queued lines to `out` until the queue is empty or `out` would block.
    ///
    /// `Interrupted` is retried; any other error is returned and the queue keeps what
    /// was not written. A `write` that returns 0 is reported as `WriteZero`.
    pub fn flush_to(&mut self, out: &mut impl Write) -> io::Result<Flushed> {
        while !self.entries.is_empty() {
            let written = match self.write_batch(out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        // Release the ring buffer of a queue that grew during a burst (a join storm
        // announced to every member), so an idle connection goes back to costing at
        // most the smallest buffer: tens of thousands of idle connections would
        // otherwise each keep the largest queue they ever had.
        if self.entries.capacity() > KEPT_CAPACITY {
            self.entries = VecDeque::new();
        }
        Ok(Flushed::Drained)
    }

    /// One `write_vectored` call over up to [`MAX_IOVECS`] entries.
    fn write_batch(&self, out: &mut impl Write) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, entry) in self.entries.iter().take(MAX_IOVECS).enumerate() {
            let bytes = if i == 0 {
                &entry[self.front_offset as usize..]
            } else {
                &entry[..]
            };
            slices[i] = IoSlice::new(bytes);
            count += 1;
        }
        out.write_vectored(&slices[..count])
    }

    /// Forgets `written` bytes from the front.
    fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        while written > 0 {
            let Some(front) = self.entries.front() else {
                break;
            };
            let left = front.len() - self.front_offset as usize;
            if written < left {
                self.front_offset += written as u32; // less than one line
                return;
            }
            written -= left;
            self.front_offset = 0;
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A socket stand-in that accepts `budget` bytes, then says `WouldBlock`.
    struct Trickle {
        budget: usize,
        per_call: usize,
        got: Vec<u8>,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                for &byte in b.iter() {
                    if n == self.budget.min(self.per_call) {
                        break;
                    }
                    self.got.push(byte);
                    n += 1;
                }
            }
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn partial_writes_resume_at_the_right_byte() {
        let mut q = SendQueue::new();
        for s in ["hello\n", "big world\n", "!\n"] {
            q.push(line(s));
        }
        assert_eq!(q.queued_bytes(), 18);
        let mut sock = Trickle {
            budget: 8,
            per_call: 3,
            got: vec![],
            calls: 0,
        };
        assert_eq!(q.flush_to(&mut sock).unwrap(), Flushed::Pending);
        assert_eq!(q.queued_bytes(), 10);
        sock.budget = 100;
        assert_eq!(q.flush_to(&mut sock).unwrap(), Flushed::Drained);
        assert_eq!(sock.got, b"hello\nbig world\n!\n");
        assert_eq!(q.queued_bytes(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn many_lines_go_out_in_few_syscalls() {
        let mut q = SendQueue::new();
        let shared = line("0123456789\n");
        for _ in 0..200 {
            q.push(shared.clone());
        }
        let mut sock = Trickle {
            budget: usize::MAX,
            per_call: usize::MAX,
            got: vec![],
            calls: 0,
        };
        assert_eq!(q.flush_to(&mut sock).unwrap(), Flushed::Drained);
        assert_eq!(sock.got.len(), 2200);
        assert_eq!(sock.calls, 200usize.div_ceil(MAX_IOVECS));
    }

    #[test]
    fn write_zero_is_an_error() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut q = SendQueue::new();
        q.push(line("x\n"));
        assert_eq!(
            q.flush_to(&mut Zero).unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let mut q = SendQueue::new();
        q.push(line("abc"));
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn an_idle_queue_gives_its_ring_back_after_a_quiet_tick() {
        let mut q = SendQueue::new();
        q.push(line("abc"));
        let mut out = Vec::new();
        assert_eq!(q.flush_to(&mut out).unwrap(), Flushed::Drained);
        q.give_back_if_idle(); // a line came this tick: kept for the next
        assert!(q.entries.capacity() > 0);
        q.give_back_if_idle(); // a whole tick without one: given back
        assert_eq!(q.entries.capacity(), 0);
        assert_eq!(out, b"abc");
    }
}
