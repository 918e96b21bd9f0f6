//! Bad input gets an error line and never costs the connection (or anyone else) more.

use crate::common::TestServer;

#[test]
fn over_long_line_is_rejected_once_and_the_next_line_works() {
    let server = TestServer::start_with(|c| c.max_line = 64);
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    let long = "x".repeat(200);
    a.send(&long);
    assert_eq!(
        a.expect("ERR "),
        "ERR line-too-long lines are limited to 64 bytes; the rest of that line was discarded"
    );
    a.send("short again");
    assert_eq!(b.expect("MSG "), "MSG lobby alice short again");
    // Split across many writes: still exactly one error.
    for _ in 0..20 {
        a.send_raw(&[b'y'; 50]);
    }
    a.send_raw(b"\nfine\n");
    a.expect("ERR line-too-long");
    assert_eq!(b.expect("MSG "), "MSG lobby alice fine");
    a.expect_quiet();
}

#[test]
fn invalid_utf8_and_control_characters_are_rejected() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    a.send_raw(b"caf\xe9\n");
    assert!(a.expect("ERR ").starts_with("ERR bad-utf8 "));
    a.send_raw(b"\x1b[2Jclear your screen\n");
    assert!(a.expect("ERR ").starts_with("ERR bad-text "));
    a.send("/frobnicate now");
    assert_eq!(
        a.expect("ERR "),
        "ERR unknown-command /frobnicate is not a command; /help lists them"
    );
    a.send("café is fine");
    assert_eq!(b.expect("MSG "), "MSG lobby alice café is fine");
    b.expect_quiet();
}

#[test]
fn binary_garbage_never_harms_anyone() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    // Deterministic pseudo-random bytes (xorshift), newlines included.
    let mut x: u32 = 0x9e37_79b9;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect();
    a.send_raw(&garbage);
    a.send("\nstill here");
    // Whatever the garbage produced (errors, odd messages), alice is still served...
    let lines = a.sync();
    assert!(
        lines.iter().any(|l| l.starts_with("ERR ")),
        "garbage got errors"
    );
    // ...and bob still receives her valid line, the last one she sent.
    let got = b.sync();
    let mut last_msg = got.iter().rev().find(|l| l.starts_with("MSG ")).cloned();
    while last_msg.as_deref() != Some("MSG lobby alice still here") {
        last_msg = Some(b.expect("MSG "));
    }
}
