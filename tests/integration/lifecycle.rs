//! Connection lifecycle: EOF, resets, limits, graceful shutdown (in-process and by
//! signal to the real binary).

use std::net::Shutdown;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::common::{TestClient, TestServer, serve_binary, signal, wait_with_timeout};

#[test]
fn reset_mid_line_is_not_delivered_and_is_announced() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    b.sync();
    b.send_raw(b"half a li");
    // SO_LINGER 0: close sends RST instead of FIN.
    SockRef::from(&b.writer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(b);
    assert_eq!(a.expect("EVENT lobby quit"), "EVENT lobby quit bob reset");
    a.expect_quiet();
}

#[test]
fn half_closed_client_still_gets_its_replies() {
    let server = TestServer::start();
    let mut other = server.client_named("other");
    let mut a = server.client_named("alice");
    a.send("/who");
    a.send("bye for now");
    a.writer.shutdown(Shutdown::Write).unwrap();
    let lines = a.read_to_eof();
    assert!(
        lines.iter().any(|l| l == "OK who lobby alice other"),
        "{lines:?}"
    );
    assert_eq!(other.expect("MSG "), "MSG lobby alice bye for now");
    assert_eq!(
        other.expect("EVENT lobby quit"),
        "EVENT lobby quit alice closed"
    );
}

#[test]
fn quit_says_goodbye_and_tells_the_room() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    b.send("/quit off to lunch");
    assert_eq!(b.read_to_eof(), ["OK bye"]);
    assert_eq!(
        a.expect("EVENT lobby quit"),
        "EVENT lobby quit bob off to lunch"
    );
    // The nick is free again.
    a.send("/msg bob still there?");
    assert_eq!(a.expect("ERR "), "ERR no-such-nick no one is called bob");
}

#[test]
fn max_connections_refuses_with_a_reason_then_accepts_again() {
    let server = TestServer::start_with(|c| c.max_connections = 3);
    let clients: Vec<_> = (0..3).map(|_| server.client()).collect();
    let mut refused = TestClient::connect_raw(server.addr);
    assert_eq!(
        refused.read_to_eof(),
        ["ERR server-full the server is full; try again later"]
    );
    drop(clients);
    // The slots come back once the shards reap the closed connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TestClient::connect_raw(server.addr);
        let first = c.line();
        if first.starts_with("OK welcome") {
            break;
        }
        assert!(Instant::now() < deadline, "never accepted again: {first}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_tells_every_client_then_closes() {
    let server = TestServer::start_with(|c| c.workers = 3);
    let mut clients: Vec<_> = (0..6).map(|_| server.client()).collect();
    server.handle.shutdown();
    for c in &mut clients {
        let lines = c.read_to_eof();
        assert!(
            lines
                .iter()
                .any(|l| l == "EVENT * shutdown server shutting down"),
            "{lines:?}"
        );
    }
    let totals = server.handle.join();
    assert!(totals.contains("shutdown=6"), "{totals}");
}

#[test]
fn the_binary_shuts_down_gracefully_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let (mut child, addr) = serve_binary(&[]);
        let mut c = TestClient::connect(addr);
        c.sync();
        signal(&child, sig);
        let lines = c.read_to_eof();
        assert_eq!(lines, ["EVENT * shutdown server shutting down"], "SIG{sig}");
        let status = wait_with_timeout(&mut child, Duration::from_secs(10));
        assert!(status.success(), "SIG{sig}: exit {status:?}");
    }
}

#[test]
fn bad_options_are_one_line_errors() {
    let out = crate::common::spawn_binary(&["serve", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "miochat: invalid configuration: --workers must be 1..=64"
    );
    let out = crate::common::spawn_binary(&["serve", "--listen", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("miochat: bad address"));
}
