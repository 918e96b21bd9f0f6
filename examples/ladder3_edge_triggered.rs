//! Ladder step 3: edge-triggered IO done right. Drain to `WouldBlock`, queue output per
//! connection, and ask for WRITABLE only while some of it is pending.
//!
//! What changes from step 2, and why (docs/TUTORIAL.md, step 3):
//! - **Read until `WouldBlock`.** An edge-triggered event promises nothing more: bytes
//!   left in the kernel will not be reported again. So every READABLE event reads in a
//!   loop until the socket says `WouldBlock` (or EOF, or an error). The burst that
//!   stalled step 2 is now served at once. Read-closed and error flags are treated as
//!   hints: they lead to a read, and the read's result decides.
//! - **An output queue per connection.** A write that is short, or refused with
//!   `WouldBlock`, leaves the rest in the connection's own `output` buffer instead of
//!   dropping it. Nothing is lost any more.
//! - **WRITABLE only while output is pending.** Asking for WRITABLE all the time would
//!   wake the loop for every socket with room in its buffer, which is nearly all of
//!   them. Interest becomes READABLE|WRITABLE when a flush leaves bytes behind, and
//!   back to READABLE when the queue empties; `reregister` is called only on a change.
//! - **Close at the end of the turn.** A failing connection is only marked `closing`
//!   and removed after all events are handled, so a broadcast never walks a slab that
//!   changes under it.
//!
//! What it still gets wrong:
//! - **A flooder starves everybody.** "Drain to `WouldBlock`" has no limit: a client
//!   that sends faster than the server can relay keeps its socket non-empty, and the
//!   loop never returns to `poll`. Other clients wait for the whole flood.
//! - **A reader that never reads grows the server without bound.** Its queue takes
//!   every line the room sends it, forever. Step 4 adds a read budget and a send-queue
//!   limit; `tests/ladder.rs` shows both failures here (`failure_of_step3_...`).
//! - Still one `write` syscall per line per recipient, and the line is copied into
//!   every recipient's queue (step 5).
//!
//! Run: `cargo run --release --example ladder3_edge_triggered -- 127.0.0.1:0`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token; clients use their slab key.
const LISTENER: Token = Token(usize::MAX);

/// Bytes per `read` call, into one buffer shared by every connection.
const READ_CHUNK: usize = 16 * 1024;

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
}

/// The loop's state: the poll, every client, a scratch read buffer.
struct Server {
    poll: Poll,
    clients: Slab<Client>,
    guests: u64,
    scratch: Vec<u8>,
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    if let Err(e) = run(&addr) {
        eprintln!("ladder3_edge_triggered: {addr}: {e}");
        std::process::exit(1);
    }
}

/// The event loop.
fn run(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    println!(
        "ladder3_edge_triggered listening on {}",
        listener.local_addr()?
    );
    let mut server = Server {
        poll: Poll::new()?,
        clients: Slab::new(),
        guests: 0,
        scratch: vec![0; READ_CHUNK],
    };
    server
        .poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = server.poll.poll(&mut events, None) {
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
            let welcome = format!("OK welcome {nick} lobby (ladder step 3: edge-triggered)\n");
            self.clients.insert(Client {
                stream,
                nick,
                room: "lobby".into(),
                input: Vec::new(),
                output: Vec::new(),
                sent: 0,
                wants_write: false,
                closing: false,
            });
            self.send(key, welcome.as_bytes());
        }
    }

    /// THE FIX of this step: read until the kernel says `WouldBlock`.
    fn drain(&mut self, key: usize) {
        loop {
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
