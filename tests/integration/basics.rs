//! Welcome, guest nicks, relay, /ping, /help, /stats.

use crate::common::TestServer;

#[test]
fn welcome_gives_a_unique_guest_nick_in_lobby() {
    let server = TestServer::start();
    let a = server.client();
    let b = server.client();
    assert!(a.nick.starts_with("guest"), "{}", a.nick);
    assert_ne!(a.nick, b.nick);
}

#[test]
fn a_line_reaches_every_other_member_and_is_not_echoed() {
    let server = TestServer::start_with(|c| c.workers = 3);
    let mut clients: Vec<_> = (0..5)
        .map(|i| server.client_named(&format!("u{i}")))
        .collect();
    clients[0].send("hello, world");
    for c in &mut clients[1..] {
        assert_eq!(c.expect("MSG "), "MSG lobby u0 hello, world");
    }
    clients[0].expect_quiet();
}

#[test]
fn me_ping_help_and_stats() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    a.send("/me waves");
    assert_eq!(b.expect("ME "), "ME lobby alice waves");
    a.send("/ping");
    assert_eq!(a.expect("PONG"), "PONG");
    a.send("/help");
    let first = a.expect("OK help ");
    assert!(first.contains("send text"), "{first}");
    let rest = a.sync();
    assert!(rest.iter().all(|l| l.starts_with("OK help ")), "{rest:?}");
    a.send("/stats");
    let stats = a.expect("OK stats ");
    assert!(stats.contains("connections=2 "), "{stats}");
    assert!(
        stats.contains("shards=1,1 "),
        "round-robin over 2 shards: {stats}"
    );
    assert!(stats.contains("messages_in=1 "), "{stats}");
    // `//` escapes a leading slash.
    a.send("//not a command");
    assert_eq!(b.expect("MSG "), "MSG lobby alice /not a command");
}

#[test]
fn empty_lines_are_ignored_and_crlf_is_accepted() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    a.send_raw(b"\n\r\n   \nhi there\r\n");
    assert_eq!(b.expect("MSG "), "MSG lobby alice hi there");
    a.expect_quiet();
}
