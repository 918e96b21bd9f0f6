//! The ladder of example servers (`examples/ladder*.rs`, walked in docs/TUTORIAL.md):
//! every step chats, and each of steps 2 to 4 shows the failure the next step fixes.
//!
//! The examples are separate binaries, and cargo gives integration tests no path to
//! an example (`CARGO_BIN_EXE_*` exists only for `[[bin]]`s). So the first test that
//! needs one runs `cargo build --examples` once, with this test binary's own target
//! directory and profile, and runs the result from `target/<profile>/examples/`. On a
//! clean clone that is one extra build of five small files.
//!
//! Tests named `failure_of_stepN_...` **assert that step N fails**: they reproduce the
//! bug step N+1 fixes, bounded in time, and pass when the bug shows. The test that
//! follows each runs the same scenario against the later steps and asserts the fix.
//! Nothing here asserts on speed: the fairness test compares the *order* in which an
//! observer receives lines, and the batching test counts syscalls.
//!
//! Everything is on 127.0.0.1; every read has a timeout; servers are killed on drop.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The ladder, in order; index + 1 is the step number.
const STEPS: [&str; 6] = [
    "ladder1_threads",
    "ladder2_naive_loop",
    "ladder3_edge_triggered",
    "ladder4_fair",
    "ladder5_batched",
    "ladder6_sharded",
];

/// How long a client waits for one line before giving up.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the examples once; returns `target/<profile>/examples`.
fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This binary is target/<profile>/deps/ladder-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let status = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--examples", "--quiet", "--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --examples failed");
        profile_dir.join("examples")
    })
}

/// A running example server, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `name` on a free loopback port and reads the address it prints.
    fn start(name: &str, extra_args: &[&str]) -> Server {
        let mut child = Command::new(examples_dir().join(name))
            .arg("127.0.0.1:0")
            .args(extra_args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(LINE_TIMEOUT).unwrap_or_default();
        let addr = line.trim().rsplit(' ').next().unwrap_or_default().parse();
        let Ok(addr) = addr else {
            let _ = child.kill();
            panic!("{name} printed {line:?} instead of its address");
        };
        Server { child, addr }
    }

    /// The server's resident memory in KiB (Linux `/proc`).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test client speaking the ladder's protocol, with a timeout on every read.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Bytes of a line not complete yet (kept across timeouts).
    partial: Vec<u8>,
}

impl Client {
    /// Connects, reads the welcome, sets the nick and joins `room`.
    fn join(addr: SocketAddr, nick: &str, room: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        let mut client = Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            partial: Vec::new(),
        };
        client.expect("OK welcome ");
        client.send(&format!("/nick {nick}"));
        client.expect(&format!("OK nick {nick}"));
        client.send(&format!("/join {room}"));
        client.expect(&format!("OK joined {room} "));
        client
    }

    /// Sends one line.
    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The next line, or `None` after the read timeout or at EOF.
    fn line(&mut self) -> Option<String> {
        match self.reader.read_until(b'\n', &mut self.partial) {
            Ok(_) if self.partial.ends_with(b"\n") => {
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end()
                    .to_string();
                self.partial.clear();
                Some(line)
            }
            _ => None,
        }
    }

    /// Reads lines until one starts with `prefix`; panics after the timeout.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.line() {
                Some(line) if line.starts_with(prefix) => return line,
                Some(_) => {}
                None => panic!("no line starting with {prefix:?}"),
            }
        }
    }

    /// Counts `MSG` lines until none comes for `quiet`.
    fn count_messages(&mut self, quiet: Duration) -> usize {
        self.reader.get_ref().set_read_timeout(Some(quiet)).unwrap();
        let mut count = 0;
        while let Some(line) = self.line() {
            count += usize::from(line.starts_with("MSG "));
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(LINE_TIMEOUT))
            .unwrap();
        count
    }

    /// A thread that reads and discards everything (a client that keeps up).
    fn discard_in_background(self) {
        let mut reader = self.reader.into_inner();
        thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            while matches!(reader.read(&mut buffer), Ok(n) if n > 0) {}
        });
    }
}

/// `count` lines of about 100 bytes, in one string, for one `write_all`.
fn burst(tag: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{tag}-{i:05}-{}\n", "x".repeat(88)))
        .collect()
}

#[test]
fn every_step_relays_a_chat_between_two_clients() {
    for name in STEPS {
        let server = Server::start(name, &[]);
        let mut alice = Client::join(server.addr, "alice", "rust");
        let mut bob = Client::join(server.addr, "bob", "rust");
        alice.send("hello bob");
        assert_eq!(bob.expect("MSG "), "MSG rust alice hello bob", "{name}");
        bob.send("hi alice");
        assert_eq!(alice.expect("MSG "), "MSG rust bob hi alice", "{name}");
        bob.send("/ping");
        bob.expect("PONG");
    }
}

/// Sends 80 lines (8 KB) in one write; returns how many the other client received
/// before the server went quiet for a second.
fn burst_delivered(server: &Server) -> (Client, Client, usize) {
    let mut alice = Client::join(server.addr, "alice", "rust");
    let mut bob = Client::join(server.addr, "bob", "rust");
    alice
        .writer
        .write_all(burst("burst", 80).as_bytes())
        .unwrap();
    let received = bob.count_messages(Duration::from_secs(1));
    eprintln!("{received} of 80 burst lines delivered");
    (alice, bob, received)
}

/// FAILURE DEMO (fixed by step 3): step 2 reads once per edge-triggered event, so a
/// burst bigger than its 1 KiB buffer stays in the kernel and the room stalls.
#[test]
fn failure_of_step2_a_burst_larger_than_one_read_stalls() {
    let server = Server::start("ladder2_naive_loop", &[]);
    let (mut alice, mut bob, received) = burst_delivered(&server);
    assert!(received < 80, "step 2 was expected to stall, got all 80");
    // The lines were not lost: they sit in the kernel until a new edge. Any new byte
    // from alice is such an edge, and the server reads one more buffer.
    alice.send("nudge");
    let after_nudge = bob.count_messages(Duration::from_secs(1));
    assert!(after_nudge > 0, "a new edge should release more lines");
}

#[test]
fn steps_3_to_6_serve_a_burst_larger_than_one_read() {
    for name in &STEPS[2..] {
        let server = Server::start(name, &[]);
        let (_alice, _bob, received) = burst_delivered(&server);
        assert_eq!(received, 80, "{name}");
    }
}

/// A flooder sends `lines` lines; once the observer has seen the flood start, a
/// second client says one line. Returns how many flood lines the observer received
/// before that one line: the server's handling order.
fn flood_lines_before_a_quiet_client(server: &Server, lines: usize) -> usize {
    let mut flooder = Client::join(server.addr, "flooder", "rust");
    let quiet = Client::join(server.addr, "quiet", "rust");
    let mut observer = Client::join(server.addr, "observer", "rust");
    let mut quiet_writer = quiet.writer.try_clone().unwrap();
    quiet.discard_in_background();
    let flood = burst("flood", lines);
    let flooding = thread::spawn(move || {
        flooder.writer.write_all(flood.as_bytes()).unwrap();
        flooder
    });
    let mut before = 0;
    let mut spoke = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let line = observer.line().expect("observer saw the room go silent");
        if line.starts_with("MSG rust quiet ") {
            break;
        }
        before += usize::from(line.starts_with("MSG rust flooder "));
        if !spoke {
            quiet_writer.write_all(b"my turn\n").unwrap();
            spoke = true;
        }
    }
    let _ = flooding.join();
    eprintln!("the quiet client's line came after {before} of {lines} flood lines");
    before
}

/// FAILURE DEMO (fixed by step 4): step 3 reads a flooder until `WouldBlock`, so a
/// client that speaks during the flood is handled only after (nearly) all of it.
#[test]
fn failure_of_step3_a_flooder_starves_the_others() {
    let server = Server::start("ladder3_edge_triggered", &[]);
    let before = flood_lines_before_a_quiet_client(&server, 40_000);
    assert!(
        before > 36_000,
        "step 3 was expected to serve the quiet client after the flood; it came after {before} of 40000 lines"
    );
}

#[test]
fn steps_4_to_6_serve_a_quiet_client_during_a_flood() {
    for name in &STEPS[3..] {
        let server = Server::start(name, &[]);
        let before = flood_lines_before_a_quiet_client(&server, 40_000);
        assert!(
            before < 30_000,
            "{name}: came after {before} of 40000 lines"
        );
    }
}

/// A client that never reads joins; 32 MB go through the room to a reader that keeps
/// up. Returns the server's RSS growth in KiB and the two clients.
fn flood_past_a_reader_that_never_reads(server: &Server) -> (u64, Client, Client) {
    let mut sender = Client::join(server.addr, "sender", "rust");
    let mut reader = Client::join(server.addr, "reader", "rust");
    let stalled = Client::join(server.addr, "stalled", "rust");
    let rss_before = server.rss_kib();
    let line = format!("{}\n", "y".repeat(999));
    let mut writer = sender.writer.try_clone().unwrap();
    let sending = thread::spawn(move || {
        for _ in 0..32 * 1024 {
            writer.write_all(line.as_bytes()).unwrap();
        }
    });
    let mut received = 0;
    while received < 32 * 1024 {
        let line = reader.line().expect("the reading client stopped receiving");
        received += usize::from(line.starts_with("MSG rust sender "));
    }
    sending.join().unwrap();
    // Everything was handled; what the server still holds is for `stalled`.
    sender.send("/ping");
    sender.expect("PONG");
    let grown_kib = server.rss_kib().saturating_sub(rss_before);
    eprintln!("server RSS grew by {grown_kib} KiB");
    (grown_kib, reader, stalled)
}

/// FAILURE DEMO (fixed by step 4): step 3 queues without limit for a client that
/// never reads, so the server's memory grows with everything the room says.
#[test]
fn failure_of_step3_a_reader_that_never_reads_grows_the_server_without_bound() {
    let server = Server::start("ladder3_edge_triggered", &[]);
    let (grown_kib, _reader, _stalled) = flood_past_a_reader_that_never_reads(&server);
    assert!(
        grown_kib > 12 * 1024,
        "step 3 was expected to hold megabytes for the stalled client; grew {grown_kib} KiB"
    );
}

#[test]
fn steps_4_to_6_cut_a_reader_that_never_reads() {
    for name in &STEPS[3..] {
        let server = Server::start(name, &[]);
        let (_grown, _reader, mut stalled) = flood_past_a_reader_that_never_reads(&server);
        // It was cut: reading what the kernel holds for it ends in EOF (or a reset).
        let mut sink = vec![0u8; 64 * 1024];
        let closed = loop {
            match stalled.reader.read(&mut sink) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "{name}: the stalled client was not disconnected");
    }
}

/// Alice sends 200 lines in one write; bob reads them; returns `/stats`
/// lines-per-write.
fn lines_per_write(server: &Server) -> f64 {
    let mut alice = Client::join(server.addr, "alice", "rust");
    let mut bob = Client::join(server.addr, "bob", "rust");
    alice
        .writer
        .write_all(burst("batch", 200).as_bytes())
        .unwrap();
    for _ in 0..200 {
        bob.expect("MSG rust alice batch-");
    }
    bob.send("/stats");
    let stats = bob.expect("OK stats ");
    let figure = stats.rsplit("lines-per-write=").next().unwrap();
    eprintln!("{stats}");
    figure.parse().unwrap()
}

/// FAILURE DEMO (fixed by step 5): step 4 makes one `write` per line per recipient.
#[test]
fn failure_of_step4_one_write_per_line() {
    let server = Server::start("ladder4_fair", &[]);
    let figure = lines_per_write(&server);
    assert!(
        figure < 1.5,
        "step 4 was expected to write line by line: {figure}"
    );
}

#[test]
fn steps_5_and_6_carry_many_lines_per_write() {
    for name in &STEPS[4..] {
        let server = Server::start(name, &[]);
        let figure = lines_per_write(&server);
        assert!(figure > 4.0, "{name}: only {figure} lines per write");
    }
}

/// Step 6 with two shards: four clients (spread over both) talk at once; every pair
/// of clients sees the lines they both receive in the same order.
#[test]
fn step6_every_member_sees_one_order() {
    let server = Server::start("ladder6_sharded", &["2"]);
    let nicks = ["n0", "n1", "n2", "n3"];
    let mut clients: Vec<Client> = nicks
        .iter()
        .map(|n| Client::join(server.addr, n, "r"))
        .collect();
    let writers: Vec<_> = clients
        .iter()
        .zip(nicks)
        .map(|(c, nick)| {
            let mut writer = c.writer.try_clone().unwrap();
            thread::spawn(move || {
                for i in 0..100 {
                    writer
                        .write_all(format!("{nick}-{i:03}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let seen: Vec<Vec<String>> = clients
        .iter_mut()
        .map(|c| (0..300).map(|_| c.expect("MSG r ")).collect())
        .collect();
    for (a, seen_a) in seen.iter().enumerate() {
        for (b, seen_b) in seen.iter().enumerate().skip(a + 1) {
            let sender = |line: &String| line.split(' ').nth(2).unwrap_or_default().to_string();
            let common = |line: &&String| sender(line) != nicks[a] && sender(line) != nicks[b];
            let order_a: Vec<&String> = seen_a.iter().filter(common).collect();
            let order_b: Vec<&String> = seen_b.iter().filter(common).collect();
            assert_eq!(order_a, order_b, "{} and {} disagree", nicks[a], nicks[b]);
        }
    }
}
