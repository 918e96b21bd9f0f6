//! Fault tests: each injects one hostile or broken client (or an exhausted resource)
//! and asserts that the other clients keep receiving every message.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use miochat::bench::report::proc_cpu;

use crate::common::{TestClient, TestServer, signal, stat, wait_with_timeout};

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
fn flood_control_slows_a_paste_down_and_loses_nothing() {
    // ET-10: over its budget the paster is not read until its tokens refill; a timer,
    // not an edge, brings it back, and TCP holds the rest of the paste meanwhile.
    let server = TestServer::start_with(|c| {
        c.flood = Some(miochat::server::config::FloodLimit {
            rate: 100,
            burst: 20,
        })
    });
    let mut paster = server.client_named("paster");
    let mut reader = server.client_named("reader");
    let mut calm = server.client_named("calm");
    let paste: String = (0..200).map(|i| format!("paste line {i}\n")).collect();
    paster.send_raw(paste.as_bytes());
    assert_eq!(reader.expect("MSG "), "MSG lobby paster paste line 0");
    // While the paste trickles in, another client on the server is served at once.
    calm.send("calm here");
    let mut calm_seen_at = None;
    for i in 1..200 {
        let line = reader.expect("MSG ");
        if line == "MSG lobby calm calm here" {
            calm_seen_at = Some(i);
            let line = reader.expect("MSG ");
            assert_eq!(line, format!("MSG lobby paster paste line {i}"));
        } else {
            assert_eq!(line, format!("MSG lobby paster paste line {i}"), "in order");
        }
    }
    assert!(
        calm_seen_at.is_some_and(|i| i < 199),
        "the calm client waited for the whole paste ({calm_seen_at:?})"
    );
    // No line was refused: the paster sees nothing but its own echo-free quiet.
    let lines = paster.sync();
    assert!(lines.iter().all(|l| !l.starts_with("ERR")), "{lines:?}");
    let stats = calm.stats();
    assert!(stat(&stats, "flood_pauses") > 0, "{stats}");
    assert_eq!(stat(&stats, "flood_cut"), 0, "{stats}");
}

#[test]
fn flood_ceiling_cuts_a_client_that_keeps_pushing() {
    let server = TestServer::start_with(|c| {
        c.flood = Some(miochat::server::config::FloodLimit { rate: 1, burst: 1 });
        c.flood_max_unread = 4096;
        c.flood_unread_timeout = Duration::from_millis(500);
    });
    let mut witness = server.client_named("witness");
    let mut flooder = server.client();
    let mut writer = flooder.writer.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let pushing = thread::spawn(move || {
        use std::io::Write;
        let block = "x\n".repeat(32 * 1024);
        for _ in 0..64 {
            if writer.write_all(block.as_bytes()).is_err() {
                return;
            }
        }
    });
    let lines = flooder.read_to_eof();
    assert!(
        lines.iter().any(|l| l.starts_with("ERR flood ")),
        "no ERR flood before the close: {lines:?}"
    );
    pushing.join().unwrap();
    let stats = witness.stats();
    assert_eq!(stat(&stats, "flood_cut"), 1, "{stats}");
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
        .args(["--data-dir", "none"])
        .args(["--max-per-ip", "0", "--connect-rate", "0"])
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

#[test]
fn per_address_limit_refuses_the_next_connection_and_releases_on_close() {
    let server = TestServer::start_with(|c| {
        c.max_per_address = Some(3);
        c.irc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let mut held: Vec<_> = (0..3).map(|_| server.client()).collect();
    let mut refused = crate::common::TestClient::connect_raw(server.addr);
    assert_eq!(
        refused.read_to_eof(),
        ["ERR server-busy too many connections from your address"]
    );
    // IRC clients from the same address count against the same limit.
    let irc_addr = server.handle.irc_addr().unwrap();
    let mut irc = crate::common::TestClient::connect_raw(irc_addr);
    let lines = irc.read_to_eof();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("ERROR :Closing Link: ")
            && lines[0].ends_with("(Too many connections from your address)\r"),
        "{lines:?}"
    );
    // Those already in are untouched; one leaving makes room for one more.
    held[0].sync();
    let mut leaving = held.pop().unwrap();
    leaving.send("/quit");
    leaving.read_to_eof();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        let mut c = crate::common::TestClient::connect_raw(server.addr);
        let first = c.line();
        if first.starts_with("OK welcome ") {
            break c;
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        thread::sleep(Duration::from_millis(20));
    };
    again.sync();
    assert!(held[0].stats().contains("refused_per_ip="));
    drop((held, again));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.handle.tracked_addresses() > 0 {
        assert!(Instant::now() < deadline, "the address was never released");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connect_rate_refuses_a_burst_past_its_budget() {
    let server = TestServer::start_with(|c| {
        c.connect_rate = Some(miochat::server::config::ConnectRate { rate: 1, burst: 3 });
    });
    let mut ok: Vec<_> = (0..3).map(|_| server.client()).collect();
    let mut refused = crate::common::TestClient::connect_raw(server.addr);
    assert_eq!(
        refused.read_to_eof(),
        ["ERR server-busy connecting too fast from your address; try again later"]
    );
    let stats = ok[0].stats();
    assert!(stat(&stats, "refused_connect_rate") >= 1, "{stats}");
}
