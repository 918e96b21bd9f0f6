//! Ladder step 2: one `mio::Poll` loop, written with a level-triggered mindset. It is
//! *wrong on purpose*: this is the bug almost everybody writes first.
//!
//! What changes from step 1: no threads. One thread owns every socket, all of them
//! non-blocking, registered with one `mio::Poll`; the connections live in a `Slab`
//! indexed by their `Token`. An idle client now costs a slab entry and two small
//! buffers instead of a thread, and a broadcast takes no lock (nothing is shared).
//!
//! What it gets wrong, and why (docs/TUTORIAL.md, step 2):
//! - **One read per event.** With `select`/`poll` (level-triggered) that is fine: if
//!   bytes are left in the socket, the next call reports it again. mio is
//!   *edge-triggered*: an event says readiness changed, once. Here each READABLE event
//!   gets one `read` into a 1 KiB buffer. A client that sends more than 1 KiB in one
//!   go leaves the rest in the kernel, and no new event will come for it until the
//!   client sends again. The lines are not lost, they are stuck: the client stalls.
//!   `tests/ladder.rs` shows it (`failure_of_step2_...`); step 3 reads until
//!   `WouldBlock`.
//! - **Writes are fire and forget.** `stream.write(bytes)` on a non-blocking socket may
//!   write part of the bytes, or fail with `WouldBlock` when the peer's buffers are
//!   full. Both results are ignored, so under load lines silently vanish or arrive cut.
//!   Step 3 gives each connection an output queue and WRITABLE interest.
//! - It still formats the line once per message but writes it once per recipient (one
//!   syscall per delivery, step 5).
//!
//! Accepting is looped until `WouldBlock` (as in every mio example); only reads and
//! writes show the mistake, so that the bench can still connect its clients.
//!
//! Run: `cargo run --release --example ladder2_naive_loop -- 127.0.0.1:0`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token; clients use their slab key.
const LISTENER: Token = Token(usize::MAX);

/// One read of at most this many bytes per event: the bug of this step.
const READ_BUFFER: usize = 1024;

/// One connected client.
struct Client {
    stream: TcpStream,
    nick: String,
    room: String,
    /// Bytes of an incomplete line, kept until its `\n` arrives.
    partial: Vec<u8>,
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    if let Err(e) = run(&addr) {
        eprintln!("ladder2_naive_loop: {addr}: {e}");
        std::process::exit(1);
    }
}

/// The event loop: accept, or read once.
fn run(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    println!("ladder2_naive_loop listening on {}", listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut clients: Slab<Client> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut guests = 0u64;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut clients, &mut guests)?;
            } else {
                read_once(&mut clients, event.token().0);
            }
        }
    }
}

/// Accepts every pending connection and greets it.
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    clients: &mut Slab<Client>,
    guests: &mut u64,
) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let entry = clients.vacant_entry();
        poll.registry()
            .register(&mut stream, Token(entry.key()), Interest::READABLE)?;
        *guests += 1;
        let nick = format!("guest{guests}");
        let welcome = format!("OK welcome {nick} lobby (ladder step 2: naive loop)\n");
        // Fire and forget, like every write of this step.
        let _ = stream.write(welcome.as_bytes());
        entry.insert(Client {
            stream,
            nick,
            room: "lobby".into(),
            partial: Vec::new(),
        });
    }
}

/// THE BUG: one `read` per readiness event, as if the event would come again.
fn read_once(clients: &mut Slab<Client>, key: usize) {
    let Some(client) = clients.get_mut(key) else {
        return;
    };
    let mut buffer = [0u8; READ_BUFFER];
    match client.stream.read(&mut buffer) {
        Ok(0) => {
            clients.remove(key);
            return;
        }
        Ok(n) => client.partial.extend_from_slice(&buffer[..n]),
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
            return;
        }
        Err(_) => {
            clients.remove(key);
            return;
        }
    }
    // Whatever did not fit in `buffer` stays in the kernel until the next edge.
    while let Some(newline) = clients[key].partial.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = clients[key].partial.drain(..=newline).collect();
        let text = String::from_utf8_lossy(&line);
        if !on_line(clients, key, text.trim_end_matches(['\r', '\n'])) {
            clients.remove(key);
            return;
        }
    }
}

/// Applies one line; false if the client quit.
fn on_line(clients: &mut Slab<Client>, key: usize, line: &str) -> bool {
    let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
    let members = clients.len();
    let client = &mut clients[key];
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
            let _ = client.stream.write(b"OK bye\n");
            return false;
        }
        "" => return true,
        _ if line.starts_with('/') => format!("ERR unknown-command {command}\n"),
        _ => {
            let message = format!("MSG {} {} {line}\n", client.room, client.nick);
            for (peer, other) in clients.iter_mut() {
                if peer != key {
                    // A short write or WouldBlock loses (part of) the line.
                    let _ = other.stream.write(message.as_bytes());
                }
            }
            return true;
        }
    };
    let _ = clients[key].stream.write(reply.as_bytes());
    true
}
