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

/// The first stdout lines of `miochat serve` with every listener: one per listener,
/// in a fixed order, each `miochat <what> listening on ADDR` (scripts read the port
/// from the end of the line). Each address is then dialed in its protocol, so a line
/// naming the wrong listener fails.
#[test]
fn every_listener_prints_its_address_on_stdout() {
    use std::io::{BufRead, BufReader, Read, Write};
    let certs = crate::tls::Certs::new();
    let (cert, key) = (certs.cert(), certs.key());
    let any = "127.0.0.1:0";
    let mut child = crate::common::spawn_binary(&[
        "serve",
        "--listen",
        any,
        "--irc-listen",
        any,
        "--tls-listen",
        any,
        "--irc-tls-listen",
        any,
        "--http-listen",
        any,
        "--workers",
        "1",
        "-q",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = Vec::new();
    for what in ["", "IRC ", "TLS ", "IRC TLS ", "web "] {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let prefix = format!("miochat {what}listening on 127.0.0.1:");
        assert!(line.starts_with(&prefix), "{line:?} is not {prefix:?}...");
        let addr: std::net::SocketAddr = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
        assert_ne!(addr.port(), 0);
        addrs.push(addr);
    }
    TestClient::connect(addrs[0]); // reads and checks the welcome
    let irc_hello = |nick: &str| format!("NICK {nick}\r\nUSER u 0 * :u\r\n");
    let mut irc = TestClient::connect_raw(addrs[1]);
    irc.send(&irc_hello("plain"));
    let welcome = irc.line();
    assert!(welcome.contains(" 001 plain "), "{welcome}");
    let mut tls = crate::tls::TlsClient::connect(addrs[2], &cert).unwrap();
    assert!(tls.line().starts_with("OK welcome "));
    let mut irc_tls = crate::tls::TlsClient::connect(addrs[3], &cert).unwrap();
    irc_tls.send(&irc_hello("secure"));
    let welcome = irc_tls.line();
    assert!(welcome.contains(" 001 secure "), "{welcome}");
    let mut web = std::net::TcpStream::connect(addrs[4]).unwrap();
    web.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    web.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    signal(&child, "TERM");
    assert!(wait_with_timeout(&mut child, Duration::from_secs(10)).success());
}

/// `scripts/miochat.service` passes `systemd-analyze verify`, which reports unknown
/// keys and bad values as warnings with status 0, so any output fails the test (a
/// broken copy shows that the check can fail). `ExecStart` is pointed at the binary
/// cargo built, since verify wants an executable there. Only where `systemd-analyze`
/// is installed, under CI too: `.ci/run` installs no systemd, and the unit is
/// something this project ships, not something its tests need.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/miochat.service"),
    )
    .unwrap();
    let files: usize = (unit.lines())
        .find_map(|line| line.strip_prefix("LimitNOFILE="))
        .and_then(|value| value.parse().ok())
        .expect("a numeric LimitNOFILE=");
    let connections = miochat::server::config::DEFAULT_MAX_CONNECTIONS;
    assert!(
        files >= connections + 1000,
        "LimitNOFILE={files} for {connections} connections"
    );
    let Some(analyze) = crate::common::find_program("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    };
    let dir = crate::tls::Certs::new();
    let verify = |text: &str| {
        let path = dir.dir.join("miochat.service");
        std::fs::write(
            &path,
            text.replace("/usr/local/bin/miochat", env!("CARGO_BIN_EXE_miochat")),
        )
        .unwrap();
        let out = std::process::Command::new(&analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), said)
    };
    let (ok, said) = verify(&unit);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let (_, said) = verify(&unit.replace("ProtectClock=yes", "ProtectClock=sometimes"));
    assert!(!said.trim().is_empty(), "a bad value went unreported");
}
