//! The line protocol without surprises: `/msg` is confirmed, `/echo`, `/whois` and
//! `/away`, room history on `/join` and `/history`, join/quit summaries, and an idle
//! timeout that spares registered readers and warns before it closes.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::{TestClient, TestServer};

#[test]
fn a_private_message_is_confirmed_and_echo_shows_ones_own_lines() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    alice.send("/msg bob psst");
    assert_eq!(alice.expect("OK sent"), "OK sent bob");
    assert_eq!(bob.expect("PRIV "), "PRIV alice psst");
    // Off by default: nothing comes back.
    alice.send("hello");
    assert_eq!(bob.expect("MSG "), "MSG lobby alice hello");
    alice.expect_quiet();
    alice.send("/echo on");
    assert_eq!(alice.expect("OK echo"), "OK echo on");
    alice.send("seen by me too");
    assert_eq!(alice.expect("MSG "), "MSG lobby alice seen by me too");
    assert_eq!(bob.expect("MSG "), "MSG lobby alice seen by me too");
    alice.send("/me waves");
    assert_eq!(alice.expect("ME "), "ME lobby alice waves");
    alice.send("/echo off");
    assert_eq!(alice.expect("OK echo"), "OK echo off");
    alice.send("quiet again");
    alice.expect_quiet();
    alice.send("/echo maybe");
    assert_eq!(alice.expect("ERR "), "ERR usage usage: /echo on|off");
}

#[test]
fn msg_to_a_room_speaks_there_without_switching() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    bob.join("rust");
    alice.join("rust");
    alice.join("lobby");
    alice.send("/msg #rust over here");
    assert_eq!(bob.expect("MSG "), "MSG rust alice over here");
    // The current room is still the lobby.
    alice.send("plain line");
    assert_eq!(bob.expect("MSG "), "MSG lobby alice plain line");
    alice.send("/echo on");
    alice.expect("OK echo on");
    alice.send("/msg #RUST seen by me too");
    assert_eq!(alice.expect("MSG "), "MSG rust alice seen by me too");
    // Not in the room (no such room, or +n): refused.
    alice.send("/msg #elsewhere hi");
    let mut carol = server.client_named("carol");
    carol.join("elsewhere");
    alice.send("/msg #elsewhere hi");
    for _ in 0..2 {
        let refused = alice.expect("ERR ");
        assert_eq!(refused, "ERR not-in-room you are not in elsewhere");
    }
    alice.send("/msg #b@d hi");
    assert!(alice.expect("ERR ").starts_with("ERR bad-room"));
    carol.expect_quiet();
}

#[test]
fn whois_and_away_for_line_users() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    alice.join("rust");
    alice.send("/away gone fishing");
    assert_eq!(alice.expect("OK away"), "OK away");
    bob.send("/whois alice");
    let whois = bob.expect("OK whois");
    assert!(
        whois.starts_with("OK whois alice line "),
        "protocol first: {whois}"
    );
    assert!(
        whois.contains("lobby,@rust gone fishing"),
        "rooms, then the away message: {whois}"
    );
    bob.send("/msg alice are you there");
    assert_eq!(bob.expect("OK sent"), "OK sent alice");
    assert_eq!(bob.expect("OK away"), "OK away alice gone fishing");
    assert_eq!(alice.expect("PRIV "), "PRIV bob are you there");
    alice.send("/away");
    assert_eq!(alice.expect("OK back"), "OK back");
    bob.send("/whois ALICE");
    let whois = bob.expect("OK whois");
    assert!(whois.ends_with("lobby,@rust"), "{whois}");
    bob.send("/whois nobody");
    assert_eq!(
        bob.expect("ERR "),
        "ERR no-such-nick no one is called nobody"
    );
}

/// Reads the `HIST` lines up to `OK history`; returns them and that line.
fn playback(client: &mut TestClient) -> (Vec<String>, String) {
    let mut hist = Vec::new();
    loop {
        let line = client.line();
        if line.starts_with("OK history") {
            return (hist, line);
        }
        if line.starts_with("HIST ") {
            hist.push(line);
        }
    }
}

#[test]
fn join_plays_back_the_last_twenty_lines_and_history_asks_for_more() {
    let server = TestServer::start_with(|c| c.workers = 4);
    let mut alice = server.client_named("alice");
    alice.join("rust");
    for i in 1..=25 {
        alice.send(&format!("line {i}"));
    }
    alice.send("/me is done");
    alice.sync();
    let mut bob = server.client_named("bob");
    bob.join("rust");
    let (hist, end) = playback(&mut bob);
    assert_eq!(end, "OK history rust 20");
    assert_eq!(hist.len(), 20);
    // HIST TIME MSGID, then the line as it was sent.
    let first: Vec<&str> = hist[0].splitn(4, ' ').collect();
    assert_eq!(first[0], "HIST");
    assert!(
        first[1].len() == 24 && first[1].ends_with('Z'),
        "{}",
        first[1]
    );
    assert!(
        first[2].len() == 16 && first[2].bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        first[2]
    );
    assert_eq!(first[3], "MSG rust alice line 7");
    assert!(hist[19].ends_with(" ME rust alice is done"), "{}", hist[19]);
    bob.send("/history 3");
    let (hist, end) = playback(&mut bob);
    assert_eq!(end, "OK history rust 3");
    assert!(hist[0].ends_with(" MSG rust alice line 24"), "{hist:?}");
    bob.send("/history 1000");
    let (hist, _) = playback(&mut bob);
    assert_eq!(hist.len(), 26, "everything kept (the default keeps 100)");
    // A word is a room (`/history ROOM [N]`): one bob is not in, or a bad count.
    bob.send("/history many");
    assert_eq!(bob.expect("ERR "), "ERR not-in-room you are not in many");
    bob.send("/history rust lots");
    assert!(
        bob.expect("ERR ")
            .starts_with("ERR usage usage: /history [N]")
    );
}

#[test]
fn history_off_keeps_nothing() {
    let server = TestServer::start_with(|c| c.history = 0);
    let mut alice = server.client_named("alice");
    alice.join("rust");
    alice.send("not kept");
    alice.sync();
    let mut bob = server.client_named("bob");
    bob.join("rust");
    bob.expect_quiet();
    bob.send("/history");
    assert_eq!(bob.expect("OK history"), "OK history rust 0");
}

/// Counts the joins (or quits) `watcher` is told of, singly or summed up, until
/// `want` are accounted for; returns the lines that told them.
fn tally(watcher: &mut TestClient, room: &str, what: &str, want: usize) -> Vec<String> {
    let (single, summary) = (
        format!("EVENT {room} {what} "),
        format!("EVENT {room} {what}s "),
    );
    let mut lines = Vec::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < want {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {want}: {lines:?}"
        );
        let line = watcher.line();
        if let Some(rest) = line.strip_prefix(&summary) {
            seen += rest.split(' ').next().unwrap().parse::<usize>().unwrap();
            lines.push(line);
        } else if line.starts_with(&single) {
            seen += 1;
            lines.push(line);
        }
    }
    lines
}

#[test]
fn a_crowd_joining_and_quitting_is_summed_up() {
    let server = TestServer::start();
    let mut watcher = server.client_named("watcher");
    watcher.join("crowd");
    let mut crowd: Vec<TestClient> = (0..12).map(|_| server.client()).collect();
    for member in &mut crowd {
        member.send("/join crowd");
    }
    let joins = tally(&mut watcher, "crowd", "join", 12);
    // Sent within moments, the joins take fewer lines than there are joins (how few
    // depends on how many seconds they span, which a test does not assert).
    assert!(joins.len() < 12, "summed up: {joins:?}");
    let summary = joins
        .iter()
        .find(|l| l.starts_with("EVENT crowd joins "))
        .expect("a summary line");
    let words: Vec<&str> = summary.split(' ').collect();
    let count: usize = words[3].parse().unwrap();
    assert!(count >= 2, "{summary}");
    assert!(
        words.len() <= 4 + 10 + 1,
        "at most 10 nicks, then …: {summary}"
    );
    for member in &mut crowd {
        member.send("/quit");
    }
    let quits = tally(&mut watcher, "crowd", "quit", 12);
    assert!(quits.len() < 12, "summed up: {quits:?}");
}

#[test]
fn idle_timeout_warns_first_and_spares_a_registered_reader() {
    let server = TestServer::start_with(|c| c.idle_timeout = Some(Duration::from_secs(2)));
    let mut silent = server.client();
    let mut reader = server.client();
    // One line registers the reader; after that it may only read.
    reader.send("/ping hello");
    reader.expect("PONG hello");
    let lines = silent.read_to_eof();
    assert!(
        lines.iter().any(|l| l.starts_with("EVENT * idle 1 ")),
        "warned first: {lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ERR idle-timeout nothing received for too long; closing")
    );
    thread::sleep(Duration::from_millis(2500));
    reader.send("/ping still-here");
    reader.expect("PONG still-here");
}

/// The `tr` (timer) field of the server's end of `client`'s connection in
/// `/proc/net/tcp`: 2 is the keepalive timer. Linux only.
#[cfg(target_os = "linux")]
fn server_side_timer(server: &TestServer, client: &TestClient) -> Option<String> {
    let client_port = client.writer.local_addr().unwrap().port();
    let (local, remote) = (
        format!("0100007F:{:04X}", server.addr.port()),
        format!("0100007F:{client_port:04X}"),
    );
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields[5].split(':').next().unwrap_or("").to_string())
    })
}

#[cfg(target_os = "linux")]
#[test]
fn accepted_connections_have_tcp_keepalive() {
    let server = TestServer::start();
    let mut client = server.client_named("reader");
    client.sync();
    // The server's end of an idle connection runs the keepalive timer (2); without
    // SO_KEEPALIVE it would run none (0). Right after a write it may still run the
    // retransmit timer (1) until the client's ACK arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut timer = server_side_timer(&server, &client);
    while timer.as_deref() == Some("01") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        timer = server_side_timer(&server, &client);
    }
    assert_eq!(timer.as_deref(), Some("02"));
}
