//! IRC over WebSocket as a web IRC client sees it, through a real client library
//! (tungstenite, blocking): every capability the server offers enabled, messages,
//! notices and `TAGMSG` to a room, to a nick and to both at once, and every frame
//! that arrives must parse (tungstenite refuses reserved bits, bad opcodes and
//! broken lengths) and be of the subprotocol's kind: text frames on
//! `text.ircv3.net`, binary frames on `binary.ircv3.net`, one line each; offered
//! both, the server takes the one the client lists first.

use std::net::{SocketAddr, TcpStream};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use crate::common::{READ_TIMEOUT, Served, serve_exactly};

/// A WebSocket IRC client on a blocking socket with a read timeout.
struct WebIrc {
    ws: WebSocket<TcpStream>,
    binary: bool,
    /// Every line received so far that nobody has asked for yet.
    seen: Vec<String>,
}

impl WebIrc {
    /// Connects offering `offer` (a `Sec-WebSocket-Protocol` value) and checks the
    /// server chose `expect`.
    fn open(web: SocketAddr, offer: &str, expect: &str) -> WebIrc {
        let stream = TcpStream::connect(web).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let mut request = format!("ws://{web}/ws").into_client_request().expect("url");
        let value = HeaderValue::from_str(offer).expect("header");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
        let (ws, response) = tungstenite::client::client(request, stream).expect("upgrade");
        let chosen = response.headers().get("Sec-WebSocket-Protocol");
        assert_eq!(chosen.and_then(|v| v.to_str().ok()), Some(expect));
        WebIrc {
            ws,
            binary: expect == "binary.ircv3.net",
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let message = match self.binary {
            true => Message::binary(line.as_bytes().to_vec()),
            false => Message::text(line),
        };
        self.ws.send(message).expect("send");
    }

    /// The next line: one data frame of the subprotocol's kind, parsed by
    /// tungstenite (a malformed frame is an error here, and fails the test).
    fn line(&mut self) -> String {
        loop {
            let message = match self.ws.read() {
                Ok(message) => message,
                Err(e) => panic!("not a valid WebSocket frame, or closed: {e}"),
            };
            let payload = match (message, self.binary) {
                (Message::Text(text), false) => text.as_bytes().to_vec(),
                (Message::Binary(bytes), true) => bytes.to_vec(),
                (Message::Ping(_) | Message::Pong(_), _) => continue,
                (other, binary) => panic!("binary={binary}: unexpected frame {other:?}"),
            };
            assert!(!payload.contains(&b'\n') && !payload.contains(&b'\r'));
            return String::from_utf8(payload).expect("UTF-8");
        }
    }

    /// Reads until a line containing `needle` (earlier lines are kept in `seen`).
    fn until(&mut self, needle: &str) -> String {
        if let Some(at) = self.seen.iter().position(|l| l.contains(needle)) {
            return self.seen.remove(at);
        }
        loop {
            let line = self.line();
            if line.contains(needle) {
                return line;
            }
            self.seen.push(line);
        }
    }

    /// `CAP LS 302`, then `CAP REQ` of every capability listed, then registers.
    fn register(&mut self, nick: &str) {
        self.send("CAP LS 302");
        let mut offered = Vec::new();
        loop {
            let ls = self.until(" CAP * LS ");
            let (more, caps) = match ls.split_once(" LS * :") {
                Some((_, caps)) => (true, caps),
                None => (false, ls.split_once(" LS :").expect("LS list").1),
            };
            // 302 lists values as `name=value`; CAP REQ names the capability.
            offered.extend(
                caps.split(' ')
                    .map(|c| c.split('=').next().unwrap_or(c).to_string()),
            );
            if !more {
                break;
            }
        }
        for cap in ["echo-message", "message-tags", "server-time", "batch"] {
            assert!(offered.iter().any(|c| c == cap), "{offered:?}");
        }
        self.send(&format!("CAP REQ :{}", offered.join(" ")));
        let ack = self.until(" CAP * ");
        assert!(ack.contains(" ACK :"), "every offered cap is taken: {ack}");
        self.send(&format!("NICK {nick}"));
        self.send(&format!("USER {nick} 0 * :Web {nick}"));
        self.send("CAP END");
        self.until(" 422 ");
    }
}

/// The IRC line `line` without its tags, and its tags.
fn untagged(line: &str) -> (&str, &str) {
    match line.strip_prefix('@') {
        Some(rest) => {
            let (tags, line) = rest.split_once(' ').expect("tags then a line");
            (line, tags)
        }
        None => (line, ""),
    }
}

/// Each of `wanted` (an IRC line without tags, and a tag it must carry, if any)
/// arrives at `client`, in any order, each as many times as listed.
fn expect_each(client: &mut WebIrc, wanted: &[(String, &str)]) {
    for (line, tag) in wanted {
        let got = client.until(&format!(" {}", line.split_once(' ').map_or("", |x| x.1)));
        let (bare, tags) = untagged(&got);
        assert_eq!(bare, line, "{got}");
        assert!(tags.contains("time="), "server-time: {got}");
        assert!(tags.contains(tag), "{tag} in {got}");
    }
}

/// The real binary with a web listener; its address.
fn web_binary() -> (Served, SocketAddr) {
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
        "--hosts",
        "address",
    ];
    let (served, addrs) = serve_exactly(&args, &["web"]);
    (served, addrs[0])
}

fn chat_over(offer: &str, subprotocol: &str) {
    let (_served, web) = web_binary();
    let mut a = WebIrc::open(web, offer, subprotocol);
    let mut b = WebIrc::open(web, offer, subprotocol);
    a.register("wa");
    b.register("wb");
    for client in [&mut a, &mut b] {
        client.send("JOIN #webroom");
        client.until(" 366 ");
    }
    a.send("PRIVMSG #webroom :room A");
    a.send("NOTICE #webroom :room notice");
    a.send("@+draft/react=one TAGMSG #webroom");
    a.send("PRIVMSG wb :private A->B");
    a.send("NOTICE wb :private notice");
    a.send("@+draft/react=two TAGMSG wb");
    a.send("PRIVMSG #webroom,wb :to both");
    let from = ":wa!~wa@127.0.0.1";
    let lines = [
        (format!("{from} PRIVMSG #webroom :room A"), ""),
        (format!("{from} NOTICE #webroom :room notice"), ""),
        (format!("{from} TAGMSG #webroom"), "+draft/react=one"),
        (format!("{from} PRIVMSG wb :private A->B"), ""),
        (format!("{from} NOTICE wb :private notice"), ""),
        (format!("{from} TAGMSG wb"), "+draft/react=two"),
        (format!("{from} PRIVMSG #webroom :to both"), ""),
        (format!("{from} PRIVMSG wb :to both"), ""),
    ];
    // echo-message: the sender gets every one back, as the readers do.
    expect_each(&mut a, &lines);
    expect_each(&mut b, &lines);
    for client in [&mut a, &mut b] {
        client.send("PING :done");
        client.until("PONG");
        assert!(
            client.seen.iter().all(|l| {
                let said = [" PRIVMSG ", " TAGMSG ", " NOTICE wb", " NOTICE #webroom"];
                !said.iter().any(|s| l.contains(s))
            }),
            "no line twice: {:?}",
            client.seen
        );
    }
    // A farewell before registration is framed too.
    let mut early = WebIrc::open(web, offer, subprotocol);
    early.send("QUIT");
    assert!(early.until("ERROR").starts_with("ERROR :Closing Link"));
}

#[test]
fn text_ircv3_client_with_every_cap_gets_only_valid_text_frames() {
    chat_over("text.ircv3.net", "text.ircv3.net");
}

#[test]
fn binary_ircv3_client_with_every_cap_gets_only_valid_binary_frames() {
    chat_over("binary.ircv3.net", "binary.ircv3.net");
}

#[test]
fn of_both_ircv3_subprotocols_the_clients_first_choice_is_taken() {
    chat_over("binary.ircv3.net, text.ircv3.net", "binary.ircv3.net");
    chat_over("text.ircv3.net, binary.ircv3.net", "text.ircv3.net");
}
