//! Several nodes, one chat: a real `redis-server` on a free loopback port and two or
//! three `miochat serve --backplane` processes.
//!
//! Without `redis-server` these tests say "skipped" and pass, except under `CI=true`,
//! where a missing program fails the run (`.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{TestClient, require, spawn_binary};

/// A `redis-server` on a free loopback port, killed on drop.
pub(crate) struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts one, or returns `None` (after saying why) if the program is missing.
    pub(crate) fn start() -> Option<Redis> {
        require("redis-server")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis { child: None, port };
        redis.restart();
        Some(redis)
    }

    pub(crate) fn restart(&mut self) {
        self.child = Some(spawn_redis(self.port, &[]));
    }

    /// Sends `sig` (`STOP`, `CONT`) to the running server.
    pub(crate) fn signal(&self, sig: &str) {
        if let Some(child) = self.child.as_ref() {
            crate::common::signal(child, sig);
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command and returns Redis's reply line (for the tests' own faults:
    /// `CLIENT KILL`, `CONFIG SET`).
    pub(crate) fn command(&self, args: &[&str]) -> String {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reply = vec![0; 4096];
        let n = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..n]).trim_end().to_string()
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` on `port` (loopback, nothing saved) with `extra` arguments,
/// once it accepts connections.
pub(crate) fn spawn_redis(port: u16, extra: &[&std::ffi::OsStr]) -> Child {
    try_spawn_redis(port, extra).unwrap_or_else(|why| panic!("{why}"))
}

/// Like [`spawn_redis`], or why not: it exited (a port of its was taken) or did not
/// listen within 10 s.
pub(crate) fn try_spawn_redis(port: u16, extra: &[&std::ffi::OsStr]) -> Result<Child, String> {
    let port_arg = port.to_string();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if Instant::now() >= deadline {
            let _ = (child.kill(), child.wait());
            return Err(format!("redis-server did not listen on port {port}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// One `miochat serve` node, killed on drop.
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) irc: SocketAddr,
}

impl Node {
    pub(crate) fn start(redis: &Redis, name: &str) -> Node {
        Self::start_with(redis, name, &[])
    }

    /// A node started with `extra` flags too.
    pub(crate) fn start_with(redis: &Redis, name: &str, extra: &[&str]) -> Node {
        Self::start_at(&redis.url(), name, extra)
    }

    /// A node whose backplane is `url` (a Redis or a Redis Cluster).
    pub(crate) fn start_at(url: &str, name: &str, extra: &[&str]) -> Node {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--flood-rate",
            "0",
            "--max-per-ip",
            "0",
            "--connect-rate",
            "0",
            "--lease",
            "2",
            "--node-name",
            name,
            "--backplane",
            url,
            "-q",
        ];
        args.extend_from_slice(extra);
        let mut child = spawn_binary(&args).spawn().expect("spawn miochat serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut address = || {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("listening line");
            line.trim()
                .rsplit(' ')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("address")
        };
        let (addr, irc) = (address(), address());
        Node { child, addr, irc }
    }

    pub(crate) fn client(&self, nick: &str) -> TestClient {
        let mut client = TestClient::connect(self.addr);
        client.set_nick(nick);
        client
    }

    /// An IRC client, registered as `nick`.
    pub(crate) fn irc_client(&self, nick: &str) -> TestClient {
        self.irc_client_with(nick, "")
    }

    /// An IRC client that asked for the IRCv3 capabilities `caps` (space-separated;
    /// none if empty), registered as `nick`.
    pub(crate) fn irc_client_with(&self, nick: &str, caps: &str) -> TestClient {
        let mut client = TestClient::connect_raw(self.irc);
        if !caps.is_empty() {
            client.send(&format!("CAP LS 302\r\nCAP REQ :{caps}\r\nCAP END"));
        }
        client.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}"));
        skip_until(&mut client, " 422 ");
        client.nick = nick.to_string();
        client
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next line starting with `prefix` (a `MSG` line), live or read back from the
/// room's log (`HIST ID AT MSG ...`, given as its `MSG` part), as the timing of a
/// reconnection decides.
#[track_caller]
pub(crate) fn live_or_read_back(client: &mut TestClient, prefix: &str) -> String {
    loop {
        let line = client.line();
        if line.starts_with(prefix) {
            return line;
        }
        if line.starts_with("HIST ") {
            return line.splitn(4, ' ').nth(3).unwrap().to_string();
        }
    }
}

/// The next line containing `needle`, skipping others.
#[track_caller]
pub(crate) fn skip_until(client: &mut TestClient, needle: &str) -> String {
    loop {
        let line = client.line();
        if line.contains(needle) {
            return line.trim_end_matches('\r').to_string();
        }
    }
}

/// Waits until `client`'s node is connected to Redis and knows `peers` other nodes.
#[track_caller]
pub(crate) fn wait_until_clustered(client: &mut TestClient, peers: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = client.stats();
        if stats.contains(" backplane=up ") && stats.contains(&format!(" peers={peers} ")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not clustered: {stats}",
            client.nick
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Nodes `a` and `b`, with a line client on each, once each node sees the other.
pub(crate) fn two_nodes(
    redis: &Redis,
    on_a: &str,
    on_b: &str,
) -> (Node, Node, TestClient, TestClient) {
    let (a, b) = (Node::start(redis, "a"), Node::start(redis, "b"));
    let (mut first, mut second) = (a.client(on_a), b.client(on_b));
    wait_until_clustered(&mut first, 1);
    wait_until_clustered(&mut second, 1);
    (a, b, first, second)
}

/// Waits until `client`'s node listens to `rooms` room channels (plus its own two):
/// Redis has confirmed the subscriptions, so lines published from now on reach it.
#[track_caller]
pub(crate) fn wait_until_subscribed(client: &mut TestClient, rooms: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = format!(" subscriptions={} ", rooms + 2);
    loop {
        let stats = client.stats();
        if stats.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {stats}", client.nick);
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `/who room` from `client` lists every nick in `nicks`.
#[track_caller]
pub(crate) fn wait_for_members(client: &mut TestClient, room: &str, nicks: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.send(&format!("/who {room}"));
        // The answer is `OK who ...`, or `ERR no-such-room` while nobody is known there.
        let who = loop {
            let line = client.line();
            if line.starts_with(&format!("OK who {room}")) || line.starts_with("ERR ") {
                break line;
            }
        };
        // A member may be listed as `@nick` or `+nick`.
        let listed: Vec<&str> = who
            .split(' ')
            .skip(3)
            .map(|n| n.trim_start_matches(['@', '+']))
            .collect();
        if nicks.iter().all(|n| listed.contains(n)) {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {who}", client.nick);
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rooms_span_nodes_in_both_protocols() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (
        Node::start(&redis, "a"),
        Node::start(&redis, "b"),
        Node::start(&redis, "c"),
    );
    let mut alice = a.client("alice");
    let mut bob = b.irc_client("bob");
    let mut carol = c.client("carol");
    wait_until_clustered(&mut alice, 2);
    wait_until_clustered(&mut carol, 2);
    alice.join("rust");
    carol.join("rust");
    bob.send("JOIN #rust");
    skip_until(&mut bob, " 366 ");
    for client in [&mut alice, &mut carol] {
        wait_for_members(client, "rust", &["alice", "bob", "carol"]);
    }
    let mut watcher = b.client("bwatch"); // bob speaks IRC: a line client to ask b
    watcher.join("rust");
    for client in [&mut alice, &mut carol, &mut watcher] {
        wait_until_subscribed(client, 2); // lobby and rust
    }
    alice.send("one");
    alice.send("two");
    assert_eq!(
        skip_until(&mut carol, "MSG rust alice"),
        "MSG rust alice one"
    );
    assert_eq!(carol.line(), "MSG rust alice two");
    assert_eq!(
        skip_until(&mut bob, "PRIVMSG #rust"),
        ":alice!alice@miochat PRIVMSG #rust :one"
    );
    assert_eq!(
        bob.line().trim_end(),
        ":alice!alice@miochat PRIVMSG #rust :two"
    );
    bob.send("PRIVMSG #rust :hello from irc");
    assert_eq!(
        skip_until(&mut alice, "MSG rust bob"),
        "MSG rust bob hello from irc"
    );
    assert_eq!(
        skip_until(&mut carol, "MSG rust bob"),
        "MSG rust bob hello from irc"
    );
    // alice made the room (on node a), so alice is its operator under +t.
    alice.send("/topic shared topic");
    assert_eq!(
        skip_until(&mut alice, "EVENT rust topic"),
        "EVENT rust topic alice shared topic"
    );
    skip_until(&mut carol, "EVENT rust topic alice");
    carol.send("/topic");
    assert_eq!(
        skip_until(&mut carol, "OK topic"),
        "OK topic rust shared topic"
    );
}

#[test]
fn nicks_private_messages_who_and_rooms_are_cluster_wide() {
    let Some(redis) = Redis::start() else { return };
    let (_a, b, mut alice, mut other) = two_nodes(&redis, "alice", "bobby");
    alice.join("rust");
    // (Had bobby joined before node b heard of the room, both nodes would have
    // founded it, and each founder would be an operator.)
    wait_for_members(&mut other, "rust", &["alice"]);
    other.join("rust");
    wait_for_members(&mut other, "rust", &["alice", "bobby"]);
    other.send("/nick alice");
    assert_eq!(
        other.expect("ERR "),
        "ERR nick-taken alice is already taken"
    );
    let mut irc = b.irc_client("ircy");
    irc.send("NICK alice");
    assert!(skip_until(&mut irc, " 433 ").contains("alice :Nickname is already in use"));
    other.send("/msg alice psst");
    assert_eq!(skip_until(&mut alice, "PRIV "), "PRIV bobby psst");
    irc.send("PRIVMSG alice :from irc");
    assert_eq!(skip_until(&mut alice, "PRIV "), "PRIV ircy from irc");
    alice.send("/msg bobby back");
    assert_eq!(skip_until(&mut other, "PRIV "), "PRIV alice back");
    alice.send("/who rust");
    assert_eq!(skip_until(&mut alice, "OK who"), "OK who rust @alice bobby");
    // WHOIS of a user of another node: what its node told (idle time unknown here;
    // whether bobby is the lobby's operator depends on whether node b had heard of
    // alice's lobby when bobby connected).
    alice.send("/whois bobby");
    let whois = skip_until(&mut alice, "OK whois");
    assert!(whois.starts_with("OK whois bobby line - ") && whois.ends_with("lobby,rust"));
    // Away messages cross too: a private message to an away user of another node is
    // answered as for a local one.
    other.send("/away at lunch");
    skip_until(&mut other, "OK away");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        alice.send("/whois bobby");
        if skip_until(&mut alice, "OK whois").ends_with(" at lunch") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bobby's away message never arrived"
        );
        thread::sleep(Duration::from_millis(20));
    }
    alice.send("/msg bobby are you there?");
    assert_eq!(skip_until(&mut alice, "OK away"), "OK away bobby at lunch");
    irc.send("WHOIS alice");
    assert!(skip_until(&mut irc, " 312 ").ends_with(" :miochat node a"));
    let next = skip_until(&mut irc, "alice");
    assert!(
        next.contains(" 319 ") && next.ends_with(" @#rust"),
        "{next}"
    );
    assert!(
        skip_until(&mut irc, "alice").contains(" 318 "),
        "no 317 for a remote user"
    );
    alice.send("/rooms");
    assert!(skip_until(&mut alice, "OK rooms").contains("rust:2"));
    // WHO with a mask finds users of other nodes who share a room with the asker.
    irc.send("JOIN #rust");
    skip_until(&mut irc, " 366 ");
    irc.send("WHO al*");
    assert!(skip_until(&mut irc, " 352 ").contains(" 352 ircy * alice "));
}

#[test]
fn a_killed_node_is_noticed_and_its_nicks_are_freed() {
    let Some(redis) = Redis::start() else { return };
    let (mut a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("rust");
    bob.join("rust");
    wait_for_members(&mut bob, "rust", &["alice", "bob"]);
    let killed = Instant::now();
    a.child.kill().expect("SIGKILL node a");
    let quit = skip_until(&mut bob, "EVENT rust quit alice");
    assert_eq!(quit, "EVENT rust quit alice node a lost");
    // Lease (2 s) plus a check or two; the bound is generous for a loaded machine.
    assert!(
        killed.elapsed() < Duration::from_secs(12),
        "{:?}",
        killed.elapsed()
    );
    bob.send("/nick alice");
    bob.expect("OK nick alice");
}

#[test]
fn lines_sent_while_redis_restarts_are_held_and_delivered_in_order() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    let mut anna = a.client("anna");
    for client in [&mut alice, &mut anna, &mut bob] {
        client.join("rust");
    }
    wait_for_members(&mut bob, "rust", &["alice", "anna", "bob"]);
    wait_until_subscribed(&mut bob, 2); // lobby and rust
    alice.send("before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    assert_eq!(skip_until(&mut anna, "MSG rust"), "MSG rust alice before");
    redis.kill();
    for n in 0..5 {
        alice.send(&format!("held {n}"));
    }
    // Local chat goes on meanwhile.
    for n in 0..5 {
        assert_eq!(
            skip_until(&mut anna, "MSG rust"),
            format!("MSG rust alice held {n}")
        );
    }
    redis.restart();
    // Node a held the five and publishes them when Redis is back, in order.
    // (Live, or read back from the room's log if node b was reading it then.)
    for n in 0..5 {
        let line = live_or_read_back(&mut bob, "MSG rust");
        assert_eq!(line, format!("MSG rust alice held {n}"));
    }
    wait_until_clustered(&mut alice, 1);
    wait_until_clustered(&mut bob, 1);
    alice.send("after");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice after");
    let stats = bob.stats();
    assert!(stats.contains(" gaps=0 "), "{stats}");
}

const SENDERS_PER_NODE: usize = 2;
const LINES: usize = 200;

#[test]
fn nothing_is_lost_duplicated_or_reordered_across_nodes() {
    let Some(redis) = Redis::start() else { return };
    let nodes = [Node::start(&redis, "a"), Node::start(&redis, "b")];
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..SENDERS_PER_NODE {
            senders.push(node.client(&format!("s{n}x{i}")));
            receivers.push(node.client(&format!("r{n}x{i}")));
        }
    }
    wait_until_clustered(&mut receivers[0], 1);
    wait_until_clustered(&mut receivers[SENDERS_PER_NODE], 1);
    for client in senders.iter_mut().chain(receivers.iter_mut()) {
        client.join("load");
    }
    let everyone: Vec<String> = senders
        .iter()
        .chain(&receivers)
        .map(|c| c.nick.clone())
        .collect();
    let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
    for receiver in receivers.iter_mut() {
        wait_for_members(receiver, "load", &everyone);
    }
    wait_until_subscribed(&mut receivers[0], 2); // lobby and load
    wait_until_subscribed(&mut receivers[SENDERS_PER_NODE], 2);
    let threads: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                let text: String = (0..LINES).map(|k| format!("m {k}\n")).collect();
                s.send_raw(text.as_bytes());
                s.sync();
                s
            })
        })
        .collect();
    let senders: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for receiver in receivers.iter_mut() {
        let mut next = std::collections::HashMap::new();
        for _ in 0..senders.len() * LINES {
            let line = skip_until(receiver, "MSG load ");
            let mut words = line.split(' ').skip(2);
            let from = words.next().unwrap().to_string();
            let k: usize = words.nth(1).unwrap().parse().unwrap();
            let expected = next.entry(from.clone()).or_insert(0);
            assert_eq!(k, *expected, "{}: from {from}: {line}", receiver.nick);
            *expected += 1;
        }
        receiver.expect_quiet();
    }
}

#[test]
fn an_answer_never_overtakes_its_question_across_nodes() {
    let Some(redis) = Redis::start() else { return };
    let nodes = [
        Node::start(&redis, "a"),
        Node::start(&redis, "b"),
        Node::start(&redis, "c"),
    ];
    let mut questioner = nodes[0].client("q");
    let mut responder = nodes[1].client("r");
    let mut observers: Vec<_> = (0..6)
        .map(|i| nodes[i % 3].client(&format!("o{i}")))
        .collect();
    wait_until_clustered(&mut questioner, 2);
    wait_until_clustered(&mut responder, 2);
    wait_until_clustered(&mut observers[2], 2);
    for client in observers
        .iter_mut()
        .chain([&mut questioner, &mut responder])
    {
        client.join("causal");
    }
    let mut all: Vec<String> = observers.iter().map(|o| o.nick.clone()).collect();
    all.extend(["q".to_string(), "r".to_string()]);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    for client in observers
        .iter_mut()
        .chain([&mut questioner, &mut responder])
    {
        wait_for_members(client, "causal", &all);
    }
    for observer in observers.iter_mut().take(3) {
        wait_until_subscribed(observer, 2); // one observer per node: lobby and causal
    }
    const ROUNDS: usize = 100;
    let answering = thread::spawn(move || {
        for round in 0..ROUNDS {
            assert_eq!(
                skip_until(&mut responder, "MSG causal q "),
                format!("MSG causal q q {round}")
            );
            responder.send(&format!("a {round}"));
        }
        responder
    });
    for round in 0..ROUNDS {
        questioner.send(&format!("q {round}"));
        assert_eq!(
            skip_until(&mut questioner, "MSG causal r "),
            format!("MSG causal r a {round}")
        );
    }
    let _responder = answering.join().unwrap();
    for o in &mut observers {
        for round in 0..ROUNDS {
            assert!(
                skip_until(o, "MSG causal ").ends_with(&format!(" q {round}")),
                "{}",
                o.nick
            );
            assert!(
                skip_until(o, "MSG causal ").ends_with(&format!(" a {round}")),
                "{}",
                o.nick
            );
        }
    }
}

#[test]
fn moderation_is_shared_across_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("modx");
    wait_for_members(&mut bob, "modx", &["alice"]);
    bob.join("modx");
    wait_for_members(&mut alice, "modx", &["alice", "bob"]);
    wait_until_subscribed(&mut bob, 2); // lobby and modx
    // The room already existed on node a: joining it on node b makes nobody operator.
    bob.send("/mode +t");
    assert!(bob.expect("ERR ").starts_with("ERR not-operator"));
    alice.send("/mode +m");
    assert_eq!(
        skip_until(&mut bob, "EVENT modx mode"),
        "EVENT modx mode alice +m"
    );
    bob.send("muted?");
    assert!(bob.expect("ERR ").starts_with("ERR cannot-send"));
    alice.send("/kick bob enough");
    assert_eq!(
        skip_until(&mut bob, "EVENT modx kick"),
        "EVENT modx kick alice bob enough"
    );
    bob.send("/who modx");
    // bob is out; alice is listed with her role, as her node told it.
    assert_eq!(skip_until(&mut bob, "OK who"), "OK who modx @alice");
}

#[test]
fn the_lobby_has_no_new_operator_on_a_node_that_joins_later() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, _bob) = two_nodes(&redis, "alice", "bob");
    let c = Node::start(&redis, "c");
    // An IRC client starts in no room: it waits, without touching c's lobby, until
    // node c has learned that the lobby has members elsewhere.
    let mut watcher = c.irc_client("watcher");
    let deadline = Instant::now() + Duration::from_secs(20);
    'learn: loop {
        watcher.send("LIST");
        loop {
            let line = watcher.line();
            if line.contains(" 322 watcher #lobby 2 ") {
                break 'learn;
            }
            if line.contains(" 323 ") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node c never learned the cluster"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // carol is the lobby's first member on c, but the lobby is not new; and the
    // lobby belongs to the server: its first member on the first node is no
    // operator either.
    let mut carol = c.client("carol");
    carol.send("/mode +m");
    assert!(carol.expect("ERR ").starts_with("ERR not-operator"));
    alice.send("/mode +m");
    assert!(skip_until(&mut alice, "ERR ").starts_with("ERR not-operator"));
}

/// Waits until an IRC `LIST` from `client` shows `room` with `topic`: the node knows
/// the room's state as of the topic change (changes reach a node in the order they
/// were made on one node).
#[track_caller]
fn wait_for_listed_topic(client: &mut TestClient, room: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = format!(" #{room} ");
    loop {
        client.send("LIST");
        let mut found = false;
        loop {
            let line = client.line();
            let line = line.trim_end_matches('\r');
            if line.contains(" 322 ") && line.contains(&want) && line.ends_with(topic) {
                found = true;
            }
            if line.contains(" 323 ") {
                break;
            }
        }
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{room}'s topic never reached");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_first_member_on_another_node_meets_the_rooms_modes() {
    let Some(redis) = Redis::start() else { return };
    let (_a, b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("vault");
    alice.send("/mode +k sesame");
    skip_until(&mut alice, "EVENT vault mode alice +k");
    alice.send("/ban carol");
    skip_until(&mut alice, "EVENT vault mode alice +b");
    alice.send("/topic gold only");
    skip_until(&mut alice, "EVENT vault topic");
    // Node b has nobody in vault: it learned the room's state from node a, and
    // bob, the room's first member on b, is checked against it.
    let mut watcher = b.irc_client("watcher");
    wait_for_listed_topic(&mut watcher, "vault", "gold only");
    bob.send("/mode vault");
    assert_eq!(skip_until(&mut bob, "OK mode"), "OK mode vault +knt *");
    let mut carol = b.client("carol");
    carol.send("/join vault sesame");
    assert!(carol.expect("ERR ").starts_with("ERR banned"));
    bob.send("/join vault");
    assert!(bob.expect("ERR ").starts_with("ERR bad-key"));
    let subscribed = crate::common::stat(&bob.stats(), "subscriptions");
    bob.send("/join vault sesame");
    assert_eq!(bob.expect("OK joined"), "OK joined vault 2 gold only");
    bob.send("/mode");
    assert_eq!(skip_until(&mut bob, "OK mode"), "OK mode vault +knt sesame");
    // `+l` counts the members on every node. First, Redis must have confirmed node
    // b's SUBSCRIBE to the room's channel: a change published before that is a gap
    // for b (under load the SUBSCRIBE can still be in flight when bob has joined).
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::common::stat(&bob.stats(), "subscriptions") <= subscribed {
        assert!(
            Instant::now() < deadline,
            "node b never subscribed to vault"
        );
        thread::sleep(Duration::from_millis(20));
    }
    wait_for_who(&mut alice, "vault", "OK who vault @alice bob");
    alice.send("/mode +l 2");
    skip_until(&mut bob, "EVENT vault mode alice +l 2");
    let mut dave = b.client("dave");
    dave.send("/join vault sesame");
    assert!(dave.expect("ERR ").starts_with("ERR room-full"));
}

#[test]
fn a_node_whose_members_all_left_still_knows_the_room() {
    let Some(redis) = Redis::start() else { return };
    let (a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("den");
    wait_for_members(&mut bob, "den", &["alice"]);
    bob.join("den");
    wait_for_members(&mut alice, "den", &["alice", "bob"]);
    alice.send("/mode +k sesame");
    skip_until(&mut bob, "EVENT den mode alice +k");
    // Node a's only member leaves; bob (node b) stays, so the room goes on there.
    alice.send("/leave den");
    skip_until(&mut alice, "OK left den");
    wait_for_who(&mut alice, "den", "OK who den bob");
    let mut carol = a.client("carol");
    carol.send("/join den");
    assert!(carol.expect("ERR ").starts_with("ERR bad-key"));
    carol.send("/join den sesame");
    carol.expect("OK joined den 2");
    carol.send("/mode");
    assert_eq!(skip_until(&mut carol, "OK mode"), "OK mode den +knt sesame");
}

#[test]
fn a_room_with_members_only_on_another_node_is_not_missing() {
    let Some(redis) = Redis::start() else { return };
    let (_a, b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("far");
    alice.send("/ban zed");
    skip_until(&mut alice, "EVENT far mode alice +b");
    alice.send("/topic over there");
    skip_until(&mut alice, "EVENT far topic");
    let mut ivy = b.irc_client("ivy");
    wait_for_listed_topic(&mut ivy, "far", "over there");
    // Nobody on node b is in `far`: it is a room they are not in, not a missing one.
    bob.send("/mode far +m");
    assert!(bob.expect("ERR ").starts_with("ERR not-operator"));
    ivy.send("KICK #far alice");
    assert!(skip_until(&mut ivy, "#far").contains(" 442 "));
    ivy.send("TOPIC #far :mine");
    assert!(skip_until(&mut ivy, "#far").contains(" 442 "));
    ivy.send("INVITE bob #far");
    assert!(skip_until(&mut ivy, "#far").contains(" 442 "));
    ivy.send("MODE #far b");
    assert!(skip_until(&mut ivy, "#far").contains(" 367 ivy #far zed!*@* "));
    // Users of other nodes are online for ISON, USERHOST and WHO too.
    ivy.send("ISON alice nobody");
    assert!(skip_until(&mut ivy, " 303 ").ends_with(":alice"));
    ivy.send("USERHOST alice");
    assert!(skip_until(&mut ivy, " 302 ").contains("alice="));
    ivy.send("WHO alice");
    assert!(skip_until(&mut ivy, "alice").contains(" 352 "));
}

#[test]
fn away_and_invite_notices_reach_irc_readers_on_every_node() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, _alice, _bob) = two_nodes(&redis, "alice", "bob");
    let mut ann = a.irc_client_with("ann", "away-notify invite-notify");
    let mut ben = b.irc_client_with("ben", "away-notify invite-notify");
    ann.send("JOIN #cafe");
    skip_until(&mut ann, " 366 ");
    let mut line = b.client("watch");
    wait_for_members(&mut line, "cafe", &["ann"]);
    ben.send("JOIN #cafe");
    skip_until(&mut ben, " 366 ");
    wait_for_members(&mut line, "cafe", &["ann", "ben"]);
    wait_until_subscribed(&mut line, 2); // lobby and cafe
    ann.send("AWAY :out to lunch");
    assert_eq!(
        skip_until(&mut ben, " AWAY "),
        ":ann!ann@miochat AWAY :out to lunch"
    );
    ann.send("AWAY");
    assert_eq!(skip_until(&mut ben, " AWAY"), ":ann!ann@miochat AWAY");
    ann.send("INVITE dora #cafe");
    assert!(
        skip_until(&mut ann, "dora").contains(" 401 "),
        "nobody is dora"
    );
    ben.send("INVITE alice #cafe");
    skip_until(&mut ben, " 341 ");
    assert_eq!(
        skip_until(&mut ann, " INVITE "),
        ":ben!ben@miochat INVITE alice #cafe"
    );
}

#[test]
fn roles_are_cluster_wide() {
    let Some(redis) = Redis::start() else { return };
    let (_a, _b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("crew");
    wait_for_members(&mut bob, "crew", &["alice"]);
    bob.join("crew");
    wait_for_members(&mut alice, "crew", &["alice", "bob"]);
    wait_until_subscribed(&mut bob, 2); // lobby and crew
    // Node a's operator makes bob, a user of node b, an operator.
    alice.send("/op bob");
    assert_eq!(alice.expect("OK "), "OK changed crew +o bob");
    assert_eq!(
        skip_until(&mut bob, "EVENT crew mode"),
        "EVENT crew mode alice +o bob"
    );
    // bob is an operator on his own node, and each node lists both operators.
    bob.send("/mode +m");
    skip_until(&mut alice, "EVENT crew mode bob +m");
    wait_for_who(&mut alice, "crew", "OK who crew @alice @bob");
    wait_for_who(&mut bob, "crew", "OK who crew @bob @alice");
    bob.send("/voice alice");
    skip_until(&mut alice, "EVENT crew mode bob +v alice");
    bob.send("/deop alice");
    skip_until(&mut alice, "EVENT crew mode bob -o alice");
    wait_for_who(&mut bob, "crew", "OK who crew @bob +alice");
    alice.send("/mode -m");
    assert!(alice.expect("ERR ").starts_with("ERR not-operator"));
    // A nick that is nowhere, or not in the room, is refused as on one node.
    bob.send("/op nobody");
    assert!(bob.expect("ERR ").starts_with("ERR no-such-nick"));
}

/// Waits until `/who room` from `client` is exactly `want`.
#[track_caller]
fn wait_for_who(client: &mut TestClient, room: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.send(&format!("/who {room}"));
        let who = skip_until(client, &format!("OK who {room}"));
        if who == want {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {who}", client.nick);
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn invitations_and_secret_rooms_cross_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (_a, b, mut alice, mut bob) = two_nodes(&redis, "alice", "bob");
    alice.join("club");
    alice.send("/mode +is");
    skip_until(&mut alice, "EVENT club mode alice +s");
    alice.send("/topic members only");
    skip_until(&mut alice, "EVENT club topic");
    // A secret room is neither listed nor shown to users of other nodes (once node b
    // has heard of it: until then, it is no such channel there).
    let mut watcher = b.irc_client("watcher");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        watcher.send("TOPIC #club");
        let reply = skip_until(&mut watcher, "#club");
        if reply.contains(" 442 ") {
            break;
        }
        assert!(!reply.contains("members only"), "{reply}");
        assert!(Instant::now() < deadline, "{reply}");
        thread::sleep(Duration::from_millis(20));
    }
    bob.send("/rooms");
    assert!(!skip_until(&mut bob, "OK rooms").contains("club"));
    bob.send("/who club");
    assert_eq!(skip_until(&mut bob, "OK who club"), "OK who club");
    bob.send("/join club");
    assert!(bob.expect("ERR ").starts_with("ERR invite-only"));
    // An invitation crosses to bob's node and lets him in once.
    alice.send("/invite bob club");
    assert_eq!(alice.expect("OK invited"), "OK invited bob club");
    assert_eq!(
        skip_until(&mut bob, "invite"),
        "EVENT club invite alice bob"
    );
    bob.send("/join club");
    assert_eq!(bob.expect("OK joined"), "OK joined club 2 members only");
    wait_for_members(&mut alice, "club", &["alice", "bob"]);
    alice.send("/invite bob club");
    assert!(alice.expect("ERR ").starts_with("ERR already-on-room"));
    // Node b now has a member there, and the room is still secret to the others.
    let mut carol = b.client("carol");
    carol.send("/rooms");
    assert!(!skip_until(&mut carol, "OK rooms").contains("club"));
    carol.send("/who club");
    assert_eq!(skip_until(&mut carol, "OK who club"), "OK who club");
    carol.send("/join club");
    assert!(carol.expect("ERR ").starts_with("ERR invite-only"));
}

#[test]
fn remote_quits_reach_an_irc_reader_once_and_remote_joins_are_summed_up() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, mut twice, mut watcher) = two_nodes(&redis, "twice", "watcher");
    let mut reader = b.irc_client("reader");
    twice.join("rust");
    twice.join("go");
    watcher.join("rust");
    reader.send("JOIN #rust,#go");
    skip_until(&mut reader, "366 reader #go");
    wait_for_members(&mut twice, "go", &["twice", "reader"]);
    wait_for_members(&mut watcher, "go", &["twice", "reader"]);
    // A crowd joins on node a; node b's line user gets a few lines, not one each.
    let mut crowd: Vec<TestClient> = (0..8).map(|i| a.client(&format!("c{i}"))).collect();
    for member in &mut crowd {
        member.send("/join rust");
    }
    let (mut seen, mut lines) = (0, Vec::new());
    while seen < 8 {
        let line = watcher.line();
        if let Some(rest) = line.strip_prefix("EVENT rust joins ") {
            seen += rest.split(' ').next().unwrap().parse::<usize>().unwrap();
            lines.push(line);
        } else if line.starts_with("EVENT rust join c") {
            seen += 1;
            lines.push(line);
        }
    }
    assert!(lines.len() < 8, "summed up: {lines:?}");
    twice.send("/quit gone");
    // Both rooms' quits have reached node b once the watcher has its own.
    skip_until(&mut watcher, "EVENT rust quit twice");
    thread::sleep(Duration::from_millis(200));
    reader.send("PING :after");
    let mut quits = 0;
    loop {
        let line = reader.line();
        if line.contains("PONG") && line.trim_end().ends_with(":after") {
            break;
        }
        quits += usize::from(line.contains(":twice!twice@miochat QUIT"));
    }
    assert_eq!(quits, 1, "one QUIT for two shared rooms");
}
