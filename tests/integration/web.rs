//! The web listener: the page, /healthz, /metrics, the WebSocket handshake, both
//! subprotocols, chat across protocols, and every hostile input with the answer the
//! RFCs require (RFC 9110 statuses for HTTP, RFC 6455 close codes for WebSocket).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use miochat::protocol::websocket::{client_frame, server_frames};
use miochat::server::ServerConfig;

use crate::common::{READ_TIMEOUT, TestServer, serve_exactly};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn web_server_with(tweak: impl FnOnce(&mut ServerConfig)) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|c| {
        c.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        tweak(c);
    });
    let web = server.handle.http_addr().expect("web listener");
    (server, web)
}

fn web_server() -> (TestServer, SocketAddr) {
    web_server_with(|_| {})
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Sends `request` and reads everything until the server closes.
fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = connect(addr);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read to close");
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

/// A blocking WebSocket client built from the crate's own frame helpers.
struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    /// Upgrades on `path`, offering `subprotocol`; panics unless the answer is 101.
    fn open(addr: SocketAddr, path: &str, subprotocol: Option<&str>) -> (Ws, String) {
        let offer = subprotocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{offer}\r\n"
        );
        let (ws, head) = Ws::raw(addr, &request);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains(ACCEPT), "{head}");
        (ws, head)
    }

    /// Sends `request` and reads the response head.
    fn raw(addr: SocketAddr, request: &str) -> (Ws, String) {
        let mut ws = Ws {
            stream: connect(addr),
            buf: Vec::new(),
        };
        ws.stream.write_all(request.as_bytes()).expect("send");
        while !ws.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(ws.fill(), "closed before the response head");
        }
        let end = ws
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0)
            + 4;
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        ws.buf.drain(..end);
        (ws, head)
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    fn send_frame(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send frame");
    }

    fn send(&mut self, text: &str) {
        self.send_frame(&client_frame(1, true, text.as_bytes(), MASK));
    }

    /// The next frame (opcode, payload), or `None` at EOF.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            let (frames, _) = server_frames(&self.buf);
            if let Some(first) = frames.into_iter().next() {
                let len = frame_len(&self.buf);
                self.buf.drain(..len);
                return Some(first);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next data frame's text (pings are skipped).
    fn text(&mut self) -> String {
        loop {
            let (opcode, payload) = self.frame().expect("a frame");
            match opcode {
                1 | 2 => return String::from_utf8(payload).expect("utf-8"),
                9 | 10 => continue,
                other => panic!("expected data, got opcode {other}: {payload:?}"),
            }
        }
    }

    /// Reads data frames until one contains `needle`.
    fn until(&mut self, needle: &str) -> String {
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
        }
    }

    /// The close code the server sent, then EOF.
    fn close_code(&mut self) -> u16 {
        loop {
            let (opcode, payload) = self.frame().expect("a close frame");
            if opcode == 8 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert!(self.frame().is_none(), "nothing after the close frame");
                return code;
            }
        }
    }
}

/// Length of the first server frame in `buf` (header plus payload).
fn frame_len(buf: &[u8]) -> usize {
    let short = (buf[1] & 0x7f) as usize;
    match short {
        126 => 4 + u16::from_be_bytes([buf[2], buf[3]]) as usize,
        127 => 10 + u64::from_be_bytes(buf[2..10].try_into().unwrap_or([0; 8])) as usize,
        n => 2 + n,
    }
}

/// A line-protocol WebSocket client, welcomed, renamed to `nick`.
fn line_ws(addr: SocketAddr, nick: &str) -> Ws {
    let (mut ws, _) = Ws::open(addr, "/ws", None);
    assert!(ws.text().starts_with("OK welcome "));
    ws.send(&format!("/nick {nick}"));
    ws.until(&format!("OK nick {nick}"));
    ws
}

#[test]
fn page_health_and_errors() {
    let (_server, web) = web_server();
    let page = get(web, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"));
    assert!(page.contains("<html"), "the page is served");
    assert!(get(web, "/healthz").ends_with("\r\n\r\nok\n"));
    assert!(get(web, "/nothing").starts_with("HTTP/1.1 404"));
    let post = http(web, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405") && post.contains("allow: GET, HEAD"),
        "{post}"
    );
    let head = http(web, "HEAD / HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "no body"
    );
    assert!(http(web, "\x16\x03\x01 not http\r\n\r\n").starts_with("HTTP/1.1 400"));
}

#[test]
fn handshake_failures_get_their_statuses() {
    let (_server, web) = web_server();
    let base = "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n";
    let missing_key = http(web, &format!("{base}Sec-WebSocket-Version: 13\r\n\r\n"));
    assert!(missing_key.starts_with("HTTP/1.1 400"), "{missing_key}");
    let wrong_key = format!("{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n\r\n");
    assert!(http(web, &wrong_key).starts_with("HTTP/1.1 400"));
    let old = http(
        web,
        &format!("{base}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"),
    );
    assert!(
        old.starts_with("HTTP/1.1 426") && old.contains("Sec-WebSocket-Version: 13"),
        "{old}"
    );
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    assert!(http(web, &huge).starts_with("HTTP/1.1 431"));
    // An upgrade on the bare address is accepted too (web IRC clients use it).
    let (mut ws, _) = Ws::open(web, "/", None);
    assert!(ws.text().starts_with("OK welcome "));
}

#[test]
fn slow_loris_gets_408_and_is_closed() {
    let (_server, web) = web_server_with(|c| c.http_timeout = Duration::from_secs(1));
    let mut stream = connect(web);
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
        .expect("send");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("closed by the server");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"));
    assert!(started.elapsed() < READ_TIMEOUT);
}

#[test]
fn line_subprotocol_chats_with_nc_and_irc_users() {
    let (server, web) =
        web_server_with(|c| c.irc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0))));
    let mut nc = server.client_named("ncuser");
    let mut browser = line_ws(web, "webuser");
    let (mut irc, head) = Ws::open(web, "/ws", Some("text.ircv3.net"));
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: text.ircv3.net")
    );
    irc.send("NICK ircweb");
    irc.send("USER ircweb 0 * :Web IRC");
    let welcome = irc.until(" 001 ");
    assert!(
        !welcome.ends_with('\n') && !welcome.ends_with('\r'),
        "no CRLF in frames"
    );
    irc.until(" 422 ");
    irc.send("JOIN #lobby");
    irc.until("JOIN");
    nc.send("hello from nc");
    assert_eq!(
        browser.until("hello from nc"),
        "MSG lobby ncuser hello from nc"
    );
    assert_eq!(
        irc.until("hello from nc"),
        ":ncuser!~ncuser@127.0.0.1 PRIVMSG #lobby :hello from nc"
    );
    browser.send("hello from the browser");
    nc.skip_to("MSG lobby webuser hello from the browser");
    irc.until("PRIVMSG #lobby :hello from the browser");
    irc.send("PRIVMSG #lobby :hello from irc");
    nc.skip_to("MSG lobby ircweb hello from irc");
    browser.until("MSG lobby ircweb hello from irc");
}

#[test]
fn binary_ircv3_subprotocol_uses_binary_frames() {
    let (_server, web) = web_server();
    let (mut ws, head) = Ws::open(web, "/ws", Some("binary.ircv3.net"));
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: binary.ircv3.net")
    );
    ws.send_frame(&client_frame(2, true, b"NICK bin", MASK));
    ws.send_frame(&client_frame(2, true, b"USER bin 0 * :B", MASK));
    loop {
        let (opcode, payload) = ws.frame().expect("frame");
        assert_eq!(opcode, 2, "binary frames only");
        if String::from_utf8_lossy(&payload).contains(" 001 ") {
            break;
        }
    }
}

#[test]
fn hostile_frames_are_closed_with_the_right_code() {
    let (_server, web) = web_server_with(|c| c.max_line = 64);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("too long", client_frame(1, true, &[b'x'; 200], MASK), 1009),
        (
            "binary on the line protocol",
            client_frame(2, true, b"hi", MASK),
            1003,
        ),
        (
            "bad utf-8",
            client_frame(1, true, &[0xc3, 0x28], MASK),
            1007,
        ),
        ("unmasked", b"\x81\x02hi".to_vec(), 1002),
        (
            "stray continuation",
            client_frame(0, true, b"hi", MASK),
            1002,
        ),
        ("fragmented ping", client_frame(9, false, b"", MASK), 1002),
    ];
    for (what, bytes, code) in cases {
        let (mut ws, _) = Ws::open(web, "/ws", None);
        ws.text();
        ws.send_frame(&bytes);
        assert_eq!(ws.close_code(), code, "{what}");
    }
    // Fragments over the limit in total are too long as well.
    let (mut ws, _) = Ws::open(web, "/ws", None);
    ws.text();
    let mut fragments = client_frame(1, false, &[b'y'; 40], MASK);
    for _ in 0..3 {
        fragments.extend(client_frame(0, false, &[b'y'; 40], MASK));
    }
    ws.send_frame(&fragments);
    assert_eq!(ws.close_code(), 1009);
}

#[test]
fn fragments_ping_and_close_follow_rfc_6455() {
    let (_server, web) = web_server();
    let mut ws = line_ws(web, "frag");
    ws.send_frame(&client_frame(1, false, b"/ping ", MASK));
    ws.send_frame(&client_frame(9, true, b"are you there", MASK));
    ws.send_frame(&client_frame(0, true, b"tok1", MASK));
    let (opcode, payload) = ws.frame().expect("pong");
    assert_eq!((opcode, payload), (10, b"are you there".to_vec()));
    assert_eq!(ws.text(), "PONG tok1");
    ws.send_frame(&client_frame(8, true, &1000u16.to_be_bytes(), MASK));
    assert_eq!(ws.close_code(), 1000, "the close is echoed");
}

#[test]
fn idle_websocket_is_pinged_then_closed() {
    let (_server, web) = web_server_with(|c| c.ws_ping = Duration::from_secs(1));
    let (mut ws, _) = Ws::open(web, "/ws", None);
    ws.text();
    let (opcode, _) = ws.frame().expect("a ping");
    assert_eq!(opcode, 9);
    ws.send_frame(&client_frame(10, true, b"", MASK));
    let (opcode, _) = ws.frame().expect("another ping after the answer");
    assert_eq!(opcode, 9);
    assert_eq!(ws.close_code(), 1001, "no answer: going away");
}

/// The value of the sample `name` (with its labels) in a scrape.
fn metric(scrape: &str, sample: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in\n{scrape}"))
}

#[test]
fn metrics_follow_clients_as_they_come_and_go() {
    let (server, web) = web_server();
    let scrape = get(web, "/metrics");
    assert!(scrape.contains("text/plain; version=0.0.4"));
    assert!(scrape.contains("# TYPE miochat_turn_duration_seconds histogram"));
    assert!(scrape.contains("miochat_turn_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"}"));
    assert!(scrape.contains("miochat_loop_turns_total{shard=\"0\"}"));
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"ws_line\"}"),
        0.0
    );
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"line\"}"),
        0.0
    );
    let accepted = metric(&scrape, "miochat_connections_accepted_total");
    let mut nc = server.client_named("metered");
    let mut a = line_ws(web, "wsa");
    let b = line_ws(web, "wsb");
    nc.send("counted");
    a.until("counted");
    let scrape = get(web, "/metrics");
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"ws_line\"}"),
        2.0
    );
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"line\"}"),
        1.0
    );
    assert!(metric(&scrape, "miochat_connections_accepted_total") >= accepted + 3.0);
    assert!(metric(&scrape, "miochat_deliveries_total") >= 2.0);
    assert!(metric(&scrape, "miochat_messages_received_total") >= 1.0);
    assert!(metric(&scrape, "miochat_room_members") >= 3.0);
    drop(b);
    nc.send("/quit");
    nc.read_to_eof();
    a.until("EVENT lobby quit metered");
    let scrape = get(web, "/metrics");
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"ws_line\"}"),
        1.0
    );
    assert_eq!(
        metric(&scrape, "miochat_connections{protocol=\"line\"}"),
        0.0
    );
    assert!(metric(&scrape, "miochat_connections_closed_total{reason=\"quit\"}") >= 1.0);
    assert!(metric(&scrape, "miochat_sent_bytes_total") > 0.0);
}

/// A client that closes saying the server broke the protocol (as a browser does on
/// a bad frame) is a server bug: a warning that says what the client said, never a
/// plain `closed`. A client's own violation is logged with what it was.
#[test]
fn a_protocol_error_blamed_on_the_server_is_a_warning_that_says_what() {
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--max-per-ip",
        "0",
    ];
    let (served, addrs) = serve_exactly(&args, &["web"]);
    let mut ws = line_ws(addrs[0], "blamer");
    let mut close = 1002u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"RSV2 and RSV3 must be clear");
    ws.send_frame(&client_frame(8, true, &close, MASK));
    assert_eq!(ws.close_code(), 1002, "the close is echoed");
    let mut other = line_ws(addrs[0], "unmasked");
    other.send_frame(b"\x81\x02hi");
    assert_eq!(other.close_code(), 1002);
    let deadline = Instant::now() + READ_TIMEOUT;
    let log = loop {
        let log = served.log();
        if log.contains("unmasked closed") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let blamed = log.lines().find(|l| l.contains("blamer closed"));
    let blamed = blamed.unwrap_or_else(|| panic!("no close logged: {log}"));
    assert!(blamed.contains("WARN"), "{blamed}");
    assert!(
        blamed.contains("close code 1002 (RSV2 and RSV3 must be clear)"),
        "{blamed}"
    );
    assert!(
        log.contains("unmasked closed: websocket-error: unmasked frame (1002)"),
        "{log}"
    );
}
