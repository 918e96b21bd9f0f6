//! `miochat connect` as a person or a script uses it: the built binary, piped stdin,
//! and (when tmux is installed) a real terminal.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestServer, spawn_binary, wait_with_timeout};

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

/// Runs tmux with `args`; false if tmux is not installed.
fn tmux(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("tmux")
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn interactive_session_under_a_terminal() {
    if tmux(&["-V"]).is_none() {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
        return;
    }
    let server = TestServer::start();
    let session = format!("miochat-test-{}", std::process::id());
    let command = format!(
        "{} connect {} --nick tom",
        env!("CARGO_BIN_EXE_miochat"),
        server.addr
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "30",
        &command,
    ])
    .unwrap();
    let screen = |want: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = tmux(&["capture-pane", "-p", "-t", &session]).unwrap_or_default();
            if text.contains(want) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let shown = screen("nick tom");
    assert!(shown.contains("welcome"), "{shown}");
    let mut peer = server.client_named("jane");
    peer.send("hello tom");
    let shown = screen("[lobby] jane: hello tom");
    assert!(
        shown.contains("[lobby] jane: hello tom"),
        "pretty line: {shown}"
    );
    tmux(&["send-keys", "-t", &session, "hi jane", "Enter"]).unwrap();
    assert_eq!(peer.expect("MSG "), "MSG lobby tom hi jane");
    tmux(&["send-keys", "-t", &session, "/nick 9", "Enter"]).unwrap();
    let shown = screen("error:");
    assert!(shown.contains("(bad-nick)"), "{shown}");
    tmux(&["kill-session", "-t", &session]);
}
