//! Fault tests: each injects one hostile or broken client (or an exhausted resource)
//! and asserts that the other clients keep receiving every message.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use miochat::bench::report::proc_cpu;

use crate::common::{TestClient, TestServer, signal, wait_with_timeout};

/// Two clients that talk throughout a fault: `check` proves nothing was lost.
struct Witnesses {
    talker: TestClient,
    listener: TestClient,
    sent: usize,
}

impl Witnesses {
    fn new(addr: SocketAddr) -> Witnesses {
        let mut talker = TestClient::connect(addr);
        talker.set_nick("talker");
        talker.join("calm");
        let mut listener = TestClient::connect(addr);
        listener.set_nick("listener");
        listener.join("calm");
        Witnesses {
            talker,
            listener,
            sent: 0,
        }
    }

    /// Sends `n` messages and checks the listener gets each, in order.
    #[track_caller]
    fn check(&mut self, n: usize) {
        for _ in 0..n {
            self.talker.send(&format!("witness {}", self.sent));
            let want = format!("MSG calm talker witness {}", self.sent);
            assert_eq!(self.listener.expect("MSG "), want);
            self.sent += 1;
        }
    }
}

#[test]
fn silent_and_half_line_clients_harm_nobody() {
    let server = TestServer::start();
    let mut w = Witnesses::new(server.addr);
    let silent: Vec<_> = (0..50)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    w.check(10);
    let mut half = TestClient::connect(server.addr);
    half.send_raw(b"/join calm\nthis line never ends");
    w.check(10);
    drop(half);
    drop(silent);
    w.check(10);
}

#[test]
fn a_client_that_never_reads_is_cut_and_released() {
    let server = TestServer::start_with(|c| c.sendq = 8 * 1024);
    let mut w = Witnesses::new(server.addr);
    let mut deaf = TestClient::connect(server.addr);
    deaf.join("calm");
    // The listener keeps up (it reads each line); the deaf client reads nothing.
    // Flood until the cut shows up in the room (bounded: kernel buffers are finite).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // 50 lines (10 KB) at a time: well under the 4 x sendq bound of one turn, so
        // the listener, who reads, is never at risk.
        let text: String = (0..50)
            .map(|i| format!("{i:04} {}\n", "f".repeat(200)))
            .collect();
        w.talker.send_raw(text.as_bytes());
        let mut cut = false;
        let mut messages = 0;
        while messages < 50 {
            let line = w.listener.line();
            if line.starts_with("MSG ") {
                messages += 1;
            }
            cut |= line.starts_with("EVENT calm quit") && line.ends_with(" slow-consumer");
        }
        if cut {
            break;
        }
        assert!(Instant::now() < deadline, "the deaf client was never cut");
    }
    w.check(5);
    // Its slot and queue are gone: the server counts one connection fewer.
    let stats = server.handle.stats();
    assert_eq!(stats.slow_consumers, 1);
    assert_eq!(stats.per_shard.iter().sum::<u64>(), 2);
    deaf.discard_to_eof();
}

#[test]
fn a_connection_flood_beyond_max_connections_is_refused_cleanly() {
    let server = TestServer::start_with(|c| c.max_connections = 40);
    let mut w = Witnesses::new(server.addr);
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut c = TestClient::connect_raw(server.addr);
        let first = c.line();
        if first.starts_with("ERR server-full ") {
            assert_eq!(c.read_to_eof().len(), 0, "closed after the refusal");
            refused += 1;
        } else {
            assert!(first.starts_with("OK welcome "), "{first}");
            kept.push(c);
        }
    }
    assert_eq!(kept.len(), 38, "40 minus the two witnesses");
    assert_eq!(refused, 162);
    w.check(10);
}

#[test]
fn idle_connections_are_told_and_closed_but_pinging_ones_stay() {
    let server = TestServer::start_with(|c| c.idle_timeout = Some(Duration::from_millis(600)));
    let mut idle = server.client();
    let mut busy = server.client_named("busy");
    let started = Instant::now();
    // busy pings more often than the timeout; idle says nothing.
    while started.elapsed() < Duration::from_millis(1500) {
        busy.sync();
        thread::sleep(Duration::from_millis(150));
    }
    let lines = idle.read_to_eof();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ERR idle-timeout nothing received for too long; closing"),
        "{lines:?}"
    );
    busy.sync();
}

#[test]
fn flood_control_drops_extra_lines_and_says_so_once() {
    let server = TestServer::start_with(|c| {
        c.flood = Some(miochat::server::config::FloodLimit { rate: 2, burst: 5 })
    });
    let mut flooder = server.client_named("flooder");
    let mut reader = server.client_named("reader");
    let burst: String = (0..20).map(|i| format!("line {i}\n")).collect();
    flooder.send_raw(burst.as_bytes());
    assert_eq!(
        flooder.expect("ERR "),
        "ERR flood you are sending too fast; lines are dropped until you slow down"
    );
    // Every line counts, commands too: `/nick flooder` took one of the 5, so 4 of
    // the 20 get through and the other 16 are dropped.
    for i in 0..4 {
        assert_eq!(reader.expect("MSG "), format!("MSG lobby flooder line {i}"));
    }
    reader.expect_quiet();
    // The bucket refills at 2 lines/s: after a pause the flooder is heard again.
    thread::sleep(Duration::from_millis(1200));
    flooder.send("calm now");
    assert_eq!(reader.expect("MSG "), "MSG lobby flooder calm now");
    // Exactly one ERR flood for the episode (a sync line is within the limit again).
    thread::sleep(Duration::from_millis(600));
    let rest = flooder.sync();
    assert!(rest.iter().all(|l| !l.starts_with("ERR")), "{rest:?}");
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_stops_service() {
    // The real binary under a 64-descriptor limit: room for about 50 clients.
    let (mut child, addr) = serve_with_prlimit("--nofile=64:64");
    let mut w = Witnesses::new(addr);
    let mut clients = Vec::new();
    let mut busy = 0;
    for _ in 0..90 {
        let mut c = TestClient::connect_raw(addr);
        let first = c.line();
        if first.starts_with("OK welcome") {
            clients.push(c);
        } else {
            assert_eq!(
                first,
                "ERR server-busy the server is out of file descriptors; try again later"
            );
            busy += 1;
        }
    }
    assert!(
        busy > 0,
        "the limit was never reached ({} clients)",
        clients.len()
    );
    // Exhausted: the server must not spin, and the witnesses must still talk.
    let cpu_before = proc_cpu(child.id()).unwrap();
    let window = Instant::now();
    w.check(10);
    while window.elapsed() < Duration::from_secs(2) {
        let mut c = TestClient::connect_raw(addr);
        let _ = c.try_line(); // refused, one at a time
        thread::sleep(Duration::from_millis(100));
    }
    let cpu = proc_cpu(child.id()).unwrap() - cpu_before;
    assert!(
        cpu < Duration::from_millis(1000),
        "server used {cpu:?} of CPU in 2 s"
    );
    // Free descriptors: new clients are accepted again.
    clients.truncate(clients.len() / 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TestClient::connect_raw(addr);
        if c.line().starts_with("OK welcome") {
            break;
        }
        assert!(Instant::now() < deadline, "never accepted again");
        thread::sleep(Duration::from_millis(100));
    }
    w.check(10);
    signal(&child, "TERM");
    assert!(wait_with_timeout(&mut child, Duration::from_secs(10)).success());
}

/// `miochat serve` started through `prlimit` with a descriptor limit.
fn serve_with_prlimit(limit: &str) -> (std::process::Child, SocketAddr) {
    let probe = Command::new("prlimit").arg("--version").output();
    assert!(
        probe.is_ok(),
        "prlimit (util-linux) is required for this test"
    );
    let bin = env!("CARGO_BIN_EXE_miochat");
    serve_binary_via(&["prlimit", limit, bin])
}

fn serve_binary_via(prefix: &[&str]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().rsplit(' ').next().unwrap().parse().unwrap();
    (child, addr)
}
