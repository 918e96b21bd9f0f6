//! Ladder step 1: blocking sockets, one thread per client, one lock around the peers.
//!
//! This is where most chat servers start, and where the write-up miochat grew from
//! ends: `accept` in a loop, `thread::spawn` per connection, `BufReader::lines` to read,
//! and a `Mutex<Vec<TcpStream>>` of everybody to broadcast to. It is short and it is
//! correct in the easy case. Every later step of the ladder keeps its protocol (see
//! docs/TUTORIAL.md) so the same bench and the same tests drive all of them:
//! a welcome line, `/nick`, `/join` (there is one room, whatever its name), `/ping`,
//! `/quit`, and plain lines relayed to everyone else as `MSG room nick text`.
//!
//! What it gets wrong, and which step fixes it:
//! - **Memory and scheduling per client.** Each connection costs a thread: a stack
//!   (2 MiB reserved by Rust's default, a few KiB actually touched), a kernel task, and
//!   a context switch per line received. Ten thousand idle clients are ten thousand
//!   threads. Step 2 replaces them with one `mio::Poll` loop.
//! - **A lock per broadcast, held across blocking writes.** The sender takes the global
//!   lock and calls `write_all` to every peer while holding it. Every other sender waits
//!   on that lock, so broadcasts are serialised through one mutex.
//! - **A slow reader blocks the sender, and then everyone.** `write_all` blocks when a
//!   peer's socket buffer is full. A client that stops reading therefore freezes the
//!   thread that writes to it *while it holds the lock*: nobody can broadcast any more.
//!   Steps 3 and 4 give each connection its own output queue and cut slow consumers.
//! - One `write` syscall per line per recipient (step 5 batches them).
//!
//! This step is also the thread-per-client baseline of `scripts/compare.sh`.
//!
//! Run: `cargo run --release --example ladder1_threads -- 127.0.0.1:0` (prints the
//! address it bound).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

/// Every connected client: its id and a handle to write to it.
type Peers = Arc<Mutex<Vec<(u64, TcpStream)>>>;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ladder1_threads: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("ladder1_threads listening on {local}"),
        Err(e) => eprintln!("ladder1_threads: {e}"),
    }
    let peers: Peers = Arc::new(Mutex::new(Vec::new()));
    let ids = AtomicU64::new(0);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
        let peers = Arc::clone(&peers);
        // One thread per client: the whole design is this line.
        thread::spawn(move || serve(stream, id, peers));
    }
}

/// Runs one client until it quits or its socket fails.
fn serve(stream: TcpStream, id: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let (Ok(mut out), Ok(for_peers)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let mut nick = format!("guest{id}");
    let mut room = String::from("lobby");
    let _ = writeln!(out, "OK welcome {nick} {room} (ladder step 1: threads)");
    lock(&peers).push((id, for_peers));
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let line = line.trim_end_matches('\r');
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let reply = match command {
            "/nick" => {
                nick = arg.to_string();
                format!("OK nick {nick}")
            }
            "/join" => {
                room = arg.trim_start_matches('#').to_string();
                format!("OK joined {room} {}", lock(&peers).len())
            }
            "/ping" => "PONG".to_string(),
            "/quit" => {
                let _ = writeln!(out, "OK bye");
                break;
            }
            "" => continue,
            _ if line.starts_with('/') => format!("ERR unknown-command {command}"),
            _ => {
                broadcast(&peers, id, &format!("MSG {room} {nick} {line}\n"));
                continue;
            }
        };
        if writeln!(out, "{reply}").is_err() {
            break;
        }
    }
    lock(&peers).retain(|(peer, _)| *peer != id);
}

/// Writes `line` to every peer but `from`. The global lock is held across every
/// blocking write: one peer that does not read stops every broadcast.
fn broadcast(peers: &Peers, from: u64, line: &str) {
    for (peer, stream) in lock(peers).iter_mut() {
        if *peer != from {
            let _ = stream.write_all(line.as_bytes());
        }
    }
}

/// The peer list, even if a thread panicked while holding it.
fn lock(peers: &Peers) -> MutexGuard<'_, Vec<(u64, TcpStream)>> {
    peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
