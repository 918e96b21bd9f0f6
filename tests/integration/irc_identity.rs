//! Who IRC says a user is, through the real binary: `nick!~user@host` in every
//! prefix and in WHO/WHOIS/WHOWAS/USERHOST and `/whois`, the host a cloak kept in
//! the data dir (or the address, `--hosts address`), bans on it, the real peer over
//! TLS and WebSocket and a trusted proxy's `X-Forwarded-For`; and the replies a
//! conformance run asked for: topic privileges and `333`, `696`, a bare `NAMES`, the
//! time on one's own JOIN, join summaries and the lobby's lack of an operator.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use miochat::protocol::websocket::{client_frame, server_frames};

use crate::common::{READ_TIMEOUT, Served, TestClient, serve_exactly};
use crate::irc::Irc;
use crate::tls::{Certs, TlsClient};

/// The binary with a line and an IRC listener and `extra` flags.
fn serve(extra: &[&str]) -> (Served, SocketAddr, SocketAddr) {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
    ];
    args.extend_from_slice(extra);
    let (served, addrs) = serve_exactly(&args, &["", "IRC"]);
    (served, addrs[0], addrs[1])
}

/// Registers `nick` with `USER user`; returns the client and the host the server
/// shows for it (read from the welcome).
fn register(irc: SocketAddr, nick: &str, user: &str) -> (Irc, String) {
    let mut c = Irc::connect(irc);
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {user} * * :My UniqueReal Name"));
    let welcome = c.until(" 001 ");
    let host = welcome.rsplit('@').next().unwrap().to_string();
    c.until(" 422 ");
    (c, host)
}

/// A fresh, empty data dir.
fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("miochat-ident-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn user_names_and_a_cloak_appear_in_every_prefix_and_reply() {
    let dir = data_dir("cloak");
    let dir_arg = dir.to_str().unwrap().to_string();
    let (served, line_addr, irc) = serve(&["--data-dir", &dir_arg]);
    let (mut cool, host) = register(irc, "coolNick", "myusernam");
    assert!(
        host.len() == 19 && host.ends_with(".ip") && !host.contains("127"),
        "a cloak, not the address: {host}"
    );
    let (mut other, other_host) = register(irc, "otherNick", "x");
    assert_eq!(other_host, host, "one address, one cloak");
    let me = format!("coolNick!~myusernam@{host}");
    cool.send("JOIN #x");
    assert_eq!(cool.line(), format!(":{me} JOIN #x"));
    other.send("JOIN #x");
    other.until(" 366 ");
    other.send("WHO coolNick");
    assert_eq!(
        other.line(),
        format!(
            ":miochat.local 352 otherNick * ~myusernam {host} miochat.local coolNick H :0 My UniqueReal Name"
        )
    );
    other.send("WHO #x");
    assert!(
        other
            .until(" 352 ")
            .contains(&format!(" ~myusernam {host} "))
    );
    other.send("WHOIS coolNick");
    assert_eq!(
        other.until(" 311 "),
        format!(":miochat.local 311 otherNick coolNick ~myusernam {host} * :My UniqueReal Name")
    );
    other.send("USERHOST coolNick");
    assert!(
        other
            .until(" 302 ")
            .ends_with(&format!(":coolNick=+~myusernam@{host}"))
    );
    let mut liney = TestClient::connect(line_addr);
    liney.set_nick("liney");
    liney.join("x");
    assert_eq!(
        other.until(" JOIN "),
        format!(":liney!~liney@{host} JOIN #x")
    );
    liney.send("/whois coolNick");
    let whois = liney.expect("OK whois coolNick irc ");
    assert!(whois.contains(&format!(" ~myusernam@{host} - ")), "{whois}");
    cool.send("PRIVMSG #x :hi");
    assert_eq!(other.until("PRIVMSG"), format!(":{me} PRIVMSG #x :hi"));
    cool.send("PRIVMSG otherNick :psst");
    assert_eq!(
        other.until("PRIVMSG"),
        format!(":{me} PRIVMSG otherNick :psst")
    );
    liney.send("from a line user");
    assert_eq!(
        other.until("PRIVMSG"),
        format!(":liney!~liney@{host} PRIVMSG #x :from a line user")
    );
    cool.send("QUIT :bye");
    assert_eq!(other.until(" QUIT "), format!(":{me} QUIT :bye"));
    // The rooms hear the QUIT before its shard reaps the connection and keeps the
    // nick for WHOWAS: wait until the nick is free (a bound, not a timing).
    loop {
        liney.send("/whois coolNick");
        let reply = loop {
            let line = liney.line();
            if line.starts_with("OK whois ") || line.starts_with("ERR ") {
                break line;
            }
        };
        if reply.starts_with("ERR no-such-nick") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    other.send("WHOWAS coolNick");
    assert_eq!(
        other.until(" 314 "),
        format!(":miochat.local 314 otherNick coolNick ~myusernam {host} * :My UniqueReal Name")
    );
    // The key is kept in the data dir, readable by its owner only: the same cloak
    // after a restart.
    let key = std::fs::read_to_string(dir.join("cloak.key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("cloak.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(served);
    let (_served, _, irc) = serve(&["--data-dir", &dir_arg]);
    assert_eq!(
        register(irc, "again", "again").1,
        host,
        "the same after a restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_given_key_or_the_address_chooses_the_host() {
    let (_served, _, irc) = serve(&["--cloak-key", "sesame"]);
    let host = register(irc, "keyed", "k").1;
    use sha2::Digest;
    let key: [u8; 32] = sha2::Sha256::digest(b"sesame").into();
    let expected = miochat::protocol::identity::cloak(&key, [127, 0, 0, 1].into());
    assert_eq!(host, expected, "HMAC-SHA-256 of the address under the key");
    let (_served, _, irc) = serve(&["--hosts", "address"]);
    assert_eq!(register(irc, "plain", "p").1, "127.0.0.1");
}

#[test]
fn bans_on_the_cloak_or_the_user_name_keep_a_user_out() {
    let (_served, line_addr, irc) = serve(&[]);
    let (mut op, host) = register(irc, "op", "op");
    op.send("JOIN #club");
    op.until(" 366 ");
    let (mut victim, _) = register(irc, "victim", "vic");
    for mask in [format!("*!*@{host}"), "*!~vic@*".to_string()] {
        op.send(&format!("MODE #club +b {mask}"));
        op.until(" MODE ");
        victim.send("JOIN #club");
        assert!(victim.until("#club").contains(" 474 "), "{mask} bans");
        op.send(&format!("MODE #club -b {mask}"));
        op.until(" MODE ");
    }
    victim.send("JOIN #club");
    assert!(victim.until("#club").contains(" JOIN "));
    // A line user's user name is ~nick; its host the same cloak.
    op.send("MODE #club +b *!~liney@*");
    op.until(" MODE ");
    let mut liney = TestClient::connect(line_addr);
    liney.set_nick("liney");
    liney.send("/join club");
    liney.expect("ERR banned");
}

/// A WebSocket IRC client (`text.ircv3.net`, or `binary.ircv3.net` if `binary`)
/// that sent `headers` with its upgrade.
struct WsIrc {
    stream: TcpStream,
    buf: Vec<u8>,
    binary: bool,
}

impl WsIrc {
    fn open(addr: SocketAddr, headers: &str) -> WsIrc {
        Self::open_as(addr, headers, false)
    }

    fn open_as(addr: SocketAddr, headers: &str, binary: bool) -> WsIrc {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let kind = if binary { "binary" } else { "text" };
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {kind}.ircv3.net\r\n{headers}\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut ws = WsIrc {
            stream,
            buf: Vec::new(),
            binary,
        };
        while !ws.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            ws.fill();
        }
        let end = ws.buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(ws.buf.starts_with(b"HTTP/1.1 101"));
        ws.buf.drain(..end);
        ws
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn send(&mut self, line: &str) {
        let opcode = if self.binary { 2 } else { 1 };
        let frame = client_frame(opcode, true, line.as_bytes(), [1, 2, 3, 4]);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next frame containing `needle`, as text.
    fn until(&mut self, needle: &str) -> String {
        let (_, payload) = self.until_bytes(needle.as_bytes());
        String::from_utf8_lossy(&payload).into_owned()
    }

    /// The next frame containing `needle`: its opcode and payload.
    fn until_bytes(&mut self, needle: &[u8]) -> (u8, Vec<u8>) {
        loop {
            let (frames, used) = server_frames(&self.buf);
            let used = used.min(self.buf.len());
            self.buf.drain(..used);
            let mut found = frames.into_iter().filter(|(op, _)| *op == 1 || *op == 2);
            if let Some(frame) = found.find(|(_, p)| p.windows(needle.len()).any(|w| w == needle)) {
                return frame;
            }
            self.fill();
        }
    }
}

/// The prefix a WebSocket IRC user gets on a server run with `trust`.
fn web_prefix(trust: &[&str], forwarded: &str) -> String {
    let mut args = vec!["--hosts", "address", "--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(trust);
    let mut full = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
        "--max-per-ip",
        "0",
    ];
    full.extend_from_slice(&args);
    let (_served, addrs) = serve_exactly(&full, &["IRC", "web"]);
    let (mut watcher, _) = register(addrs[0], "watcher", "w");
    watcher.send("JOIN #web");
    watcher.until(" 366 ");
    let mut ws = WsIrc::open(addrs[1], &format!("X-Forwarded-For: {forwarded}\r\n"));
    ws.send("NICK webby");
    ws.send("USER webuser * * :Web");
    ws.until(" 422 ");
    ws.send("JOIN #web");
    watcher.until(" JOIN ")
}

#[test]
fn a_proxys_forwarded_address_counts_only_when_the_proxy_is_trusted() {
    let forwarded = "198.51.100.20, 203.0.113.9";
    let trusted = web_prefix(&["--trusted-proxy", "127.0.0.1"], forwarded);
    assert_eq!(trusted, ":webby!~webuser@203.0.113.9 JOIN #web");
    let untrusted = web_prefix(&["--trusted-proxy", "192.0.2.1"], forwarded);
    assert_eq!(
        untrusted, ":webby!~webuser@127.0.0.1 JOIN #web",
        "anyone can send the header"
    );
}

#[test]
fn a_tls_client_is_shown_with_its_real_address() {
    let certs = Certs::new();
    let (cert, key) = (certs.cert(), certs.key());
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
        "--irc-tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--max-per-ip",
        "0",
    ];
    let (_served, addrs) = serve_exactly(&args, &["IRC", "IRC TLS"]);
    let (mut plain, host) = register(addrs[0], "plain", "p");
    plain.send("JOIN #sec");
    plain.until(" 366 ");
    let mut secure = TlsClient::connect(addrs[1], &cert).unwrap();
    secure.send("NICK secure\r\nUSER sec 0 * :TLS\r\nJOIN #sec");
    secure.skip_to(":miochat.local 366");
    assert_eq!(
        plain.until(" JOIN "),
        format!(":secure!~sec@{host} JOIN #sec"),
        "TLS shows the peer's cloak, as plain TCP from the same address"
    );
}

#[test]
fn topic_privileges_follow_t_and_333_says_who_set_it_and_when() {
    let (_served, line_addr, irc) = serve(&["--hosts", "address"]);
    let (mut op, _) = register(irc, "op", "op");
    let (mut member, _) = register(irc, "member", "m");
    op.send("JOIN #t");
    op.until(" 366 ");
    member.send("JOIN #t");
    member.until(" 366 ");
    member.send("TOPIC #t :mine");
    assert_eq!(
        member.line(),
        ":miochat.local 482 member #t :You're not channel operator"
    );
    op.send("TOPIC #t :set by op");
    assert!(
        member
            .until(" TOPIC ")
            .starts_with(":op!~op@127.0.0.1 TOPIC")
    );
    member.send("TOPIC #t");
    assert_eq!(member.line(), ":miochat.local 332 member #t :set by op");
    let who_when = member.line();
    let prefix = ":miochat.local 333 member #t op!~op@127.0.0.1 ";
    assert!(who_when.starts_with(prefix), "{who_when}");
    let at: u64 = who_when[prefix.len()..].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(at) < 60, "{at} is now");
    let (mut late, _) = register(irc, "late", "l");
    late.send("JOIN #t");
    late.until(" 332 ");
    assert!(
        late.line()
            .starts_with(":miochat.local 333 late #t op!~op@127.0.0.1 ")
    );
    let mut liney = TestClient::connect(line_addr);
    liney.join("t");
    liney.send("/topic from a line user");
    liney.expect("ERR not-operator");
    // -t: any member sets it, on either protocol.
    op.send("MODE #t -t");
    op.until(" MODE ");
    member.send("TOPIC #t :anyone may");
    assert!(op.until(" TOPIC ").ends_with("TOPIC #t :anyone may"));
    liney.send("/topic a line topic");
    assert!(op.until(" TOPIC ").ends_with("TOPIC #t :a line topic"));
}

#[test]
fn bad_mode_parameters_bare_names_and_the_time_on_ones_own_join() {
    let (_served, _, irc) = serve(&[]);
    let mut c = Irc::connect(irc);
    c.send("CAP LS 302");
    c.send("CAP REQ :server-time");
    c.send("NICK timed");
    c.send("USER t 0 * :T");
    c.send("CAP END");
    c.until(" 422 ");
    c.send("NAMES");
    assert_eq!(c.line(), ":miochat.local 366 timed * :End of /NAMES list.");
    c.send("JOIN #a");
    let own = c.line();
    assert!(
        own.starts_with("@time=20") && own.ends_with(" JOIN #a"),
        "{own}"
    );
    c.until(" 366 ");
    c.send("JOIN #b");
    c.until(" 366 ");
    c.send("NAMES");
    let listed: Vec<String> = (0..4).map(|_| c.line()).collect();
    assert!(listed[0].contains(" 353 timed = #a :@timed"), "{listed:?}");
    assert!(listed[1].contains(" 366 timed #a "), "{listed:?}");
    assert!(listed[2].contains(" 353 timed = #b :@timed"), "{listed:?}");
    assert!(listed[3].contains(" 366 timed #b "), "{listed:?}");
    c.send("MODE #a +k");
    assert_eq!(
        c.line(),
        ":miochat.local 696 timed #a k * :You must specify a parameter"
    );
    c.send("MODE #a +l");
    assert!(c.line().contains(" 696 timed #a l * "));
    c.send("MODE #a +l many");
    assert!(c.line().contains(" 696 timed #a l many "));
}

#[test]
fn a_join_summary_never_names_its_reader_and_nobody_operates_the_lobby() {
    let (_served, line_addr, irc) = serve(&[]);
    // The lobby belongs to the server: not its first line user, nor an IRC user.
    let mut first = TestClient::connect(line_addr);
    first.send("/who lobby");
    let who = first.expect("OK who lobby ");
    assert!(!who.contains('@'), "{who}");
    first.send("/mode +m");
    first.expect("ERR not-operator");
    let (mut ircy, _) = register(irc, "ircy", "i");
    ircy.send("JOIN #lobby");
    let names = ircy.until(" 353 ");
    assert!(!names.contains('@'), "{names}");
    // Joins faster than one a second: the joiners after the first are summed up.
    let mut watcher = TestClient::connect(line_addr);
    watcher.join("crowd");
    let mut joiners: Vec<TestClient> = (0..4)
        .map(|i| {
            let mut c = TestClient::connect(line_addr);
            c.set_nick(&format!("joiner{i}"));
            c
        })
        .collect();
    for c in &mut joiners {
        c.join("crowd");
    }
    watcher.skip_to("EVENT crowd joins ");
    let mut others_summed = 0;
    for c in &mut joiners {
        let nick = c.nick.clone();
        // The summary went out; a ping after it is answered after it.
        for line in c.sync() {
            let summed = line.starts_with("EVENT crowd joins ");
            let about = summed || line.starts_with("EVENT crowd join ");
            assert!(
                !(about && line.split(' ').any(|w| w == nick)),
                "{nick} read {line:?}"
            );
            others_summed += usize::from(summed);
        }
    }
    assert!(others_summed > 0, "joiners read the summary of the others");
}

#[test]
fn bytes_that_are_not_utf8_reach_irc_readers_as_sent() {
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--hosts",
        "address",
        "--max-per-ip",
        "0",
    ];
    let (_served, addrs) = serve_exactly(&args, &["", "IRC", "web"]);
    let (line_addr, irc, web) = (addrs[0], addrs[1], addrs[2]);
    let mut latin = Irc::connect(irc);
    latin
        .c
        .send_raw(b"NICK latin\r\nUSER l 0 * :Jos\xe9\r\nJOIN #bytes\r\n");
    latin.until(" 366 ");
    let (mut reader, _) = register(irc, "reader", "r");
    reader.send("JOIN #bytes");
    reader.until(" 366 ");
    let mut liney = TestClient::connect(line_addr);
    liney.join("bytes");
    let mut texty = WsIrc::open_as(web, "", false);
    let mut binny = WsIrc::open_as(web, "", true);
    for (ws, nick) in [(&mut texty, "texty"), (&mut binny, "binny")] {
        ws.send(&format!("NICK {nick}"));
        ws.send("USER w 0 * :W");
        ws.until(" 422 ");
        ws.send("JOIN #bytes");
        ws.until(" 366 ");
    }
    latin
        .c
        .send_raw(b"PRIVMSG #bytes :caf\xe9 \xff\r\nPRIVMSG reader :\xe0 bient\xf4t\r\n");
    let said = b":latin!~l@127.0.0.1 PRIVMSG #bytes :caf\xe9 \xff";
    assert_eq!(raw_until(&mut reader, b"PRIVMSG"), said, "every byte kept");
    assert_eq!(
        reader.raw_line(),
        b":latin!~l@127.0.0.1 PRIVMSG reader :\xe0 bient\xf4t"
    );
    assert_eq!(
        binny.until_bytes(b"PRIVMSG"),
        (2, said.to_vec()),
        "binary frames too"
    );
    let (opcode, text) = texty.until_bytes(b"PRIVMSG");
    assert_eq!(opcode, 1);
    let text = String::from_utf8(text).expect("a text frame is UTF-8");
    assert!(text.ends_with(":caf\u{fffd} \u{fffd}"), "{text}");
    assert_eq!(liney.expect("MSG "), "MSG bytes latin caf\u{fffd} \u{fffd}");
    reader.send("WHO latin");
    assert!(raw_until(&mut reader, b" 352 ").ends_with(b" H :0 Jos\xe9"));
    // History keeps them too: a later IRC reader gets the playback as notices.
    let (mut late, _) = register(irc, "late", "l");
    late.send("JOIN #bytes");
    late.until(" 366 ");
    let playback = raw_until(&mut late, b"NOTICE #bytes");
    assert!(playback.ends_with(b"<latin> caf\xe9 \xff"), "{playback:?}");
}

/// The next line of `c` (as bytes) that contains `needle`.
fn raw_until(c: &mut Irc, needle: &[u8]) -> Vec<u8> {
    loop {
        let line = c.raw_line();
        if line.windows(needle.len()).any(|w| w == needle) {
            return line;
        }
    }
}
