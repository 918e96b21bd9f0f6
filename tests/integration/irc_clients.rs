//! Real IRC clients against the built server: `scripts/irc-client-check.sh` runs
//! irssi (under tmux, plain and over TLS, plus a moderation scene and a SASL PLAIN
//! login to an account made on the line protocol) and WeeChat
//! (headless, with the IRCv3 capabilities server-time and batch, logging in with
//! SASL SCRAM-SHA-256, and again over TLS, verifying the certificate), each talking to a
//! line-protocol client in the same room. The script checks every direction on the
//! clients' own screens and logs; this test runs it against the binary cargo built.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{require, wait_with_timeout};

/// The programs the script drives; under CI=true a missing one fails the test.
const PROGRAMS: [&str; 4] = ["irssi", "tmux", "weechat-headless", "python3"];

#[test]
fn irssi_and_weechat_chat_with_a_line_client() {
    if !PROGRAMS
        .into_iter()
        .all(|program| require(program).is_some())
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let log_path =
        std::env::temp_dir().join(format!("miochat-irc-check-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("create log");
    let mut child = Command::new("bash")
        .arg(root.join("scripts/irc-client-check.sh"))
        .env("MIOCHAT_BIN", env!("CARGO_BIN_EXE_miochat"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("start scripts/irc-client-check.sh");
    let status = wait_with_timeout(&mut child, Duration::from_secs(240));
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        status.success(),
        "irc-client-check failed ({status}):\n{output}"
    );
    assert_eq!(
        output.matches("PASS").count(),
        6,
        "expected six PASS lines:\n{output}"
    );
}
