//! irc-framework (the npm library behind Kiwi IRC) against the built server, one
//! client over TCP and one over WebSocket, each with every capability the server
//! offers: `js/irc_framework_check.js` says what it checks. The library is installed
//! with npm into the test's own temporary folder; without node or npm the test says
//! "skipped" (under CI=true it fails, as for every other real client).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{require, serve_exactly, wait_with_timeout};

#[test]
fn irc_framework_over_tcp_and_websocket_with_every_cap() {
    let (Some(node), Some(npm)) = (require("node"), require("npm")) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("miochat-ifw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `ws` is node's WebSocket before node 22 (which has one built in).
    let log = std::fs::File::create(dir.join("npm.log")).unwrap();
    let mut install = Command::new(npm)
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .args(["irc-framework", "ws"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("run npm");
    let installed = wait_with_timeout(&mut install, Duration::from_secs(240));
    let npm_log = std::fs::read_to_string(dir.join("npm.log")).unwrap_or_default();
    assert!(
        installed.success(),
        "npm install irc-framework ws failed:\n{npm_log}"
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/js/irc_framework_check.js");
    let copy = dir.join("check.js"); // beside its node_modules
    std::fs::copy(&script, &copy).unwrap();
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
    let (_served, addrs) = serve_exactly(&args, &["IRC", "web"]);
    let output = Command::new(node)
        .arg(&copy)
        .arg(addrs[0].port().to_string())
        .arg(addrs[1].port().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("\"failures\":[]"),
        "irc-framework: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
