//! Room moderation over TCP: operators, modes, kicks, bans and invites, every
//! line-protocol `ERR` code and every IRC numeric they produce, and the two protocols
//! moderating each other's users in one room.
//!
//! Room events (mode changes, kicks) are sequenced by the room's home shard, so an
//! echo may arrive after a later direct reply: the tests wait for echoes with
//! `until`/`expect` rather than assume their place.

use crate::common::TestServer;
use crate::irc::{Irc, irc_server};

#[test]
fn line_operators_and_every_err_code() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    let mut carol = server.client_named("carol");
    alice.join("mod");
    bob.join("mod");
    bob.send("/op bob");
    assert_eq!(
        bob.expect("ERR "),
        "ERR not-operator you are not an operator of mod"
    );
    alice.send("/op nobody");
    assert_eq!(
        alice.expect("ERR "),
        "ERR no-such-nick no one is called nobody"
    );
    alice.send("/op carol");
    assert_eq!(alice.expect("ERR "), "ERR not-on-room carol is not in mod");
    alice.send("/kick carol");
    assert_eq!(alice.expect("ERR "), "ERR not-on-room carol is not in mod");
    carol.send("/invite bob mod");
    assert_eq!(carol.expect("ERR "), "ERR not-in-room you are not in mod");

    // +i and invitations: one EVENT line per change for every member.
    alice.send("/mode +i");
    assert_eq!(alice.expect("OK changed"), "OK changed mod +i");
    assert_eq!(bob.expect("EVENT mod mode"), "EVENT mod mode alice +i");
    carol.send("/join mod");
    assert_eq!(carol.expect("ERR "), "ERR invite-only mod is invite-only");
    alice.send("/invite bob");
    assert_eq!(
        alice.expect("ERR "),
        "ERR already-on-room bob is already in mod"
    );
    alice.send("/invite carol");
    assert_eq!(alice.expect("OK invited"), "OK invited carol mod");
    assert_eq!(
        carol.expect("EVENT mod invite"),
        "EVENT mod invite alice carol"
    );
    carol.join("mod");
    carol.send("/leave mod");
    carol.expect("OK left mod");
    carol.send("/join mod");
    assert_eq!(
        carol.expect("ERR "),
        "ERR invite-only mod is invite-only",
        "an invitation is good for one join"
    );

    // +k and +l.
    alice.send("/mode -i+k sesame");
    assert_eq!(alice.expect("OK changed"), "OK changed mod -i+k sesame");
    for attempt in ["/join mod", "/join mod nope"] {
        carol.send(attempt);
        assert_eq!(carol.expect("ERR "), "ERR bad-key mod needs the right key");
    }
    carol.send("/join mod sesame");
    carol.expect("OK joined mod 3");
    alice.send("/mode +l 3");
    assert_eq!(alice.expect("OK changed"), "OK changed mod +l 3");
    let mut dave = server.client_named("dave");
    dave.send("/join mod sesame");
    assert_eq!(dave.expect("ERR "), "ERR room-full mod is full");
    alice.send("/mode");
    assert_eq!(alice.expect("OK mode"), "OK mode mod +klnt sesame 3");
    dave.send("/mode #mod");
    assert_eq!(
        dave.expect("OK mode"),
        "OK mode mod +klnt * 3",
        "the key is for members"
    );

    // Bans.
    alice.send("/mode -l");
    alice.expect("OK changed mod -l");
    alice.send("/ban dave");
    assert_eq!(alice.expect("OK changed"), "OK changed mod +b dave!*@*");
    dave.send("/join mod sesame");
    assert_eq!(dave.expect("ERR "), "ERR banned you are banned from mod");
    alice.send("/bans");
    assert_eq!(alice.expect("OK bans"), "OK bans mod dave!*@*");
    alice.send("/unban DAVE");
    assert_eq!(alice.expect("OK changed"), "OK changed mod -b DAVE!*@*");
    alice.send("/ban *!*@127.0.0.*");
    alice.expect("OK changed mod +b *!*@127.0.0.*");
    dave.send("/join mod sesame");
    assert_eq!(
        dave.expect("ERR "),
        "ERR banned you are banned from mod",
        "line users match on their address too"
    );
    // An invitation lets a banned user in, once (as in ngIRCd and InspIRCd).
    alice.send("/invite dave");
    alice.expect("OK invited dave mod");
    dave.send("/join mod sesame");
    dave.expect("OK joined mod ");
    dave.send("/leave mod");
    dave.expect("OK left mod");
    dave.send("/join mod sesame");
    assert!(dave.expect("ERR ").starts_with("ERR banned"));
    alice.send("/unban *!*@127.0.0.*");
    alice.expect("OK changed mod -b");

    // Refused mode changes.
    for (send, want) in [
        ("/mode +x", "ERR bad-mode mod: x is not a room mode"),
        (
            "/mode +l 0",
            "ERR bad-mode mod: l 0: the limit must be a positive number",
        ),
        ("/mode +l", "ERR bad-mode mod: +l needs a parameter"),
        (
            "/mode +k a,b",
            "ERR bad-mode mod: a key is 1-23 bytes without spaces, commas or a leading :",
        ),
    ] {
        alice.send(send);
        assert_eq!(alice.expect("ERR "), want, "{send}");
    }

    // +m: only operators and voiced members speak.
    alice.send("/mode +m");
    alice.expect("OK changed mod +m");
    bob.skip_to("EVENT mod mode alice +m");
    bob.send("muted?");
    assert_eq!(
        bob.expect("ERR "),
        "ERR cannot-send you cannot send to mod (moderated, outside messages or banned)"
    );
    alice.send("/voice bob");
    alice.expect("OK changed mod +v bob");
    assert_eq!(bob.expect("EVENT mod mode"), "EVENT mod mode alice +v bob");
    bob.send("now I can");
    assert_eq!(alice.expect("MSG "), "MSG mod bob now I can");
    assert_eq!(carol.expect("MSG "), "MSG mod bob now I can");
    alice.send("/who");
    assert_eq!(alice.expect("OK who"), "OK who mod @alice +bob carol");

    // Kicks reach everyone, the kicked member included, who is then out.
    alice.send("/kick bob spamming");
    assert_eq!(alice.expect("OK kicked"), "OK kicked bob mod");
    assert_eq!(
        carol.expect("EVENT mod kick"),
        "EVENT mod kick alice bob spamming"
    );
    assert_eq!(
        bob.expect("EVENT mod kick"),
        "EVENT mod kick alice bob spamming"
    );
    bob.send("/leave mod");
    assert_eq!(bob.expect("ERR "), "ERR not-in-room you are not in mod");
    alice.send("/kick carol");
    alice.expect("OK kicked carol mod");
    assert_eq!(
        carol.expect("EVENT mod kick"),
        "EVENT mod kick alice carol alice",
        "the default reason is the kicker's nick"
    );

    // The ban list is bounded.
    for i in 0..100 {
        alice.send(&format!("/ban n{i}"));
        alice.expect("OK changed mod +b");
    }
    alice.send("/ban one-too-many");
    assert_eq!(
        alice.expect("ERR "),
        "ERR ban-list-full the ban list of mod is full"
    );
    alice.send("/topic still mine");
    alice.expect("EVENT mod topic alice still mine");
}

#[test]
fn topic_lock_and_no_room_errors_for_line_users() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    alice.join("tl");
    bob.join("tl");
    bob.send("/topic mine now");
    assert_eq!(
        bob.expect("ERR "),
        "ERR not-operator you are not an operator of tl"
    );
    alice.send("/mode -t");
    alice.expect("OK changed tl -t");
    bob.send("/topic mine now");
    assert_eq!(bob.expect("EVENT tl topic"), "EVENT tl topic bob mine now");
    bob.send("/mode #nowhere");
    assert_eq!(
        bob.expect("ERR "),
        "ERR no-such-room room nowhere has no members"
    );
    bob.send("/op");
    assert_eq!(bob.expect("ERR "), "ERR usage usage: /op NICK");
}

#[test]
fn irc_mode_numerics() {
    let (_server, irc) = irc_server();
    let mut op = Irc::register(irc, "op");
    let mut user = Irc::register(irc, "user");
    let _outsider = Irc::register(irc, "outsider");
    op.send("JOIN #chan");
    op.until(" 366 ");
    user.send("JOIN #chan");
    assert_eq!(
        user.until(" 353 "),
        ":miochat.local 353 user = #chan :@op user"
    );
    user.until(" 366 ");
    op.until(":user!~user@127.0.0.1 JOIN #chan");
    user.send("MODE #chan");
    assert_eq!(user.line(), ":miochat.local 324 user #chan +nt");
    assert!(user.line().starts_with(":miochat.local 329 user #chan "));
    for (send, want) in [
        (
            "MODE #nochan",
            ":miochat.local 403 user #nochan :No such channel",
        ),
        (
            "MODE #chan +o user",
            ":miochat.local 482 user #chan :You're not channel operator",
        ),
    ] {
        user.send(send);
        assert_eq!(user.line(), want, "{send}");
    }
    for (send, want) in [
        (
            "MODE #chan +o nobody",
            ":miochat.local 401 op nobody :No such nick/channel",
        ),
        (
            "MODE #chan +o outsider",
            ":miochat.local 441 op outsider #chan :They aren't on that channel",
        ),
        (
            "MODE #chan +x",
            ":miochat.local 472 op x :is unknown mode char to me",
        ),
        (
            "MODE #chan +k",
            ":miochat.local 696 op #chan k * :You must specify a parameter",
        ),
        (
            "MODE #chan +k a,b",
            ":miochat.local 525 op #chan :Key is not well-formed",
        ),
        (
            "MODE #chan +l abc",
            ":miochat.local 696 op #chan l abc :the limit must be a positive number",
        ),
        (
            "MODE #chan +l",
            ":miochat.local 696 op #chan l * :You must specify a parameter",
        ),
        (
            "MODE #chan b",
            ":miochat.local 368 op #chan :End of channel ban list",
        ),
        (
            "MODE #nochan +b",
            ":miochat.local 403 op #nochan :No such channel",
        ),
    ] {
        op.send(send);
        assert_eq!(op.line(), want, "{send}");
    }
    op.send("MODE #chan +bv bad user");
    assert_eq!(
        op.until(" MODE "),
        ":op!~op@127.0.0.1 MODE #chan +bv bad!*@* user"
    );
    assert_eq!(
        user.until(" MODE "),
        ":op!~op@127.0.0.1 MODE #chan +bv bad!*@* user"
    );
    op.send("MODE #chan +b");
    let ban = op.line();
    assert!(
        ban.starts_with(":miochat.local 367 op #chan bad!*@* op "),
        "{ban}"
    );
    assert_eq!(
        op.line(),
        ":miochat.local 368 op #chan :End of channel ban list"
    );
    user.send("NAMES #chan");
    assert_eq!(user.line(), ":miochat.local 353 user = #chan :@op +user");
    user.until(" 366 ");
    op.send("MODE #chan +ntk-b key bad");
    assert_eq!(
        op.until(" MODE "),
        ":op!~op@127.0.0.1 MODE #chan +k-b key bad!*@*"
    );
}

#[test]
fn irc_kick_invite_join_and_speak_numerics() {
    let (_server, irc) = irc_server();
    let mut op = Irc::register(irc, "op");
    let mut user = Irc::register(irc, "user");
    let mut outsider = Irc::register(irc, "outsider");
    op.send("JOIN #chan");
    op.until(" 366 ");
    user.send("JOIN #chan");
    user.until(" 366 ");
    op.until("JOIN #chan");
    for (who, send, want) in [
        (
            "op",
            "KICK #nochan user",
            ":miochat.local 403 op #nochan :No such channel",
        ),
        (
            "outsider",
            "KICK #chan user",
            ":miochat.local 442 outsider #chan :You're not on that channel",
        ),
        (
            "user",
            "KICK #chan op",
            ":miochat.local 482 user #chan :You're not channel operator",
        ),
        (
            "op",
            "KICK #chan outsider",
            ":miochat.local 441 op outsider #chan :They aren't on that channel",
        ),
        (
            "outsider",
            "INVITE user #chan",
            ":miochat.local 442 outsider #chan :You're not on that channel",
        ),
        (
            "op",
            "INVITE user #chan",
            ":miochat.local 443 op user #chan :is already on channel",
        ),
        (
            "outsider",
            "PRIVMSG #chan :from outside",
            ":miochat.local 404 outsider #chan :Cannot send to channel",
        ),
        (
            "outsider",
            "TOPIC #nochan",
            ":miochat.local 403 outsider #nochan :No such channel",
        ),
        (
            "user",
            "TOPIC #chan :mine",
            ":miochat.local 482 user #chan :You're not channel operator",
        ),
        (
            "outsider",
            "NAMES #nochan",
            ":miochat.local 366 outsider #nochan :End of /NAMES list.",
        ),
        ("op", "PING", ":miochat.local 409 op :No origin specified"),
    ] {
        let c = match who {
            "op" => &mut op,
            "user" => &mut user,
            _ => &mut outsider,
        };
        c.send(send);
        assert_eq!(c.line(), want, "{send}");
    }
    // +i: operators only invite, and an invitation lets one in.
    op.send("MODE #chan +i");
    user.until("MODE #chan +i");
    user.send("INVITE outsider #chan");
    assert_eq!(
        user.line(),
        ":miochat.local 482 user #chan :You're not channel operator"
    );
    outsider.send("JOIN #chan");
    assert_eq!(
        outsider.line(),
        ":miochat.local 473 outsider #chan :Cannot join channel (+i)"
    );
    op.send("INVITE outsider #chan");
    assert_eq!(op.until(" 341 "), ":miochat.local 341 op outsider #chan");
    assert_eq!(outsider.line(), ":op!~op@127.0.0.1 INVITE outsider #chan");
    outsider.send("INVITE");
    assert_eq!(outsider.line(), ":miochat.local 336 outsider #chan");
    assert_eq!(
        outsider.line(),
        ":miochat.local 337 outsider :End of /INVITE list"
    );
    // +k, +l, +b.
    let mut joiner = Irc::register(irc, "joiner");
    op.send("MODE #chan -i+k key");
    op.until("MODE #chan -i+k key");
    for attempt in ["JOIN #chan", "JOIN #chan wrong"] {
        joiner.send(attempt);
        assert_eq!(
            joiner.line(),
            ":miochat.local 475 joiner #chan :Cannot join channel (+k)"
        );
    }
    op.send("MODE #chan -k+l * 2");
    op.until("MODE #chan -k+l * 2");
    joiner.send("JOIN #chan");
    assert_eq!(
        joiner.line(),
        ":miochat.local 471 joiner #chan :Cannot join channel (+l)"
    );
    op.send("MODE #chan -l+b joiner");
    op.until("MODE #chan -l+b");
    joiner.send("JOIN #chan");
    assert_eq!(
        joiner.line(),
        ":miochat.local 474 joiner #chan :Cannot join channel (+b)"
    );
    // +m stops a member's message.
    op.send("MODE #chan +m");
    user.until("MODE #chan +m");
    user.send("PRIVMSG #chan :quiet?");
    assert_eq!(
        user.line(),
        ":miochat.local 404 user #chan :Cannot send to channel"
    );
    // KICK reaches the whole room, the kicked user too; default comment.
    op.send("KICK #chan user");
    assert_eq!(
        user.until(" KICK "),
        ":op!~op@127.0.0.1 KICK #chan user :op"
    );
    assert_eq!(op.until(" KICK "), ":op!~op@127.0.0.1 KICK #chan user :op");
    user.send("PART #chan");
    assert_eq!(
        user.line(),
        ":miochat.local 442 user #chan :You're not on that channel"
    );
}

#[test]
fn irc_names_who_whois_whowas_lusers() {
    let (server, irc) = irc_server();
    let mut op = Irc::register(irc, "op");
    let mut user = Irc::register(irc, "user");
    let mut outsider = Irc::register(irc, "outsider");
    let mut liney = server.client_named("liney");
    op.send("JOIN #sec");
    op.until(" 366 ");
    user.send("JOIN #sec");
    user.until(" 366 ");
    op.until("JOIN #sec");
    op.send("MODE #sec +s");
    user.until("MODE #sec +s");
    user.send("NAMES #sec");
    assert_eq!(user.line(), ":miochat.local 353 user @ #sec :@op user");
    user.until(" 366 ");
    outsider.send("NAMES #sec");
    assert_eq!(
        outsider.line(),
        ":miochat.local 366 outsider #sec :End of /NAMES list."
    );
    outsider.send("LIST");
    outsider.until(" 321 ");
    assert_eq!(outsider.line(), ":miochat.local 322 outsider #lobby 1 :");
    assert_eq!(outsider.line(), ":miochat.local 323 outsider :End of /LIST");
    outsider.send("WHOIS miochat.local op");
    outsider.until(" 312 ");
    assert!(
        outsider.line().contains(" 317 outsider op "),
        "no 319 for a secret room"
    );
    user.send("WHOIS op");
    user.until(" 312 ");
    assert_eq!(user.line(), ":miochat.local 319 user op :@#sec");
    user.until(" 318 ");
    // WHO: a nick, a mask, *.
    op.send("AWAY :brb");
    op.until(" 306 ");
    user.send("WHO op");
    assert_eq!(
        user.line(),
        ":miochat.local 352 user * ~op 127.0.0.1 miochat.local op G :0 Test User"
    );
    assert_eq!(user.line(), ":miochat.local 315 user op :End of /WHO list.");
    user.send("WHO o*");
    assert!(
        user.line().contains(" 352 user * ~op "),
        "outsider shares no room"
    );
    assert_eq!(user.line(), ":miochat.local 315 user o* :End of /WHO list.");
    user.send("WHO *");
    let rows: Vec<String> = user.sync();
    assert_eq!(
        rows.iter().filter(|l| l.contains(" 352 ")).count(),
        2,
        "{rows:?}"
    );
    // WHOWAS: a bounded history of nicks that quit or changed.
    outsider.send("NICK gone");
    outsider.until("NICK :gone");
    outsider.send("JOIN #lobby");
    outsider.until(" 366 ");
    outsider.send("QUIT");
    // Once the room hears the QUIT, the directory has forgotten the connection.
    liney.expect("EVENT lobby quit gone");
    user.send("WHOWAS outsider 5");
    assert_eq!(
        user.line(),
        ":miochat.local 314 user outsider ~outsider 127.0.0.1 * :Test User"
    );
    assert!(user.line().contains(" 312 user outsider "));
    assert_eq!(
        user.line(),
        ":miochat.local 369 user outsider :End of WHOWAS"
    );
    user.send("WHOWAS nobody");
    assert_eq!(
        user.line(),
        ":miochat.local 406 user nobody :There was no such nickname"
    );
    assert_eq!(user.line(), ":miochat.local 369 user nobody :End of WHOWAS");
    // LUSERS: two IRC users and a line user; one unregistered connection.
    let mut half = Irc::connect(irc);
    half.send("NICK half");
    half.send("PING :here");
    half.until("PONG");
    user.send("LUSERS");
    let codes: Vec<String> = (0..7).map(|_| user.line()).collect();
    assert_eq!(
        codes,
        [
            ":miochat.local 251 user :There are 0 users and 3 invisible on 1 servers",
            ":miochat.local 252 user 0 :operator(s) online",
            ":miochat.local 253 user 1 :unknown connection(s)",
            ":miochat.local 254 user 2 :channels formed",
            ":miochat.local 255 user :I have 3 clients and 0 servers",
            ":miochat.local 265 user 3 4 :Current local users 3, max 4",
            ":miochat.local 266 user 3 4 :Current global users 3, max 4",
        ]
    );
}

#[test]
fn irc_edge_cases_notice_part_reason_and_bytes_that_are_not_utf8() {
    let (server, irc) = irc_server();
    let mut line = server.client_named("liney");
    let mut a = Irc::register(irc, "anna");
    let mut b = Irc::connect(irc);
    b.send("NICK ben");
    b.send("USER ben 0 * :");
    assert_eq!(
        b.line(),
        ":miochat.local 461 ben USER :Not enough parameters"
    );
    b.c.send_raw(b"USER ben 0 * :Jos\xe9 \xff\r\n");
    b.until(" 422 ");
    a.send("JOIN #lobby");
    a.until(" 366 ");
    b.send("JOIN #lobby");
    b.until(" 366 ");
    a.until("ben!~ben@127.0.0.1 JOIN #lobby");
    // Bytes that are not UTF-8 reach IRC readers as sent, line readers as U+FFFD.
    a.send("WHOIS ben");
    assert_eq!(
        a.raw_line(),
        b":miochat.local 311 anna ben ~ben 127.0.0.1 * :Jos\xe9 \xff"
    );
    a.until(" 318 ");
    b.c.send_raw(b"PRIVMSG #lobby :caf\xe9\r\n");
    assert_eq!(a.raw_line(), b":ben!~ben@127.0.0.1 PRIVMSG #lobby :caf\xe9");
    assert_eq!(line.expect("MSG "), "MSG lobby ben caf\u{fffd}");
    // NOTICE is never answered, whatever the target.
    for send in [
        "NOTICE nobody :hi",
        "NOTICE #nochan :hi",
        "NOTICE #bad!name :hi",
        "NOTICE",
        "NOTICE anna",
        "NOTICE #notjoined :hi",
    ] {
        b.send(send);
    }
    assert!(b.sync().is_empty());
    // PART with a reason relays it, to both protocols.
    b.send("PART #lobby :see you later");
    assert_eq!(
        b.until(" PART "),
        ":ben!~ben@127.0.0.1 PART #lobby :see you later",
        "the one who leaves sees the reason too"
    );
    assert_eq!(
        a.until(" PART "),
        ":ben!~ben@127.0.0.1 PART #lobby :see you later"
    );
    assert_eq!(
        line.expect("EVENT lobby leave"),
        "EVENT lobby leave ben see you later"
    );
}

#[test]
fn cross_protocol_moderation() {
    let (server, irc) = irc_server();
    // An IRC operator kicks a line user.
    let mut ircop = Irc::register(irc, "ircop");
    ircop.send("JOIN #mix");
    ircop.until(" 366 ");
    let mut liney = server.client_named("liney");
    liney.join("mix");
    ircop.until("liney!~liney@127.0.0.1 JOIN #mix");
    ircop.send("MODE #mix +v liney");
    assert_eq!(
        liney.expect("EVENT mix mode"),
        "EVENT mix mode ircop +v liney"
    );
    liney.send("/who mix");
    assert_eq!(liney.expect("OK who"), "OK who mix @ircop +liney");
    ircop.send("KICK #mix liney :behave");
    assert_eq!(
        liney.expect("EVENT mix kick"),
        "EVENT mix kick ircop liney behave"
    );
    assert_eq!(
        ircop.until(" KICK "),
        ":ircop!~ircop@127.0.0.1 KICK #mix liney :behave"
    );
    // A line operator bans and kicks an IRC user; the IRC user sees each change.
    let mut lop = server.client_named("lop");
    lop.join("lb");
    let mut iu = Irc::register(irc, "iu");
    iu.send("JOIN #lb");
    iu.until(" 366 ");
    assert_eq!(lop.expect("EVENT lb join"), "EVENT lb join iu");
    lop.send("/ban iu");
    lop.expect("OK changed lb +b iu!*@*");
    assert_eq!(iu.until(" MODE "), ":lop!~lop@127.0.0.1 MODE #lb +b iu!*@*");
    iu.send("PRIVMSG #lb :am I banned?");
    assert_eq!(
        iu.line(),
        ":miochat.local 404 iu #lb :Cannot send to channel"
    );
    lop.send("/kick iu");
    lop.expect("OK kicked iu lb");
    assert_eq!(iu.until(" KICK "), ":lop!~lop@127.0.0.1 KICK #lb iu :lop");
    iu.send("JOIN #lb");
    assert_eq!(
        iu.line(),
        ":miochat.local 474 iu #lb :Cannot join channel (+b)"
    );
    lop.send("/mode +m");
    lop.expect("OK changed lb +m");
    lop.send("/mode +k sekrit");
    lop.expect("OK changed lb +k sekrit");
    lop.send("/unban iu");
    lop.expect("OK changed lb -b iu!*@*");
    iu.send("JOIN #lb sekrit");
    iu.until(" 366 ");
    assert_eq!(lop.expect("EVENT lb join"), "EVENT lb join iu");
    iu.send("MODE #lb");
    assert_eq!(iu.line(), ":miochat.local 324 iu #lb +kmnt sekrit");
}

#[test]
fn a_change_that_changes_nothing_says_so_and_bans_take_a_room() {
    let server = TestServer::start();
    let mut alice = server.client_named("alice");
    let mut bob = server.client_named("bob");
    alice.join("calm");
    bob.join("calm");
    alice.send("/mode calm +m");
    assert_eq!(alice.expect("OK "), "OK changed calm +m");
    bob.expect("EVENT calm mode alice +m");
    // Already +m (and +t): one OK line says so, and the room is told nothing.
    alice.send("/mode calm +mt");
    assert_eq!(alice.expect("OK "), "OK unchanged calm +mt");
    alice.send("/op alice");
    assert_eq!(alice.expect("OK "), "OK unchanged calm +o alice");
    alice.send("/unban nobody");
    assert_eq!(alice.expect("OK "), "OK unchanged calm -b nobody!*@*");
    bob.expect_quiet();
    // Part new, part already so: only what changed.
    alice.send("/mode calm +mi");
    assert_eq!(alice.expect("OK "), "OK changed calm +i");
    alice.send("/ban eve");
    alice.expect("OK changed calm +b eve!*@*");
    // `/bans ROOM` from another current room; `/bans` alone is the current room.
    alice.join("lobby");
    alice.send("/bans calm");
    assert_eq!(alice.expect("OK bans"), "OK bans calm eve!*@*");
    alice.send("/bans");
    assert_eq!(alice.expect("OK bans"), "OK bans lobby");
    alice.send("/bans calm lobby");
    assert_eq!(alice.expect("ERR "), "ERR usage usage: /bans [ROOM]");
}
