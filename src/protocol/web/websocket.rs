//! WebSocket frames (RFC 6455), sans-IO: the bytes the server sends, and a decoder for
//! the bytes a browser sends.
//!
//! Headers are parsed and formatted by `tungstenite`'s `FrameHeader` (its frame module
//! works on byte buffers and needs no async runtime). What is left here is policy:
//!
//! - **Server frames are never masked** (RFC 6455 §5.1), so one rendered text frame is
//!   the same bytes for every browser in a room. [`frame_lines`] turns the rendering
//!   of an event (one or more lines) into one frame per line, without the line ending:
//!   the line protocol over WebSocket is "one line per text frame", and IRCv3's
//!   WebSocket binding is "one IRC line per message, no CR LF".
//! - **Client frames must be masked**; an unmasked one is a protocol error (1002).
//!   Fragmented messages are reassembled (every endpoint must accept them, §5.4), up
//!   to the connection's line limit (over it: 1009). A text message must be UTF-8
//!   (else 1007); a binary message is refused on the line protocol (1003).
//!
//! The decoder keeps the unparsed input and the message being reassembled, both empty
//! (no allocation) between messages of an idle connection.
//!
//! **Bytes for a socket are a [`Wire`], never a bare byte string.** A `Wire` records
//! the framing it was made in, and a connection takes only one that fits its own
//! (`Connection::queue`). Outside this module the only way to make one is
//! `Protocol::frame` (the one framing function: one frame per line on a WebSocket,
//! the bytes as they are on TCP), and the control frames below. So a line rendered
//! for TCP cannot reach a browser unframed: it would not compile, or, framed for
//! the wrong protocol, it is refused (a bug once let an echoed private message
//! through as bare bytes, which a client read as a broken frame header).

use std::io::Cursor;
use std::ops::Deref;
use std::sync::Arc;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Close codes of RFC 6455 §7.4.1 that the server sends.
pub mod close_code {
    /// Normal closure (the client quit).
    pub const NORMAL: u16 = 1000;
    /// Going away (server shutdown, idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error (unmasked frame, bad fragmentation, bad control frame).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data the endpoint does not accept (binary on the line protocol).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated (flood).
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

/// Largest payload of a control frame (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// How a connection's bytes are framed on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A byte stream as it is (line protocol, IRC, HTTP).
    Raw,
    /// WebSocket text frames (and control frames).
    Text,
    /// WebSocket binary frames (and control frames).
    Binary,
}

/// What a [`Wire`] holds: bytes for one framing, or WebSocket control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// Data in this framing.
    For(Framing),
    /// Close, ping or pong frames: any WebSocket takes them.
    Control,
}

/// Bytes ready for a socket, framed for it: the only thing a connection queues.
/// Cloning shares the bytes (an `Arc`), as fan-out needs.
#[derive(Debug, Clone)]
pub struct Wire {
    made: Made,
    bytes: Arc<[u8]>,
}

impl Wire {
    /// `bytes` as they are, for a raw stream: only `Protocol::frame` calls this.
    pub(in crate::protocol) fn raw(bytes: Arc<[u8]>) -> Wire {
        Wire {
            made: Made::For(Framing::Raw),
            bytes,
        }
    }

    fn control(bytes: Vec<u8>) -> Wire {
        Wire {
            made: Made::Control,
            bytes: Arc::from(bytes),
        }
    }

    /// True if a connection framed as `framing` may write these bytes (nothing at
    /// all fits anywhere).
    pub fn fits(&self, framing: Framing) -> bool {
        self.bytes.is_empty()
            || match self.made {
                Made::For(made) => made == framing,
                Made::Control => framing != Framing::Raw,
            }
    }

    /// The shared bytes, for the send queue.
    pub fn into_bytes(self) -> Arc<[u8]> {
        self.bytes
    }

    /// The text these bytes carry, for the protocol trace: the bytes of a raw
    /// stream, the payloads of data frames (a server's frames are unmasked), nothing
    /// for control frames.
    pub fn payloads(&self) -> Vec<&[u8]> {
        match self.made {
            Made::For(Framing::Raw) => vec![&self.bytes[..]],
            Made::For(_) => frame_payloads(&self.bytes),
            Made::Control => Vec::new(),
        }
    }
}

/// The payloads of the unmasked frames in `bytes` (as [`frame_lines`] writes them).
fn frame_payloads(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut payloads = Vec::new();
    while let [_, second, rest @ ..] = bytes {
        let (len, rest) = match second & 0x7f {
            126 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            127 if rest.len() >= 8 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&rest[..8]);
                (
                    usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX),
                    &rest[8..],
                )
            }
            126 | 127 => break,
            short => (usize::from(short), rest),
        };
        let Some(payload) = rest.get(..len) else {
            break;
        };
        payloads.push(payload);
        bytes = &rest[len..];
    }
    payloads
}

impl Deref for Wire {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// One frame header's bytes, unmasked, for a payload of `len` bytes.
fn write_header(out: &mut Vec<u8>, opcode: OpCode, len: usize) {
    let header = FrameHeader {
        is_final: true,
        opcode,
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, out);
}

/// The event rendering `lines` (each ending in LF or CR LF) as one frame per line
/// (text, or binary for `binary.ircv3.net`), line endings removed. Only
/// `Protocol::frame` calls this.
pub(in crate::protocol) fn frame_lines(lines: &[u8], binary: bool) -> Wire {
    let (data, framing) = match binary {
        true => (Data::Binary, Framing::Binary),
        false => (Data::Text, Framing::Text),
    };
    let opcode = OpCode::Data(data);
    let mut out = Vec::with_capacity(lines.len() + 4);
    for line in lines.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            write_header(&mut out, opcode, line.len());
            out.extend_from_slice(line);
        }
    }
    Wire {
        made: Made::For(framing),
        bytes: Arc::from(out),
    }
}

/// A close frame with `code` and a short `reason`.
pub fn close_frame(code: u16, reason: &str) -> Wire {
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CONTROL_PAYLOAD as usize - 2)];
    let mut out = Vec::with_capacity(4 + reason.len());
    write_header(&mut out, OpCode::Control(Control::Close), 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
    Wire::control(out)
}

/// A ping frame (the server's keepalive).
pub fn ping_frame() -> Wire {
    let mut out = Vec::with_capacity(2);
    write_header(&mut out, OpCode::Control(Control::Ping), 0);
    Wire::control(out)
}

/// The pong that answers a ping carrying `payload`.
pub fn pong_frame(payload: &[u8]) -> Wire {
    let mut out = Vec::with_capacity(2 + payload.len());
    write_header(&mut out, OpCode::Control(Control::Pong), payload.len());
    out.extend_from_slice(payload);
    Wire::control(out)
}

/// What a client sent, one complete unit at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A complete message (text, or binary where allowed): one line.
    Message(&'a [u8]),
    /// A ping: answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (an answer to our keepalive).
    Pong,
    /// The client starts the closing handshake, with its code if it gave one, and
    /// its reason (empty if none).
    Close(Option<u16>, &'a [u8]),
}

/// Why the connection must be closed, with the close code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// Close code (RFC 6455 §7.4.1).
    pub code: u16,
    /// What went wrong, for the close frame and the log.
    pub why: &'static str,
}

impl Violation {
    fn new(code: u16, why: &'static str) -> Self {
        Violation { code, why }
    }
}

/// Reassembles a client's frames into messages.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Received bytes not yet parsed (at most one partial frame after `next`).
    pending: Vec<u8>,
    /// Where parsing continues in `pending`.
    start: usize,
    /// The message being reassembled from fragments (or the last one returned).
    message: Vec<u8>,
    /// The opcode of the message being reassembled, while one is.
    fragmented: Option<Data>,
    /// Bytes of the last control payload returned (unmasked).
    control: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Takes every byte not yet parsed (to hold while flood control pauses reading).
    pub fn take_unparsed(&mut self) -> Vec<u8> {
        let rest = self.pending.split_off(self.start);
        self.pending.clear();
        self.start = 0;
        rest
    }

    /// The next complete unit, `Ok(None)` if more bytes are needed. `max` bounds a
    /// message; `binary_ok` says whether binary messages are accepted.
    pub fn next(&mut self, max: usize, binary_ok: bool) -> Result<Option<Inbound<'_>>, Violation> {
        loop {
            let mut cursor = Cursor::new(&self.pending[self.start..]);
            let parsed = FrameHeader::parse(&mut cursor)
                .map_err(|_| Violation::new(close_code::PROTOCOL_ERROR, "bad frame header"))?;
            let Some((header, len)) = parsed else {
                self.compact();
                return Ok(None);
            };
            let header_len = cursor.position() as usize;
            let Some(mask) = header.mask else {
                return Err(Violation::new(close_code::PROTOCOL_ERROR, "unmasked frame"));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(Violation::new(
                    close_code::PROTOCOL_ERROR,
                    "reserved bits set",
                ));
            }
            self.check_size(&header, len, max)?;
            let available = self.pending.len() - self.start - header_len;
            if (available as u64) < len {
                self.compact();
                return Ok(None);
            }
            let begin = self.start + header_len;
            let end = begin + len as usize;
            self.start = end;
            let payload = &mut self.pending[begin..end];
            unmask(payload, mask);
            match header.opcode {
                OpCode::Control(control) => {
                    self.control.clear();
                    self.control.extend_from_slice(&self.pending[begin..end]);
                    return self.on_control(control);
                }
                OpCode::Data(data) => {
                    if self.on_data(data, header.is_final, begin, end, binary_ok)? {
                        return Ok(Some(Inbound::Message(strip_line_end(&self.message))));
                    }
                }
            }
        }
    }

    /// Refuses an oversized frame before its payload is even buffered.
    fn check_size(&self, header: &FrameHeader, len: u64, max: usize) -> Result<(), Violation> {
        match header.opcode {
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD || !header.is_final => Err(
                Violation::new(close_code::PROTOCOL_ERROR, "bad control frame"),
            ),
            OpCode::Data(_) if self.message_len() as u64 + len > max as u64 + 2 => {
                Err(Violation::new(close_code::TOO_BIG, "message too long"))
            }
            _ => Ok(()),
        }
    }

    fn message_len(&self) -> usize {
        if self.fragmented.is_some() {
            self.message.len()
        } else {
            0
        }
    }

    /// One data frame; true when it completes a valid message (now in `message`).
    fn on_data(
        &mut self,
        data: Data,
        is_final: bool,
        begin: usize,
        end: usize,
        binary_ok: bool,
    ) -> Result<bool, Violation> {
        let kind = match (data, self.fragmented) {
            (Data::Continue, Some(kind)) => kind,
            (Data::Continue, None) => {
                return Err(Violation::new(
                    close_code::PROTOCOL_ERROR,
                    "stray continuation",
                ));
            }
            (_, Some(_)) => {
                return Err(Violation::new(
                    close_code::PROTOCOL_ERROR,
                    "unfinished fragments",
                ));
            }
            (Data::Text | Data::Binary, None) => {
                self.message.clear();
                data
            }
            (Data::Reserved(_), None) => {
                return Err(Violation::new(
                    close_code::PROTOCOL_ERROR,
                    "reserved opcode",
                ));
            }
        };
        if kind == Data::Binary && !binary_ok {
            return Err(Violation::new(
                close_code::UNSUPPORTED_DATA,
                "binary frames are not accepted",
            ));
        }
        self.message.extend_from_slice(&self.pending[begin..end]);
        if !is_final {
            self.fragmented = Some(kind);
            return Ok(false);
        }
        self.fragmented = None;
        if kind == Data::Text && std::str::from_utf8(&self.message).is_err() {
            return Err(Violation::new(
                close_code::INVALID_PAYLOAD,
                "text is not UTF-8",
            ));
        }
        Ok(true)
    }

    fn on_control(&self, control: Control) -> Result<Option<Inbound<'_>>, Violation> {
        match control {
            Control::Ping => Ok(Some(Inbound::Ping(&self.control))),
            Control::Pong => Ok(Some(Inbound::Pong)),
            Control::Close => match self.control.len() {
                0 => Ok(Some(Inbound::Close(None, &[]))),
                1 => Err(Violation::new(
                    close_code::PROTOCOL_ERROR,
                    "bad close frame",
                )),
                _ => {
                    let code = u16::from_be_bytes([self.control[0], self.control[1]]);
                    Ok(Some(Inbound::Close(Some(code), &self.control[2..])))
                }
            },
            Control::Reserved(_) => Err(Violation::new(
                close_code::PROTOCOL_ERROR,
                "reserved opcode",
            )),
        }
    }

    /// Drops parsed bytes; frees a large buffer once it is empty.
    fn compact(&mut self) {
        self.pending.drain(..self.start);
        self.start = 0;
        if self.pending.is_empty() && self.pending.capacity() > 4096 {
            self.pending = Vec::new();
        }
        if self.fragmented.is_none() && self.message.capacity() > 4096 {
            self.message = Vec::new();
        }
    }
}

/// RFC 6455 §5.3: the payload is XORed with the four-byte key. (tungstenite does this
/// inside its own frame reader but does not export the function.)
fn unmask(payload: &mut [u8], key: [u8; 4]) {
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= key[index % 4];
    }
}

/// One trailing LF or CR LF is tolerated (some clients send it) and removed.
fn strip_line_end(message: &[u8]) -> &[u8] {
    let message = message.strip_suffix(b"\n").unwrap_or(message);
    message.strip_suffix(b"\r").unwrap_or(message)
}

/// A masked client frame (tests and the bench's WebSocket dialect).
pub fn client_frame(opcode: u8, is_final: bool, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        is_final,
        opcode: OpCode::from(opcode),
        mask: Some(key),
        ..FrameHeader::default()
    };
    let mut out = Vec::with_capacity(payload.len() + 14);
    let _ = header.format(payload.len() as u64, &mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], key);
    out
}

/// Splits server frames off the front of `buf`: returns (opcode, payload) of each
/// complete frame and how many bytes they used (tests and the bench).
pub fn server_frames(buf: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
    let mut frames = Vec::new();
    let mut used = 0;
    loop {
        let mut cursor = Cursor::new(&buf[used..]);
        let Ok(Some((header, len))) = FrameHeader::parse(&mut cursor) else {
            return (frames, used);
        };
        let begin = used + cursor.position() as usize;
        let Some(end) = begin
            .checked_add(len as usize)
            .filter(|&end| end <= buf.len())
        else {
            return (frames, used);
        };
        frames.push((u8::from(header.opcode), buf[begin..end].to_vec()));
        used = end;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: [u8; 4] = [1, 2, 3, 4];

    fn decode_all(decoder: &mut Decoder, max: usize, binary_ok: bool) -> Vec<Result<String, u16>> {
        let mut out = Vec::new();
        loop {
            match decoder.next(max, binary_ok) {
                Ok(Some(Inbound::Message(m))) => out.push(Ok(String::from_utf8_lossy(m).into())),
                Ok(Some(other)) => out.push(Ok(format!("{other:?}"))),
                Ok(None) => return out,
                Err(v) => {
                    out.push(Err(v.code));
                    return out;
                }
            }
        }
    }

    #[test]
    fn one_frame_per_line_unmasked() {
        let frames = frame_lines(b"MSG r a hi\nMSG r a yo\n", false);
        let (parsed, used) = server_frames(&frames);
        assert_eq!(used, frames.len());
        assert_eq!(
            parsed,
            vec![(1, b"MSG r a hi".to_vec()), (1, b"MSG r a yo".to_vec())]
        );
        let irc = frame_lines(b":a PRIVMSG #r :hi\r\n", true);
        assert_eq!(
            server_frames(&irc).0,
            vec![(2, b":a PRIVMSG #r :hi".to_vec())]
        );
    }

    #[test]
    fn a_wire_fits_only_the_framing_it_was_made_for() {
        let text = frame_lines(b"a\n", false);
        let binary = frame_lines(b"a\n", true);
        let framed = frame_lines(b"hello\nworld\n", false);
        assert_eq!(framed.payloads(), [&b"hello"[..], &b"world"[..]]);
        let long = "x".repeat(300);
        let framed = frame_lines(long.as_bytes(), false);
        assert_eq!(framed.payloads(), [long.as_bytes()]);
        assert!(ping_frame().payloads().is_empty());
        let raw = Wire::raw(Arc::from(&b"a\n"[..]));
        assert!(text.fits(Framing::Text) && !text.fits(Framing::Binary));
        assert!(binary.fits(Framing::Binary) && !binary.fits(Framing::Raw));
        assert!(raw.fits(Framing::Raw) && !raw.fits(Framing::Text) && !raw.fits(Framing::Binary));
        let ping = ping_frame();
        assert!(ping.fits(Framing::Text) && ping.fits(Framing::Binary) && !ping.fits(Framing::Raw));
    }

    #[test]
    fn fragments_are_reassembled_across_reads() {
        let mut bytes = client_frame(1, false, b"hel", KEY);
        bytes.extend(client_frame(9, true, b"p", KEY));
        bytes.extend(client_frame(0, true, b"lo\n", KEY));
        let mut decoder = Decoder::default();
        let (first, second) = bytes.split_at(5);
        decoder.feed(first);
        assert!(decode_all(&mut decoder, 100, false).is_empty());
        decoder.feed(second);
        let got = decode_all(&mut decoder, 100, false);
        assert_eq!(got, vec![Ok("Ping([112])".into()), Ok("hello".into())]);
    }

    #[test]
    fn hostile_frames_get_their_close_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"\x81\x02hi".to_vec(), close_code::PROTOCOL_ERROR),
            (
                client_frame(2, true, b"bin", KEY),
                close_code::UNSUPPORTED_DATA,
            ),
            (
                client_frame(1, true, &[0xff, 0xfe], KEY),
                close_code::INVALID_PAYLOAD,
            ),
            (client_frame(1, true, &[b'x'; 40], KEY), close_code::TOO_BIG),
            (client_frame(0, true, b"x", KEY), close_code::PROTOCOL_ERROR),
            (
                client_frame(9, false, b"x", KEY),
                close_code::PROTOCOL_ERROR,
            ),
        ];
        for (bytes, code) in cases {
            let mut decoder = Decoder::default();
            decoder.feed(&bytes);
            assert_eq!(
                decode_all(&mut decoder, 16, false),
                vec![Err(code)],
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn close_frame_carries_its_code() {
        let frame = close_frame(close_code::TOO_BIG, "message too long");
        let (parsed, _) = server_frames(&frame);
        assert_eq!(parsed[0].0, 8);
        assert_eq!(&parsed[0].1[..2], &1009u16.to_be_bytes());
    }
}
