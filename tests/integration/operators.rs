//! Server operators on both protocols: `OPER` (and its refusals and throttle),
//! `KILL`, k-lines (checked at connect, kept across a restart in the data dir, lifted,
//! listed), `WALLOPS` and `/wall`, the MOTD, server notices and `/rehash`; and a
//! two-node cluster (kill, k-line, wallops and wall across nodes, the cluster's
//! k-lines in Redis read by a node that joins later).
//!
//! Other loopback addresses (127.0.0.2 ...) stand for other hosts: a test client can
//! bind one before connecting, and the server sees it as the peer's address.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use miochat::server::ServerConfig;
use miochat::server::config::{BackplaneConfig, FloodLimit};
use miochat::server::operators::{OperSpec, OperatorsConfig};
use miochat::server::store::StoreConfig;

use crate::cluster::{Redis, wait_until_clustered};
use crate::common::{TestClient, TestServer};
use crate::store::TempDir;

/// The operators' password in these tests.
const PASSWORD: &str = "correct-horse-battery";

/// `root` from anywhere, `remote` only from 192.0.2.0/24 (never a test client).
fn operators(motd: &[&str]) -> OperatorsConfig {
    let hash = miochat::server::store::auth::hash(PASSWORD).expect("hash");
    let spec = |name: &str, masks: &[&str]| OperSpec {
        name: name.into(),
        hash: hash.clone(),
        masks: masks.iter().map(|m| m.to_string()).collect(),
    };
    OperatorsConfig {
        opers: vec![spec("root", &[]), spec("remote", &["192.0.2.0/24"])],
        motd: motd.iter().map(|l| l.to_string()).collect(),
        motd_path: None,
    }
}

/// A server with an IRC listener, the test operators and `motd`, adjusted by `tweak`.
fn server_with(motd: &[&str], tweak: impl FnOnce(&mut ServerConfig)) -> (TestServer, SocketAddr) {
    let opers = operators(motd);
    let server = TestServer::start_with(|c| {
        c.irc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.operators = opers;
        tweak(c);
    });
    let irc = server.handle.irc_addr().expect("IRC listener");
    (server, irc)
}

fn plain_server() -> (TestServer, SocketAddr) {
    server_with(&[], |_| {})
}

/// A data dir for `dir`.
fn store_in(dir: &TempDir) -> StoreConfig {
    StoreConfig {
        dir: dir.0.clone(),
        history_sync: Duration::from_millis(50),
        history_days: 30,
        history_max: 1000,
    }
}

/// A connection to `to` from the loopback address `from`, nothing read.
fn connect_from(from: &str, to: SocketAddr) -> TestClient {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: IpAddr = from.parse().expect("address");
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .expect("bind a loopback address");
    socket.connect(&to.into()).expect("connect");
    TestClient::from_stream(socket.into())
}

/// The next line containing `needle` (CR stripped), skipping others.
#[track_caller]
fn until(client: &mut TestClient, needle: &str) -> String {
    loop {
        let line = client.line();
        if line.contains(needle) {
            return line.trim_end_matches('\r').to_string();
        }
    }
}

/// The next line, CR stripped.
#[track_caller]
fn next(client: &mut TestClient) -> String {
    client.line().trim_end_matches('\r').to_string()
}

/// Registers `client` on IRC as `nick`; returns the lines up to the end of the
/// MOTD (376, or 422 when there is none), that one included.
#[track_caller]
fn register(client: &mut TestClient, nick: &str) -> Vec<String> {
    client.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}"));
    client.nick = nick.to_string();
    let mut lines = Vec::new();
    loop {
        let line = next(client);
        let end = line.contains(" 376 ") || line.contains(" 422 ");
        lines.push(line);
        if end {
            return lines;
        }
    }
}

/// An IRC client registered as `nick`.
fn irc(addr: SocketAddr, nick: &str) -> TestClient {
    let mut client = TestClient::connect_raw(addr);
    register(&mut client, nick);
    client
}

/// IRC barrier: everything before the `PONG` of `PING token`.
#[track_caller]
fn irc_sync(client: &mut TestClient, token: &str) -> Vec<String> {
    client.send(&format!("PING {token}\r"));
    let mut lines = Vec::new();
    loop {
        let line = next(client);
        if line.ends_with(&format!(":{token}")) && line.contains(" PONG ") {
            return lines;
        }
        lines.push(line);
    }
}

/// A line client that became operator `root`.
fn line_oper(addr: SocketAddr, nick: &str) -> TestClient {
    let mut client = TestClient::connect(addr);
    client.set_nick(nick);
    client.send(&format!("/oper root {PASSWORD}"));
    client.expect("OK oper root");
    client
}

/// An IRC client that became operator `root`.
fn irc_oper(addr: SocketAddr, nick: &str) -> TestClient {
    let mut client = irc(addr, nick);
    client.send(&format!("OPER root :{PASSWORD}\r"));
    until(&mut client, " 381 ");
    client
}

#[test]
fn line_users_become_operators_and_are_refused_otherwise() {
    let (server, _) = plain_server();
    let mut plain = server.client_named("plain");
    for command in [
        "/kill x because",
        "/kline 10.0.0.1 1h",
        "/wallops hi",
        "/rehash",
    ] {
        plain.send(command);
        assert_eq!(
            plain.line(),
            "ERR no-privileges only server operators may do that (/oper NAME PASSWORD)"
        );
    }
    plain.send("/oper root");
    assert_eq!(plain.line(), "ERR usage usage: /oper NAME PASSWORD");
    plain.send(&format!("/oper remote {PASSWORD}"));
    assert_eq!(
        plain.line(),
        "ERR no-oper-host that operator may not connect from your address or host"
    );
    plain.send("/oper root wrong-password");
    assert_eq!(
        plain.line(),
        "ERR oper-failed wrong operator name or password"
    );
    let mut oper = server.client_named("boss");
    oper.send(&format!("/oper root {PASSWORD}"));
    assert_eq!(oper.expect("OK oper"), "OK oper root");
    oper.send("/rehash");
    assert_eq!(oper.expect("OK rehash"), "OK rehash");
    // Still a plain user: its failures made nobody else an operator.
    plain.send("/wallops hi");
    assert!(plain.expect("ERR").starts_with("ERR no-privileges "));
}

#[test]
fn irc_users_become_operators_with_381_or_get_464_491_481() {
    let (_server, addr) = plain_server();
    let mut c = irc(addr, "ann");
    c.send("KILL bob :go away\r");
    assert_eq!(
        next(&mut c),
        ":miochat.local 481 ann :Permission Denied- You're not an IRC operator"
    );
    c.send("OPER root\r");
    assert_eq!(
        next(&mut c),
        ":miochat.local 461 ann OPER :Not enough parameters"
    );
    c.send("OPER root :not it\r");
    assert_eq!(next(&mut c), ":miochat.local 464 ann :Password incorrect");
    c.send(&format!("OPER remote :{PASSWORD}\r"));
    assert_eq!(
        next(&mut c),
        ":miochat.local 491 ann :No O-lines for your host"
    );
    c.send("MODE ann\r");
    assert_eq!(next(&mut c), ":miochat.local 221 ann +i");
    c.send(&format!("OPER root :{PASSWORD}\r"));
    assert_eq!(
        next(&mut c),
        ":miochat.local 381 ann :You are now an IRC operator"
    );
    assert_eq!(next(&mut c), ":ann!~ann@127.0.0.1 MODE ann :+os");
    // Operators hear who became one, themselves included.
    assert_eq!(
        next(&mut c),
        ":miochat.local NOTICE ann :*** OPER: ann (127.0.0.1) is now an operator (root)"
    );
    c.send("MODE ann\r");
    assert_eq!(next(&mut c), ":miochat.local 221 ann +ios");
    c.send("LUSERS\r");
    assert_eq!(
        until(&mut c, " 252 "),
        ":miochat.local 252 ann 1 :operator(s) online"
    );
    until(&mut c, " 266 ");
    c.send("REHASH\r");
    assert_eq!(
        next(&mut c),
        ":miochat.local 382 ann miochat.local :Rehashing"
    );
    c.send("MODE ann -o\r");
    assert_eq!(next(&mut c), ":ann!~ann@127.0.0.1 MODE ann :-o");
    c.send("REHASH\r");
    assert!(next(&mut c).contains(" 481 ann "));
}

#[test]
fn failed_opers_are_throttled_per_connection_and_address() {
    let (server, _) = plain_server();
    let mut guesser = server.client_named("guesser");
    for _ in 0..3 {
        guesser.send("/oper root guess");
        assert!(guesser.line().starts_with("ERR oper-failed "));
    }
    // The right password now is refused unchecked.
    guesser.send(&format!("/oper root {PASSWORD}"));
    let throttled = guesser.line();
    assert!(
        throttled.starts_with("ERR oper-throttled too many failed /oper attempts; wait "),
        "{throttled}"
    );
    // So is another connection from the same address.
    let mut other = server.client_named("other");
    other.send(&format!("/oper root {PASSWORD}"));
    assert!(other.line().starts_with("ERR oper-throttled "));
}

#[test]
fn kill_disconnects_a_user_who_is_told_why_and_its_rooms_see_the_quit() {
    let (server, addr) = plain_server();
    let mut oper = line_oper(server.addr, "boss");
    let mut witness = server.client_named("witness");
    witness.join("rust");
    let mut victim = irc(addr, "spammer");
    victim.send("JOIN #rust\r");
    until(&mut victim, " 366 ");
    until(&mut witness, "EVENT rust join spammer");
    let mut line_victim = server.client_named("flooder");
    oper.send("/kill nobody-here bye");
    assert_eq!(
        oper.expect("ERR"),
        "ERR no-such-nick no one is called nobody-here"
    );
    oper.send("/kill spammer no ads please");
    assert_eq!(oper.expect("OK killed"), "OK killed spammer");
    assert_eq!(
        until(&mut oper, "snotice kill"),
        "EVENT * snotice kill boss killed spammer (no ads please)"
    );
    assert_eq!(
        next(&mut victim),
        ":boss!~boss@127.0.0.1 KILL spammer :no ads please"
    );
    assert_eq!(
        next(&mut victim),
        "ERROR :Closing Link: spammer (Killed (boss (no ads please)))"
    );
    assert!(victim.read_to_eof().is_empty());
    assert_eq!(
        witness.expect("EVENT rust quit"),
        "EVENT rust quit spammer Killed (boss (no ads please))"
    );
    oper.send("/kill flooder enough");
    oper.expect("OK killed flooder");
    assert_eq!(
        until(&mut line_victim, "ERR "),
        "ERR killed you were killed by boss: enough"
    );
    assert!(line_victim.read_to_eof().is_empty());
}

#[test]
fn klines_keep_matching_clients_out_survive_a_restart_and_can_be_lifted() {
    let dir = TempDir::new("klines");
    let (server, addr) = server_with(&[], |c| c.store = Some(store_in(&dir)));
    let mut oper = line_oper(server.addr, "boss");
    let mut early = connect_from("127.0.0.2", server.addr);
    assert!(early.line().starts_with("OK welcome "));
    oper.send("/kline 127.0.0.1 1h nope");
    assert_eq!(
        oper.expect("ERR"),
        "ERR bad-mask that mask matches you: a k-line may not keep out its setter"
    );
    oper.send("/kline 127.0.0.2 2h spam bots");
    let set = oper.expect("OK kline");
    assert!(set.starts_with("OK kline *!*@127.0.0.2 20"), "{set}");
    // Connected already: closed, told why.
    assert_eq!(
        until(&mut early, "ERR "),
        "ERR klined you are banned from this server: spam bots"
    );
    assert!(early.read_to_eof().is_empty());
    // At connect, on both protocols.
    let mut line = connect_from("127.0.0.2", server.addr);
    assert_eq!(
        line.line(),
        "ERR klined you are banned from this server: spam bots"
    );
    assert!(line.read_to_eof().is_empty());
    let mut irc_client = connect_from("127.0.0.2", addr);
    irc_client.send("NICK bot\r\nUSER bot 0 * :bot");
    assert_eq!(
        next(&mut irc_client),
        ":miochat.local 465 bot :You are banned from this server: spam bots"
    );
    assert_eq!(
        next(&mut irc_client),
        "ERROR :Closing Link: bot (K-Lined: spam bots)"
    );
    // A network, and a nick (checked when a nick is taken too).
    oper.send("/kline 127.0.0.4/30 perm");
    oper.expect("OK kline *!*@127.0.0.4/30 perm");
    oper.send("/kline troll!*@* 0 go away");
    oper.expect("OK kline troll!*@* perm");
    let mut in_network = connect_from("127.0.0.6", server.addr);
    assert_eq!(
        in_network.line(),
        "ERR klined you are banned from this server: no reason given"
    );
    let mut renamed = server.client();
    renamed.send("/nick troll");
    renamed.expect("OK nick troll");
    assert_eq!(
        renamed.line(),
        "ERR klined you are banned from this server: go away"
    );
    oper.send("/klines");
    let listed = oper.skip_to("OK klines 3");
    let listed: Vec<&String> = listed.iter().filter(|l| l.starts_with("KLINE ")).collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].starts_with("KLINE *!*@127.0.0.2 boss 20"));
    assert!(listed[0].ends_with(" spam bots"));
    assert!(
        listed
            .iter()
            .any(|l| *l == "KLINE troll!*@* boss perm go away")
    );

    // The data dir keeps them.
    drop((oper, renamed, in_network, line, irc_client));
    drop(server);
    let (server, _) = server_with(&[], |c| c.store = Some(store_in(&dir)));
    let mut again = connect_from("127.0.0.2", server.addr);
    assert_eq!(
        again.line(),
        "ERR klined you are banned from this server: spam bots"
    );
    let mut oper = line_oper(server.addr, "boss");
    oper.send("/unkline 127.0.0.2");
    assert_eq!(oper.expect("OK unkline"), "OK unkline *!*@127.0.0.2");
    oper.send("/unkline 127.0.0.2");
    assert_eq!(
        oper.expect("ERR"),
        "ERR no-such-kline *!*@127.0.0.2 is not k-lined"
    );
    assert!(
        connect_from("127.0.0.2", server.addr)
            .line()
            .starts_with("OK welcome ")
    );
    // Lifted for good: not back after another restart.
    drop(oper);
    drop(server);
    let (server, _) = server_with(&[], |c| c.store = Some(store_in(&dir)));
    assert!(
        connect_from("127.0.0.2", server.addr)
            .line()
            .starts_with("OK welcome ")
    );
    let mut oper = line_oper(server.addr, "boss");
    oper.send("/klines");
    let listed = oper.skip_to("OK klines 2");
    assert_eq!(listed.iter().filter(|l| l.starts_with("KLINE ")).count(), 2);
}

#[test]
fn wallops_reach_operators_and_wall_reaches_everyone() {
    let (server, addr) = plain_server();
    let mut line_op = line_oper(server.addr, "lineop");
    let mut irc_op = irc_oper(addr, "ircop");
    let mut line_user = server.client_named("lineuser");
    let mut irc_user = irc(addr, "ircuser");
    line_op.send("/wallops restart at noon");
    assert_eq!(
        until(&mut line_op, "wallops"),
        "EVENT * wallops lineop restart at noon"
    );
    assert_eq!(
        until(&mut irc_op, "WALLOPS"),
        ":lineop!~lineop@127.0.0.1 WALLOPS :restart at noon"
    );
    let seen = line_user.sync();
    assert!(!seen.iter().any(|l| l.contains("wallops")), "{seen:?}");
    let seen = irc_sync(&mut irc_user, "w1");
    assert!(!seen.iter().any(|l| l.contains("WALLOPS")), "{seen:?}");

    irc_op.send("WALL :maintenance in five minutes\r");
    let notice = ":ircop!~ircop@127.0.0.1 NOTICE ircuser :[wall] maintenance in five minutes";
    assert_eq!(until(&mut irc_user, "[wall]"), notice);
    assert!(
        until(&mut irc_op, "[wall]").ends_with("NOTICE ircop :[wall] maintenance in five minutes")
    );
    for line in [&mut line_user, &mut line_op] {
        assert_eq!(
            until(line, "EVENT * wall "),
            "EVENT * wall ircop maintenance in five minutes"
        );
    }
    irc_user.send("WALLOPS :me too\r");
    assert!(next(&mut irc_user).contains(" 481 ircuser "));
}

#[test]
fn the_motd_follows_the_welcome_and_is_there_on_asking() {
    let motd = ["Welcome to the test network.", "", "Be nice."];
    let (server, addr) = server_with(&motd, |_| {});
    let mut line = TestClient::connect(server.addr);
    assert_eq!(line.line(), "EVENT * motd Welcome to the test network.");
    assert_eq!(line.line(), "EVENT * motd");
    assert_eq!(line.line(), "EVENT * motd Be nice.");
    line.send("/motd");
    let again = line.skip_to("OK motd 3");
    assert_eq!(
        again
            .iter()
            .filter(|l| l.starts_with("EVENT * motd"))
            .count(),
        3
    );
    let mut c = TestClient::connect_raw(addr);
    let burst = register(&mut c, "reader");
    let tail: Vec<&String> = burst.iter().rev().take(5).rev().collect();
    assert_eq!(
        tail,
        [
            ":miochat.local 375 reader :- miochat.local Message of the day -",
            ":miochat.local 372 reader :- Welcome to the test network.",
            ":miochat.local 372 reader :- ",
            ":miochat.local 372 reader :- Be nice.",
            ":miochat.local 376 reader :End of /MOTD command.",
        ]
    );
    c.send("MOTD\r");
    assert!(until(&mut c, " 375 ").contains("Message of the day"));
    until(&mut c, " 376 ");

    // Without a MOTD: 422, and nothing after a line welcome.
    let (server, addr) = plain_server();
    let mut c = TestClient::connect_raw(addr);
    let burst = register(&mut c, "reader");
    assert_eq!(
        burst.last().map(String::as_str),
        Some(":miochat.local 422 reader :MOTD File is missing")
    );
    let mut line = TestClient::connect(server.addr);
    line.send("/motd");
    assert_eq!(line.line(), "OK motd 0");
}

#[test]
fn operators_get_server_notices_of_connections_opers_and_floods() {
    let (server, addr) = server_with(&[], |c| {
        c.flood = Some(FloodLimit { rate: 1, burst: 8 });
    });
    let mut line_op = line_oper(server.addr, "lineop");
    let mut irc_op = irc_oper(addr, "ircop");
    assert_eq!(
        until(&mut line_op, "snotice oper ircop"),
        "EVENT * snotice oper ircop (127.0.0.1) is now an operator (root)"
    );
    let newcomer = TestClient::connect(server.addr);
    let text = format!("{} (127.0.0.1) connected (line)", newcomer.nick);
    assert_eq!(
        until(&mut line_op, "snotice connect"),
        format!("EVENT * snotice connect {text}")
    );
    assert_eq!(
        until(&mut irc_op, "*** CONNECT"),
        format!(":miochat.local NOTICE ircop :*** CONNECT: {text}")
    );
    let _irc_user = irc(addr, "ircuser");
    assert_eq!(
        until(&mut line_op, "snotice connect"),
        "EVENT * snotice connect ircuser (127.0.0.1) registered (irc)"
    );
    // An operator may turn them off (IRC `-s`).
    irc_op.send("MODE ircop -s\r");
    until(&mut irc_op, ":ircop!~ircop@127.0.0.1 MODE ircop :-s");
    let mut flooder = TestClient::connect(server.addr);
    for n in 0..12 {
        flooder.send(&format!("/ping {n}"));
    }
    let flood = until(&mut line_op, "snotice flood");
    assert_eq!(
        flood,
        format!(
            "EVENT * snotice flood {} (127.0.0.1) is over the flood limit: slowed down",
            flooder.nick
        )
    );
    let seen = irc_sync(&mut irc_op, "quiet");
    assert!(!seen.iter().any(|l| l.contains("***")), "{seen:?}");
    // A plain user gets none of them.
    let mut plain = server.client_named("plain");
    let _another = TestClient::connect(server.addr);
    let seen = plain.sync();
    assert!(!seen.iter().any(|l| l.contains("snotice")), "{seen:?}");
}

/// A node of a cluster in this process, with the test operators.
fn node(redis: &Redis, name: &str) -> TestServer {
    let url = redis.url();
    let redis: SocketAddr = url
        .trim_start_matches("redis://")
        .parse()
        .expect("Redis address");
    let opers = operators(&[]);
    TestServer::start_with(|c| {
        c.operators = opers;
        c.backplane = Some(BackplaneConfig {
            redis,
            seeds: vec![redis],
            cluster: false,
            node: name.into(),
            lease: Duration::from_secs(2),
            log_max: 1000,
        });
    })
}

/// Asks `client`'s node `/whois nick` until it knows `nick` (from another node).
#[track_caller]
fn wait_for_user(client: &mut TestClient, nick: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.send(&format!("/whois {nick}"));
        let answer = loop {
            let line = client.line();
            if line.starts_with("OK whois ") || line.starts_with("ERR ") {
                break line;
            }
        };
        if answer.starts_with("OK whois ") {
            return;
        }
        assert!(Instant::now() < deadline, "{nick} never seen: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_klines_wallops_and_wall_reach_every_node_of_a_cluster() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut oper = line_oper(a.addr, "boss");
    let mut far_oper = line_oper(b.addr, "farboss");
    wait_until_clustered(&mut oper, 1);
    wait_until_clustered(&mut far_oper, 1);
    let mut victim = b.client_named("victim");
    let mut bot = connect_from("127.0.0.3", b.addr);
    assert!(bot.line().starts_with("OK welcome "));
    wait_for_user(&mut oper, "victim");

    oper.send("/wallops hello other node");
    assert_eq!(
        until(&mut far_oper, "wallops"),
        "EVENT * wallops boss hello other node"
    );
    oper.send("/wall the cluster restarts soon");
    assert_eq!(
        until(&mut victim, "EVENT * wall "),
        "EVENT * wall boss the cluster restarts soon"
    );

    oper.send("/kill victim spamming every node");
    oper.expect("OK killed victim");
    assert_eq!(
        until(&mut victim, "ERR "),
        "ERR killed you were killed by boss: spamming every node"
    );
    assert!(victim.read_to_eof().is_empty());

    oper.send("/kline 127.0.0.3 1d bots");
    oper.expect("OK kline *!*@127.0.0.3 ");
    assert_eq!(
        until(&mut bot, "ERR "),
        "ERR klined you are banned from this server: bots"
    );
    let mut again = connect_from("127.0.0.3", b.addr);
    assert_eq!(
        again.line(),
        "ERR klined you are banned from this server: bots"
    );
    // A node that joins later reads the cluster's k-lines from Redis.
    let c = node(&redis, "c");
    let mut late_oper = line_oper(c.addr, "lateboss");
    wait_until_clustered(&mut late_oper, 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        late_oper.send("/klines");
        if late_oper
            .skip_to("OK klines")
            .iter()
            .any(|l| l.starts_with("KLINE *!*@127.0.0.3 boss "))
        {
            break;
        }
        assert!(Instant::now() < deadline, "node c never read the k-line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut refused = connect_from("127.0.0.3", c.addr);
    assert_eq!(
        refused.line(),
        "ERR klined you are banned from this server: bots"
    );
    // Lifted on one node, lifted on all.
    far_oper.send("/unkline 127.0.0.3");
    far_oper.expect("OK unkline *!*@127.0.0.3");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut client = connect_from("127.0.0.3", a.addr);
        if client.line().starts_with("OK welcome ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the k-line was never lifted on a"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
