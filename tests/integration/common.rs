//! Shared test helpers: a real server on `127.0.0.1:0`, a blocking line client, and a
//! relay a test can cut (a network that goes away while the server stays).
//!
//! Every wait has a timeout (reads time out after [`READ_TIMEOUT`]) and nothing sleeps
//! to synchronise: `/ping TOKEN` → `PONG TOKEN` is the barrier (the server handles a
//! connection's lines in order, so once PONG arrives every earlier line was handled).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use miochat::server::{Server, ServerConfig, ServerHandle};

/// Longest wait for any single line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A server running in this process; dropped = shut down and joined.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
}

impl TestServer {
    /// A server with test defaults (2 shards, no flood control, no idle timeout, no
    /// per-address limits: every test client comes from 127.0.0.1), adjusted by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        miochat::logging::init_for_tests();
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.workers = 2;
        config.flood = None;
        config.idle_timeout = None;
        config.max_per_address = None;
        config.connect_rate = None;
        config.shutdown_grace = Duration::from_millis(1500);
        // Hosts are the address (127.0.0.1), not cloaks, so tests can spell out prefixes.
        config.show_addresses = true;
        tweak(&mut config);
        let handle = Server::start(config).expect("server starts");
        let addr = handle.local_addr();
        TestServer { handle, addr }
    }

    /// A server with test defaults.
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// A connected, welcomed client.
    pub fn client(&self) -> TestClient {
        TestClient::connect(self.addr)
    }

    /// A client with the given nick.
    pub fn client_named(&self, nick: &str) -> TestClient {
        let mut c = self.client();
        c.set_nick(nick);
        c
    }
}

/// A blocking line client.
pub struct TestClient {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub nick: String,
    pings: AtomicU64,
}

impl TestClient {
    /// Connects and reads the welcome line.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> TestClient {
        let mut c = Self::connect_raw(addr);
        let welcome = c.line();
        assert!(welcome.starts_with("OK welcome "), "welcome: {welcome:?}");
        c.nick = welcome
            .split(' ')
            .nth(2)
            .expect("nick in welcome")
            .to_string();
        c
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr).expect("connect");
        Self::from_stream(stream)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> TestClient {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone");
        TestClient {
            reader: BufReader::new(stream),
            writer,
            nick: String::new(),
            pings: AtomicU64::new(0),
        }
    }

    /// Sends one line (LF added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// The next line, without its LF; panics on timeout or EOF.
    #[track_caller]
    pub fn line(&mut self) -> String {
        match self.try_line() {
            Some(line) => line,
            None => panic!("{}: connection closed while a line was expected", self.nick),
        }
    }

    /// The next line, or `None` at EOF; panics on timeout.
    #[track_caller]
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(buf.pop(), Some(b'\n'), "line without LF: {buf:?}");
                Some(String::from_utf8(buf).expect("server sends UTF-8"))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("{}: reading a line failed: {e}", self.nick),
        }
    }

    /// The next line that starts with `prefix`, skipping other `EVENT` lines; any other
    /// line is a failure.
    #[track_caller]
    pub fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line();
            // EVENT lines (joins, nick changes) arrive whenever others act: skip those
            // that are not the one asked for.
            if line.starts_with("EVENT ") && !line.starts_with(prefix) {
                continue;
            }
            assert!(
                line.starts_with(prefix),
                "{}: expected {prefix:?}, got {line:?}",
                self.nick
            );
            return line;
        }
    }

    /// Reads lines until one starts with `prefix`; returns the lines before it.
    #[track_caller]
    pub fn skip_to(&mut self, prefix: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with(prefix) {
                return before;
            }
            before.push(line);
        }
    }

    /// Asks for `/stats` and returns the `OK stats` line, skipping whatever chat
    /// arrives before it.
    #[track_caller]
    pub fn stats(&mut self) -> String {
        self.send("/stats");
        loop {
            let line = self.line();
            if line.starts_with("OK stats") {
                return line.trim_end_matches('\r').to_string();
            }
        }
    }

    /// Barrier: sends `/ping N` and returns every line that arrived before `PONG N`.
    #[track_caller]
    pub fn sync(&mut self) -> Vec<String> {
        let n = self.pings.fetch_add(1, Ordering::Relaxed);
        self.send(&format!("/ping sync{n}"));
        self.skip_to(&format!("PONG sync{n}"))
    }

    /// Like [`Self::sync`], asserting nothing but `EVENT` lines arrived before it.
    #[track_caller]
    pub fn expect_quiet(&mut self) {
        let lines = self.sync();
        let chat: Vec<_> = lines.iter().filter(|l| !l.starts_with("EVENT ")).collect();
        assert!(chat.is_empty(), "{}: unexpected lines {chat:?}", self.nick);
    }

    /// Changes nick and waits for the confirmation.
    #[track_caller]
    pub fn set_nick(&mut self, nick: &str) {
        self.send(&format!("/nick {nick}"));
        self.expect(&format!("OK nick {nick}"));
        self.nick = nick.to_string();
    }

    /// Joins a room and waits for the confirmation.
    #[track_caller]
    pub fn join(&mut self, room: &str) {
        self.send(&format!("/join {room}"));
        self.expect(&format!("OK joined {room} "));
    }

    /// Waits until the server closes the connection; returns the lines before EOF.
    #[track_caller]
    pub fn read_to_eof(&mut self) -> Vec<String> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut lines = Vec::new();
        while let Some(line) = self.try_line() {
            lines.push(line);
            assert!(Instant::now() < deadline, "no EOF in time");
        }
        lines
    }

    /// Drains whatever arrives until EOF, ignoring content (for floods).
    pub fn discard_to_eof(&mut self) -> usize {
        let mut buf = [0u8; 65536];
        let mut total = 0;
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(_) => return total,
            }
        }
    }
}

/// The built `miochat` binary, as a child with piped stdio.
pub fn spawn_binary(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miochat"));
    cmd.args(args);
    // A served binary keeps nothing on disk unless the test gives it a data dir: the
    // default (`miochat-data` in the working directory) would be shared, and locked,
    // by every test at once.
    if args.first() == Some(&"serve") && !args.contains(&"--data-dir") {
        cmd.args(["--data-dir", "none"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts `miochat serve` on port 0 and returns the child and the bound address.
pub fn serve_binary(extra: &[&str]) -> (Child, SocketAddr) {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "-q",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut child = spawn_binary(&args).spawn().expect("spawn miochat serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read listening line");
    let addr = first
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    (child, addr)
}

/// A served binary, killed (and reaped) when dropped, even by a failing test; what
/// it logs (stderr) is collected as it comes.
pub struct Served {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `miochat` with exactly `args` (a `serve` command line; `--data-dir none`
/// added unless given) and reads the addresses it prints, one per label in
/// `labels`: `""` for `miochat listening on ADDR`, `"web"` for `miochat web
/// listening on ADDR`, and so on. The rest of its output is drained by a thread.
pub fn serve_exactly(args: &[&str], labels: &[&str]) -> (Served, Vec<SocketAddr>) {
    let mut child = spawn_binary(args).spawn().expect("spawn miochat");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut found: Vec<Option<SocketAddr>> = vec![None; labels.len()];
    while found.iter().any(Option::is_none) {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("miochat {args:?} printed no address for each of {labels:?}: {err}");
        }
        let Some((label, addr)) = line.trim().split_once("listening on ") else {
            continue;
        };
        let label = label.trim_start_matches("miochat").trim();
        if let Some(at) = labels.iter().position(|l| *l == label) {
            found[at] = addr.parse().ok();
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
    }
    (Served { child, log }, found.into_iter().flatten().collect())
}

/// Waits for a child to exit, killing it after `limit`.
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal to a child process by pid (via `kill`, no libc in tests).
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// `program` on `PATH`, if it is there.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program` on `PATH`. A missing one makes the test say "skipped" and why (the
/// caller returns), except under CI=true, where `.ci/run` installs it: there the test
/// fails.
pub fn require(program: &str) -> Option<PathBuf> {
    let found = find_program(program);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required under CI=true (.ci/run installs it)"
        );
        eprintln!("skipped: {program} not installed (.ci/run installs it)");
    }
    found
}

/// The value of `key=` in an `OK stats` line.
pub fn stat(line: &str, key: &str) -> u64 {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .parse()
        .unwrap()
}

/// A TCP relay in front of a listener that the test can cut: a client's
/// connection breaks (the server sees it close) and new ones are refused until
/// [`Relay::restore`], as when a phone loses its network for a while.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    down: bool,
    stopped: bool,
    open: Vec<TcpStream>,
}

impl Relay {
    pub fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(RelayState::default()));
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut state = state.lock().unwrap();
                if state.stopped {
                    return;
                }
                if state.down {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                for (from, into) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut into) =
                        (from.try_clone().unwrap(), into.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
                state.open.extend([client, server]);
            }
        });
        Relay { addr, shared }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        let mut state = self.shared.lock().unwrap();
        state.down = true;
        for stream in state.open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.shared.lock().unwrap().down = false;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        if let Ok(mut state) = self.shared.lock() {
            state.stopped = true;
        }
        let _ = TcpStream::connect(self.addr); // wakes the accepting thread
    }
}
