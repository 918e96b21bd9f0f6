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
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, find_program, require};

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
        let profile = std::env::temp_dir().join(format!(
            "miochat-browser-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
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

    fn text_of(&self, css: &str) -> String {
        let element = self.element(css);
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
            let text = self.text_of(css);
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
