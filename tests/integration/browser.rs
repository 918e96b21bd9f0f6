//! The page in a real browser: headless Chromium driven over WebDriver (the
//! distribution's `chromium` and `chromium-driver` packages). Two browser sessions and
//! one `nc`-style client chat in one room, and the test asserts what each one shows;
//! a screenshot of the first browser is saved to a path the test prints.
//!
//! WebDriver is JSON over HTTP; the client here is a few lines of blocking `std::net`
//! (one request per connection, `Connection: close`) with `serde_json` for the bodies,
//! so the test needs no async runtime. Without chromium the test says "skipped"
//! outside CI and fails under `CI=true`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Relay, Served, TestClient, TestServer, find_program, require, serve_exactly};
use crate::store::TempDir as DataDir;

/// Longest wait for anything the page should show.
const SHOW_TIMEOUT: Duration = Duration::from_secs(20);
/// WebDriver's key code for Enter.
const ENTER: &str = "\u{E007}";
/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(program: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            if let Some(status) = driver.try_call("GET", "/status", None)
                && status["value"]["ready"] == json!(true)
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver call; `None` if the driver cannot be reached.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let body = read_response(&mut stream)?;
        serde_json::from_slice(&body).ok()
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self
            .try_call(method, path, body)
            .unwrap_or_else(|| panic!("WebDriver {method} {path}: no answer"));
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {method} {path}: {answer}"
        );
        answer["value"].clone()
    }
}

/// Reads one HTTP response (chromedriver keeps connections open, so the body is read
/// by its `Content-Length`, the head parsed by `httparse`).
fn read_response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buf) {
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            while buf.len() < head + length {
                let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[head..head + length].to_vec());
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One browser session (its own Chromium with a fresh profile).
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
    _profile: TempDir,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver, chromium: &Path, name: &str) -> Browser<'a> {
        // Tests run in parallel and two may open a browser of the same name: a
        // counter keeps their profiles apart (Chromium exits on a locked profile).
        static OPENED: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "miochat-browser-{name}-{}-{}",
            std::process::id(),
            OPENED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1000,640",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let created = driver.call("POST", "/session", Some(capabilities));
        let session = created["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            session,
            _profile: TempDir(profile),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.driver.call(method, &path, body)
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let reference = found[ELEMENT].as_str();
        reference
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        let path = format!("/element/{element}/value");
        self.call("POST", &path, Some(json!({"text": text})));
    }

    /// The element `css` selects, if there is one yet (the page may still be
    /// rendering the reply that adds it).
    fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let body = json!({"using": "css selector", "value": css});
        let answer = self.driver.try_call("POST", &path, Some(body))?;
        answer["value"][ELEMENT].as_str().map(str::to_string)
    }

    fn text_at(&self, element: &str) -> String {
        let path = format!("/element/{element}/text");
        self.call("GET", &path, None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the text of `css` contains `needle`; returns that text.
    #[track_caller]
    fn shows(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            let text = self.find(css).map(|e| self.text_at(&e)).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its result.
    fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        self.call("POST", "/execute/sync", Some(body))
    }

    /// Texts of the `#log` lines matching `css` (inside `#log`), in order.
    fn log_lines(&self, css: &str) -> Vec<String> {
        let script = "return [...document.querySelectorAll('#log ' + arguments[0])].map(p => p.textContent);";
        let found = self.execute(script, json!([css]));
        let lines = found.as_array().cloned().unwrap_or_default();
        lines
            .iter()
            .map(|l| l.as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Sets the window's size in CSS pixels.
    fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.call("POST", "/window/rect", Some(rect));
    }

    fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", None);
        let bytes = data_encoding::BASE64
            .decode(png.as_str().unwrap().as_bytes())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.driver.try_call("DELETE", &path, None);
    }
}

/// Chromium and chromedriver, or `None` (skipped) outside CI; a panic under CI.
fn programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program("chromium")
        .or_else(|| find_program("chromium-browser"))
        .or_else(|| require("chromium"))?;
    Some((chromium, require("chromedriver")?))
}

#[test]
fn two_browsers_and_nc_chat_in_one_room() {
    let Some((chromium, driver_program)) = programs() else {
        return;
    };
    let server = TestServer::start_with(|c| {
        c.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let page = format!("http://{}/", server.handle.http_addr().unwrap());
    let mut nc = server.client_named("ncuser");
    let driver = Driver::start(&driver_program);
    let alice = Browser::open(&driver, &chromium, "alice");
    let bob = Browser::open(&driver, &chromium, "bob");
    for (browser, nick) in [(&alice, "alice"), (&bob, "bob")] {
        browser.go(&page);
        browser.type_into("#nick", &format!("{nick}{ENTER}"));
        browser.shows("#me", nick);
        nc.skip_to("EVENT lobby nick guest");
    }
    alice.shows("#members", "bob");
    alice.type_into("#line", &format!("hello from alice{ENTER}"));
    nc.skip_to("MSG lobby alice hello from alice");
    bob.shows("#log", "<alice> hello from alice");
    bob.type_into("#line", &format!("hi alice, bob here{ENTER}"));
    nc.skip_to("MSG lobby bob hi alice, bob here");
    alice.shows("#log", "<bob> hi alice, bob here");
    nc.send("hello browsers, nc here");
    alice.shows("#log", "<ncuser> hello browsers, nc here");
    bob.shows("#log", "<ncuser> hello browsers, nc here");
    let members = alice.shows("#members", "ncuser");
    assert!(
        members.contains("alice") && members.contains("bob"),
        "{members}"
    );
    assert!(
        alice
            .shows("#log", "<alice> hello from alice")
            .contains("<bob> hi alice")
    );
    let shot = std::env::temp_dir().join(format!("miochat-browser-{}.png", std::process::id()));
    alice.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

/// The real binary with a data dir (so `/history ROOM since` works) and a web
/// listener: (server, line address, web address).
fn served_with_store(dir: &Path) -> (Served, SocketAddr, SocketAddr) {
    let dir = dir.to_str().unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--workers",
        "2",
        "-q",
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
    ];
    let (served, addrs) = serve_exactly(&args, &["", "web"]);
    (served, addrs[0], addrs[1])
}

/// How many of `lines` contain `needle`.
fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// Nothing in the log looks like a protocol line.
#[track_caller]
fn no_raw_protocol(lines: &[String]) {
    for raw in ["HIST ", "OK ", "EVENT ", "ERR "] {
        assert!(
            lines.iter().all(|l| !l.contains(raw)),
            "raw {raw:?} in the log: {lines:#?}"
        );
    }
}

#[test]
fn the_page_reads_history_recovers_after_a_reconnect_and_fits_a_phone() {
    let Some((chromium, driver_program)) = programs() else {
        return;
    };
    let dir = DataDir::new("browser-history");
    let (_served, line_addr, web) = served_with_store(&dir.0);
    let relay = Relay::start(web);
    let mut bob = TestClient::connect(line_addr);
    bob.set_nick("bob");
    bob.join("go");
    bob.send("go old");
    bob.join("rust");
    bob.send("before one");
    bob.send("before two");
    bob.sync();
    let driver = Driver::start(&driver_program);
    let alice = Browser::open(&driver, &chromium, "alice");
    alice.go(&format!("http://{}/", relay.addr));
    alice.type_into("#nick", &format!("alice{ENTER}"));
    alice.shows("#me", "alice");
    alice.type_into("#line", &format!("/join go{ENTER}"));
    alice.shows("#log", "<bob> go old");
    alice.type_into("#line", &format!("/join rust{ENTER}"));
    history_is_shown_as_messages(&alice);
    readable_replies_and_a_failed_nick(&alice, &mut bob);
    missed_lines_come_back_once(&alice, &mut bob, &relay);
    cluster_lines_are_sentences(&alice);
    fits_390_pixels(&alice);
}

/// The join's playback: messages with their times, no `HIST` or `OK history`.
fn history_is_shown_as_messages(alice: &Browser<'_>) {
    alice.shows("#log", "<bob> before two");
    let hist = alice.log_lines("p.hist");
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert!(hist[0].ends_with("<bob> before one"), "{hist:?}");
    let script = "return [...document.querySelectorAll('#log p.hist time')].map(t => [t.dateTime, t.textContent]);";
    for time in alice.execute(script, json!([])).as_array().unwrap() {
        let (iso, shown) = (time[0].as_str().unwrap(), time[1].as_str().unwrap());
        assert!(iso.ends_with('Z') && iso.len() == 24, "{iso}");
        assert!(shown.len() == 5 && shown.as_bytes()[2] == b':', "{shown}");
    }
    no_raw_protocol(&alice.log_lines("p"));
}

/// `/msg #rust` from bob's other room, `/who` and `/whois` as sentences, and a
/// refused `/nick` that leaves alice chatting as alice.
fn readable_replies_and_a_failed_nick(alice: &Browser<'_>, bob: &mut TestClient) {
    bob.send("/join go");
    bob.expect("OK joined go");
    bob.send("/msg #rust live one");
    alice.shows("#log", "<bob> live one");
    alice.type_into("#line", &format!("/who{ENTER}"));
    let who = alice.shows("#log", "In #rust: ");
    assert!(
        who.contains("@bob, alice") || who.contains("alice, @bob"),
        "{who}"
    );
    alice.type_into("#line", &format!("/whois bob{ENTER}"));
    let card = alice.shows("#log .card", "a line client");
    assert!(
        card.contains("#go (operator)") && card.contains("#rust (operator)"),
        "{card}"
    );
    alice.type_into("#line", &format!("/nick bob{ENTER}"));
    alice.shows("#errors", "you are still alice");
    let hidden = alice.execute("return document.getElementById('login').hidden;", json!([]));
    assert_eq!(hidden, json!(true), "the nick dialog stays closed");
    alice.type_into("#line", &format!("still here{ENTER}"));
    assert_eq!(bob.expect("MSG "), "MSG rust alice still here");
    no_raw_protocol(&alice.log_lines("p"));
}

/// The network goes away while bob speaks in both rooms; the page reconnects,
/// rejoins and shows each missed line once, in its place (before "reconnected").
fn missed_lines_come_back_once(alice: &Browser<'_>, bob: &mut TestClient, relay: &Relay) {
    relay.cut();
    bob.expect("EVENT rust quit alice");
    for line in ["missed one", "live one", "missed two"] {
        bob.send(&format!("/msg #rust {line}"));
    }
    bob.send("go missed");
    bob.sync();
    relay.restore();
    bob.expect("EVENT rust join alice");
    alice.shows("#log", "<bob> missed two");
    alice.shows("#log", "reconnected");
    let lines = alice.log_lines("p");
    for (needle, times) in [
        ("before one", 1),
        ("live one", 2),
        ("still here", 1),
        ("missed one", 1),
    ] {
        assert_eq!(count(&lines, needle), times, "{needle}: {lines:#?}");
    }
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("missed two") < at("reconnected"), "{lines:#?}");
    assert!(count(&alice.log_lines("p.hist"), "missed one") == 1);
    no_raw_protocol(&lines);
    // go was last read from history: it asks since that line's id.
    alice.type_into("#line", &format!("/join go{ENTER}"));
    alice.shows("#log", "<bob> go missed");
    let lines = alice.log_lines("p");
    assert_eq!(
        (count(&lines, "go old"), count(&lines, "go missed")),
        (1, 1),
        "{lines:#?}"
    );
    // Alice is alice again, in both rooms, and speaks in go.
    alice.type_into("#line", &format!("back in go{ENTER}"));
    assert_eq!(bob.expect("MSG "), "MSG go alice back in go");
    // History asked for by hand: at the end, as it is, and counted.
    alice.type_into("#line", &format!("/history go 1{ENTER}"));
    alice.shows("#log", "(1 line of #go's history above)");
    let hist = alice.log_lines("p.hist");
    assert!(
        hist.last().unwrap().ends_with("<alice> back in go"),
        "{hist:#?}"
    );
}

/// Lines only a cluster sends, fed to the page as if they came from the server.
fn cluster_lines_are_sentences(alice: &Browser<'_>) {
    let lines = [
        "EVENT * link down the link to the other nodes is down: their users' lines wait",
        "HIST 2026-01-02T03:04:05.678Z 0000000000000001 MSG go carol from the outage",
        "OK history go 1",
        "EVENT go recovered 1",
        "EVENT * link up the link to the other nodes is back",
    ];
    alice.execute(
        "for (const line of arguments[0]) onLine(line);",
        json!([lines]),
    );
    alice.shows("#log", "link to the other servers is back");
    let shown = alice.log_lines("p");
    assert_eq!(
        count(&shown, "link to the other servers is down"),
        1,
        "{shown:#?}"
    );
    assert_eq!(
        count(&shown, "1 message(s) missed while the servers were cut off"),
        1
    );
    let hist = alice.log_lines("p.hist");
    assert!(
        hist.iter()
            .any(|l| l.contains("2026-01-02") && l.ends_with("<carol> from the outage")),
        "{hist:#?}"
    );
    no_raw_protocol(&shown);
}

/// At 390 px wide nothing is cut off: no sideways scrolling, the input is on screen.
fn fits_390_pixels(alice: &Browser<'_>) {
    let shot =
        std::env::temp_dir().join(format!("miochat-browser-wide-{}.png", std::process::id()));
    alice.screenshot(&shot);
    alice.resize(390, 844);
    let script = "const r = document.getElementById('line').getBoundingClientRect();
        return [window.innerWidth, document.documentElement.scrollWidth, r.left, r.right, r.bottom, window.innerHeight];";
    let deadline = Instant::now() + SHOW_TIMEOUT;
    let sizes = loop {
        let sizes: Vec<f64> = alice
            .execute(script, json!([]))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        if sizes[0] <= 400.0 || Instant::now() > deadline {
            break sizes;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(sizes[0] <= 400.0, "the window did not shrink: {sizes:?}");
    assert!(
        sizes[1] <= sizes[0],
        "sideways scrolling at {} px: {sizes:?}",
        sizes[0]
    );
    assert!(
        sizes[2] >= 0.0 && sizes[3] <= sizes[0] && sizes[4] <= sizes[5],
        "{sizes:?}"
    );
    alice.shows("#log", "<bob> go missed");
    let shot = std::env::temp_dir().join(format!("miochat-browser-390-{}.png", std::process::id()));
    alice.screenshot(&shot);
    eprintln!("screenshots: {}", shot.display());
}
