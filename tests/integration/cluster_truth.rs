//! One truth across nodes: nick claims in Redis, private messages that are never
//! silently lost, and what users are told when the link to the other nodes drops.
//! A real `redis-server` and two or three `miochat serve --backplane` processes, as
//! in `cluster.rs` (skipped without `redis-server`, except under `CI=true`).

use std::time::{Duration, Instant};

use crate::cluster::{Node, Redis, skip_until, two_nodes, wait_for_members, wait_until_clustered};
use crate::common::TestClient;

/// The answer to `/nick NICK`: `OK nick NICK` or an `ERR` line (room events about
/// other users' nick changes are skipped).
#[track_caller]
fn nick_answer(client: &mut TestClient, nick: &str) -> String {
    let ok = format!("OK nick {nick}");
    loop {
        let line = client.line();
        if line == ok || line.starts_with("ERR ") {
            return line;
        }
    }
}

/// `rounds` rounds where one line client per node asks for the same nick at once:
/// exactly one wins, every other is told `nick-taken`; the winner renames back to
/// its own nick (which gives the contested one back for a later round).
fn rename_race(nodes: &[Node], rounds: usize) {
    let mut clients: Vec<TestClient> = (nodes.iter().enumerate())
        .map(|(i, node)| node.client(&format!("home{i}")))
        .collect();
    for client in &mut clients {
        wait_until_clustered(client, nodes.len() - 1);
    }
    for round in 0..rounds {
        let contested = format!("hot{}", round % 5);
        for client in &mut clients {
            client.send(&format!("/nick {contested}"));
        }
        let mut winners = Vec::new();
        for (i, client) in clients.iter_mut().enumerate() {
            let answer = nick_answer(client, &contested);
            if answer.starts_with("OK ") {
                winners.push(i);
            } else {
                let taken = format!("ERR nick-taken {contested} is already taken");
                assert_eq!(answer, taken, "round {round}, client {i}");
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let winner = &mut clients[winners[0]];
        let home = format!("home{}", winners[0]);
        winner.send(&format!("/nick {home}"));
        assert_eq!(nick_answer(winner, &home), format!("OK nick {home}"));
    }
}

/// `rounds` rounds where an IRC client connects to every node at once with the
/// same nick: exactly one is welcomed with it, every other gets 433.
fn connect_race(nodes: &[Node], rounds: usize) {
    for round in 0..rounds {
        let nick = format!("conn{round}");
        let mut clients: Vec<TestClient> = (nodes.iter())
            .map(|node| TestClient::connect_raw(node.irc))
            .collect();
        for client in &mut clients {
            client.send(&format!("NICK {nick}\r\nUSER u 0 * :u"));
        }
        let mut welcomed = 0;
        for client in &mut clients {
            let answer = loop {
                let line = client.line();
                if line.contains(" 001 ") || line.contains(" 433 ") {
                    break line;
                }
            };
            if answer.contains(" 001 ") {
                assert!(answer.contains(&format!(" 001 {nick} ")), "{answer}");
                welcomed += 1;
            } else {
                assert!(answer.contains(&format!(" {nick} :Nickname is already in use")));
            }
        }
        assert_eq!(welcomed, 1, "round {round}");
        for client in &mut clients {
            client.send("QUIT");
            client.discard_to_eof();
        }
    }
}

#[test]
fn a_nick_has_one_holder_across_two_and_three_nodes() {
    let Some(redis) = Redis::start() else { return };
    let two = [Node::start(&redis, "a"), Node::start(&redis, "b")];
    rename_race(&two, 100);
    connect_race(&two, 50);
    drop(two);
    let three = [
        Node::start(&redis, "c"),
        Node::start(&redis, "d"),
        Node::start(&redis, "e"),
    ];
    rename_race(&three, 100);
    connect_race(&three, 50);
}

#[test]
fn guest_nicks_of_any_node_cannot_be_chosen() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, _bob) = two_nodes(&redis, "alice", "bob");
    alice.send("/nick guest7-b");
    assert_eq!(
        nick_answer(&mut alice, "guest7-b"),
        "ERR nick-taken guest7-b is already taken"
    );
}

#[test]
fn while_redis_is_down_nothing_is_promised_that_cannot_be_kept() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (_a, _b, mut alice, mut anna) = two_nodes(&redis, "alice", "anna");
    for client in [&mut alice, &mut anna] {
        client.join("rust");
        client.join("go");
    }
    wait_for_members(&mut alice, "rust", &["alice", "anna"]);
    wait_for_members(&mut alice, "go", &["alice", "anna"]);
    redis.kill();
    // Told once, though alice shares two rooms with the other node.
    let down = skip_until(&mut alice, "EVENT * link");
    assert!(down.starts_with("EVENT * link down "), "{down}");
    skip_until(&mut anna, "EVENT * link down ");
    alice.send("/msg anna are you there?");
    let refused = alice.expect("ERR ");
    assert!(
        refused.starts_with("ERR not-delivered anna did not get your message: "),
        "{refused}"
    );
    alice.send("/nick zed");
    assert_eq!(
        nick_answer(&mut alice, "zed"),
        "ERR nick-unavailable zed cannot be claimed while the link to the other nodes is down; try again soon"
    );
    let lines = alice.sync();
    assert!(
        !lines.iter().any(|l| l.starts_with("EVENT * link")),
        "told twice: {lines:?}"
    );
    redis.restart();
    let up = skip_until(&mut alice, "EVENT * link");
    assert_eq!(up, "EVENT * link up the link to the other nodes is back");
    skip_until(&mut anna, "EVENT * link up");
    wait_until_clustered(&mut alice, 1);
    alice.send("/msg anna now?");
    assert_eq!(skip_until(&mut alice, "OK sent"), "OK sent anna");
    assert_eq!(skip_until(&mut anna, "PRIV "), "PRIV alice now?");
}

#[test]
fn a_gap_is_reported_as_soon_as_the_link_is_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("rust");
    bob.join("rust");
    wait_for_members(&mut bob, "rust", &["alice", "bob"]);
    crate::cluster::wait_until_subscribed(&mut bob, 2);
    alice.send("before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    redis.kill();
    skip_until(&mut alice, "EVENT * link down");
    for n in 0..3 {
        alice.send(&format!("lost {n}"));
    }
    alice.sync();
    let restarted = Instant::now();
    redis.restart();
    // Nobody on node a speaks again: the gap is reported anyway.
    assert_eq!(skip_until(&mut bob, "EVENT rust gap"), "EVENT rust gap a 3");
    assert!(restarted.elapsed() < Duration::from_secs(15));
    assert!(bob.stats().contains(" gaps=3 "));
}
