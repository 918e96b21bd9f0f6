//! The IRC listener over TCP: registration, numerics, chat between IRC clients on
//! different shards, and IRC and line users in the same rooms.

use std::net::SocketAddr;
use std::time::Duration;

use miochat::server::ServerConfig;

use crate::common::{TestClient, TestServer};

pub(crate) fn irc_server_with(tweak: impl FnOnce(&mut ServerConfig)) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|c| {
        c.irc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        tweak(c);
    });
    let irc = server.handle.irc_addr().expect("IRC listener");
    (server, irc)
}

pub(crate) fn irc_server() -> (TestServer, SocketAddr) {
    irc_server_with(|_| {})
}

/// An IRC client: CRLF lines, and lines read with their CR stripped.
pub(crate) struct Irc {
    pub(crate) c: TestClient,
    nick: String,
}

impl Irc {
    pub(crate) fn connect(addr: SocketAddr) -> Irc {
        Irc {
            c: TestClient::connect_raw(addr),
            nick: String::new(),
        }
    }

    /// Connects and registers as `nick` (NICK + USER), up to the end of the MOTD.
    pub(crate) fn register(addr: SocketAddr, nick: &str) -> Irc {
        let mut irc = Irc::connect(addr);
        irc.send(&format!("NICK {nick}"));
        irc.send(&format!("USER {nick} 0 * :Test User"));
        irc.until(" 422 ");
        irc.nick = nick.to_string();
        irc
    }

    pub(crate) fn send(&mut self, line: &str) {
        self.c.send_raw(format!("{line}\r\n").as_bytes());
    }

    #[track_caller]
    pub(crate) fn line(&mut self) -> String {
        let line = self.c.line();
        assert!(line.ends_with('\r'), "IRC lines end in CRLF: {line:?}");
        line.trim_end_matches('\r').to_string()
    }

    /// The next line as bytes, without CR LF (IRC bytes need not be UTF-8).
    #[track_caller]
    pub(crate) fn raw_line(&mut self) -> Vec<u8> {
        use std::io::BufRead;
        let mut line = Vec::new();
        self.c.reader.read_until(b'\n', &mut line).expect("a line");
        assert!(line.ends_with(b"\r\n"), "IRC lines end in CRLF: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Reads until a line containing `needle`; returns it.
    #[track_caller]
    pub(crate) fn until(&mut self, needle: &str) -> String {
        loop {
            let line = self.line();
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The next line that is not a PING; asserts it contains `needle`.
    #[track_caller]
    pub(crate) fn expect(&mut self, needle: &str) -> String {
        let line = self.line();
        assert!(
            line.contains(needle),
            "{}: expected {needle:?}, got {line:?}",
            self.nick
        );
        line
    }

    /// Round trip barrier: PING → PONG, returning what arrived before.
    #[track_caller]
    pub(crate) fn sync(&mut self) -> Vec<String> {
        self.send("PING :sync");
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line.contains("PONG") && line.ends_with(":sync") {
                return before;
            }
            before.push(line);
        }
    }
}

#[test]
fn registration_without_cap_gives_the_welcome_burst() {
    let (_server, irc) = irc_server();
    let mut c = Irc::connect(irc);
    c.send("NICK alice");
    c.send("USER alice 0 * :Alice A");
    let welcome: Vec<String> = (0..7).map(|_| c.line()).collect();
    let codes: Vec<&str> = welcome
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    // Two 005 lines: at most 13 tokens each; no MOTD is configured: 422.
    assert_eq!(codes, ["001", "002", "003", "004", "005", "005", "422"]);
    let isupport = format!("{} {}", welcome[4], welcome[5]);
    assert_eq!(
        welcome[0],
        ":miochat.local 001 alice :Welcome to the miochat IRC network alice!~alice@127.0.0.1"
    );
    for token in [
        "CHANTYPES=#",
        "NICKLEN=24",
        "CHANNELLEN=",
        "TOPICLEN=300",
        "CASEMAPPING=ascii",
        "NETWORK=miochat",
        "PREFIX=(ov)@+",
        "CHANMODES=b,k,l,imnst",
        "KICKLEN=300",
        "MODES=6",
        "MAXLIST=b:100",
        "KEYLEN=23",
        "CHANLIMIT=#:32",
    ] {
        assert!(isupport.contains(token), "005 lacks {token}: {isupport}");
    }
}

#[test]
fn registration_with_cap_waits_for_cap_end() {
    let (_server, irc) = irc_server();
    let mut c = Irc::connect(irc);
    c.send("CAP LS 302");
    c.send("NICK bob");
    c.send("USER bob 0 * :Bob");
    assert_eq!(
        c.line(),
        ":miochat.local CAP * LS :away-notify batch cap-notify echo-message invite-notify message-tags multi-prefix sasl server-time account-notify account-tag extended-join draft/account-registration draft/chathistory"
    );
    c.send("CAP REQ :chghost");
    assert_eq!(c.line(), ":miochat.local CAP * NAK :chghost");
    c.send("CAP END");
    assert!(c.line().contains(" 001 bob "));
}

#[test]
fn password_is_checked_before_registration() {
    let (_server, irc) = irc_server_with(|c| c.irc_password = Some("sesame".into()));
    let mut good = Irc::connect(irc);
    good.send("PASS sesame");
    good.send("NICK good");
    good.send("USER good 0 * :Good");
    assert!(good.line().contains(" 001 good "));
    let mut bad = Irc::connect(irc);
    bad.send("PASS wrong");
    bad.send("NICK bad");
    bad.send("USER bad 0 * :Bad");
    assert_eq!(bad.line(), ":miochat.local 464 bad :Password incorrect");
    assert_eq!(bad.line(), "ERROR :Closing Link: bad (Bad password)");
    assert!(bad.c.try_line().is_none(), "closed");
    let mut none = Irc::connect(irc);
    none.send("NICK nopass");
    none.send("USER nopass 0 * :x");
    assert!(none.line().contains(" 464 "));
}

#[test]
fn before_registration_commands_get_451_and_quit_gets_error() {
    let (_server, irc) = irc_server();
    let mut c = Irc::connect(irc);
    c.send("JOIN #lobby");
    assert_eq!(c.line(), ":miochat.local 451 * :You have not registered");
    c.send("QUIT");
    assert_eq!(c.line(), "ERROR :Closing Link: * (Quit)");
    assert!(c.c.try_line().is_none());
}

#[test]
fn two_irc_users_on_different_shards_join_part_privmsg_notice() {
    let (server, irc) = irc_server();
    let mut a = Irc::register(irc, "anna");
    let mut b = Irc::register(irc, "ben");
    // Round-robin placement: one connection on each of the two shards.
    assert_eq!(server.handle.stats().per_shard, [1, 1]);
    a.send("JOIN #rust,#go");
    assert_eq!(a.line(), ":anna!~anna@127.0.0.1 JOIN #rust");
    a.until(" 366 anna #rust ");
    a.until(" 366 anna #go ");
    b.send("JOIN #rust");
    b.expect(":ben!~ben@127.0.0.1 JOIN #rust");
    assert_eq!(
        b.expect(" 353 "),
        ":miochat.local 353 ben = #rust :@anna ben"
    );
    b.until(" 366 ");
    assert_eq!(a.line(), ":ben!~ben@127.0.0.1 JOIN #rust");
    b.send("PRIVMSG #rust :hello anna");
    assert_eq!(a.line(), ":ben!~ben@127.0.0.1 PRIVMSG #rust :hello anna");
    a.send("NOTICE #rust :a notice");
    assert_eq!(b.line(), ":anna!~anna@127.0.0.1 NOTICE #rust :a notice");
    a.send("PRIVMSG ben :private hi");
    assert_eq!(b.line(), ":anna!~anna@127.0.0.1 PRIVMSG ben :private hi");
    b.send("NOTICE anna :private notice");
    assert_eq!(a.line(), ":ben!~ben@127.0.0.1 NOTICE anna :private notice");
    b.send("PART #rust");
    assert_eq!(b.line(), ":ben!~ben@127.0.0.1 PART #rust");
    assert_eq!(a.line(), ":ben!~ben@127.0.0.1 PART #rust");
    a.send("JOIN 0");
    assert_eq!(a.line(), ":anna!~anna@127.0.0.1 PART #rust");
    assert_eq!(a.line(), ":anna!~anna@127.0.0.1 PART #go");
    assert!(b.sync().is_empty());
}

#[test]
fn irc_and_line_users_share_rooms_both_ways() {
    let (server, irc) = irc_server();
    let mut line = server.client_named("liney");
    line.join("rust");
    let mut i = Irc::register(irc, "ircy");
    i.send("JOIN #rust");
    i.until(" 366 ");
    assert_eq!(line.expect("EVENT rust join"), "EVENT rust join ircy");
    line.send("hello from nc");
    assert_eq!(
        i.line(),
        ":liney!~liney@127.0.0.1 PRIVMSG #rust :hello from nc"
    );
    i.send("PRIVMSG #rust :hello from irc");
    assert_eq!(line.expect("MSG "), "MSG rust ircy hello from irc");
    i.send("PRIVMSG #rust :\x01ACTION waves\x01");
    assert_eq!(line.expect("ME "), "ME rust ircy waves");
    i.send("PRIVMSG #rust :\x02bold\x02 and \x0304red\x03");
    assert_eq!(line.expect("MSG "), "MSG rust ircy bold and red");
    line.send("/me nods");
    assert_eq!(
        i.line(),
        ":liney!~liney@127.0.0.1 PRIVMSG #rust :\x01ACTION nods\x01"
    );
    line.send("/msg ircy psst");
    assert_eq!(i.line(), ":liney!~liney@127.0.0.1 PRIVMSG ircy :psst");
    assert_eq!(line.expect("OK sent"), "OK sent ircy");
    i.send("PRIVMSG liney :back at you");
    assert_eq!(line.expect("PRIV "), "PRIV ircy back at you");
    // Nick changes, modes and topics cross too. The line user made the room, so it
    // is the operator; under +t only operators set the topic.
    line.set_nick("lina");
    assert_eq!(i.line(), ":liney!~liney@127.0.0.1 NICK :lina");
    i.send("TOPIC #rust :not yet");
    assert_eq!(
        i.line(),
        ":miochat.local 482 ircy #rust :You're not channel operator"
    );
    line.send("/op ircy");
    assert_eq!(line.expect("OK changed"), "OK changed rust +o ircy");
    assert_eq!(i.line(), ":lina!~lina@127.0.0.1 MODE #rust +o ircy");
    assert_eq!(
        line.expect("EVENT rust mode"),
        "EVENT rust mode lina +o ircy"
    );
    i.send("TOPIC #rust :shared topic");
    assert_eq!(i.line(), ":ircy!~ircy@127.0.0.1 TOPIC #rust :shared topic");
    assert_eq!(
        line.expect("EVENT rust topic"),
        "EVENT rust topic ircy shared topic"
    );
}

#[test]
fn a_long_line_message_is_truncated_for_irc() {
    let (server, irc) = irc_server();
    let mut line = server.client_named("longy");
    let mut i = Irc::register(irc, "ircy");
    i.send("JOIN #lobby");
    i.until(" 366 ");
    line.send(&"x".repeat(1500));
    let got = i.line();
    assert!(got.len() + 2 <= 512, "{} bytes", got.len() + 2);
    assert!(got.starts_with(":longy!~longy@127.0.0.1 PRIVMSG #lobby :xxxx"));
}

#[test]
fn names_topic_list_who_whois() {
    let (_server, irc) = irc_server();
    let mut a = Irc::register(irc, "anna");
    let mut b = Irc::register(irc, "ben");
    for c in [&mut a, &mut b] {
        c.send("JOIN #rust");
        c.until(" 366 ");
    }
    // ben's JOIN reaches anna from ben's shard; a PING barrier would only order
    // anna's own shard, so wait for the JOIN itself.
    a.until(":ben!~ben@127.0.0.1 JOIN #rust");
    a.send("NAMES #rust");
    assert_eq!(a.line(), ":miochat.local 353 anna = #rust :@anna ben");
    assert_eq!(
        a.line(),
        ":miochat.local 366 anna #rust :End of /NAMES list."
    );
    a.send("TOPIC #rust");
    assert_eq!(a.line(), ":miochat.local 331 anna #rust :No topic is set");
    a.send("TOPIC #rust :edge triggers");
    assert_eq!(a.line(), ":anna!~anna@127.0.0.1 TOPIC #rust :edge triggers");
    b.until("TOPIC #rust :edge triggers");
    b.send("TOPIC #rust");
    assert_eq!(b.line(), ":miochat.local 332 ben #rust :edge triggers");
    assert!(
        b.line()
            .starts_with(":miochat.local 333 ben #rust anna!~anna@127.0.0.1 ")
    );
    a.send("LIST");
    assert_eq!(a.line(), ":miochat.local 321 anna Channel :Users  Name");
    assert_eq!(a.line(), ":miochat.local 322 anna #rust 2 :edge triggers");
    assert_eq!(a.line(), ":miochat.local 323 anna :End of /LIST");
    // LIST with channels lists those only.
    a.send("LIST #nowhere,#rust");
    assert_eq!(a.line(), ":miochat.local 321 anna Channel :Users  Name");
    assert_eq!(a.line(), ":miochat.local 322 anna #rust 2 :edge triggers");
    assert_eq!(a.line(), ":miochat.local 323 anna :End of /LIST");
    a.send("WHO #rust");
    assert_eq!(
        a.line(),
        ":miochat.local 352 anna #rust ~anna 127.0.0.1 miochat.local anna H@ :0 Test User"
    );
    assert!(
        a.line()
            .contains(" 352 anna #rust ~ben 127.0.0.1 miochat.local ben H :0 ")
    );
    assert_eq!(a.line(), ":miochat.local 315 anna #rust :End of /WHO list.");
    a.send("WHOIS ben");
    assert_eq!(
        a.line(),
        ":miochat.local 311 anna ben ~ben 127.0.0.1 * :Test User"
    );
    assert!(a.line().contains(" 312 anna ben "));
    assert_eq!(a.line(), ":miochat.local 319 anna ben :#rust");
    assert!(a.line().contains(" 317 anna ben "));
    assert_eq!(a.line(), ":miochat.local 318 anna ben :End of /WHOIS list.");
    // AWAY, ISON, USERHOST, MODE.
    b.send("AWAY :lunch");
    assert_eq!(
        b.line(),
        ":miochat.local 306 ben :You have been marked as being away"
    );
    a.send("PRIVMSG ben :you there?");
    assert_eq!(a.line(), ":miochat.local 301 anna ben :lunch");
    a.send("ISON ben nobody anna");
    assert_eq!(a.line(), ":miochat.local 303 anna :ben anna");
    a.send("USERHOST ben anna");
    assert_eq!(
        a.line(),
        ":miochat.local 302 anna :ben=-~ben@127.0.0.1 anna=+~anna@127.0.0.1"
    );
    b.send("AWAY");
    b.until(" 305 ben ");
    a.send("MODE #rust");
    assert_eq!(a.line(), ":miochat.local 324 anna #rust +nt");
    assert!(a.line().starts_with(":miochat.local 329 anna #rust "));
    a.send("MODE anna +i");
    assert_eq!(a.line(), ":anna!~anna@127.0.0.1 MODE anna :+i");
    a.send("MODE anna");
    assert_eq!(a.line(), ":miochat.local 221 anna +i");
}

#[test]
fn nicks_are_one_namespace_across_protocols() {
    let (server, irc) = irc_server();
    let _line = server.client_named("shared");
    let mut i = Irc::connect(irc);
    i.send("NICK Shared");
    assert_eq!(
        i.line(),
        ":miochat.local 433 * Shared :Nickname is already in use"
    );
    i.send("NICK other");
    i.send("USER other 0 * :x");
    i.until(" 422 ");
    let mut line2 = server.client();
    line2.send("/nick OTHER");
    assert_eq!(
        line2.expect("ERR "),
        "ERR nick-taken OTHER is already taken"
    );
}

#[test]
fn quit_is_broadcast_to_both_protocols() {
    let (server, irc) = irc_server();
    let mut line = server.client_named("liney");
    let mut watcher = Irc::register(irc, "watcher");
    watcher.send("JOIN #lobby");
    watcher.until(" 366 ");
    let mut leaver = Irc::register(irc, "leaver");
    leaver.send("JOIN #lobby");
    leaver.until(" 366 ");
    watcher.until("JOIN #lobby");
    leaver.send("QUIT :gone fishing");
    assert_eq!(leaver.line(), "ERROR :Closing Link: leaver (Quit)");
    assert_eq!(
        watcher.line(),
        ":leaver!~leaver@127.0.0.1 QUIT :gone fishing"
    );
    assert_eq!(
        line.expect("EVENT lobby quit"),
        "EVENT lobby quit leaver gone fishing"
    );
}

#[test]
fn silent_irc_clients_are_pinged_and_closed() {
    let (_server, irc) = irc_server_with(|c| {
        c.irc_ping = Duration::from_millis(300);
        c.irc_pong_timeout = Duration::from_millis(500);
    });
    let mut silent = Irc::register(irc, "silent");
    let mut polite = Irc::register(irc, "polite");
    assert_eq!(silent.line(), "PING :miochat.local");
    assert_eq!(polite.line(), "PING :miochat.local");
    polite.send("PONG :miochat.local");
    assert_eq!(silent.line(), "ERROR :Closing Link: silent (Ping timeout)");
    assert!(silent.c.try_line().is_none());
    // The polite one is pinged again later, and stays.
    assert_eq!(polite.line(), "PING :miochat.local");
    polite.send("PONG :miochat.local");
    assert!(polite.sync().is_empty());
}

#[test]
fn every_error_numeric() {
    let (server, irc) = irc_server();
    let _other = Irc::register(irc, "other");
    let _liney = server.client_named("liney");
    let mut c = Irc::register(irc, "tester");
    let cases: &[(&str, &str)] = &[
        (
            "PRIVMSG nobody :hi",
            ":miochat.local 401 tester nobody :No such nick/channel",
        ),
        (
            "JOIN #bad!name",
            ":miochat.local 403 tester #bad!name :No such channel",
        ),
        (
            "PRIVMSG #notjoined :hi",
            ":miochat.local 404 tester #notjoined :Cannot send to channel",
        ),
        (
            "PRIVMSG",
            ":miochat.local 411 tester :No recipient given (PRIVMSG)",
        ),
        (
            "PRIVMSG other",
            ":miochat.local 412 tester :No text to send",
        ),
        ("NICK", ":miochat.local 431 tester :No nickname given"),
        (
            "NICK 9lives",
            ":miochat.local 432 tester 9lives :Erroneous nickname",
        ),
        (
            "NICK liney",
            ":miochat.local 433 tester liney :Nickname is already in use",
        ),
        (
            "PART #lobby",
            ":miochat.local 442 tester #lobby :You're not on that channel",
        ),
        (
            "PART #nowhere",
            ":miochat.local 403 tester #nowhere :No such channel",
        ),
        (
            "JOIN",
            ":miochat.local 461 tester JOIN :Not enough parameters",
        ),
        (
            "USER x 0 * :again",
            ":miochat.local 462 tester :You may not reregister",
        ),
        (
            "PASS again",
            ":miochat.local 462 tester :You may not reregister",
        ),
        (
            "FROBNICATE",
            ":miochat.local 421 tester FROBNICATE :Unknown command",
        ),
    ];
    for (send, want) in cases {
        c.send(send);
        assert_eq!(&c.line(), want, "after {send:?}");
    }
    // An over-long line: 417, and the connection stays.
    c.send(&format!("PRIVMSG other :{}", "y".repeat(600)));
    assert_eq!(
        c.line(),
        ":miochat.local 417 tester :Input line was too long"
    );
    assert!(c.sync().is_empty());
}

#[test]
fn server_full_and_shutdown_reach_irc_clients_in_irc() {
    let (server, irc) = irc_server_with(|c| c.max_connections = 1);
    let mut first = Irc::register(irc, "first");
    let mut refused = Irc::connect(irc);
    assert_eq!(
        refused.line(),
        "ERROR :Closing Link: * (the server is full; try again later)"
    );
    server.handle.shutdown();
    assert_eq!(
        first.line(),
        "ERROR :Closing Link: first (server shutting down)"
    );
}
