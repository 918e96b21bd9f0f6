//! The design miochat replaces: one OS thread per client, blocking sockets, and a
//! global lock around the list of peers. Kept as the baseline for
//! `scripts/compare.sh`; **do not build a server this way.**
//!
//! It speaks the subset of the miochat line protocol that the bench needs:
//! the welcome line, `/nick`, `/join` (one global room whatever the name), `/ping`,
//! `/quit`, and plain lines relayed to everyone else as `MSG room nick text`.
//!
//! What is wrong with it, and what miochat does instead (docs/DESIGN.md):
//! - a thread (and its stack) per connection; miochat: a few shards, each with a
//!   `mio::Poll` and a slab;
//! - every message is written to every peer with a blocking `write_all` while the
//!   global lock is held, so one client that stops reading stalls *everyone*;
//!   miochat queues per connection, flushes without blocking, and cuts slow consumers;
//! - one `write` syscall per message per peer; miochat batches a turn's output into
//!   one `writev` per connection.
//!
//! Run: `cargo run --release --example threaded_chat -- 127.0.0.1:7879`

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

type Peers = Arc<Mutex<Vec<(u64, TcpStream)>>>;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("threaded_chat: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("threaded_chat listening on {local}"),
        Err(e) => eprintln!("threaded_chat: {e}"),
    }
    let peers: Peers = Arc::new(Mutex::new(Vec::new()));
    let ids = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (peers, id) = (Arc::clone(&peers), ids.fetch_add(1, Ordering::Relaxed) + 1);
        thread::spawn(move || serve(stream, id, peers));
    }
}

fn serve(stream: TcpStream, id: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let (Ok(mut out), Ok(reg)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let mut nick = format!("guest{id}");
    let mut room = String::from("lobby");
    let _ = writeln!(out, "OK welcome {nick} {room} (threaded baseline)");
    lock(&peers).push((id, reg));
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
                let msg = format!("MSG {room} {nick} {line}\n");
                // The global lock is held across every blocking write.
                for (peer, s) in lock(&peers).iter_mut() {
                    if *peer != id {
                        let _ = s.write_all(msg.as_bytes());
                    }
                }
                continue;
            }
        };
        if writeln!(out, "{reply}").is_err() {
            break;
        }
    }
    lock(&peers).retain(|(peer, _)| *peer != id);
}

fn lock(peers: &Peers) -> std::sync::MutexGuard<'_, Vec<(u64, TcpStream)>> {
    peers.lock().unwrap_or_else(|p| p.into_inner())
}
