//! One truth across nodes: nick claims in Redis, private messages that are never
//! silently lost, and what users are told when the link to the other nodes drops.
//! A real `redis-server` and two or three `miochat serve --backplane` processes, as
//! in `cluster.rs` (skipped without `redis-server`, except under `CI=true`).

use std::time::{Duration, Instant};

use crate::cluster::{
    Node, Redis, live_or_read_back, skip_until, two_nodes, wait_for_members, wait_until_clustered,
    wait_until_subscribed,
};
use crate::common::{TestClient, signal};
use crate::store::TempDir;

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
fn rename_race(nodes: &[Node], rounds: usize, tag: &str) {
    let mut clients: Vec<TestClient> = (nodes.iter().enumerate())
        .map(|(i, node)| node.client(&format!("home{i}")))
        .collect();
    for client in &mut clients {
        wait_until_clustered(client, nodes.len() - 1);
    }
    for round in 0..rounds {
        let contested = format!("hot{tag}{}", round % 5);
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
fn connect_race(nodes: &[Node], rounds: usize, tag: &str) {
    for round in 0..rounds {
        let nick = format!("conn{tag}{round}");
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
    // Each phase its own nicks: those of killed nodes stay claimed for a lease.
    rename_race(&two, 100, "a");
    connect_race(&two, 50, "a");
    drop(two);
    let three = [
        Node::start(&redis, "c"),
        Node::start(&redis, "d"),
        Node::start(&redis, "e"),
    ];
    rename_race(&three, 100, "b");
    connect_race(&three, 50, "b");
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
fn a_redis_that_stops_answering_is_taken_for_down_and_each_line_arrives_once() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("rust");
    wait_for_members(&mut bob, "rust", &["alice"]);
    bob.join("rust");
    wait_for_members(&mut alice, "rust", &["alice", "bob"]);
    wait_until_subscribed(&mut bob, 2);
    alice.send("before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    // A stopped Redis keeps its sockets open: only its silence tells.
    redis.signal("STOP");
    alice.send("while stopped 0"); // into a link nobody reads: Redis runs it later
    let down = skip_until(&mut alice, "EVENT * link");
    assert!(down.starts_with("EVENT * link down "), "{down}");
    skip_until(&mut bob, "EVENT * link down ");
    alice.send("while stopped 1"); // held by node a
    alice.sync();
    redis.signal("CONT");
    assert_eq!(
        skip_until(&mut alice, "EVENT * link"),
        "EVENT * link up the link to the other nodes is back"
    );
    for n in 0..2 {
        assert_eq!(
            live_or_read_back(&mut bob, "MSG rust alice "),
            format!("MSG rust alice while stopped {n}")
        );
    }
    // The line Redis ran late, then was sent again, is in the room's log once,
    // and so in history. (What was read back ends with its own `OK history` and
    // count: skipped first.)
    let log = redis.command(&["XRANGE", "miochat:log:rust", "-", "+"]);
    assert_eq!(log.matches("while stopped 0").count(), 1, "{log}");
    assert_eq!(log.matches("while stopped 1").count(), 1, "{log}");
    bob.sync();
    let history = history_of(&mut bob, "rust");
    let copies = |text: &str| history.iter().filter(|l| l.ends_with(text)).count();
    assert_eq!(
        (copies("while stopped 0"), copies("while stopped 1")),
        (1, 1),
        "{history:?}"
    );
}

/// Cuts node `b`'s subscription while it is stopped, so that what node `a`'s
/// alice says meanwhile reaches `b` only through the room's log; returns what bob
/// (on `b`) then gets: every `MSG`/`HIST` line of room rust, and the `EVENT rust`
/// recovered and gap lines, until `want` lines of alice were accounted for.
fn cut_b_off_while_alice_speaks(extra: &[&str], lines: usize) -> (Vec<String>, u64, u64) {
    let Some(redis) = Redis::start() else {
        return (Vec::new(), 0, 0);
    };
    let a = Node::start_with(&redis, "a", extra);
    let b = Node::start_with(&redis, "b", extra);
    let (mut alice, mut bob) = (a.client("alice"), b.client("bob"));
    wait_until_clustered(&mut alice, 1);
    wait_until_clustered(&mut bob, 1);
    alice.join("rust");
    wait_for_members(&mut bob, "rust", &["alice"]);
    bob.join("rust");
    wait_for_members(&mut alice, "rust", &["alice", "bob"]);
    crate::cluster::wait_until_subscribed(&mut bob, 2);
    alice.send("seen live");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice seen live");
    signal(&b.child, "STOP");
    // Redis drops both nodes' subscriptions; node b, stopped, cannot take its back.
    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.starts_with(':'), "{killed}");
    for n in 0..lines {
        alice.send(&format!("while away {n}"));
    }
    alice.sync();
    signal(&b.child, "CONT");
    let (mut got, mut recovered, mut lost) = (Vec::new(), 0, 0);
    while (got.len() as u64) + lost < lines as u64 {
        let line = bob.line();
        if line.starts_with("MSG rust alice while away ") || line.starts_with("HIST ") {
            got.push(line);
        } else if let Some(n) = line.strip_prefix("EVENT rust recovered ") {
            recovered += n.parse::<u64>().unwrap();
        } else if let Some(n) = line.strip_prefix("EVENT rust gap a ") {
            lost += n.parse::<u64>().unwrap();
        }
    }
    // The count follows its lines.
    if recovered == 0 {
        recovered = skip_until(&mut bob, "EVENT rust recovered ")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
    }
    (got, recovered, lost)
}

#[test]
fn what_a_node_missed_is_read_back_from_the_rooms_log() {
    let (got, recovered, lost) = cut_b_off_while_alice_speaks(&[], 20);
    if got.is_empty() {
        return; // skipped: no redis-server
    }
    assert_eq!((got.len(), recovered, lost), (20, 20, 0), "{got:?}");
    for (n, line) in got.iter().enumerate() {
        // `HIST TIME MSGID MSG rust alice TEXT`: history, with its time and id.
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(words[0], "HIST", "{line}");
        assert_eq!(words[3], format!("MSG rust alice while away {n}"));
    }
}

#[test]
fn lines_trimmed_from_the_log_before_they_were_read_are_counted_exactly() {
    // The log keeps about 10 entries (Redis trims whole blocks of 100).
    let (got, recovered, lost) = cut_b_off_while_alice_speaks(&["--history-max", "10"], 400);
    if got.is_empty() {
        return;
    }
    assert!(lost > 0, "nothing was trimmed");
    assert_eq!(recovered + lost, 400);
    assert_eq!(got.len() as u64, recovered);
    // What was recovered is the newest, in order, ending with the last line.
    let last = got.last().unwrap();
    assert!(last.ends_with("MSG rust alice while away 399"), "{last}");
}

#[test]
fn only_what_a_node_could_not_hold_is_lost_and_that_is_told_at_once() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("rust");
    wait_for_members(&mut bob, "rust", &["alice"]);
    bob.join("rust");
    wait_for_members(&mut alice, "rust", &["alice", "bob"]);
    crate::cluster::wait_until_subscribed(&mut bob, 2);
    alice.send("before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    redis.kill();
    skip_until(&mut alice, "EVENT * link down");
    // Node a holds 10 000 events while Redis is away; 5 more cannot be held.
    let burst: String = (0..10_005).map(|n| format!("held {n}\n")).collect();
    alice.send_raw(burst.as_bytes());
    alice.sync();
    // The backplane thread has taken in the whole burst (it may lag the shard).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alice.stats().contains(" unpublished=5 ") {
        assert!(Instant::now() < deadline, "the burst was never all held");
        std::thread::sleep(Duration::from_millis(20));
    }
    redis.restart();
    for n in 0..10_000 {
        assert_eq!(
            live_or_read_back(&mut bob, "MSG rust alice "),
            format!("MSG rust alice held {n}")
        );
    }
    // Nobody speaks again, yet node a's sequence numbers tell the loss at once.
    assert_eq!(skip_until(&mut bob, "EVENT rust gap"), "EVENT rust gap a 5");
}

/// Two nodes, each with a data dir of its own.
fn two_nodes_with_stores(redis: &Redis) -> (Node, Node, TempDir, TempDir) {
    let (dir_a, dir_b) = (TempDir::new("node-a"), TempDir::new("node-b"));
    let a_dir = dir_a.0.to_string_lossy().to_string();
    let b_dir = dir_b.0.to_string_lossy().to_string();
    let a = Node::start_with(redis, "a", &["--data-dir", &a_dir]);
    let b = Node::start_with(redis, "b", &["--data-dir", &b_dir]);
    (a, b, dir_a, dir_b)
}

/// Redis restarted: the account book's idle connection to it is closed. The next
/// account command dials again at once, rather than failing as a broken disk.
#[test]
fn the_first_account_command_after_a_redis_restart_succeeds() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, _b, _dir_a, _dir_b) = two_nodes_with_stores(&redis);
    let mut alice = a.client("alice");
    wait_until_clustered(&mut alice, 1);
    alice.send("/register wonderland");
    alice.expect("OK registered alice");
    redis.kill();
    redis.restart();
    let mut dave = a.client("dave");
    wait_until_clustered(&mut dave, 1);
    dave.send("/register secret1");
    dave.expect("OK registered dave");
}

#[test]
fn an_account_registered_on_one_node_logs_in_on_another() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, _dir_a, _dir_b) = two_nodes_with_stores(&redis);
    let mut alice = a.client("alice");
    wait_until_clustered(&mut alice, 1);
    alice.send("/register wonderland");
    alice.expect("OK registered alice");
    alice.send("/quit");
    alice.discard_to_eof();
    let mut impostor = b.client("guest");
    wait_until_clustered(&mut impostor, 1);
    impostor.send("/nick alice");
    assert_eq!(
        nick_answer(&mut impostor, "alice"),
        "ERR nick-registered alice is a registered account; /login alice PASSWORD to use it"
    );
    impostor.send("/login alice wrong-password");
    impostor.expect("ERR bad-login");
    let mut owner = TestClient::connect(b.addr);
    owner.send("/login alice wonderland");
    owner.expect("OK login alice");
    owner.expect("OK nick alice");
    // Dropped on b, gone on a too.
    owner.send("/unregister wonderland");
    owner.expect("OK unregistered alice");
    let mut anyone = a.client("bob");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        anyone.send("/login alice wonderland");
        if anyone.expect("ERR ").starts_with("ERR bad-login") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
}

#[test]
fn the_owner_of_a_dead_nodes_nick_gets_it_back_at_once_elsewhere() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, b, _dir_a, _dir_b) = two_nodes_with_stores(&redis);
    let mut alice = a.client("alice");
    wait_until_clustered(&mut alice, 1);
    alice.send("/register wonderland");
    alice.expect("OK registered alice");
    let mut watcher = b.client("bob");
    wait_for_members(&mut watcher, "lobby", &["alice", "bob"]);
    a.child.kill().unwrap(); // SIGKILL: no goodbye, the claim stays until its lease
    let mut back = TestClient::connect(b.addr);
    back.send("/login alice wonderland");
    back.expect("OK login alice");
    back.expect("OK nick alice");
    // Redis's claim is node b's now: taken over, not waited for (a lapsed claim
    // would be no claim at all).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let claim = redis.command(&["GET", "miochat:nick:alice"]);
        if claim.contains("\r\nb ") {
            break;
        }
        assert!(Instant::now() < deadline, "{claim:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_room_registered_on_one_node_keeps_its_state_on_another() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, _dir_a, _dir_b) = two_nodes_with_stores(&redis);
    let mut alice = a.client("alice");
    wait_until_clustered(&mut alice, 1);
    alice.send("/register wonderland");
    alice.expect("OK registered alice");
    alice.join("club");
    alice.send("/topic members only");
    alice.send("/mode +k sesame");
    alice.send("/ban mallory!*@*");
    alice.sync();
    alice.send("/register #club");
    alice.expect("OK room-registered club alice");
    alice.send("/leave club");
    alice.expect("OK left club");
    // Nobody is in club anywhere now: node b knows it from the registration.
    let mut bob = b.client("bob");
    wait_until_clustered(&mut bob, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        bob.send("/join club");
        if bob.expect("ERR ").starts_with("ERR bad-key") {
            break;
        }
        assert!(Instant::now() < deadline, "club's key never reached node b");
        std::thread::sleep(Duration::from_millis(50));
    }
    bob.send("/join club sesame");
    let joined = bob.expect("OK joined club");
    assert!(joined.ends_with("members only"), "{joined}");
    let mut mallory = b.client("mallory");
    mallory.send("/join club sesame");
    mallory.expect("ERR banned");
    // The founder logs in on node b, and a ban set there holds on node a at once.
    alice.send("/quit");
    alice.discard_to_eof();
    let mut founder = TestClient::connect(b.addr);
    founder.send("/login alice wonderland");
    founder.expect("OK login alice");
    founder.expect("OK nick alice");
    founder.send("/join club sesame");
    founder.expect("OK joined club");
    founder.send("/ban eve!*@*");
    founder.expect("OK changed club +b eve!*@*");
    let mut eve = a.client("eve");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        eve.send("/join club sesame");
        let answer = eve.line();
        if answer.starts_with("ERR banned") {
            break;
        }
        assert!(
            answer.starts_with("OK joined") && Instant::now() < deadline,
            "{answer}"
        );
        eve.send("/leave club");
        eve.expect("OK left club");
    }
}

/// The `HIST` lines `client` gets for `/history ROOM 10`.
fn history_of(client: &mut TestClient, room: &str) -> Vec<String> {
    client.send(&format!("/history {room} 10"));
    let lines = client.skip_to(&format!("OK history {room}"));
    lines
        .into_iter()
        .filter(|l| l.starts_with("HIST "))
        .collect()
}

#[test]
fn any_node_has_a_rooms_history_with_the_same_ids() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("tales");
    for n in 0..3 {
        alice.send(&format!("tale {n}"));
    }
    let on_a = history_of(&mut alice, "tales");
    assert_eq!(on_a.len(), 3, "{on_a:?}");
    // Node b never had a member in tales: it reads the room's log when bob joins.
    bob.join("tales");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let on_b = history_of(&mut bob, "tales");
        if on_b == on_a {
            break;
        }
        assert!(Instant::now() < deadline, "{on_b:?} against {on_a:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The scripts are called by their SHA-1 (`EVALSHA`): if Redis forgets them
/// (`SCRIPT FLUSH`), the node connects again, loads them, and what was said
/// meanwhile still arrives, in order, once.
#[test]
fn scripts_flushed_from_redis_are_loaded_again_and_nothing_is_lost() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    for client in [&mut alice, &mut bob] {
        client.join("rust");
    }
    wait_for_members(&mut bob, "rust", &["alice", "bob"]);
    wait_until_subscribed(&mut bob, 2); // lobby and rust
    alice.send("before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    assert_eq!(redis.command(&["SCRIPT", "FLUSH"]), "+OK");
    for n in 0..5 {
        alice.send(&format!("after flush {n}"));
    }
    for n in 0..5 {
        let line = live_or_read_back(&mut bob, "MSG rust");
        assert_eq!(line, format!("MSG rust alice after flush {n}"));
    }
    wait_until_clustered(&mut alice, 1);
    alice.send("/nick alicia");
    assert_eq!(nick_answer(&mut alice, "alicia"), "OK nick alicia");
    alice.send("last");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alicia last");
    let stats = bob.stats();
    assert!(stats.contains(" gaps=0 "), "{stats}");
}

/// The script that logs and publishes a node's room events takes a run of them in
/// one call: each is appended in order, and one sent again after a dropped link
/// (Redis had run it) is not logged twice, while a restarted node (a new epoch)
/// starts over.
#[test]
fn a_run_of_room_events_is_logged_in_order_and_never_twice() {
    let Some(redis) = Redis::start() else { return };
    let script = miochat::server::backplane::room_log::LOG_AND_PUBLISH.text();
    let run = |epoch: &str, events: &[(&str, &str)]| {
        let mut args = vec![
            "EVAL", script, "2", "log", "seqs", "chan", "0", "PUBLISH", "n0", epoch,
        ];
        for (payload, seq) in events {
            args.extend([*payload, *seq]);
        }
        redis.command(&args)
    };
    assert_eq!(run("7", &[("one", "1"), ("two", "2")]), ":2", "both logged");
    assert_eq!(
        run("7", &[("two", "2"), ("three", "3")]),
        ":1",
        "the copy is not logged"
    );
    assert_eq!(run("8", &[("four", "1")]), ":1", "a new epoch starts over");
    assert_eq!(redis.command(&["XLEN", "log"]), ":4");
    let entries = redis.command(&["XRANGE", "log", "-", "+"]);
    let order: Vec<usize> = (["one", "two", "three", "four"].iter())
        .filter_map(|payload| entries.find(&format!("${}\r\n{payload}", payload.len())))
        .collect();
    assert!(order.len() == 4 && order.is_sorted(), "in order: {entries}");
    assert_eq!(redis.command(&["HGET", "seqs", "n0"]), "$3\r\n8 1");
    assert_eq!(
        run("8", &[("four", "1")]),
        ":0",
        "only copies: nothing logged"
    );
    assert_eq!(redis.command(&["XLEN", "log"]), ":4");
    assert_eq!(redis.command(&["HGET", "seqs", "n0"]), "$3\r\n8 1");
}

/// With a limit, the room's log is trimmed once per run to about that many entries
/// (`MAXLEN ~`: whole blocks of entries go, never below the limit).
#[test]
fn a_logged_run_trims_the_rooms_log_to_about_its_limit() {
    let Some(redis) = Redis::start() else { return };
    let script = miochat::server::backplane::room_log::LOG_AND_PUBLISH.text();
    let mut seq = 0;
    for _ in 0..3 {
        let mut args: Vec<String> = ["EVAL", script, "2", "log", "seqs", "chan", "50"]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
        args.extend(["PUBLISH", "n0", "7"].map(String::from));
        for _ in 0..100 {
            seq += 1;
            args.extend([format!("event {seq}"), seq.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(redis.command(&args), ":100");
    }
    let len: usize = (redis.command(&["XLEN", "log"]))
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((50..300).contains(&len), "trimmed to about 50: {len}");
    let newest = redis.command(&["XREVRANGE", "log", "+", "-", "COUNT", "1"]);
    assert!(newest.contains("event 300"), "the newest stays: {newest}");
}

/// A run is published as one message, a line `ID PAYLOAD` per event logged (the
/// copy already logged is left out), which a subscriber reads back in order.
#[test]
fn a_run_of_room_events_is_published_as_one_message() {
    use std::io::{Read, Write};
    let Some(redis) = Redis::start() else { return };
    let port = redis.url().rsplit(':').next().unwrap().to_string();
    let mut subscriber = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    subscriber
        .write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nchan\r\n")
        .unwrap();
    subscriber
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0; 4096];
    let mut read_until = |seen: &mut Vec<u8>, what: &[u8]| {
        while !seen.windows(what.len()).any(|w| w == what) {
            let n = subscriber.read(&mut chunk).unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
    };
    read_until(&mut seen, b":1\r\n");
    let script = miochat::server::backplane::room_log::LOG_AND_PUBLISH.text();
    let mut args = vec![
        "EVAL", script, "2", "log", "seqs", "chan", "0", "PUBLISH", "n0", "7",
    ];
    args.extend(["one", "1", "two", "2"]);
    redis.command(&args);
    args.truncate(10);
    args.extend(["two", "2", "three", "3"]);
    redis.command(&args);
    read_until(&mut seen, b"three");
    let text = String::from_utf8_lossy(&seen);
    let messages: Vec<&str> = text.split("$7\r\nmessage\r\n").skip(1).collect();
    assert_eq!(messages.len(), 2, "one message per run: {text}");
    let lines = |message: &str| -> Vec<String> {
        // `$4 chan $LEN BODY`, then the next message's header.
        let body = message.split("\r\n").nth(3).unwrap_or("");
        let lines = body.split('\n');
        lines
            .map(|l| l.split_once(' ').map_or("", |(_, p)| p).to_string())
            .collect()
    };
    assert_eq!(lines(messages[0]), ["one", "two"]);
    assert_eq!(
        lines(messages[1]),
        ["three"],
        "the copy is not published again"
    );
}

/// A run Redis refuses (here the room's log key is not a stream) is neither logged
/// nor published: it is counted as unpublished at once, never silently dropped.
#[test]
fn room_events_redis_refuses_are_counted_as_unpublished() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("broken");
    wait_for_members(&mut bob, "broken", &["alice"]);
    assert_eq!(redis.command(&["DEL", "miochat:log:broken"]), ":1");
    assert_eq!(redis.command(&["SET", "miochat:log:broken", "x"]), "+OK");
    alice.send("refused");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alice.stats().contains(" unpublished=1 ") {
        assert!(
            Instant::now() < deadline,
            "the refused line was never counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
