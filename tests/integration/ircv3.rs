//! IRC clients get what IRC clients expect: IRCv3 capabilities (`server-time`,
//! `echo-message`, `batch` with `chathistory` playback, `away-notify`,
//! `invite-notify`), one `QUIT` or `NICK` per reader whatever the rooms shared, and
//! formatting kept between IRC users.

use std::net::SocketAddr;

use crate::common::TestServer;
use crate::irc::{Irc, irc_server};

/// Registers `nick` after asking for `caps` (`CAP LS 302` ... `CAP END`).
fn register_with(addr: SocketAddr, nick: &str, caps: &str) -> Irc {
    let mut irc = Irc::connect(addr);
    irc.send("CAP LS 302");
    irc.send(&format!("NICK {nick}"));
    irc.send(&format!("USER {nick} 0 * :Test User"));
    irc.until(" CAP * LS ");
    irc.send(&format!("CAP REQ :{caps}"));
    let ack = irc.until(" CAP * ");
    assert!(ack.contains(" ACK :"), "{ack}");
    irc.send("CAP END");
    irc.until(" 422 ");
    irc
}

fn join(irc: &mut Irc, room: &str) {
    irc.send(&format!("JOIN #{room}"));
    irc.until(" 366 ");
}

#[test]
fn cap_ls_lists_what_works_and_req_is_all_or_nothing() {
    let (_server, addr) = irc_server();
    let mut c = Irc::connect(addr);
    c.send("CAP LS 302");
    let ls = c.line();
    for cap in ["server-time", "echo-message", "batch", "away-notify"] {
        assert!(ls.contains(cap), "{ls}");
    }
    assert!(!ls.contains("chghost"), "hosts never change: {ls}");
    c.send("CAP REQ :server-time chghost");
    assert_eq!(c.line(), ":miochat.local CAP * NAK :server-time chghost");
    c.send("CAP REQ :server-time echo-message");
    assert_eq!(
        c.line(),
        ":miochat.local CAP * ACK :server-time echo-message"
    );
    c.send("CAP REQ :-echo-message");
    c.line();
    c.send("CAP LIST");
    assert_eq!(c.line(), ":miochat.local CAP * LIST :server-time");
}

#[test]
fn server_time_tags_lines_and_echo_message_echoes_them() {
    let (server, addr) = irc_server();
    let mut line = server.client_named("liney");
    line.join("rust");
    let mut modern = register_with(addr, "modern", "server-time echo-message");
    join(&mut modern, "rust");
    let mut plain = Irc::register(addr, "plain");
    join(&mut plain, "rust");
    modern.sync();
    modern.send("PRIVMSG #rust :hi all");
    let echo = modern.until("PRIVMSG");
    assert!(echo.starts_with("@time=20"), "{echo}");
    assert!(
        echo.ends_with("Z :modern!~modern@127.0.0.1 PRIVMSG #rust :hi all"),
        "{echo}"
    );
    assert_eq!(
        plain.until("PRIVMSG"),
        ":modern!~modern@127.0.0.1 PRIVMSG #rust :hi all"
    );
    assert_eq!(line.expect("MSG "), "MSG rust modern hi all");
    line.send("hello back");
    let tagged = modern.until("PRIVMSG");
    assert!(
        tagged.starts_with("@time=") && tagged.ends_with(":hello back"),
        "{tagged}"
    );
    modern.send("PRIVMSG liney :psst");
    let echo = modern.until("PRIVMSG");
    assert!(
        echo.ends_with(":modern!~modern@127.0.0.1 PRIVMSG liney :psst"),
        "{echo}"
    );
    assert_eq!(line.expect("PRIV "), "PRIV modern psst");
}

#[test]
fn quit_and_nick_reach_an_irc_reader_once_whatever_the_rooms_shared() {
    let (server, addr) = irc_server();
    let mut line = server.client_named("twice");
    line.join("rust");
    line.join("go");
    let mut reader = Irc::register(addr, "reader");
    join(&mut reader, "rust");
    join(&mut reader, "go");
    reader.sync();
    line.set_nick("thrice");
    line.send("/quit bye now");
    let mut watcher = server.client_named("watcher");
    watcher.sync();
    let seen = reader.sync();
    let nicks = seen.iter().filter(|l| l.contains(" NICK ")).count();
    let quits: Vec<_> = seen.iter().filter(|l| l.contains(" QUIT ")).collect();
    assert_eq!(nicks, 1, "{seen:?}");
    assert_eq!(quits.len(), 1, "{seen:?}");
    assert_eq!(quits[0], ":thrice!~thrice@127.0.0.1 QUIT :bye now");
}

#[test]
fn formatting_is_kept_between_irc_users_and_stripped_for_line_users() {
    let (server, addr) = irc_server();
    let mut line = server.client_named("liney");
    line.join("rust");
    let mut a = Irc::register(addr, "ann");
    join(&mut a, "rust");
    let mut b = Irc::register(addr, "bea");
    join(&mut b, "rust");
    a.sync();
    a.send("PRIVMSG #rust :\x02bold\x02 and \x0304red\x03");
    assert_eq!(
        b.until("PRIVMSG"),
        ":ann!~ann@127.0.0.1 PRIVMSG #rust :\x02bold\x02 and \x0304red\x03"
    );
    assert_eq!(line.expect("MSG "), "MSG rust ann bold and red");
    line.send("/history 1");
    assert_eq!(
        line.expect("HIST ")
            .split_once(' ')
            .unwrap()
            .1
            .split_once(' ')
            .unwrap()
            .1
            .split_once(' ')
            .unwrap()
            .1,
        "MSG rust ann bold and red"
    );
}

#[test]
fn history_is_a_chathistory_batch_for_clients_that_negotiate_it() {
    let (server, addr) = irc_server();
    let mut line = server.client_named("liney");
    line.join("rust");
    for text in ["one", "two", "three"] {
        line.send(text);
    }
    line.send("/me leaves");
    line.sync();
    let mut modern = register_with(addr, "modern", "batch server-time");
    modern.send("JOIN #rust");
    modern.until(" 366 ");
    let open = modern.line();
    let (_, rest) = open.split_once(" BATCH +").expect("a batch opens");
    let (id, kind) = rest.split_once(' ').unwrap();
    assert_eq!(kind, "chathistory #rust");
    for text in [":one", ":two", ":three", ":\x01ACTION leaves\x01"] {
        let held = modern.line();
        assert!(held.starts_with(&format!("@batch={id};time=20")), "{held}");
        assert!(
            // History keeps no host: the stand-in.
            held.ends_with(&format!("liney!liney@miochat PRIVMSG #rust {text}")),
            "{held}"
        );
    }
    assert!(modern.line().ends_with(&format!(" BATCH -{id}")));
    let mut plain = Irc::register(addr, "plain");
    plain.send("JOIN #rust");
    plain.until(" 366 ");
    let notice = plain.line();
    assert!(
        notice.starts_with(":miochat.local NOTICE #rust :["),
        "{notice}"
    );
    assert!(notice.ends_with("] <liney> one"), "{notice}");
}

#[test]
fn away_and_invite_notify_reach_the_clients_that_asked() {
    let server = TestServer::start_with(|c| {
        c.irc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let addr = server.handle.irc_addr().unwrap();
    let mut line = server.client_named("liney");
    line.join("rust");
    let mut notified = register_with(addr, "notified", "away-notify invite-notify");
    join(&mut notified, "rust");
    let mut plain = Irc::register(addr, "plain");
    join(&mut plain, "rust");
    notified.sync();
    line.send("/away lunch");
    line.expect("OK away");
    line.send("/invite outsider");
    assert_eq!(
        line.expect("ERR "),
        "ERR no-such-nick no one is called outsider"
    );
    let _outsider = server.client_named("outsider");
    line.send("/invite outsider");
    line.expect("OK invited");
    let seen = notified.sync();
    assert!(
        seen.contains(&":liney!~liney@127.0.0.1 AWAY :lunch".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&":liney!~liney@127.0.0.1 INVITE outsider #rust".to_string()),
        "{seen:?}"
    );
    // Joining while away is followed by AWAY for those who asked.
    join(&mut notified, "hall");
    line.send("/join hall");
    line.expect("OK joined hall");
    let joined = notified.until("JOIN #hall");
    assert_eq!(joined, ":liney!~liney@127.0.0.1 JOIN #hall");
    assert_eq!(notified.line(), ":liney!~liney@127.0.0.1 AWAY :lunch");
    let plain_seen = plain.sync();
    assert!(
        plain_seen
            .iter()
            .all(|l| !l.contains("AWAY") && !l.contains("INVITE")),
        "{plain_seen:?}"
    );
}

#[test]
fn multi_prefix_shows_every_prefix_of_a_voiced_operator() {
    let (_server, addr) = irc_server();
    let mut multi = register_with(addr, "multi", "multi-prefix");
    join(&mut multi, "stage");
    multi.send("MODE #stage +v multi");
    multi.until(" MODE #stage +v multi");
    let mut plain = Irc::register(addr, "plain");
    plain.send("JOIN #stage");
    let names = plain.until(" 353 ");
    assert!(
        names.ends_with(":@multi plain") || names.contains("@multi"),
        "{names}"
    );
    assert!(
        !names.contains("@+"),
        "one prefix without multi-prefix: {names}"
    );
    multi.sync();
    multi.send("NAMES #stage");
    let names = multi.until(" 353 ");
    assert!(names.contains("@+multi"), "{names}");
    multi.send("WHO #stage");
    let who = multi.until(" 352 ");
    assert!(who.contains(" H@+ :0 "), "{who}");
}

#[test]
fn message_tags_relay_client_tags_and_tagmsg_to_those_who_asked() {
    let (server, addr) = irc_server();
    let mut line = server.client_named("liney");
    line.join("rust");
    let mut a = register_with(addr, "ann", "message-tags");
    join(&mut a, "rust");
    let mut b = register_with(addr, "bea", "message-tags server-time");
    join(&mut b, "rust");
    let mut plain = Irc::register(addr, "plain");
    join(&mut plain, "rust");
    a.sync();
    b.sync();
    a.send("@+draft/react=wave;server=ignored PRIVMSG #rust :hi");
    let tagged = b.until("PRIVMSG");
    assert!(
        tagged.starts_with("@+draft/react=wave;msgid=") && tagged.contains(";time=20"),
        "client tags, the message id, then the time: {tagged}"
    );
    assert!(
        tagged.ends_with(" :ann!~ann@127.0.0.1 PRIVMSG #rust :hi"),
        "{tagged}"
    );
    assert_eq!(
        plain.until("PRIVMSG"),
        ":ann!~ann@127.0.0.1 PRIVMSG #rust :hi"
    );
    assert_eq!(line.expect("MSG "), "MSG rust ann hi");
    a.send("@+typing=active TAGMSG #rust");
    let typing = b.until("TAGMSG");
    assert!(
        typing.starts_with("@+typing=active;time=")
            && typing.ends_with(":ann!~ann@127.0.0.1 TAGMSG #rust"),
        "{typing}"
    );
    a.send("@+typing=paused TAGMSG bea");
    let private = b.until("TAGMSG");
    assert!(
        private.ends_with(":ann!~ann@127.0.0.1 TAGMSG bea"),
        "{private}"
    );
    assert!(private.starts_with("@+typing=paused;time="), "{private}");
    let seen = plain.sync();
    assert!(seen.iter().all(|l| !l.contains("TAGMSG")), "{seen:?}");
    line.expect_quiet();
    // A plain client cannot send TAGMSG; long tags are refused, not the line's text.
    plain.send("TAGMSG #rust");
    assert!(plain.line().contains(" 421 plain TAGMSG "));
    let long = format!("@+x={} PRIVMSG #rust :too many tags", "y".repeat(5000));
    a.send(&long);
    assert!(a.line().contains(" 417 ann "), "tags over 4094 bytes");
}
