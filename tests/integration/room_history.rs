//! An unregistered room's history dies with the room, through the real binary, in
//! memory (`--data-dir none`) and in the SQLite store: whoever makes an emptied room
//! again (a secret one with a key included) sees none of its lines, by join
//! playback, `/history` or IRC `CHATHISTORY`; a registered room keeps its lines
//! across being empty and across a restart, which unregistered rooms do not
//! survive; and an emptied room's lines are deleted from the disk.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Served, TestClient, serve_exactly};
use crate::irc::Irc;
use crate::store::TempDir;

/// The binary with a line and an IRC listener, keeping its state in `dir` (none
/// without).
fn serve(dir: Option<&Path>) -> (Served, SocketAddr, SocketAddr) {
    let dir = dir.map(|d| d.to_string_lossy().into_owned());
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
    ];
    args.extend(["--max-per-ip", "0", "--connect-rate", "0", "-q"]);
    if let Some(dir) = &dir {
        args.extend(["--data-dir", dir.as_str()]);
    }
    let (served, addrs) = serve_exactly(&args, &["", "IRC"]);
    (served, addrs[0], addrs[1])
}

/// The `HIST` lines that arrive before a barrier (the playback of a `/join`).
fn playback(client: &mut TestClient) -> Vec<String> {
    let lines = client.sync();
    lines
        .into_iter()
        .filter(|l| l.starts_with("HIST "))
        .collect()
}

/// The lines of one `CHATHISTORY LATEST #room * 10` batch.
fn chathistory(irc: &mut Irc, room: &str) -> Vec<String> {
    irc.send(&format!("CHATHISTORY LATEST #{room} * 10"));
    irc.until(" BATCH +");
    let mut lines = Vec::new();
    loop {
        let line = irc.line();
        if line.contains(" BATCH -") {
            return lines;
        }
        lines.push(line);
    }
}

/// An IRC client that asked for history in batches.
fn irc_reader(addr: SocketAddr, nick: &str) -> Irc {
    let mut irc = Irc::connect(addr);
    irc.send("CAP REQ :batch server-time message-tags draft/chathistory");
    irc.send(&format!("NICK {nick}"));
    irc.send(&format!("USER {nick} 0 * :Reader"));
    irc.send("CAP END");
    irc.until(" 422 ");
    irc
}

/// alice makes `secret` (+s, +k), says two lines and leaves: the room is gone.
fn say_and_leave(alice: &mut TestClient, room: &str) {
    alice.join(room);
    alice.send("/mode +sk sesame");
    alice.expect(&format!("OK changed {room}"));
    alice.send("old one");
    alice.send("old two");
    alice.sync();
    alice.send(&format!("/leave {room}"));
    alice.expect(&format!("OK left {room}"));
}

/// Nobody who makes `room` again sees its earlier lines, by any way of asking;
/// its own new lines are its history.
fn made_again_shows_nothing(line: SocketAddr, irc: SocketAddr, room: &str, store: bool) {
    let mut bob = TestClient::connect(line);
    bob.set_nick("bob");
    bob.send(&format!("/join {room}"));
    bob.expect(&format!("OK joined {room} 1"));
    assert_eq!(playback(&mut bob), Vec::<String>::new(), "join playback");
    bob.send("/history");
    bob.expect(&format!("OK history {room} 0"));
    if store {
        bob.send(&format!("/history {room} since 0000000000000001"));
        bob.expect(&format!("OK history {room} 0"));
    }
    let mut carol = irc_reader(irc, "carol");
    carol.send(&format!("JOIN #{room}"));
    let joined = carol.sync();
    assert!(!joined.iter().any(|l| l.contains("old ")), "{joined:?}");
    assert_eq!(chathistory(&mut carol, room), Vec::<String>::new());
    bob.send("new one");
    let read = chathistory(&mut carol, room);
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(
        read[0].ends_with(&format!("PRIVMSG #{room} :new one")),
        "{read:?}"
    );
}

#[test]
fn in_memory_an_unregistered_rooms_history_dies_with_it() {
    let (_served, line, irc) = serve(None);
    let mut alice = TestClient::connect(line);
    alice.set_nick("alice");
    say_and_leave(&mut alice, "secret");
    made_again_shows_nothing(line, irc, "secret", false);
}

/// Lines of `room` saying `text` in the database in `dir`.
fn stored(dir: &TempDir, room: &str, text: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("miochat.db")).unwrap();
    db.query_row(
        "SELECT count(*) FROM history WHERE room = ?1 AND text = ?2",
        [room, text],
        |row| row.get(0),
    )
    .unwrap()
}

#[test]
fn in_the_store_an_unregistered_rooms_history_dies_with_it() {
    let dir = TempDir::new("room-history");
    let (served, line, irc) = serve(Some(&dir.0));
    let mut alice = TestClient::connect(line);
    alice.set_nick("alice");
    alice.send("/register wonderland");
    alice.expect("OK registered alice");
    // A registered room keeps its lines while empty.
    alice.join("club");
    alice.send("kept line");
    alice.send("/register #club");
    alice.expect("OK room-registered club alice");
    alice.send("/leave club");
    alice.expect("OK left club");
    say_and_leave(&mut alice, "secret");
    made_again_shows_nothing(line, irc, "secret", true);
    assert_eq!(
        stored(&dir, "secret", "old one"),
        0,
        "deleted from the disk"
    );
    let mut dave = TestClient::connect(line);
    dave.join("club");
    let kept = dave.skip_to("OK history club 1");
    assert!(
        kept.iter().any(|l| l.ends_with("MSG club alice kept line")),
        "{kept:?}"
    );
    // Emptied and not made again: its lines leave the disk within seconds.
    alice.join("ghost");
    alice.send("boo");
    alice.send("/history"); // read from the store, which commits the line first
    alice.skip_to("OK history ghost 1");
    assert_eq!(stored(&dir, "ghost", "boo"), 1);
    alice.send("/leave ghost");
    alice.expect("OK left ghost");
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored(&dir, "ghost", "boo") > 0 {
        assert!(Instant::now() < deadline, "ghost's line is still on disk");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A restart empties every room: only the registered one keeps its lines.
    let mut bob = TestClient::connect(line);
    bob.join("secret");
    bob.send("said before the restart");
    bob.sync();
    drop((alice, bob, dave, served));
    let (_served, line, _irc) = serve(Some(&dir.0));
    let mut erin = TestClient::connect(line);
    erin.join("secret");
    assert_eq!(playback(&mut erin), Vec::<String>::new(), "after a restart");
    erin.join("club");
    let kept = erin.skip_to("OK history club 1");
    assert!(kept.iter().any(|l| l.ends_with("kept line")), "{kept:?}");
}
