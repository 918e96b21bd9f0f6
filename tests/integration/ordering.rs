//! Several senders on several shards: every message reaches every other member exactly
//! once and in the order sent.

use std::collections::HashMap;
use std::thread;

use crate::common::{TestClient, TestServer};

const SENDERS: usize = 6;
const RECEIVERS: usize = 4;
const PER_SENDER: usize = 300;

#[test]
fn exactly_once_in_order_across_shards() {
    let server = TestServer::start_with(|c| c.workers = 4);
    let mut senders: Vec<_> = (0..SENDERS)
        .map(|i| server.client_named(&format!("s{i}")))
        .collect();
    let mut receivers: Vec<_> = (0..RECEIVERS)
        .map(|i| server.client_named(&format!("r{i}")))
        .collect();
    for c in senders.iter_mut().chain(receivers.iter_mut()) {
        c.join("order");
    }
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            thread::spawn(move || {
                // Pipelined: all lines in one burst per 50, no waiting for replies.
                for chunk in (0..PER_SENDER).collect::<Vec<_>>().chunks(50) {
                    let text: String = chunk.iter().map(|n| format!("m {i} {n}\n")).collect();
                    s.send_raw(text.as_bytes());
                }
                s.sync();
                s
            })
        })
        .collect();
    let senders: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in &mut receivers {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for _ in 0..SENDERS * PER_SENDER {
            let line = r.expect("MSG order ");
            let mut words = line.split(' ').skip(3);
            assert_eq!(words.next(), Some("m"), "{line}");
            let sender: usize = words.next().unwrap().parse().unwrap();
            let seq: usize = words.next().unwrap().parse().unwrap();
            let expected = next.entry(sender).or_insert(0);
            assert_eq!(seq, *expected, "{}: from s{sender}: {line}", r.nick);
            *expected += 1;
        }
        r.expect_quiet();
    }
    drop(senders);
}

/// Observers in one room; a questioner and a responder; rounds of the questioner's
/// `q i` followed by the responder's `a i`, sent the moment it sees `q i`.
const OBSERVERS: usize = 40;
const ROUNDS: usize = 400;

/// ET-8, causal order within a room: no member may see an answer before the question
/// that caused it. With more shards than cores, a shard that pushes its batch to peers
/// one after another can be preempted mid-way; if delivery were not sequenced per
/// room, a peer could react and its answer overtake the question at a third shard.
fn causal_order_holds_with(shards: usize) {
    let server = TestServer::start_with(|c| c.workers = shards);
    let room = format!("causal{shards}");
    let mut questioner = server.client_named("q");
    let mut responder = server.client_named("r");
    let mut observers: Vec<_> = (0..OBSERVERS)
        .map(|i| server.client_named(&format!("o{i}")))
        .collect();
    for c in observers.iter_mut() {
        c.join(&room);
    }
    questioner.join(&room);
    responder.join(&room);
    let answering = thread::spawn(move || {
        for round in 0..ROUNDS {
            let line = next_starting(&mut responder, &format!("MSG {room} q "));
            assert_eq!(line, format!("MSG {room} q q {round}"));
            responder.send(&format!("a {round}"));
        }
        responder
    });
    for round in 0..ROUNDS {
        questioner.send(&format!("q {round}"));
        let answer = next_starting(&mut questioner, &format!("MSG causal{shards} r "));
        assert_eq!(answer, format!("MSG causal{shards} r a {round}"));
    }
    let _responder = answering.join().unwrap();
    for o in &mut observers {
        for round in 0..ROUNDS {
            let q = next_starting(o, &format!("MSG causal{shards} "));
            assert!(
                q.ends_with(&format!(" q {round}")),
                "{}: {q} before q {round}",
                o.nick
            );
            let a = next_starting(o, &format!("MSG causal{shards} "));
            assert!(
                a.ends_with(&format!(" a {round}")),
                "{}: {a} for round {round}",
                o.nick
            );
        }
    }
}

#[test]
fn et8_causal_order_with_4_shards() {
    causal_order_holds_with(4);
}

#[test]
fn et8_causal_order_with_8_shards() {
    causal_order_holds_with(8);
}

/// The next line that starts with `prefix` (join notices and the like are skipped).
#[track_caller]
fn next_starting(client: &mut TestClient, prefix: &str) -> String {
    loop {
        let line = client.line();
        if line.starts_with(prefix) {
            return line;
        }
    }
}

/// ET-8, one order per room: two senders on different shards send at once, and every
/// observer (on every shard) sees the same interleaving of their lines.
#[test]
fn et8_every_member_sees_the_room_in_one_order() {
    let server = TestServer::start_with(|c| c.workers = 4);
    let mut senders: Vec<_> = (0..2)
        .map(|i| server.client_named(&format!("t{i}")))
        .collect();
    let mut observers: Vec<_> = (0..8)
        .map(|i| server.client_named(&format!("v{i}")))
        .collect();
    for c in senders.iter_mut().chain(observers.iter_mut()) {
        c.join("one");
    }
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            thread::spawn(move || {
                for chunk in (0..PER_SENDER).collect::<Vec<_>>().chunks(20) {
                    let text: String = chunk.iter().map(|n| format!("m {i} {n}\n")).collect();
                    s.send_raw(text.as_bytes());
                }
                s.sync();
                s
            })
        })
        .collect();
    let _senders: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let seen: Vec<Vec<String>> = observers
        .iter_mut()
        .map(|o| {
            (0..2 * PER_SENDER)
                .map(|_| next_starting(o, "MSG one "))
                .collect()
        })
        .collect();
    for (i, order) in seen.iter().enumerate().skip(1) {
        assert!(order == &seen[0], "observer v{i} saw another order than v0");
    }
}
