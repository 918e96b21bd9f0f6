//! Ladder step 4: fairness and backpressure. A read budget per connection per turn,
//! with a ready list for the connections it cut short, and a send-queue limit that
//! disconnects a client that does not read.
//!
//! What changes from step 3, and why (docs/TUTORIAL.md, step 4):
//! - **A read budget.** `drain` reads at most `READS_PER_TURN` chunks of `READ_CHUNK`
//!   bytes from one connection, then moves on. A flooder gets its share of a turn, not
//!   the whole loop.
//! - **A ready list.** A connection cut short by the budget still has bytes in the
//!   kernel, and (edge-triggered) the kernel will not report them again. So it goes on
//!   `ready`, is read again at the end of the turn, and while `ready` is not empty
//!   `poll` is called with a zero timeout, so the loop keeps turning instead of
//!   sleeping on a promise no event will keep.
//! - **A send-queue limit.** After a flush that hit `WouldBlock`, a client with more
//!   than `SENDQ_LIMIT` bytes still unsent has full kernel buffers *and* a long queue:
//!   it is not reading. It is disconnected as a slow consumer and its queue freed.
//!   The check is made after the flush, not when queueing, so a fast reader is never
//!   cut for a burst it is able to take. Nobody else is slowed down.
//! - **`/stats`** counts lines queued and `write` calls, to show what step 5 changes.
//!
//! What it still gets wrong:
//! - **One `write` per line per recipient.** `/stats` shows it: lines per write stays
//!   close to 1. At room size N a line costs N syscalls; this, not parsing, bounds
//!   fan-out. The line is also copied into every recipient's queue. Step 5 renders it
//!   once, shares it, and flushes each connection once per turn with `writev`
//!   (`tests/ladder.rs`: `failure_of_step4_...`).
//!
//! Run: `cargo run --release --example ladder4_fair -- 127.0.0.1:0`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
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

/// One connected client.
struct Client {
    stream: TcpStream,
    nick: String,
    room: String,
    /// Bytes of an incomplete line.
    input: Vec<u8>,
    /// Bytes not yet written: `output[sent..]`.
    output: Vec<u8>,
    sent: usize,
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
    /// Lines queued for clients, and `write` calls made (for `/stats`).
    lines: u64,
    writes: u64,
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    if let Err(e) = run(&addr) {
        eprintln!("ladder4_fair: {addr}: {e}");
        std::process::exit(1);
    }
}

/// The event loop.
fn run(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    println!("ladder4_fair listening on {}", listener.local_addr()?);
    let mut server = Server {
        poll: Poll::new()?,
        clients: Slab::new(),
        guests: 0,
        scratch: vec![0; READ_CHUNK],
        ready: Vec::new(),
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
                server.flush(key);
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
            let welcome = format!("OK welcome {nick} lobby (ladder step 4: fair)\n");
            self.clients.insert(Client {
                stream,
                nick,
                room: "lobby".into(),
                input: Vec::new(),
                output: Vec::new(),
                sent: 0,
                wants_write: false,
                closing: false,
                on_ready_list: false,
            });
            self.send(key, welcome.as_bytes());
        }
    }

    /// Reads until `WouldBlock`, but at most `READS_PER_TURN` times (THE FIX of this
    /// step); a connection cut short goes on the ready list.
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
                self.send(key, b"OK bye\n");
                self.clients[key].closing = true;
                return;
            }
            "" => return,
            _ if line.starts_with('/') => format!("ERR unknown-command {command}\n"),
            _ => {
                let message = format!("MSG {} {} {line}\n", client.room, client.nick);
                let peers: Vec<usize> = self.clients.iter().map(|(peer, _)| peer).collect();
                for peer in peers.into_iter().filter(|&peer| peer != key) {
                    self.send(peer, message.as_bytes());
                }
                return;
            }
        };
        self.send(key, reply.as_bytes());
    }

    /// Queues `bytes` for `key` and tries to write them now.
    fn send(&mut self, key: usize, bytes: &[u8]) {
        let client = &mut self.clients[key];
        if !client.closing {
            self.lines += 1;
            client.output.extend_from_slice(bytes);
            self.flush(key);
        }
    }

    /// Writes queued output until done or `WouldBlock`, then fixes the interest.
    fn flush(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        while client.sent < client.output.len() && !client.closing {
            self.writes += 1;
            match client.stream.write(&client.output[client.sent..]) {
                Ok(n) => client.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => client.closing = true,
            }
        }
        if client.sent == client.output.len() {
            client.output.clear();
            client.sent = 0;
        } else if client.output.len() - client.sent > SENDQ_LIMIT {
            // Kernel buffers full and a long queue: this client is not reading.
            client.closing = true;
            client.output = Vec::new();
            client.sent = 0;
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

/// The `/stats` reply: lines queued, `write` calls, and their ratio.
fn stats_line(lines: u64, writes: u64) -> String {
    let per_write = lines as f64 / writes.max(1) as f64;
    format!("OK stats lines={lines} writes={writes} lines-per-write={per_write:.2}\n")
}
