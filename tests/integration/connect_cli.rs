//! `miochat connect` as a person or a script uses it: the built binary, piped stdin,
//! and (when tmux is installed) a real terminal.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    Relay, TestClient, TestServer, require, serve_exactly, signal, spawn_binary, wait_with_timeout,
};
use crate::store::TempDir as DataDir;

/// A client process whose stdin stays open until dropped or closed.
struct ClientProcess {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl ClientProcess {
    fn start(server: &TestServer, args: &[&str]) -> ClientProcess {
        let addr = server.addr.to_string();
        let mut all = vec!["connect", addr.as_str()];
        all.extend_from_slice(args);
        let mut child = spawn_binary(&all).stdin(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        ClientProcess { child, out }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
    }

    /// Reads stdout lines until one starts with `prefix` (bounded by the test timeout
    /// of the other side: the server always answers).
    fn wait_for(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "client exited before printing {prefix:?}");
            if line.starts_with(prefix) {
                return line.trim_end().to_string();
            }
        }
    }

    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

#[test]
fn two_clients_chat_through_pipes_and_exit_zero() {
    let server = TestServer::start();
    let mut bob = ClientProcess::start(&server, &["--nick", "bob", "--wait", "0.3"]);
    bob.wait_for("OK nick bob");
    let mut alice = ClientProcess::start(&server, &["--nick", "alice", "--wait", "0.5"]);
    alice.wait_for("OK nick alice");
    alice.send("hello bob");
    alice.send("/msg bob just you");
    assert_eq!(bob.wait_for("MSG "), "MSG lobby alice hello bob");
    assert_eq!(bob.wait_for("PRIV "), "PRIV alice just you");
    bob.send("hi alice");
    assert_eq!(alice.wait_for("MSG "), "MSG lobby bob hi alice");
    for client in [&mut alice, &mut bob] {
        client.close_stdin();
        let status = wait_with_timeout(&mut client.child, Duration::from_secs(10));
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn room_option_joins_and_a_script_ends_when_the_server_closes() {
    let server = TestServer::start();
    let mut reader = ClientProcess::start(&server, &["--nick", "reader", "--room", "rust"]);
    reader.wait_for("OK joined rust");
    // A script: lines on stdin, then /quit; the client exits once the server closes.
    let mut writer = ClientProcess::start(&server, &["--nick", "writer", "--room", "rust"]);
    writer.send("in rust");
    writer.send("/quit");
    writer.close_stdin();
    assert_eq!(reader.wait_for("MSG "), "MSG rust writer in rust");
    assert_eq!(writer.wait_for("OK bye"), "OK bye");
    let status = wait_with_timeout(&mut writer.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    // The server shutting down is a clean close too: the notice, then exit 0.
    server.handle.shutdown();
    reader.wait_for("EVENT * shutdown");
    let status = wait_with_timeout(&mut reader.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn unreachable_server_is_one_line_and_exit_one() {
    // Bind then drop a listener: nothing listens on that port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = spawn_binary(&["connect", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("miochat: cannot connect to 127.0.0.1:{port}: connection refused")
    );
}

#[test]
fn a_bare_port_is_loopback_and_piped_logs_have_no_colour_codes() {
    // TERM says colours would work; stderr is a pipe, so none may be written.
    let mut child = spawn_binary(&["serve", "--listen", "0", "--workers", "1"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("miochat listening on 127.0.0.1:"),
        "{first:?}"
    );
    let port = first.trim().rsplit(':').next().unwrap().to_string();
    // The client takes a bare port too.
    let out = spawn_binary(&["connect", &port, "--wait", "0.2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK welcome "));
    signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("[INFO] listening on"), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "escape codes in a piped log: {logs:?}"
    );
}

/// A tmux server of its own (its own socket file, so neither a user's sessions nor a
/// test running in parallel are touched) running one session; killed when dropped,
/// also when an assertion fails.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// Starts `command` in a detached 120x30 session; None if tmux is not installed
    /// (which fails the test under CI=true).
    fn start(command: &str) -> Option<Tmux> {
        require("tmux")?;
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let socket = std::env::temp_dir().join(format!(
            "miochat-tmux-{}-{}",
            std::process::id(),
            SESSIONS.fetch_add(1, Ordering::Relaxed)
        ));
        let tmux = Tmux {
            socket: socket.to_string_lossy().into_owned(),
            session: "client".to_string(),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "client",
            "-x",
            "120",
            "-y",
            "30",
            command,
        ]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-S", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names such as `Enter`, `M-1`, `C-n`, or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The screen as text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Polls the screen until `ready` holds (or 10 s pass) and returns it.
    fn wait_for(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.screen();
            if ready(&text) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The input line: the screen's last line that is not empty.
    fn input_line(screen: &str) -> String {
        screen
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
fn full_screen_client_under_a_terminal() {
    let server = TestServer::start();
    // After the client exits, the shell prints its status on the restored screen.
    let command = format!(
        "{} connect {} --nick tom; echo exit=$?; sleep 30",
        env!("CARGO_BIN_EXE_miochat"),
        server.addr
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let shown = tmux.wait_for(|s| s.contains("you are now tom"));
    assert!(Tmux::input_line(&shown).starts_with("[lobby]"), "{shown}");
    let mut jane = server.client_named("jane");
    jane.join("rust");
    jane.join("lobby");

    // Lines arriving while tom types never touch his input line.
    tmux.keys(&["-l", "I am typing a long sen"]);
    tmux.wait_for(|s| Tmux::input_line(s) == "[lobby] I am typing a long sen");
    jane.send("hello tom");
    jane.send("/me waves");
    jane.sync();
    let shown = tmux.wait_for(|s| s.contains("* jane waves"));
    assert!(shown.contains("jane: hello tom"), "{shown}");
    // The member list's title counts tom and jane.
    assert!(shown.contains(" 2 here "), "member list: {shown}");
    assert_eq!(Tmux::input_line(&shown), "[lobby] I am typing a long sen");
    tmux.keys(&["-l", "tence"]);
    tmux.keys(&["Enter"]);
    assert_eq!(
        jane.expect("MSG "),
        "MSG lobby tom I am typing a long sentence"
    );

    // /join makes the new room current: the prompt says so.
    tmux.keys(&["-l", "/join rust"]);
    tmux.keys(&["Enter"]);
    let shown = tmux.wait_for(|s| Tmux::input_line(s).starts_with("[rust]"));
    assert_eq!(Tmux::input_line(&shown), "[rust]", "{shown}");
    // A line in the other room counts as unread there.
    jane.send("/join lobby");
    jane.expect("OK joined lobby");
    jane.send("back in the lobby?");
    jane.sync();
    let shown = tmux.wait_for(|s| s.contains(" 1 lobby 1"));
    assert!(shown.contains(" 1 lobby 1"), "unread count: {shown}");

    // Alt+1 switches to the lobby: the prompt, the lines, and the server's current room.
    tmux.keys(&["M-1"]);
    let shown = tmux.wait_for(|s| Tmux::input_line(s).starts_with("[lobby]"));
    assert_eq!(Tmux::input_line(&shown), "[lobby]", "{shown}");
    assert!(shown.contains("jane: back in the lobby?"), "{shown}");
    tmux.keys(&["-l", "yes"]);
    tmux.keys(&["Enter"]);
    assert_eq!(jane.expect("MSG "), "MSG lobby tom yes");
    // Ctrl+N goes to the next room.
    tmux.keys(&["C-n"]);
    tmux.wait_for(|s| Tmux::input_line(s).starts_with("[rust]"));
    tmux.keys(&["-l", "over here"]);
    tmux.keys(&["Enter"]);
    assert_eq!(jane.expect("MSG "), "MSG rust tom over here");

    // Errors are shown as such.
    tmux.keys(&["-l", "/nick 9"]);
    tmux.keys(&["Enter"]);
    let shown = tmux.wait_for(|s| s.contains("(bad-nick)"));
    assert!(shown.contains("error:"), "{shown}");

    // Ctrl+C quits cleanly and gives the terminal back.
    tmux.keys(&["C-c"]);
    assert!(jane.expect("EVENT ").contains("quit tom"));
    let shown = tmux.wait_for(|s| s.contains("exit="));
    assert!(shown.contains("exit=0"), "{shown}");
}

#[test]
fn full_screen_client_reconnects_with_its_nick_and_rooms() {
    let server = TestServer::start();
    let addr = server.addr;
    let command = format!(
        "{} connect {addr} --nick tom --room rust",
        env!("CARGO_BIN_EXE_miochat")
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let shown = tmux.wait_for(|s| Tmux::input_line(s).starts_with("[rust]"));
    assert_eq!(Tmux::input_line(&shown), "[rust]", "{shown}");
    // The server goes away: the client says so and keeps its screen.
    drop(server);
    let shown = tmux.wait_for(|s| s.contains("disconnected"));
    assert!(shown.contains("-- disconnected: "), "{shown}");
    // A new server on the same address: the client finds it (after its back-off),
    // takes its nick again and re-joins rust, which stays current.
    let server = TestServer::start_with(|config| config.listen = addr);
    let mut peer = server.client_named("jane");
    peer.join("rust");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        peer.send("/who rust");
        let who = peer.expect("OK who rust");
        if who.split(' ').any(|nick| nick == "tom") {
            break;
        }
        assert!(Instant::now() < deadline, "tom did not come back: {who}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = tmux.wait_for(|s| s.contains("-- reconnected"));
    assert!(shown.contains("-- reconnected"), "{shown}");
    assert_eq!(Tmux::input_line(&shown), "[rust]", "{shown}");
    peer.send("welcome back");
    let shown = tmux.wait_for(|s| s.contains("jane: welcome back"));
    assert!(shown.contains("jane: welcome back"), "{shown}");
}

#[test]
fn full_screen_client_shows_history_and_recovers_what_it_missed() {
    let dir = DataDir::new("tui-history");
    let data = dir.0.to_str().unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--workers",
        "2",
        "-q",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
    ];
    let (_served, addrs) = serve_exactly(&args, &[""]);
    let relay = Relay::start(addrs[0]);
    let mut jane = TestClient::connect(addrs[0]);
    jane.set_nick("jane");
    jane.join("rust");
    jane.send("before one");
    jane.sync();
    let command = format!(
        "{} connect {} --nick tom --room rust",
        env!("CARGO_BIN_EXE_miochat"),
        relay.addr
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    // The join's history: above "you joined", with a time, no raw reply.
    let shown = tmux.wait_for(|s| s.contains("you joined rust") && s.contains("before one"));
    let at = |screen: &str, needle: &str| screen.find(needle).unwrap_or(usize::MAX);
    assert!(
        at(&shown, "jane: before one") < at(&shown, "you joined rust"),
        "{shown}"
    );
    assert!(!shown.contains("history rust"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.contains("jane: before one"))
        .unwrap();
    let stamp = line.trim_start_matches(|c: char| !c.is_ascii_digit());
    assert!(stamp.as_bytes().get(2) == Some(&b':'), "{line}");
    jane.send("live one");
    tmux.wait_for(|s| s.contains("jane: live one"));
    // The network goes away; jane speaks; it comes back.
    relay.cut();
    jane.expect("EVENT rust quit tom");
    jane.send("missed one");
    jane.send("live one");
    jane.sync();
    relay.restore();
    jane.expect("EVENT rust join tom");
    let shown = tmux.wait_for(|s| s.matches("jane: live one").count() == 2);
    for (needle, times) in [("before one", 1), ("live one", 2), ("missed one", 1)] {
        assert_eq!(shown.matches(needle).count(), times, "{needle}: {shown}");
    }
    assert!(
        at(&shown, "jane: missed one") < at(&shown, "-- reconnected"),
        "{shown}"
    );
    assert!(!shown.contains("error"), "{shown}");
}
