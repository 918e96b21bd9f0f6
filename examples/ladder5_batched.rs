//! Ladder step 5: render once, flush once per turn. Lines are shared `Arc<[u8]>`s,
//! queues hold pointers, and each dirty connection gets one `writev` per turn.
//!
//! What changes from step 4, and why (docs/TUTORIAL.md, step 5):
//! - **Render once.** A room line is formatted into one `Arc<[u8]>`; every recipient's
//!   queue gets a clone of the `Arc` (a reference count), not a copy of the bytes. A
//!   queue costs 16 bytes per line whatever the line's length.
//! - **Queue, do not write.** Handling a line only queues output and marks the
//!   recipient *dirty*. Nothing touches a socket while lines are being handled.
//! - **Flush once per turn with `writev`.** At the end of the turn each dirty
//!   connection is flushed once, with `write_vectored` over up to `MAX_SLICES` queued
//!   lines. One syscall now carries every line a client received during the turn.
//!   When 16 KiB of input holds 200 lines for the room, each member gets one write
//!   instead of 200. `/stats` prints the figure: lines per write.
//! - The slow-consumer check and WRITABLE interest are as in step 4, moved to the
//!   end-of-turn flush. A WRITABLE event just marks the connection dirty.
//!
//! What it still gets wrong:
//! - **One core.** Everything runs on one thread. On a machine with N cores the server
//!   uses one of them however many clients come. Step 6 runs N loops (shards) and has
//!   to solve what that brings: moving a line between loops, waking a loop that
//!   sleeps in `poll`, and keeping one order of lines for everybody in the room.
//!
//! Run: `cargo run --release --example ladder5_batched -- 127.0.0.1:0`.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token; clients use their slab key.
const LISTENER: Token = Token(usize::MAX);

/// Bytes per `read` call, into one buffer shared by every connection.
const READ_CHUNK: usize = 16 * 1024;

/// Reads per connection per turn before the loop moves on (the fairness budget).
const READS_PER_TURN: usize = 4;

/// Unsent bytes after a flush beyond which a client is cut as a slow consumer.
const SENDQ_LIMIT: usize = 256 * 1024;

/// Queued lines handed to one `write_vectored` call (Linux accepts up to 1024).
const MAX_SLICES: usize = 64;

/// One connected client.
struct Client {
    stream: TcpStream,
    nick: String,
    room: String,
    /// Bytes of an incomplete line.
    input: Vec<u8>,
    /// Lines not yet written, shared with every other recipient.
    output: VecDeque<Arc<[u8]>>,
    /// Bytes of the front line already written.
    front_sent: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// On the dirty list: flush at the end of this turn.
    dirty: bool,
    /// WRITABLE is part of the registered interest.
    wants_write: bool,
    /// Marked for removal at the end of the turn.
    closing: bool,
    /// On the ready list (bytes left in the kernel after the budget ran out).
    on_ready_list: bool,
}

/// The loop's state: the poll, every client, a scratch read buffer.
struct Server {
    poll: Poll,
    clients: Slab<Client>,
    guests: u64,
    scratch: Vec<u8>,
    /// Connections whose budget ran out with bytes still in the kernel.
    ready: Vec<usize>,
    /// Connections with output queued this turn.
    dirty: Vec<usize>,
    /// Lines queued for clients, and `write` calls made (for `/stats`).
    lines: u64,
    writes: u64,
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    if let Err(e) = run(&addr) {
        eprintln!("ladder5_batched: {addr}: {e}");
        std::process::exit(1);
    }
}

/// The event loop.
fn run(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    println!("ladder5_batched listening on {}", listener.local_addr()?);
    let mut server = Server {
        poll: Poll::new()?,
        clients: Slab::new(),
        guests: 0,
        scratch: vec![0; READ_CHUNK],
        ready: Vec::new(),
        dirty: Vec::new(),
        lines: 0,
        writes: 0,
    };
    server
        .poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    loop {
        // Work left on the ready list: look at new events, but do not sleep.
        let timeout = (!server.ready.is_empty()).then_some(Duration::ZERO);
        if let Err(e) = server.poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                server.accept_all(&listener)?;
                continue;
            }
            let key = event.token().0;
            if event.is_writable() {
                server.mark_dirty(key);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                server.drain(key);
            }
        }
        for key in std::mem::take(&mut server.ready) {
            if let Some(client) = server.clients.get_mut(key) {
                client.on_ready_list = false;
                server.drain(key);
            }
        }
        server.flush_dirty();
        server.reap();
    }
}

impl Server {
    /// Accepts every pending connection and greets it.
    fn accept_all(&mut self, listener: &TcpListener) -> io::Result<()> {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let _ = stream.set_nodelay(true);
            let key = self.clients.vacant_key();
            self.poll
                .registry()
                .register(&mut stream, Token(key), Interest::READABLE)?;
            self.guests += 1;
            let nick = format!("guest{}", self.guests);
            let welcome = format!("OK welcome {nick} lobby (ladder step 5: batched)\n");
            self.clients.insert(Client {
                stream,
                nick,
                room: "lobby".into(),
                input: Vec::new(),
                output: VecDeque::new(),
                front_sent: 0,
                queued: 0,
                dirty: false,
                wants_write: false,
                closing: false,
                on_ready_list: false,
            });
            self.send(key, welcome.into_bytes());
        }
    }

    /// Reads until `WouldBlock`, but at most `READS_PER_TURN` times (step 4); a
    /// connection cut short goes on the ready list.
    fn drain(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            if client.closing {
                return;
            }
            match client.stream.read(&mut self.scratch) {
                Ok(0) => client.closing = true,
                Ok(n) => client.input.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => client.closing = true,
            }
            self.handle_lines(key);
        }
        // Budget spent: the kernel may hold more, and will not say so again.
        if let Some(client) = self.clients.get_mut(key)
            && !client.closing
            && !client.on_ready_list
        {
            client.on_ready_list = true;
            self.ready.push(key);
        }
    }

    /// Applies every complete line in the client's input.
    fn handle_lines(&mut self, key: usize) {
        while let Some(newline) = self.clients[key].input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.clients[key].input.drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line);
            self.on_line(key, text.trim_end_matches(['\r', '\n']));
        }
    }

    /// Applies one line: a command, or a message for the room.
    fn on_line(&mut self, key: usize, line: &str) {
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let members = self.clients.len();
        let client = &mut self.clients[key];
        let reply = match command {
            "/nick" => {
                client.nick = arg.to_string();
                format!("OK nick {arg}\n")
            }
            "/join" => {
                client.room = arg.trim_start_matches('#').to_string();
                format!("OK joined {} {members}\n", client.room)
            }
            "/ping" => "PONG\n".to_string(),
            "/stats" => stats_line(self.lines, self.writes),
            "/quit" => {
                self.send(key, b"OK bye\n".to_vec());
                self.clients[key].closing = true;
                return;
            }
            "" => return,
            _ if line.starts_with('/') => format!("ERR unknown-command {command}\n"),
            _ => {
                // Rendered once; every recipient gets the same Arc.
                let message = format!("MSG {} {} {line}\n", client.room, client.nick);
                let message: Arc<[u8]> = Arc::from(message.into_bytes());
                let peers: Vec<usize> = self.clients.iter().map(|(peer, _)| peer).collect();
                for peer in peers.into_iter().filter(|&peer| peer != key) {
                    self.queue(peer, &message);
                }
                return;
            }
        };
        self.send(key, reply.into_bytes());
    }

    /// Queues a reply meant for one client.
    fn send(&mut self, key: usize, bytes: Vec<u8>) {
        self.queue(key, &Arc::from(bytes));
    }

    /// Queues a shared line for `key` and marks it dirty. No syscall here.
    fn queue(&mut self, key: usize, line: &Arc<[u8]>) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        if !client.closing {
            self.lines += 1;
            client.queued += line.len();
            client.output.push_back(Arc::clone(line));
            self.mark_dirty(key);
        }
    }

    /// Puts `key` on the list of connections to flush at the end of the turn.
    fn mark_dirty(&mut self, key: usize) {
        if let Some(client) = self.clients.get_mut(key)
            && !client.dirty
        {
            client.dirty = true;
            self.dirty.push(key);
        }
    }

    /// THE FIX of this step: each dirty connection is flushed once per turn.
    fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            if let Some(client) = self.clients.get_mut(key) {
                client.dirty = false;
                self.flush(key);
            }
        }
    }

    /// Writes queued lines with `writev` until done or `WouldBlock`, cuts a slow
    /// consumer, then fixes the interest.
    fn flush(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        while !client.output.is_empty() && !client.closing {
            let slices: Vec<IoSlice<'_>> = client
                .output
                .iter()
                .take(MAX_SLICES)
                .enumerate()
                .map(|(i, line)| {
                    IoSlice::new(if i == 0 {
                        &line[client.front_sent..]
                    } else {
                        line
                    })
                })
                .collect();
            self.writes += 1;
            match client.stream.write_vectored(&slices) {
                Ok(written) => consume(client, written),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => client.closing = true,
            }
        }
        if client.queued > SENDQ_LIMIT {
            // Kernel buffers full and a long queue: this client is not reading.
            client.closing = true;
            client.output = VecDeque::new();
            client.queued = 0;
        }
        // WRITABLE only while something is pending; reregister only on a change.
        let pending = !client.output.is_empty() && !client.closing;
        if pending != client.wants_write {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let registry = self.poll.registry();
            if registry
                .reregister(&mut client.stream, Token(key), interest)
                .is_err()
            {
                client.closing = true;
            }
            client.wants_write = pending;
        }
    }

    /// Removes the connections marked closing (dropping a stream closes it).
    fn reap(&mut self) {
        self.clients.retain(|_, client| !client.closing);
    }
}

/// Drops the first `written` bytes of the client's queue.
fn consume(client: &mut Client, written: usize) {
    client.queued -= written;
    let mut left = written;
    while left > 0 {
        let Some(front) = client.output.front() else {
            break;
        };
        let front_left = front.len() - client.front_sent;
        if left < front_left {
            client.front_sent += left;
            return;
        }
        left -= front_left;
        client.front_sent = 0;
        client.output.pop_front();
    }
}

/// The `/stats` reply: lines queued, `write` calls, and their ratio.
fn stats_line(lines: u64, writes: u64) -> String {
    let per_write = lines as f64 / writes.max(1) as f64;
    format!("OK stats lines={lines} writes={writes} lines-per-write={per_write:.2}\n")
}
