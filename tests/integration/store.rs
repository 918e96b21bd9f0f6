//! The durable store, through the real binary: accounts, nick protection, registered
//! rooms, access lists and history survive `kill -9`; failed logins are throttled;
//! a stalled disk never stalls chat; a bad data dir is a clear error, never a panic.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{TestClient, serve_binary, signal, spawn_binary, wait_with_timeout};

/// A fresh folder under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("miochat-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `miochat serve` keeping its state in `dir`.
fn serve_in(dir: &Path, extra: &[&str]) -> (Child, std::net::SocketAddr) {
    let dir = dir.to_str().unwrap().to_string();
    // Hosts are the address (127.0.0.1), not cloaks, so tests can spell out prefixes.
    let mut args = vec!["--data-dir", &dir, "--hosts", "address"];
    args.extend_from_slice(extra);
    serve_binary(&args)
}

/// Stops a served binary the way an operator does (SIGTERM) and waits for it.
fn stop(mut child: Child) {
    signal(&child, "TERM");
    wait_with_timeout(&mut child, Duration::from_secs(20));
}

fn kill_9(mut child: Child) {
    signal(&child, "KILL");
    wait_with_timeout(&mut child, Duration::from_secs(10));
}

/// Registers the client's current nick and waits for the answer.
fn register(client: &mut TestClient, password: &str) {
    client.send(&format!("/register {password}"));
    client.expect(&format!("OK registered {}", client.nick));
}

/// The `HIST` lines of one `/history` answer, and the count it ends with.
fn history(client: &mut TestClient, command: &str) -> Vec<String> {
    client.send(command);
    let mut lines = Vec::new();
    loop {
        let line = client.line();
        if line.starts_with("OK history ") {
            let count: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(count, lines.len(), "{line}");
            return lines;
        }
        if line.starts_with("HIST ") {
            lines.push(line);
        }
    }
}

#[test]
fn accounts_rooms_access_and_history_survive_kill_9() {
    let dir = TempDir::new("survive");
    let (child, addr) = serve_in(&dir.0, &[]);
    let mut alice = TestClient::connect(addr);
    alice.set_nick("alice");
    register(&mut alice, "wonderland");
    alice.join("club");
    for i in 0..5 {
        alice.send(&format!("line {i}"));
    }
    alice.send("/topic members only");
    alice.send("/mode +k sesame");
    alice.send("/ban mallory!*@*");
    alice.sync();
    alice.send("/register #club");
    alice.expect("OK room-registered club alice");
    let mut bob = TestClient::connect(addr);
    bob.set_nick("bob");
    register(&mut bob, "builder1");
    alice.send("/access #club add bob voice");
    alice.expect("OK access club add bob voice");
    alice.send("/ban eve!*@*"); // a ban in a registered room is durable before its OK
    alice.expect("OK changed club +b eve!*@*");
    drop((alice, bob));
    kill_9(child);

    let (child, addr) = serve_in(&dir.0, &[]);
    let mut impostor = TestClient::connect(addr);
    impostor.send("/nick alice");
    impostor.expect("ERR nick-registered alice");
    let mut alice = TestClient::connect(addr);
    alice.send("/login alice wrong-password");
    alice.expect("ERR bad-login");
    alice.send("/login alice wonderland");
    alice.expect("OK login alice");
    alice.expect("OK nick alice");
    alice.send("/join club");
    alice.expect("ERR bad-key");
    alice.send("/join club sesame");
    let joined = alice.expect("OK joined club 1");
    assert!(joined.ends_with("members only"), "{joined}");
    // The founder gets operator status back from the access list, as ChanServ (the
    // playback from the store may come before or after that).
    let mut playback = alice.skip_to("OK history club 5");
    let granted = "EVENT club mode ChanServ +o alice";
    if !playback.iter().any(|l| l == granted) {
        playback.extend(alice.skip_to(granted));
    }
    let said: Vec<_> = playback.iter().filter(|l| l.starts_with("HIST ")).collect();
    assert_eq!(said.len(), 5, "{playback:?}");
    assert!(said[4].ends_with(" MSG club alice line 4"), "{said:?}");
    alice.send("/bans");
    let bans = alice.expect("OK bans club");
    assert_eq!(bans, "OK bans club mallory!*@* eve!*@*");
    alice.send("/access #club");
    alice.expect("OK access club alice=founder bob=voice");
    alice.send("/whois alice");
    let whois = alice.expect("OK whois alice line ");
    assert!(
        whois.contains(" alice @club") || whois.contains(" alice lobby,@club"),
        "{whois}"
    );
    let mut bob = TestClient::connect(addr);
    bob.send("/login bob builder1");
    bob.expect("OK login bob");
    bob.expect("OK nick bob");
    bob.send("/join club sesame");
    bob.expect("OK joined club 2");
    // The playback from the store may come before the grant, as for alice.
    let before = bob.skip_to("EVENT club mode ChanServ +v bob");
    let playback = |l: &String| l.starts_with("HIST ") || l.starts_with("OK history club");
    assert!(before.iter().all(playback), "{before:?}");
    stop(child);
}

#[test]
fn the_owner_takes_the_nick_back_and_passwords_change_and_accounts_drop() {
    let dir = TempDir::new("reclaim");
    let (child, addr) = serve_in(&dir.0, &[]);
    let mut holder = TestClient::connect(addr);
    holder.set_nick("anna");
    register(&mut holder, "first-pass");
    holder.send("/logout");
    holder.expect("OK logout anna");
    let mut owner = TestClient::connect(addr);
    owner.send("/nick anna");
    owner.expect("ERR nick-registered anna");
    owner.send("/login anna first-pass");
    owner.expect("OK login anna");
    owner.expect("OK nick anna");
    // The holder is renamed and told why.
    holder.expect("ERR nick-registered anna");
    let renamed = holder.expect("OK nick guest");
    assert!(renamed.starts_with("OK nick guest"), "{renamed}");
    owner.send("/whois anna");
    let whois = owner.expect("OK whois anna line ");
    assert!(whois.contains(" anna lobby"), "{whois}");
    owner.send("/passwd first-pass short");
    owner.expect("ERR bad-password");
    owner.send("/passwd wrong-pass second-pass");
    owner.expect("ERR bad-login");
    owner.send("/passwd first-pass second-pass");
    owner.expect("OK passwd");
    owner.send("/logout");
    owner.expect("OK logout anna");
    owner.send("/login anna first-pass");
    owner.expect("ERR bad-login");
    owner.send("/login anna second-pass");
    owner.expect("OK login anna");
    // A second session of the account does not take the nick from the first.
    let mut twin = TestClient::connect(addr);
    twin.send("/login anna second-pass");
    twin.expect("OK login anna");
    twin.send("/whois anna");
    let whois = twin.expect("OK whois anna line ");
    assert!(whois.contains(" anna lobby"), "{whois}");
    owner.send("/unregister anna");
    owner.expect("ERR bad-login"); // not a room: a (wrong) password
    owner.send("/unregister second-pass");
    owner.expect("OK unregistered anna");
    // Every session of a dropped account is logged out.
    twin.send(&format!("/whois {}", twin.nick));
    let whois = twin.expect("OK whois ");
    assert!(whois.contains(" - lobby"), "{whois}");
    let mut other = TestClient::connect(addr);
    other.send("/login anna second-pass");
    other.expect("ERR bad-login");
    other.send("/nick NickServ");
    other.expect("ERR nick-taken");
    stop(child);
}

#[test]
fn failed_logins_are_throttled_per_account() {
    let dir = TempDir::new("throttle");
    let (child, addr) = serve_in(&dir.0, &[]);
    let mut owner = TestClient::connect(addr);
    owner.set_nick("carol");
    register(&mut owner, "right-one");
    let mut guesser = TestClient::connect(addr);
    for _ in 0..5 {
        guesser.send("/login carol guess");
        guesser.expect("ERR bad-login");
    }
    // Even the right password is refused until the window has passed.
    guesser.send("/login carol right-one");
    guesser.expect("ERR login-throttled");
    // A password asked again by a logged-in session counts the same way.
    owner.send("/passwd wrong-one new-password");
    owner.expect("ERR login-throttled");
    stop(child);
}

#[test]
fn history_reads_since_a_message_id_or_a_time_and_retention_keeps_the_newest() {
    let dir = TempDir::new("since");
    let (child, addr) = serve_in(&dir.0, &["--history", "3", "--history-max", "8"]);
    let mut alice = TestClient::connect(addr);
    alice.set_nick("alice");
    register(&mut alice, "password");
    alice.join("news");
    // Registered, so that its history outlives the restart below.
    alice.send("/register #news");
    alice.expect("OK room-registered news alice");
    for i in 0..10 {
        alice.send(&format!("item {i}"));
    }
    alice.sync();
    // Past memory (--history 3): the store has all ten.
    let all = history(&mut alice, "/history news 100");
    assert_eq!(all.len(), 10, "{all:?}");
    let id_of = |line: &str| line.split(' ').nth(2).unwrap().to_string();
    let after = history(
        &mut alice,
        &format!("/history news since {}", id_of(&all[6])),
    );
    let texts: Vec<_> = after
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(texts, ["7", "8", "9"], "{after:?}");
    let time = all[0].split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        history(&mut alice, &format!("/history news since {time}")).len(),
        10
    );
    alice.send("/history news since yesterday");
    alice.expect("ERR usage");
    alice.send("/history elsewhere 5");
    alice.expect("ERR not-in-room");
    drop(alice);
    kill_9(child);
    // Retention runs at start-up: --history-max 8 keeps the newest eight.
    let (child, addr) = serve_in(&dir.0, &["--history-max", "8"]);
    let mut alice = TestClient::connect(addr);
    alice.join("news");
    let kept = alice.skip_to("OK history news");
    let kept: Vec<_> = kept.iter().filter(|l| l.starts_with("HIST ")).collect();
    assert_eq!(kept.len(), 8, "{kept:?}");
    assert!(kept[0].ends_with("item 2"), "{kept:?}");
    stop(child);
}

#[test]
fn registered_rooms_belong_to_the_founder_and_the_lobby_to_nobody() {
    let dir = TempDir::new("rooms");
    let (child, addr) = serve_in(&dir.0, &[]);
    let mut first = TestClient::connect(addr);
    first.send("/op someone");
    first.expect("ERR not-operator"); // nobody is the lobby's operator
    first.set_nick("dave");
    first.join("den");
    first.send("/register #den");
    first.expect("ERR not-logged-in");
    register(&mut first, "password1");
    first.send("/register #lobby");
    first.expect("ERR not-operator");
    first.send("/register #den");
    first.expect("OK room-registered den dave");
    first.send("/register #den");
    first.expect("ERR room-registered");
    first.send("/leave den");
    first.expect("OK left den");
    // Empty, the room keeps its registration: it is listed, its modes shown, and the
    // next to come is no operator.
    let mut next = TestClient::connect(addr);
    next.send("/rooms");
    let rooms = next.expect("OK rooms");
    assert!(rooms.contains(" den:0"), "{rooms}");
    next.send("/mode #den");
    assert_eq!(next.expect("OK mode"), "OK mode den +nt");
    next.send("/who den");
    assert_eq!(next.expect("OK who"), "OK who den");
    next.set_nick("erin");
    next.join("den");
    next.send("/op erin");
    next.expect("ERR not-operator");
    next.send("/access #den add erin op");
    next.expect("ERR not-logged-in");
    register(&mut next, "password2");
    next.send("/access #den add erin op");
    next.expect("ERR not-founder");
    next.send("/unregister #den");
    next.expect("ERR not-founder");
    first.send("/access #den add erin op");
    first.expect("OK access den add erin op");
    // An operator by access may not take another operator's (or the founder's) away.
    next.send("/access #den del dave");
    next.expect("ERR not-founder");
    // A founder's account is not dropped before its rooms.
    first.send("/unregister password1");
    first.expect("ERR founder");
    first.send("/access #den add nobody voice");
    first.expect("ERR no-account");
    first.send("/unregister #den");
    first.expect("OK room-unregistered den");
    first.send("/access #den");
    first.expect("ERR room-not-registered");
    stop(child);
}

#[test]
fn without_a_data_dir_the_store_commands_say_so() {
    let (child, addr) = serve_binary(&["--data-dir", "none"]);
    let mut alice = TestClient::connect(addr);
    alice.set_nick("alice");
    alice.send("/register password");
    alice.expect("ERR no-store");
    alice.send("/login alice password");
    alice.expect("ERR no-store");
    alice.join("plain");
    alice.send("hello");
    alice.sync();
    let lines = history(&mut alice, "/history plain 5");
    assert_eq!(lines.len(), 1, "{lines:?}");
    alice.send("/history plain since 0000000000000001");
    alice.expect("ERR no-store");
    stop(child);
}

/// Start-up refuses a data dir it cannot use, with one clear line and a non-zero
/// exit: a file where the folder should be, a folder another server holds, a
/// database from a newer miochat, a file that is not a database.
#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let dir = TempDir::new("bad");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let refused = |data_dir: &Path, expect: &str| {
        let out = spawn_binary(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(expect), "{expect:?} not in {err:?}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("listening"), "no port is opened first: {err}");
    };
    refused(&file, "is a file, not a folder");
    refused(Path::new(""), "--data-dir needs a folder");
    let held = dir.join("held");
    let (child, _) = serve_in(&held, &[]);
    refused(&held, "in use by another miochat process");
    stop(child);
    let db = rusqlite::Connection::open(held.join("miochat.db")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    refused(&held, "schema version 99, newer than this miochat knows");
    let garbage = dir.join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("miochat.db"), vec![0x42; 8192]).unwrap();
    refused(&garbage, "miochat.db");
}

#[test]
fn backup_copies_a_running_servers_database() {
    let dir = TempDir::new("backup");
    let data = dir.join("data");
    let (child, addr) = serve_in(&data, &[]);
    let mut alice = TestClient::connect(addr);
    alice.set_nick("alice");
    register(&mut alice, "password");
    let copy = dir.join("copy.db");
    let out = spawn_binary(&["backup", copy.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = rusqlite::Connection::open(&copy).unwrap();
    let name: String = db
        .query_row("SELECT name FROM accounts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(name, "alice");
    let again = spawn_binary(&["backup", copy.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a backup never overwrites");
    stop(child);
}

/// Another process holds the database's write lock for 5 s (as a long backup or an
/// operator's `sqlite3` shell could): chat goes on in full meanwhile, and the
/// registration asked during the stall is answered once the disk is back.
#[test]
fn a_stalled_store_never_stalls_chat() {
    let dir = TempDir::new("stall");
    let (child, addr) = serve_in(&dir.0, &["--flood-rate", "0"]);
    let mut alice = TestClient::connect(addr);
    let mut bob = TestClient::connect(addr);
    alice.set_nick("alice");
    bob.set_nick("bob");
    alice.join("busy");
    bob.join("busy");
    alice.sync();
    bob.sync();
    let db = rusqlite::Connection::open(dir.join("miochat.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    alice.send("/register password");
    for i in 0..500 {
        alice.send(&format!("during the stall {i}"));
    }
    for i in 0..500 {
        let line = bob.expect("MSG busy alice ");
        assert!(line.ends_with(&format!("stall {i}")), "{line}");
    }
    let chat_done = locked_at.elapsed();
    assert!(
        chat_done < Duration::from_secs(5),
        "chat waited for the store: {chat_done:?}"
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(locked_at.elapsed()));
    db.execute_batch("COMMIT").unwrap();
    alice.expect("OK registered alice");
    bob.sync();
    let stored = history(&mut bob, "/history busy 1000");
    assert_eq!(
        stored.len(),
        500,
        "every line of the stall was stored after it"
    );
    stop(child);
}

/// `kill -9` in the middle of traffic, 20 times: each restart opens the store, finds
/// it intact, the account made at the start still there, and every line whose
/// sender had its answer more than a second before the kill (ten times
/// `--history-sync-ms`) stored.
#[test]
fn kill_9_mid_traffic_never_corrupts_the_store() {
    let dir = TempDir::new("kill9");
    let (child, addr) = serve_in(&dir.0, &["--flood-rate", "0"]);
    let mut owner = TestClient::connect(addr);
    owner.set_nick("owner");
    register(&mut owner, "password");
    drop(owner);
    kill_9(child);
    let mut sent_before = 0u64;
    for round in 0..20u64 {
        let (child, addr) = serve_in(&dir.0, &["--flood-rate", "0"]);
        let mut writer = TestClient::connect(addr);
        writer.send("/nick owner");
        writer.expect("ERR nick-registered owner");
        writer.join("flood");
        let started = Instant::now();
        let mut acked = Vec::new();
        let run_for = Duration::from_millis(1200 + 37 * (round % 7));
        let mut i = 0u64;
        while started.elapsed() < run_for {
            for _ in 0..20 {
                writer.send(&format!("r{round} m{i}"));
                i += 1;
            }
            writer.sync();
            acked.push((i, Instant::now()));
        }
        kill_9(child);
        let killed_at = Instant::now();
        let surely_stored = acked
            .iter()
            .rev()
            .find(|(_, at)| killed_at.duration_since(*at) > Duration::from_secs(1))
            .map_or(0, |(count, _)| *count);
        let db = rusqlite::Connection::open(dir.join("miochat.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let accounts: i64 = db
            .query_row("SELECT count(*) FROM accounts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(accounts, 1, "round {round}");
        let stored: i64 = db
            .query_row(
                "SELECT count(*) FROM history WHERE text LIKE ?1",
                [format!("r{round} m%")],
                |row| row.get(0),
            )
            .unwrap();
        assert!(
            stored as u64 >= surely_stored,
            "round {round}: {stored} stored, {surely_stored} were acknowledged well before the kill"
        );
        sent_before += i;
    }
    assert!(sent_before > 0);
}

/// A server in this process with a data dir in `dir`, an IRC listener and
/// `--nick-grace 1`.
fn irc_store_server(dir: &TempDir) -> (crate::common::TestServer, std::net::SocketAddr) {
    crate::irc::irc_server_with(|c| {
        c.store = Some(miochat::server::store::StoreConfig {
            dir: dir.0.clone(),
            history_sync: Duration::from_millis(100),
            history_days: 30,
            history_max: 100_000,
        });
        c.nick_grace = Duration::from_secs(1);
    })
}

#[test]
fn irc_clients_log_in_with_sasl_or_nickserv_and_an_unidentified_nick_is_renamed() {
    use crate::irc::Irc;
    let dir = TempDir::new("irc");
    let (server, irc) = irc_store_server(&dir);
    let mut owner = server.client_named("frank");
    register(&mut owner, "frank-pass");
    owner.send("/quit");
    owner.read_to_eof();

    // Without SASL, the nick is taken, the client told, and renamed once the grace
    // period has passed.
    let mut late = Irc::register(irc, "frank");
    late.until("is a registered account: identify");
    late.until(" 433 ");
    let renamed = late.until(" NICK :guest");
    assert!(
        renamed.starts_with(":frank!~frank@127.0.0.1 NICK :guest"),
        "{renamed}"
    );

    // SASL PLAIN: 900 and 903 before CAP END; then WHOIS shows the account (330).
    let mut sasl = Irc::connect(irc);
    sasl.send("CAP LS 302");
    sasl.send("NICK frank");
    sasl.send("USER frank 0 * :Frank");
    let ls = sasl.until(" CAP * LS ");
    assert!(ls.contains(" sasl "), "{ls}");
    sasl.send("CAP REQ :sasl");
    sasl.until(" ACK :sasl");
    sasl.send("AUTHENTICATE SCRAM-SHA-1");
    sasl.until(" 908 ");
    sasl.until(" 904 ");
    sasl.send("AUTHENTICATE PLAIN");
    sasl.expect("AUTHENTICATE +");
    // base64 of "\0frank\0wrong-pass", then of "\0frank\0frank-pass".
    sasl.send("AUTHENTICATE AGZyYW5rAHdyb25nLXBhc3M=");
    sasl.until(" 904 ");
    sasl.send("AUTHENTICATE PLAIN");
    sasl.expect("AUTHENTICATE +");
    sasl.send("AUTHENTICATE AGZyYW5rAGZyYW5rLXBhc3M=");
    sasl.until(" 900 frank frank!~frank@127.0.0.1 frank :You are now logged in as frank");
    sasl.until(" 903 ");
    sasl.send("CAP END");
    sasl.until(" 422 ");
    sasl.send("WHOIS frank");
    sasl.until(" 330 frank frank frank :is logged in as");
    assert!(
        !sasl.sync().iter().any(|l| l.contains("NICK :guest")),
        "a client logged in by SASL keeps its nick"
    );

    // NickServ for clients without SASL; ChanServ registers a room.
    let mut plain = Irc::register(irc, "gina");
    plain.send("PRIVMSG NickServ :REGISTER gina-pass");
    plain.until("NOTICE gina :registered gina");
    plain.send("JOIN #garden");
    plain.until(" 366 ");
    plain.send("PRIVMSG ChanServ :REGISTER #garden");
    plain.until("NOTICE gina :room-registered garden gina");
    plain.send("PRIVMSG ChanServ :ACCESS #garden ADD frank voice");
    plain.until("NOTICE gina :access garden add frank voice");
    plain.send("PRIVMSG NickServ :LOGOUT");
    plain.until("NOTICE gina :logout gina");
    plain.send("PRIVMSG NickServ :IDENTIFY gina wrong-pass");
    plain.until("wrong account or password");
    plain.send("PRIVMSG NickServ :IDENTIFY gina gina-pass");
    plain.until("NOTICE gina :login gina");
    plain.send("PRIVMSG NickServ :SET PASSWORD gina-new-pass");
    plain.until("NOTICE gina :passwd");
    plain.send("PRIVMSG NickServ :LOGOUT");
    plain.until("NOTICE gina :logout gina");
    plain.send("PRIVMSG NickServ :IDENTIFY gina-new-pass");
    plain.until("NOTICE gina :login gina");
    sasl.send("JOIN #garden");
    sasl.until(" 366 ");
    sasl.until(" MODE #garden +v frank");
    // A line user cannot take an account's nick; the owner takes it back (REGAIN).
    let mut line = server.client();
    line.send("/nick gina");
    line.expect("ERR nick-registered gina");
    plain.send("NICK gina2");
    plain.until(" NICK :gina2");
    line.send("/nick gina");
    line.expect("ERR nick-registered gina");
    plain.send("PRIVMSG NickServ :REGAIN gina gina-new-pass");
    plain.until(" NICK :gina");
}

#[test]
fn sasl_without_a_data_dir_fails_at_once_with_904() {
    use crate::irc::Irc;
    let (_server, irc) = crate::irc::irc_server();
    let mut c = Irc::connect(irc);
    c.send("CAP LS 302");
    c.send("NICK henry");
    c.send("USER henry 0 * :Henry");
    c.until(" CAP * LS ");
    c.send("CAP REQ :sasl");
    c.until(" ACK :sasl");
    c.send("AUTHENTICATE PLAIN");
    c.expect("AUTHENTICATE +");
    c.send("AUTHENTICATE AGhlbnJ5AHBhc3N3b3Jk"); // "\0henry\0password"
    c.until(" 904 ");
    c.send("CAP END");
    c.until(" 422 ");
}

#[test]
fn chathistory_reads_the_store_in_a_batch() {
    use crate::irc::Irc;
    let dir = TempDir::new("chathistory");
    let (server, irc) = irc_store_server(&dir);
    let mut line = server.client_named("writer");
    line.join("log");
    for i in 0..6 {
        line.send(&format!("entry {i}"));
    }
    line.sync();
    let mut c = Irc::connect(irc);
    c.send("CAP LS 302");
    c.send("NICK reader");
    c.send("USER reader 0 * :Reader");
    let ls = c.until(" CAP * LS ");
    assert!(ls.contains("draft/chathistory"), "{ls}");
    c.send("CAP REQ :batch server-time message-tags draft/chathistory");
    c.until(" ACK ");
    c.send("CAP END");
    let isupport = c.until("CHATHISTORY=");
    assert!(
        isupport.contains("CHATHISTORY=1000 MSGREFTYPES=msgid,timestamp"),
        "{isupport}"
    );
    c.until(" 422 ");
    c.send("CHATHISTORY LATEST #log * 3");
    c.until("FAIL CHATHISTORY INVALID_TARGET LATEST #log"); // not a member
    c.send("JOIN #log");
    c.until(" BATCH -"); // the playback on join
    let read = |c: &mut Irc, command: &str| -> Vec<String> {
        c.send(command);
        c.until(" BATCH +");
        let mut lines = Vec::new();
        loop {
            let line = c.line();
            if line.contains(" BATCH -") {
                return lines;
            }
            lines.push(line);
        }
    };
    let latest = read(&mut c, "CHATHISTORY LATEST #log * 3");
    let texts: Vec<_> = latest
        .iter()
        .map(|l| l.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(texts, ["entry 3", "entry 4", "entry 5"], "{latest:?}");
    let msgid = |line: &str| {
        let tag = line.split(';').find(|t| t.starts_with("msgid=")).unwrap();
        tag.split(' ').next().unwrap().to_string()
    };
    let before = read(
        &mut c,
        &format!("CHATHISTORY BEFORE #log {} 2", msgid(&latest[0])),
    );
    let texts: Vec<_> = before
        .iter()
        .map(|l| l.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(texts, ["entry 1", "entry 2"], "{before:?}");
    let after = read(
        &mut c,
        &format!("CHATHISTORY AFTER #log {} 10", msgid(&latest[1])),
    );
    assert_eq!(after.len(), 1, "{after:?}");
    let between = format!(
        "CHATHISTORY BETWEEN #log {} {} 10",
        msgid(&before[0]),
        msgid(&latest[2])
    );
    assert_eq!(read(&mut c, &between).len(), 3);
    let around = read(
        &mut c,
        &format!("CHATHISTORY AROUND #log {} 3", msgid(&latest[0])),
    );
    let texts: Vec<_> = around
        .iter()
        .map(|l| l.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(texts, ["entry 2", "entry 3", "entry 4"], "{around:?}");
    c.send("CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2999-01-01T00:00:00.000Z 10");
    c.until(" BATCH +targets draft/chathistory-targets");
    let target = c.line();
    assert!(
        target.contains(" CHATHISTORY TARGETS #log timestamp=20"),
        "{target}"
    );
    assert!(c.line().contains(" BATCH -targets"));
    c.send("CHATHISTORY LATEST #log * many");
    c.until("FAIL CHATHISTORY INVALID_PARAMS");
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped; `None`
/// (and the test says "skipped") where mounting is not allowed, as for a user that
/// is not root. CI runs as root.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = TempDir::new("full");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir.0)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root and must be able to mount a tmpfs"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.dir.0)
            .status();
    }
}

/// The data dir on a 1 MiB disk that fills up: chat goes on, every line is still
/// delivered; the failing writes are counted and logged, and a registration asked
/// then is told `ERR store-failed`, never `OK`.
#[test]
fn a_full_disk_never_stops_chat_and_is_told_to_the_asker() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let (child, addr) = serve_in(&disk.dir.0, &["--flood-rate", "0"]);
    let mut alice = TestClient::connect(addr);
    let mut bob = TestClient::connect(addr);
    alice.set_nick("alice");
    bob.set_nick("bob");
    register(&mut alice, "before-full");
    alice.join("flood");
    bob.join("flood");
    let filler = "x".repeat(400);
    let mut sent = 0;
    let mut errors = 0;
    while errors == 0 && sent < 40_000 {
        for _ in 0..500 {
            alice.send(&format!("{sent} {filler}"));
            sent += 1;
        }
        for _ in 0..500 {
            bob.expect("MSG flood alice ");
        }
        std::thread::sleep(Duration::from_millis(150)); // a batch is committed
        errors = crate::common::stat(&alice.stats(), "store_errors");
    }
    assert!(errors > 0, "1 MiB never filled after {sent} lines");
    // Chat still flows after the disk is full.
    alice.send("still here");
    bob.expect("MSG flood alice still here");
    // A durable write now (it would commit the waiting lines with it) fails, and
    // the one who asked is told.
    alice.send("/register #flood");
    let answer = alice.expect("ERR ");
    assert!(answer.starts_with("ERR store-failed"), "{answer}");
    stop(child);
}

#[test]
fn irc_register_command_and_account_notify() {
    use crate::irc::Irc;
    let dir = TempDir::new("ircregister");
    let (_server, irc) = irc_store_server(&dir);
    let mut watcher = Irc::connect(irc);
    watcher.send("CAP LS 302");
    watcher.send("NICK watcher");
    watcher.send("USER watcher 0 * :W");
    let ls = watcher.until(" CAP * LS ");
    assert!(ls.contains("account-notify") && ls.contains("draft/account-registration"));
    watcher.send("CAP REQ :account-notify");
    watcher.until(" ACK ");
    watcher.send("CAP END");
    watcher.until(" 422 ");
    watcher.send("JOIN #hall");
    watcher.until(" 366 ");
    let mut ivy = Irc::register(irc, "ivy");
    ivy.send("JOIN #hall");
    ivy.until(" 366 ");
    ivy.send("REGISTER someone-else * ivy-password");
    ivy.until("FAIL REGISTER BAD_ACCOUNT_NAME someone-else");
    ivy.send("REGISTER * * short");
    ivy.until("FAIL REGISTER WEAK_PASSWORD ivy");
    ivy.send("REGISTER ivy * ivy-password");
    ivy.until("REGISTER SUCCESS ivy :Account successfully registered");
    watcher.until(":ivy!~ivy@127.0.0.1 ACCOUNT ivy");
    ivy.send("REGISTER ivy * ivy-password");
    ivy.until("FAIL REGISTER ACCOUNT_EXISTS ivy");
    ivy.send("PRIVMSG NickServ :LOGOUT");
    ivy.until("NOTICE ivy :logout ivy");
    watcher.until(":ivy!~ivy@127.0.0.1 ACCOUNT *");
}

/// A SCRAM-SHA-256 client's proof (RFC 5802): `ClientKey XOR HMAC(StoredKey,
/// AuthMessage)`, from the password, the server's first message and the rest.
fn scram_proof(password: &str, server_first: &str, auth_message: &str) -> String {
    use base64ct::{Base64, Encoding};
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let salt = Base64::decode_vec(&field("s=")).unwrap();
    let rounds: u32 = field("i=").parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, rounds, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    Base64::encode_string(&proof)
}

/// One SCRAM-SHA-256 exchange as `account` with `password`; true if it ended in 903.
fn scram_login(c: &mut crate::irc::Irc, account: &str, password: &str) -> bool {
    use base64ct::{Base64, Encoding};
    c.send("AUTHENTICATE SCRAM-SHA-256");
    c.expect("AUTHENTICATE +");
    let bare = format!("n={account},r=fyko+d2lbbFgONRv9qkxdawL");
    c.send(&format!(
        "AUTHENTICATE {}",
        Base64::encode_string(format!("n,,{bare}").as_bytes())
    ));
    let line = c.line();
    let Some(data) = line.strip_prefix("AUTHENTICATE ") else {
        assert!(line.contains(" 904 "), "{line}");
        return false;
    };
    let server_first = String::from_utf8(Base64::decode_vec(data).unwrap()).unwrap();
    let nonce = server_first
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("r=")
        .unwrap();
    assert!(nonce.starts_with("fyko+d2lbbFgONRv9qkxdawL") && nonce.len() > 24);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let proof = scram_proof(password, &server_first, &auth_message);
    let last = format!("{without_proof},p={proof}");
    c.send(&format!(
        "AUTHENTICATE {}",
        Base64::encode_string(last.as_bytes())
    ));
    let line = c.line();
    let Some(data) = line.strip_prefix("AUTHENTICATE ") else {
        assert!(line.contains(" 904 "), "{line}");
        return false;
    };
    let server_final = String::from_utf8(Base64::decode_vec(data).unwrap()).unwrap();
    assert!(server_final.starts_with("v="), "{server_final}");
    c.send("AUTHENTICATE +");
    c.until(" 900 ");
    c.until(" 903 ");
    true
}

#[test]
fn sasl_scram_sha_256_logs_in_and_a_wrong_password_is_refused() {
    use crate::irc::Irc;
    let dir = TempDir::new("scram");
    let (server, irc) = irc_store_server(&dir);
    let mut owner = server.client_named("jules");
    register(&mut owner, "verne-1828");
    let mut c = Irc::connect(irc);
    c.send("CAP LS 302");
    c.send("NICK jirc"); // the line client still holds jules
    c.send("USER jirc 0 * :Jules");
    c.until(" CAP * LS ");
    c.send("CAP REQ :sasl");
    c.until(" ACK :sasl");
    assert!(!scram_login(&mut c, "jules", "wrong-password"));
    assert!(!scram_login(&mut c, "nobody", "verne-1828"));
    assert!(scram_login(&mut c, "jules", "verne-1828"));
    c.send("CAP END");
    c.until(" 422 ");
    c.send("WHOIS jirc");
    c.until(" 330 jirc jirc jules :is logged in as");
}

#[test]
fn account_tag_and_extended_join_show_who_is_logged_in() {
    use crate::irc::Irc;
    let dir = TempDir::new("accounttag");
    let (server, irc) = irc_store_server(&dir);
    let mut reader = Irc::connect(irc);
    reader.send("CAP LS 302");
    reader.send("NICK reader");
    reader.send("USER reader 0 * :The Reader");
    let ls = reader.until(" CAP * LS ");
    assert!(
        ls.contains("account-tag") && ls.contains("extended-join"),
        "{ls}"
    );
    reader.send("CAP REQ :account-tag extended-join");
    reader.until(" ACK ");
    reader.send("CAP END");
    reader.until(" 422 ");
    reader.send("JOIN #club");
    let own = reader.until(" JOIN #club");
    assert_eq!(own, ":reader!~reader@127.0.0.1 JOIN #club * :The Reader");
    reader.until(" 366 ");
    let mut kim = server.client_named("kim");
    register(&mut kim, "kim-password");
    kim.join("club");
    // account-tag covers every line of a logged-in user, its JOIN too.
    assert_eq!(
        reader.until(" JOIN #club"),
        "@account=kim :kim!~kim@127.0.0.1 JOIN #club kim :kim"
    );
    kim.send("hello");
    assert_eq!(
        reader.until("PRIVMSG #club"),
        "@account=kim :kim!~kim@127.0.0.1 PRIVMSG #club :hello"
    );
    kim.send("/msg reader psst");
    assert_eq!(
        reader.until("PRIVMSG reader"),
        "@account=kim :kim!~kim@127.0.0.1 PRIVMSG reader :psst"
    );
    let mut guest = server.client_named("lou");
    guest.join("club");
    assert_eq!(
        reader.until(" JOIN #club"),
        ":lou!~lou@127.0.0.1 JOIN #club * :lou"
    );
    guest.send("no account here");
    assert_eq!(
        reader.until("PRIVMSG #club"),
        ":lou!~lou@127.0.0.1 PRIVMSG #club :no account here"
    );
}
