//! Ladder step 6: sharded. N event loops (shards), each the loop of step 5, on N
//! threads; tokens carry the shard; lines cross shards through a channel plus a
//! `mio::Waker`; and one room keeps one order for all its members.
//!
//! What changes from step 5, and why (docs/TUTORIAL.md, step 6):
//! - **N shards.** Each thread owns a `Poll`, a slab of connections and its buffers,
//!   exactly as step 5; nothing in a shard is shared, so nothing is locked. Shard 0
//!   also owns the listener and hands accepted sockets round-robin to the shards
//!   (`Mail::Adopt`). A socket is registered only by the shard that owns it.
//! - **Tokens carry the shard.** `Token(key << SHARD_BITS | shard)`: a token names a
//!   connection anywhere in the server, so a line can say who sent it.
//! - **Channel plus `Waker`.** A shard sleeps in `poll`; a message in its channel is
//!   not enough, it must be woken. `Mailbox::post` sends, then wakes. Wakes coalesce
//!   (ten wakes may be one event), so a woken shard empties its channel, and it does
//!   so at the start of *every* turn, before reading sockets.
//! - **One order per room: a home shard.** If every shard fanned its clients' lines
//!   straight out to the others, shard 1 could deliver A-then-B while shard 2
//!   delivers B-then-A. So every room line goes first to the room's *home* shard
//!   (`HOME`, shard 0 here: there is one room), which alone puts lines in order: it
//!   delivers to its own members and forwards each line to every other shard over its
//!   FIFO channel. Every member sees the home shard's order; each sender's lines stay
//!   in the order sent; and a reply to a line is sequenced after the line it answers.
//! - **Batched mail.** Mail produced during a turn is sent at the end of the turn,
//!   one batch and one wake per peer shard, *before* the turn's output is flushed.
//!
//! What it still gets wrong: the channels between shards are unbounded. A shard that
//! falls behind (it got less CPU) builds a backlog of mail; `MAIL_PER_TURN` keeps that
//! backlog from being dumped into one turn, where it would trip the send-queue limit
//! of clients that read perfectly well, but the backlog itself is latency and memory.
//!
//! What it leaves out, and where miochat has it (read in this order):
//! `src/server/event_loop/token.rs` (tokens with a generation, so a slot's next owner never gets
//! the last one's mail: here a reused slot can miss one line), `src/server/event_loop/inbox.rs`
//! (the mail, rendered once per protocol), `src/server/event_loop/shard.rs` (the full turn: inbox
//! cap, idle timeouts, reaping with room notices), `src/server/commands/relay.rs` and
//! `src/server/state/directory.rs` (many rooms, nicks, private messages: one room line
//! crosses to each shard with members once), `src/server/acceptor.rs` (accept limits,
//! EMFILE, signals). Here: one room, no nick uniqueness, no shutdown.
//!
//! Run: `cargo run --release --example ladder6_sharded -- 127.0.0.1:0 [SHARDS]`
//! (default 2 shards).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// Low bits of a client token that hold its shard (so at most 16 shards).
const SHARD_BITS: u32 = 4;

/// The listener's token (shard 0 only) and each shard's waker token.
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// The room's home shard: the only one that puts room lines in order.
const HOME: usize = 0;

/// Bytes per `read` call, into one buffer shared by every connection.
const READ_CHUNK: usize = 16 * 1024;

/// Reads per connection per turn before the loop moves on (the fairness budget).
const READS_PER_TURN: usize = 4;

/// Unsent bytes after a flush beyond which a client is cut as a slow consumer.
const SENDQ_LIMIT: usize = 256 * 1024;

/// Queued lines handed to one `write_vectored` call (Linux accepts up to 1024).
const MAX_SLICES: usize = 64;

/// Mails handled per turn. A shard that fell behind must not turn its whole backlog
/// into one turn's output: that would look like a slow consumer to the limit above.
const MAIL_PER_TURN: usize = 1024;

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

/// What shards send each other.
enum Mail {
    /// A new connection for this shard to own, with its guest number.
    Adopt(TcpStream, u64),
    /// To the home shard: a room line said by the client `from`.
    Say { line: Arc<[u8]>, from: Token },
    /// From the home shard: a room line, in room order, for every local member but
    /// `from`.
    Deliver { line: Arc<[u8]>, from: Token },
}

/// How to reach a shard: its channel, then its waker.
#[derive(Clone)]
struct Mailbox {
    sender: Sender<Mail>,
    waker: Arc<Waker>,
}

impl Mailbox {
    /// Sends a batch, then wakes the shard once (send first: a woken shard must find
    /// the mail). A shard that has stopped is not an error of the sender.
    fn post(&self, batch: Vec<Mail>) {
        for mail in batch {
            let _ = self.sender.send(mail);
        }
        let _ = self.waker.wake();
    }
}

/// Counters shared by every shard (for `/join` and `/stats`).
#[derive(Default)]
struct Totals {
    members: AtomicU64,
    guests: AtomicU64,
    lines: AtomicU64,
    writes: AtomicU64,
}

/// One shard: the loop of step 5, plus its mail.
struct Server {
    id: usize,
    poll: Poll,
    clients: Slab<Client>,
    scratch: Vec<u8>,
    inbox: Receiver<Mail>,
    /// Every shard's mailbox, this one's included, by shard id.
    peers: Vec<Mailbox>,
    /// Mail produced this turn, per destination shard.
    outbound: Vec<Vec<Mail>>,
    /// Which shard gets the next accepted connection (shard 0 only).
    next_shard: usize,
    totals: Arc<Totals>,
    /// Mail was left in the channel at the end of the last `read_inbox`.
    mail_left: bool,
    /// Connections whose budget ran out with bytes still in the kernel.
    ready: Vec<usize>,
    /// Connections with output queued this turn.
    dirty: Vec<usize>,
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    let shards = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    if let Err(e) = run(&addr, shards) {
        eprintln!("ladder6_sharded: {addr}: {e}");
        std::process::exit(1);
    }
}

/// Builds the shards, starts one thread each, waits for them.
fn run(addr: &str, shards: usize) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    if shards == 0 || shards > 1 << SHARD_BITS {
        return Err(io::Error::new(ErrorKind::InvalidInput, "1 to 16 shards"));
    }
    let mut polls = Vec::new();
    let mut peers = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..shards {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (sender, inbox) = channel();
        polls.push(poll);
        peers.push(Mailbox { sender, waker });
        inboxes.push(inbox);
    }
    let mut listener = TcpListener::bind(addr)?;
    polls[0]
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("ladder6_sharded listening on {}", listener.local_addr()?);
    let totals = Arc::new(Totals::default());
    let mut listener = Some(listener);
    let mut threads = Vec::new();
    for (id, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let server = Server {
            id,
            poll,
            clients: Slab::new(),
            scratch: vec![0; READ_CHUNK],
            inbox,
            peers: peers.clone(),
            outbound: (0..shards).map(|_| Vec::new()).collect(),
            next_shard: 0,
            totals: Arc::clone(&totals),
            mail_left: false,
            ready: Vec::new(),
            dirty: Vec::new(),
        };
        let listener = listener.take();
        threads.push(thread::spawn(move || server.run(listener.as_ref())));
    }
    for handle in threads {
        handle
            .join()
            .map_err(|_| io::Error::other("a shard panicked"))??;
    }
    Ok(())
}

impl Server {
    /// The loop of one shard: mail first, then sockets, then the end of the turn.
    fn run(mut self, listener: Option<&TcpListener>) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            // Work left over (a ready list, mail): look at events, but do not sleep.
            let busy = !self.ready.is_empty() || self.mail_left;
            let timeout = busy.then_some(Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // Mail first, every turn, whatever the events say (wakes coalesce).
            self.read_inbox()?;
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept_all(listener)?,
                    token => {
                        let key = token.0 >> SHARD_BITS;
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.drain(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.ready) {
                if let Some(client) = self.clients.get_mut(key) {
                    client.on_ready_list = false;
                    self.drain(key);
                }
            }
            self.send_outbound();
            self.flush_dirty();
            self.reap();
        }
    }

    /// This shard's token for slab `key`.
    fn token(&self, key: usize) -> Token {
        Token(key << SHARD_BITS | self.id)
    }

    /// Handles the mail waiting in the channel, at most `MAIL_PER_TURN`; the rest
    /// waits for the next turn (no wake will come for it: `mail_left` remembers).
    fn read_inbox(&mut self) -> io::Result<()> {
        self.mail_left = true;
        for _ in 0..MAIL_PER_TURN {
            let Ok(mail) = self.inbox.try_recv() else {
                self.mail_left = false;
                break;
            };
            match mail {
                Mail::Adopt(stream, guest) => self.adopt(stream, guest)?,
                Mail::Say { line, from } => self.sequence(line, from),
                Mail::Deliver { line, from } => self.deliver_local(&line, from),
            }
        }
        Ok(())
    }

    /// Sends each peer shard this turn's mail, one batch and one wake each.
    fn send_outbound(&mut self) {
        for (shard, batch) in self.outbound.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.peers[shard].post(std::mem::take(batch));
            }
        }
    }

    /// Shard 0: accepts every pending connection, and deals them out round-robin.
    fn accept_all(&mut self, listener: Option<&TcpListener>) -> io::Result<()> {
        let Some(listener) = listener else {
            return Ok(());
        };
        loop {
            let (stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let guest = self.totals.guests.fetch_add(1, Relaxed) + 1;
            let shard = self.next_shard;
            self.next_shard = (shard + 1) % self.peers.len();
            if shard == self.id {
                self.adopt(stream, guest)?;
            } else {
                // Unregistered: only the owning shard registers it, with its Poll.
                self.peers[shard].post(vec![Mail::Adopt(stream, guest)]);
            }
        }
    }

    /// Takes ownership of a connection: registers it here and greets it.
    fn adopt(&mut self, mut stream: TcpStream, guest: u64) -> io::Result<()> {
        let _ = stream.set_nodelay(true);
        let key = self.clients.vacant_key();
        self.poll
            .registry()
            .register(&mut stream, self.token(key), Interest::READABLE)?;
        self.totals.members.fetch_add(1, Relaxed);
        let nick = format!("guest{guest}");
        let welcome = format!("OK welcome {nick} lobby (ladder step 6: sharded)\n");
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
        Ok(())
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
        let members = self.totals.members.load(Relaxed);
        let from = self.token(key);
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
            "/stats" => stats_line(
                self.totals.lines.load(Relaxed),
                self.totals.writes.load(Relaxed),
            ),
            "/quit" => {
                self.send(key, b"OK bye\n".to_vec());
                self.clients[key].closing = true;
                return;
            }
            "" => return,
            _ if line.starts_with('/') => format!("ERR unknown-command {command}\n"),
            _ => {
                // Rendered once, then put in order by the home shard.
                let message = format!("MSG {} {} {line}\n", client.room, client.nick);
                let line: Arc<[u8]> = Arc::from(message.into_bytes());
                if self.id == HOME {
                    self.sequence(line, from);
                } else {
                    self.outbound[HOME].push(Mail::Say { line, from });
                }
                return;
            }
        };
        self.send(key, reply.into_bytes());
    }

    /// Home shard only: the line's place in the room's order is now. Deliver it here
    /// and forward it to every other shard, in this order, over FIFO channels.
    fn sequence(&mut self, line: Arc<[u8]>, from: Token) {
        self.deliver_local(&line, from);
        for shard in (0..self.peers.len()).filter(|&shard| shard != self.id) {
            let line = Arc::clone(&line);
            self.outbound[shard].push(Mail::Deliver { line, from });
        }
    }

    /// Queues a room line for every local member but its sender.
    fn deliver_local(&mut self, line: &Arc<[u8]>, from: Token) {
        let members: Vec<usize> = (self.clients.iter().map(|(key, _)| key))
            .filter(|&key| self.token(key) != from)
            .collect();
        for key in members {
            self.queue(key, line);
        }
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
            self.totals.lines.fetch_add(1, Relaxed);
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
            self.totals.writes.fetch_add(1, Relaxed);
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
                .reregister(
                    &mut client.stream,
                    Token(key << SHARD_BITS | self.id),
                    interest,
                )
                .is_err()
            {
                client.closing = true;
            }
            client.wants_write = pending;
        }
    }

    /// Removes the connections marked closing (dropping a stream closes it).
    fn reap(&mut self) {
        let before = self.clients.len();
        self.clients.retain(|_, client| !client.closing);
        let gone = (before - self.clients.len()) as u64;
        self.totals.members.fetch_sub(gone, Relaxed);
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
