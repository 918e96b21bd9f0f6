//! Slow consumers, floods, bursts: the edge-triggered and backpressure invariants.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use socket2::{Domain, Socket, Type};

use crate::common::{TestClient, TestServer};

/// A client whose kernel receive buffer is tiny, so it fills up quickly.
fn tiny_window_client(addr: SocketAddr) -> TestClient {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    TestClient::from_stream(socket.into())
}

fn payload(i: usize) -> String {
    format!("{i:06} {}", "p".repeat(90))
}

/// Reads `n` room messages and checks they are `payload(0..n)` in order.
fn expect_payloads(c: &mut TestClient, n: usize) {
    for i in 0..n {
        let line = c.expect("MSG ");
        assert!(line.ends_with(&payload(i)), "{}: #{i}: {line}", c.nick);
    }
}

#[test]
fn slow_consumer_is_cut_while_others_receive_everything() {
    let server = TestServer::start_with(|c| c.sendq = 16 * 1024);
    let mut slow = tiny_window_client(server.addr);
    let _ = slow.line(); // welcome; from here on it never reads
    slow.send("/join flood");
    let slow_nick = slow.nick.clone();
    let mut reader = server.client_named("reader");
    reader.join("flood");
    let mut sender = server.client_named("sender");
    sender.join("flood");
    // How much the kernel buffers for the slow client is not ours to know (send
    // buffers autotune up to 4 MiB), so flood until the cut is seen, up to ~64 MB.
    const MAX_LINES: usize = 640_000;
    const WINDOW: usize = 200; // the reader keeps up: at most 200 lines in flight
    let (progress_tx, progress) = mpsc::channel::<(usize, bool)>();
    let reading = thread::spawn(move || {
        let (mut next, mut cut_seen) = (0, false);
        loop {
            let line = reader.line();
            if line.starts_with("EVENT flood quit") {
                assert!(line.ends_with(" slow-consumer"), "{line}");
                cut_seen = true;
            } else if line.starts_with("MSG ") {
                if line.ends_with(" end") {
                    return (reader, next, cut_seen);
                }
                assert!(line.ends_with(&payload(next)), "#{next}: {line}");
                next += 1;
                if next % 50 == 0 {
                    let _ = progress_tx.send((next, cut_seen));
                }
            }
        }
    });
    let (mut read, mut cut_seen, mut sent) = (0, false, 0);
    let mut after_cut = 0;
    while sent < MAX_LINES && after_cut < 500 {
        while sent >= read + WINDOW {
            (read, cut_seen) = progress.recv().unwrap();
        }
        let text: String = (sent..sent + 50).map(|i| payload(i) + "\n").collect();
        sender.send_raw(text.as_bytes());
        sent += 50;
        if cut_seen {
            after_cut += 50;
        }
    }
    sender.send("end");
    let (_reader, received, cut_seen) = reading.join().unwrap();
    assert!(cut_seen, "{slow_nick} was never cut after {sent} lines");
    assert_eq!(
        received, sent,
        "the reader got every line, before and after the cut"
    );
    sender.send("/stats");
    assert!(sender.expect("OK stats").contains("slow_consumers=1 "));
    // The slow client finds its connection closed once it reads.
    slow.discard_to_eof();
}

#[test]
fn burst_larger_than_one_read_is_fully_served() {
    // ET-1 and ET-2: 150 KB in one write, more than the 16 KiB read chunk and the
    // 64 KiB per-turn budget, must all be read although no new edge comes for it.
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    const N: usize = 1500;
    let burst: String = (0..N).map(|i| payload(i) + "\n").collect();
    assert!(burst.len() > 4 * 16 * 1024);
    let reading = thread::spawn(move || {
        expect_payloads(&mut b, N);
        b
    });
    a.send_raw(burst.as_bytes());
    let mut b = reading.join().unwrap();
    b.expect_quiet();
}

#[test]
fn a_paused_reader_gets_everything_when_it_resumes() {
    // ET-4: output that did not fit the socket waits with WRITABLE interest and is
    // flushed by writable events as the reader catches up.
    let server = TestServer::start_with(|c| c.workers = 1);
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    const N: usize = 2000; // ~200 KB, under the default 256 KiB sendq
    for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
        let text: String = chunk.iter().map(|&i| payload(i) + "\n").collect();
        a.send_raw(text.as_bytes());
    }
    a.sync(); // every line is now queued for bob, who has not read any of it
    expect_payloads(&mut b, N);
    b.expect_quiet();
}

#[test]
fn a_flooding_client_does_not_starve_others() {
    let server = TestServer::start_with(|c| c.workers = 1);
    let mut flooder = server.client_named("flooder");
    flooder.join("flood");
    let mut sink = server.client_named("sink");
    sink.join("flood");
    let mut talker = server.client_named("talker");
    talker.join("calm");
    let mut listener = server.client_named("listener");
    listener.join("calm");
    let sinking = thread::spawn(move || sink.discard_to_eof());
    let flooding = thread::spawn(move || {
        let block: String = (0..1000).map(|i| payload(i) + "\n").collect();
        for _ in 0..40 {
            flooder.send_raw(block.as_bytes());
        }
        flooder.sync();
        flooder
    });
    // While the flood runs on the same shard, the calm room keeps working.
    for i in 0..50 {
        talker.send(&format!("calm {i}"));
        assert_eq!(listener.expect("MSG "), format!("MSG calm talker calm {i}"));
    }
    let flooder = flooding.join().unwrap();
    drop(flooder);
    drop(server);
    sinking.join().unwrap();
}
