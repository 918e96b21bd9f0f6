//! TLS listeners: TLS and plain clients in one room over both protocols, hostile
//! handshakes against witnesses that must lose nothing, the edge-triggered trap of
//! plaintext left inside the TLS session (ET-9), certificate errors at start-up, a
//! SIGHUP reload, and `openssl s_client` and `miochat connect --tls` as clients.
//!
//! Certificates are made at test time with `rcgen` into a fresh temporary directory;
//! no private key is committed. Certificates as operators make them (`openssl`,
//! `make-cert`) and the client's explanations of refused ones are in [`certs`].

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use miochat::server::ServerConfig;
use miochat::server::config::TlsFiles;
use miochat::tls_client::{Trust, client_config};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

mod certs;

use crate::common::{
    READ_TIMEOUT, TestClient, TestServer, require, spawn_binary, stat, wait_with_timeout,
};

/// A fresh directory with `cert.pem` and `key.pem` for localhost and 127.0.0.1.
pub struct Certs {
    pub dir: PathBuf,
}

static DIRS: AtomicU64 = AtomicU64::new(0);

impl Certs {
    pub fn new() -> Certs {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("miochat-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs { dir };
        certs.regenerate();
        certs
    }

    /// Writes a new self-signed certificate and key over the old files.
    pub fn regenerate(&self) {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(self.cert(), made.cert.pem()).unwrap();
        std::fs::write(self.key(), made.signing_key.serialize_pem()).unwrap();
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert(),
            key: self.key(),
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with TLS listeners for both protocols (plus the plain ones).
fn tls_server(certs: &Certs, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let files = certs.files();
    TestServer::start_with(move |c| {
        c.tls = Some(files);
        c.tls_listen = Some(any);
        c.irc_tls_listen = Some(any);
        c.irc_listen = Some(any);
        tweak(c);
    })
}

/// A blocking TLS client reading lines, verifying the server against `ca`.
pub struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    pub fn connect(addr: SocketAddr, ca: &Path) -> std::io::Result<TlsClient> {
        let config =
            client_config(&Trust::CaFile(ca.to_path_buf())).map_err(std::io::Error::other)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let session = ClientConnection::new(Arc::clone(&config), name).unwrap();
        let socket = TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut client = TlsClient {
            stream: BufReader::new(StreamOwned::new(session, socket)),
        };
        // Finish the handshake now, so a certificate problem shows here.
        let owned = client.stream.get_mut();
        while owned.conn.is_handshaking() {
            owned.conn.complete_io(&mut owned.sock)?;
        }
        Ok(client)
    }

    pub fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        stream.flush().unwrap();
    }

    /// The next line (without CR LF), or `None` at EOF.
    pub fn try_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stream.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("TLS client: reading a line failed: {e}"),
        }
    }

    pub fn line(&mut self) -> String {
        self.try_line().expect("a line, not EOF")
    }

    /// The next line starting with `prefix`, skipping others.
    pub fn skip_to(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line();
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}

#[test]
fn tls_and_plain_clients_chat_in_one_room_over_both_protocols() {
    let certs = Certs::new();
    let server = tls_server(&certs, |_| {});
    let mut plain = server.client_named("plain");
    let mut tls = TlsClient::connect(server.handle.tls_addr().unwrap(), &certs.cert()).unwrap();
    assert!(tls.line().starts_with("OK welcome "));
    tls.send("/nick secure");
    tls.skip_to("OK nick secure");
    plain.sync();
    tls.send("hello from TLS");
    assert_eq!(plain.expect("MSG "), "MSG lobby secure hello from TLS");
    plain.send("hello from plain TCP");
    assert_eq!(tls.skip_to("MSG "), "MSG lobby plain hello from plain TCP");

    // IRC over TLS in the same room.
    let irc_addr = server.handle.irc_tls_addr().unwrap();
    let mut irc = TlsClient::connect(irc_addr, &certs.cert()).unwrap();
    irc.send("NICK ircsecure\r\nUSER u 0 * :TLS IRC\r\nJOIN #lobby");
    irc.skip_to(":ircsecure!");
    irc.send("PRIVMSG #lobby :hi over IRC and TLS");
    assert_eq!(
        plain.expect("MSG "),
        "MSG lobby ircsecure hi over IRC and TLS"
    );
    tls.send("and back");
    let line = irc.skip_to(":secure!");
    assert!(line.ends_with("PRIVMSG #lobby :and back"), "{line}");
    let stats = plain.stats();
    assert_eq!(stat(&stats, "tls_handshakes"), 2, "{stats}");
}

#[test]
fn lines_left_inside_the_tls_session_are_not_forgotten() {
    // ET-9: the client's first records arrive with its last handshake flight, and one
    // 64 KiB write becomes several records read in one go; after the socket says
    // WouldBlock, decrypted lines can still sit in rustls with no edge to come.
    let certs = Certs::new();
    let server = tls_server(&certs, |_| {});
    let mut reader = server.client_named("reader");
    let config = client_config(&Trust::CaFile(certs.cert())).unwrap();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let session = ClientConnection::new(config, name).unwrap();
    let socket = TcpStream::connect(server.handle.tls_addr().unwrap()).unwrap();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut stream = StreamOwned::new(session, socket);
    // Written before the handshake is done: rustls sends it right behind Finished.
    let lines: String = (0..2000).map(|i| format!("burst line {i:04}\n")).collect();
    stream.write_all(lines.as_bytes()).unwrap();
    stream.write_all(b"/ping last\n").unwrap();
    stream.flush().unwrap();
    let mut reply = BufReader::new(stream);
    let mut line = String::new();
    reply.read_line(&mut line).unwrap();
    let nick = line.split(' ').nth(2).unwrap().to_string();
    loop {
        line.clear();
        assert!(reply.read_line(&mut line).unwrap() > 0, "EOF before PONG");
        if line.starts_with("PONG last") {
            break;
        }
    }
    for i in 0..2000 {
        assert_eq!(
            reader.expect("MSG "),
            format!("MSG lobby {nick} burst line {i:04}")
        );
    }
}

/// A plain witness and a TLS witness that exchange numbered lines before and after
/// each hostile connection; every line must arrive, in order.
struct Witnesses {
    plain: TestClient,
    tls: TlsClient,
    sent: usize,
}

impl Witnesses {
    fn new(server: &TestServer, certs: &Certs) -> Witnesses {
        let plain = server.client_named("wplain");
        let mut tls = TlsClient::connect(server.handle.tls_addr().unwrap(), &certs.cert()).unwrap();
        tls.send("/nick wtls");
        tls.skip_to("OK nick wtls");
        Witnesses {
            plain,
            tls,
            sent: 0,
        }
    }

    fn exchange(&mut self) {
        let n = self.sent;
        self.sent += 1;
        self.plain.send(&format!("plain {n}"));
        assert_eq!(
            self.tls.skip_to("MSG "),
            format!("MSG lobby wplain plain {n}")
        );
        self.tls.send(&format!("tls {n}"));
        assert_eq!(self.plain.expect("MSG "), format!("MSG lobby wtls tls {n}"));
    }
}

/// Reads from a raw socket until the server closes it (or the read times out).
fn closed_by_server(mut socket: TcpStream) -> bool {
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert, say
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn hostile_handshakes_close_only_their_own_connection() {
    let certs = Certs::new();
    let server = tls_server(&certs, |c| {
        c.tls_handshake_timeout = Duration::from_secs(1);
    });
    let tls_addr = server.handle.tls_addr().unwrap();
    let mut witnesses = Witnesses::new(&server, &certs);
    witnesses.exchange();

    // Plain text to a TLS port.
    let mut plain_text = TcpStream::connect(tls_addr).unwrap();
    plain_text.write_all(b"/nick intruder\nhello\n").unwrap();
    assert!(closed_by_server(plain_text), "plain text");
    witnesses.exchange();

    // Garbage bytes.
    let mut garbage = TcpStream::connect(tls_addr).unwrap();
    let junk: Vec<u8> = (0..2048u32).map(|i| (i * 7919 % 251) as u8).collect();
    garbage.write_all(&junk).unwrap();
    assert!(closed_by_server(garbage), "garbage");
    witnesses.exchange();

    // A truncated handshake: the first half of a real ClientHello, then EOF.
    let hello = client_hello();
    let mut truncated = TcpStream::connect(tls_addr).unwrap();
    truncated.write_all(&hello[..hello.len() / 2]).unwrap();
    truncated.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_server(truncated), "truncated");
    witnesses.exchange();

    // A client that never finishes: closed by the handshake timeout, without the
    // shard spinning meanwhile (a spinning loop would count turns by the thousand).
    let turns_before = total_turns(&witnesses.plain.stats());
    let silent = TcpStream::connect(tls_addr).unwrap();
    assert!(closed_by_server(silent), "never finished");
    let stats = witnesses.plain.stats();
    let turns = total_turns(&stats) - turns_before;
    assert!(
        turns < 1000,
        "{turns} turns while one handshake sat idle: spinning?"
    );
    witnesses.exchange();

    assert_eq!(stat(&stats, "tls_handshake_failed"), 3, "{stats}");
    assert_eq!(stat(&stats, "tls_handshake_timeout"), 1, "{stats}");
}

fn total_turns(stats: &str) -> u64 {
    stats
        .split(' ')
        .find_map(|kv| kv.strip_prefix("turns="))
        .unwrap()
        .split(',')
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}

/// The bytes of a genuine ClientHello, as rustls would send it.
fn client_hello() -> Vec<u8> {
    let config = client_config(&Trust::Insecure).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut session = ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    session.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn handshakes_past_the_limit_are_refused_at_accept() {
    let certs = Certs::new();
    let server = tls_server(&certs, |c| c.max_tls_handshakes = 2);
    let tls_addr = server.handle.tls_addr().unwrap();
    let mut witness = server.client_named("witness");
    let stalled: Vec<_> = (0..2)
        .map(|_| TcpStream::connect(tls_addr).unwrap())
        .collect();
    // Both stalled handshakes are counted once the server has seen them.
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let refused = TcpStream::connect(tls_addr).unwrap();
        if closed_by_server(refused) {
            let stats = witness.stats();
            if stat(&stats, "tls_handshakes_refused") >= 1 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the limit never applied");
    }
    drop(stalled);
    // Once they are gone, a full handshake works again.
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        if let Ok(mut client) = TlsClient::connect(tls_addr, &certs.cert())
            && client
                .try_line()
                .is_some_and(|l| l.starts_with("OK welcome "))
        {
            break;
        }
        assert!(Instant::now() < deadline, "handshakes never recovered");
        thread::sleep(Duration::from_millis(20));
    }
    witness.sync();
}

/// `miochat serve` with TLS flags; returns the child, the plain and the TLS address.
fn serve_tls_binary(certs: &Certs) -> (Child, SocketAddr, SocketAddr) {
    let (cert, key) = (certs.cert(), certs.key());
    let mut child = spawn_binary(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
        "-q",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut addr = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim().rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (plain, tls) = (addr(), addr());
    (child, plain, tls)
}

#[test]
fn sighup_reloads_the_certificate_for_new_handshakes_only() {
    let certs = Certs::new();
    let old_ca = certs.dir.join("old-ca.pem");
    std::fs::copy(certs.cert(), &old_ca).unwrap();
    let (mut child, _plain, tls_addr) = serve_tls_binary(&certs);
    let mut before = TlsClient::connect(tls_addr, &old_ca).unwrap();
    assert!(before.line().starts_with("OK welcome "));

    certs.regenerate();
    crate::common::signal(&child, "HUP");
    let deadline = Instant::now() + READ_TIMEOUT;
    while TlsClient::connect(tls_addr, &certs.cert()).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TlsClient::connect(tls_addr, &old_ca).is_err(),
        "old certificate still served"
    );
    // The session from before the reload goes on.
    before.send("/ping still-here");
    assert_eq!(before.skip_to("PONG"), "PONG still-here");

    // A reload that fails keeps the certificate that works.
    std::fs::write(certs.key(), "not a key").unwrap();
    crate::common::signal(&child, "HUP");
    before.send("/ping after-bad-reload");
    before.skip_to("PONG after-bad-reload");
    let mut after = TlsClient::connect(tls_addr, &certs.cert()).unwrap();
    assert!(after.line().starts_with("OK welcome "));
    crate::common::signal(&child, "TERM");
    assert!(wait_with_timeout(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn a_bad_certificate_or_key_is_one_line_and_exit_status_2() {
    let certs = Certs::new();
    let other = Certs::new();
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    let missing = certs.dir.join("missing.pem");
    let cases: [(&PathBuf, &PathBuf); 4] = [
        (&missing, &certs.key()),
        (&certs.cert(), &missing),
        (&garbage, &certs.key()),
        (&certs.cert(), &other.key()),
    ];
    for (cert, key) in cases {
        let out = spawn_binary(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cert:?} {key:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("miochat: TLS: "), "{stderr}");
    }
    let out = spawn_binary(&["serve", "--tls-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn openssl_s_client_exchanges_lines() {
    if require("openssl").is_none() {
        return;
    }
    let certs = Certs::new();
    let server = tls_server(&certs, |_| {});
    let mut plain = server.client_named("plain");
    let tls_addr = server.handle.tls_addr().unwrap();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-no_ign_eof",
            "-connect",
            &tls_addr.to_string(),
        ])
        .args([
            "-CAfile",
            certs.cert().to_str().unwrap(),
            "-verify_return_error",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK welcome "), "{line:?}");
    stdin
        .write_all(b"/nick openssl\nhello from s_client\n")
        .unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        plain.expect("MSG "),
        "MSG lobby openssl hello from s_client"
    );
    plain.send("hello back");
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "s_client ended early"
        );
        if line.starts_with("MSG ") {
            assert_eq!(line.trim_end(), "MSG lobby plain hello back");
            break;
        }
    }
    drop(stdin);
    assert!(wait_with_timeout(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn miochat_connect_tls_verifies_against_ca() {
    let certs = Certs::new();
    let server = tls_server(&certs, |_| {});
    let addr = server.handle.tls_addr().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["connect", "--tls", "--wait", "1", "--nick", "cli"];
        args.extend_from_slice(extra);
        args.push(&addr);
        let mut child = spawn_binary(&args).stdin(Stdio::piped()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"/ping done\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ca = certs.cert();
    let good = run(&["--ca", ca.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout.contains("PONG done"), "{stdout}");
    let other = Certs::new();
    let bad = run(&["--ca", other.cert().to_str().unwrap()]);
    assert!(
        !bad.status.success(),
        "a certificate from another CA was accepted"
    );
    let insecure = run(&["--insecure"]);
    assert!(insecure.status.success());
}
