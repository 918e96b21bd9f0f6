//! The one place that decides what an `io::Error` from a non-blocking socket means.
//!
//! mio's readiness contract: after an event, repeat the operation until it returns
//! `WouldBlock`, or no further event is guaranteed (edge triggering). So every read,
//! write and accept in this crate ends in exactly one of four ways, and this module
//! names them once instead of each call site matching on `ErrorKind`:
//!
//! - [`IoClass::WouldBlock`]: drained; wait for the next event;
//! - [`IoClass::Interrupted`]: a signal arrived mid-call; retry at once;
//! - [`IoClass::PeerGone`]: the other side reset, aborted or closed; close quietly;
//! - [`IoClass::Fatal`]: anything else; close and log it.
//!
//! End of stream (`read` returning `Ok(0)`) is not an error in `std`; [`read_some`]
//! turns it into [`ReadOutcome::Eof`] so loops read as sentences.

use std::io::{self, ErrorKind, Read};

/// How a caller should react to an IO error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoClass {
    /// Nothing more to do until the next readiness event.
    WouldBlock,
    /// Retry the same call immediately.
    Interrupted,
    /// The peer is gone (reset, aborted, broken pipe): close without fuss.
    PeerGone,
    /// Unexpected: close the connection and log the error.
    Fatal,
}

/// Classifies an IO error once, at the boundary.
pub fn classify(e: &io::Error) -> IoClass {
    match e.kind() {
        ErrorKind::WouldBlock => IoClass::WouldBlock,
        ErrorKind::Interrupted => IoClass::Interrupted,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected
        | ErrorKind::UnexpectedEof
        | ErrorKind::WriteZero => IoClass::PeerGone,
        _ => IoClass::Fatal,
    }
}

/// True for `WouldBlock`, the normal end of every drain loop.
pub fn is_would_block(e: &io::Error) -> bool {
    classify(e) == IoClass::WouldBlock
}

/// The result of one non-blocking read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n > 0` bytes were read into the buffer.
    Data(usize),
    /// The peer closed its sending side.
    Eof,
    /// Nothing to read now: the readiness is consumed.
    WouldBlock,
}

/// Reads once into `buf`, retrying `Interrupted`, and names the outcome.
pub fn read_some(src: &mut impl Read, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        return match src.read(buf) {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(e) => match classify(&e) {
                IoClass::WouldBlock => Ok(ReadOutcome::WouldBlock),
                IoClass::Interrupted => continue,
                IoClass::PeerGone | IoClass::Fatal => Err(e),
            },
        };
    }
}

/// Writes a short line to a socket that was just accepted, best effort, without
/// waiting: used for refusals ("server full") where the connection is closed next.
pub fn write_once(dst: &mut impl io::Write, line: &[u8]) {
    // A fresh socket has an empty send buffer, so a short line fits; if it does not,
    // the client loses only the reason for a refusal that happens anyway.
    let _ = dst.write(line);
}

/// Writes a TLS session's ciphertext (server or client side) until it has none or
/// the socket would block; returns the number of `write` calls made. The same four
/// endings as every other write: `WouldBlock` ends the loop with `Ok`, the rest close.
pub fn write_tls_records<D>(
    session: &mut rustls::ConnectionCommon<D>,
    socket: &mut impl io::Write,
) -> io::Result<u64> {
    let mut calls = 0;
    while session.wants_write() {
        calls += 1;
        match session.write_tls(socket) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) => match classify(&e) {
                IoClass::WouldBlock => return Ok(calls),
                IoClass::Interrupted => {}
                IoClass::PeerGone | IoClass::Fatal => return Err(e),
            },
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classification_table() {
        let cases = [
            (ErrorKind::WouldBlock, IoClass::WouldBlock),
            (ErrorKind::Interrupted, IoClass::Interrupted),
            (ErrorKind::ConnectionReset, IoClass::PeerGone),
            (ErrorKind::BrokenPipe, IoClass::PeerGone),
            (ErrorKind::PermissionDenied, IoClass::Fatal),
        ];
        for (kind, class) in cases {
            assert_eq!(classify(&kind.into()), class, "{kind:?}");
        }
    }

    #[test]
    fn read_some_names_eof_and_data() {
        let mut src: &[u8] = b"abc";
        let mut buf = [0u8; 8];
        assert_eq!(read_some(&mut src, &mut buf).unwrap(), ReadOutcome::Data(3));
        assert_eq!(read_some(&mut src, &mut buf).unwrap(), ReadOutcome::Eof);
    }
}
