//! The configuration file through the real binary: `serve --config`, SIGHUP reloads
//! (live keys change, connections stay, a broken file changes nothing), `config
//! check/example/show/hash-password`, the log file reopened after a rename, and the
//! protocol trace with passwords masked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{READ_TIMEOUT, Served, TestClient, serve_exactly, signal, spawn_binary, stat};
use crate::store::TempDir;

/// A config file for a server on a free port that keeps nothing on disk, with
/// `extra` appended (more tables).
fn write_config(path: &Path, limits: &str, extra: &str) {
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\nworkers = 2\n\n\
         [limits]\nconnect-rate = 0\n{limits}\n\n\
         [store]\ndata-dir = \"none\"\n\n{extra}"
    );
    std::fs::write(path, text).unwrap();
}

fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

fn serve_config(config: &Path, more: &[&str]) -> (Served, std::net::SocketAddr) {
    let mut args = vec!["serve", "--config", config.to_str().unwrap()];
    args.extend_from_slice(more);
    let (served, addrs) = serve_exactly(&args, &[""]);
    (served, addrs[0])
}

/// Waits until `text` says `needle` (a bound, not a timing assertion).
#[track_caller]
fn wait_until(what: &str, mut text: impl FnMut() -> String, needle: &str) -> String {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let now = text();
        if now.contains(needle) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never said {needle:?}: {now}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_says(served: &Served, needle: &str) -> String {
    wait_until("the server's log", || served.log(), needle)
}

/// A client beyond the per-address limit is told why and closed.
#[track_caller]
fn assert_refused(addr: std::net::SocketAddr) {
    let mut extra = TestClient::connect_raw(addr);
    let lines = extra.read_to_eof();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("too many connections from your address")),
        "{lines:?}"
    );
}

/// The MOTD `/motd` shows `client` now: the lines before `OK motd N`.
fn motd_of(client: &mut TestClient) -> Vec<String> {
    client.send("/motd");
    let mut lines = Vec::new();
    loop {
        let line = client.line();
        if let Some(text) = line.strip_prefix("EVENT * motd ") {
            lines.push(text.to_string());
        } else if line.starts_with("OK motd ") {
            assert_eq!(line, format!("OK motd {}", lines.len()));
            return lines;
        }
    }
}

#[test]
fn sighup_applies_a_new_per_ip_limit_and_motd_and_keeps_every_connection() {
    let dir = TempDir::new("config-reload");
    let (config, motd) = (dir.join("miochat.toml"), dir.join("motd.txt"));
    std::fs::write(&motd, "welcome\n").unwrap();
    let irc = format!("[irc]\nmotd = {}\n", toml_path(&motd));
    write_config(&config, "max-per-ip = 5", &irc);
    let (served, addr) = serve_config(&config, &[]);
    let mut alice = TestClient::connect(addr);
    alice.set_nick("alice");
    let mut bob = TestClient::connect(addr);
    bob.set_nick("bob");
    let mut carol = TestClient::connect(addr);
    carol.set_nick("carol");
    let before = stat(&alice.stats(), "config_loaded_at");
    assert_eq!(motd_of(&mut alice), ["welcome"]);

    std::fs::write(&motd, "new rules\nbe kind\nno spam\n").unwrap();
    write_config(&config, "max-per-ip = 3", &irc);
    signal(&served.child, "HUP");
    let log = log_says(&served, "reload: configuration applied");
    assert!(log.contains("reload: limits.max-per-ip changed"), "{log}");
    assert!(log.contains("MOTD of 3 line(s)"), "{log}");
    assert_eq!(motd_of(&mut alice), ["new rules", "be kind", "no spam"]);
    assert_refused(addr);

    // Nobody was dropped: the three still chat.
    alice.send("still here");
    assert_eq!(bob.expect("MSG "), "MSG lobby alice still here");
    assert_eq!(carol.expect("MSG "), "MSG lobby alice still here");
    let stats = carol.stats();
    assert_eq!(stat(&stats, "config_ok"), 1, "{stats}");
    assert!(stat(&stats, "config_loaded_at") >= before, "{stats}");
    assert_eq!(stat(&stats, "connections"), 3, "{stats}");
}

#[test]
fn a_broken_file_on_sighup_changes_nothing() {
    let dir = TempDir::new("config-broken");
    let config = dir.join("miochat.toml");
    write_config(&config, "max-per-ip = 2", "");
    let (served, addr) = serve_config(&config, &[]);
    let mut alice = TestClient::connect(addr);
    let _bob = TestClient::connect(addr);

    std::fs::write(&config, "[limits]\nmax-per-ip = \"lots\"\n").unwrap();
    signal(&served.child, "HUP");
    let log = log_says(&served, "nothing changed");
    assert!(log.contains("ERROR"), "{log}");
    assert!(
        log.contains("miochat.toml:2:14"),
        "the error says where: {log}"
    );
    assert_refused(addr);
    assert_eq!(stat(&alice.stats(), "config_ok"), 0);

    write_config(&config, "max-per-ip = 3", "");
    signal(&served.child, "HUP");
    log_says(&served, "reload: configuration applied");
    assert_eq!(stat(&alice.stats(), "config_ok"), 1);
    let _carol = TestClient::connect(addr);
}

#[test]
fn a_restart_only_key_is_named_in_a_warning() {
    let dir = TempDir::new("config-restart");
    let config = dir.join("miochat.toml");
    write_config(&config, "max-per-ip = 0", "");
    let (served, addr) = serve_config(&config, &[]);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("workers = 2", "workers = 1")).unwrap();
    signal(&served.child, "HUP");
    let log = log_says(&served, "reload: configuration applied");
    assert!(
        log.contains("WARN")
            && log.contains("listen.workers changed; it takes effect at the next restart"),
        "{log}"
    );
    let stats = TestClient::connect(addr).stats();
    assert_eq!(stat(&stats, "config_ok"), 1);
    assert!(
        stats.contains(" shards=1,0 ") || stats.contains(" shards=0,1 "),
        "still 2 shards: {stats}"
    );
}

fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = spawn_binary(&["config", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn config_check_says_ok_or_each_problem_at_its_line_and_column() {
    let dir = TempDir::new("config-check");
    let good = dir.join("good.toml");
    write_config(&good, "max-per-ip = 4", "[log]\nlevel = \"debug\"\n");
    let (code, stdout, stderr) = check(&good);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), format!("{}: OK", good.display()));

    let typos = dir.join("typos.toml");
    std::fs::write(&typos, "[limits]\nmax-per-ipp = 3\n\n[flod]\nrate = 1\n").unwrap();
    let (code, _, stderr) = check(&typos);
    assert_eq!(code, Some(2));
    let shown = typos.display();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "{shown}:2:1: unknown key `max-per-ipp` in [limits]; did you mean `max-per-ip`?"
            ),
            format!("{shown}:4:2: unknown table `flod`; did you mean `flood`?"),
        ]
    );

    let bad = dir.join("bad.toml");
    let text = "[listen]\nirc = \"nowhere\"\ntls = \"127.0.0.1:0\"\n\n[limits]\nmax-line = 5\n\n\
                [tls]\ncert = \"/missing/cert.pem\"\nkey = \"/missing/key.pem\"\n\n\
                [irc]\nmotd = \"/missing/motd.txt\"\n\n\
                [[oper]]\nname = \"root\"\npassword = \"hunter2\"\n";
    std::fs::write(&bad, text).unwrap();
    let (code, _, stderr) = check(&bad);
    assert_eq!(code, Some(2));
    let lines: Vec<&str> = stderr.lines().collect();
    let shown = bad.display();
    let expected = [
        format!("{shown}:2:7: listen.irc: bad address \"nowhere\""),
        format!("{shown}:6:12: invalid configuration: limits.max-line must be 16..=1048576 bytes"),
        format!("{shown}:9:8: TLS: "),
        format!("{shown}:13:8: irc.motd: cannot read the MOTD file /missing/motd.txt"),
        format!("{shown}:17:12: oper.1.password: the password is not an argon2id PHC string"),
    ];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, start) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(start.as_str()),
            "{line:?} does not start with {start:?}"
        );
    }
    assert!(lines[2].contains("/missing/cert.pem"), "{stderr}");
}

#[test]
fn the_committed_example_is_what_config_example_prints_and_it_passes_check() {
    let out = spawn_binary(&["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = include_str!("../../examples/miochat.example.toml");
    assert!(
        printed == committed,
        "examples/miochat.example.toml is stale: `miochat config example > examples/miochat.example.toml`"
    );
    let mut check = spawn_binary(&["config", "check", "/dev/stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(printed.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "/dev/stdin: OK"
    );
}

fn hash_password(password: &str) -> String {
    let mut child = spawn_binary(&["config", "hash-password"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn config_show_masks_secrets_and_flags_win_over_the_file() {
    let dir = TempDir::new("config-show");
    let config = dir.join("miochat.toml");
    let hash = hash_password("correct horse battery");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let extra = format!(
        "[irc]\npassword = \"hunter2\"\ncloak-key = \"sesame\"\n\n\
         [[oper]]\nname = \"root\"\npassword = \"{hash}\"\nmasks = [\"*!*@127.0.0.1\"]\n"
    );
    write_config(&config, "max-per-ip = 4\nsendq = 500000", &extra);
    let (code, _, stderr) = check(&config);
    assert_eq!(code, Some(0), "a hash from hash-password passes: {stderr}");
    let out = spawn_binary(&[
        "config",
        "show",
        "--config",
        config.to_str().unwrap(),
        "--max-per-ip",
        "9",
        "-q",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    for secret in ["hunter2", "sesame", &hash] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    for line in [
        "max-per-ip = 9",
        "sendq = 500000",
        "level = \"warn\"",
        "name = \"root\"",
        "password = \"***\"",
        "cloak-key = \"***\"",
        "masks = [\"*!*@127.0.0.1\"]",
    ] {
        assert!(shown.lines().any(|l| l == line), "no {line:?} in {shown}");
    }
}

#[test]
fn the_log_file_is_reopened_after_sighup() {
    let dir = TempDir::new("config-logfile");
    let (config, log) = (dir.join("miochat.toml"), dir.join("miochat.log"));
    let table = format!("[log]\nfile = {}\n", toml_path(&log));
    write_config(&config, "max-per-ip = 0", &table);
    let (served, addr) = serve_config(&config, &[]);
    let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    wait_until("the log file", || read(&log), "listening on");
    assert!(
        !served.log().contains("listening on"),
        "the log goes to the file, not stderr"
    );

    let rotated = dir.join("miochat.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&served.child, "HUP");
    wait_until("the new log file", || read(&log), "reopened");
    let _client = TestClient::connect(addr);
    wait_until("the new log file", || read(&log), "connected (Line)");
    let old = read(&rotated);
    assert!(
        old.contains("listening on") && !old.contains("connected"),
        "{old}"
    );
}

#[test]
fn the_trace_logs_lines_in_and_out_with_passwords_masked() {
    let dir = TempDir::new("config-trace");
    let config = dir.join("miochat.toml");
    write_config(&config, "max-per-ip = 0", "[log]\ntrace = true\n");
    let (served, addr) = serve_config(&config, &[]);
    let mut client = TestClient::connect(addr);
    client.send("/login alice hunter2");
    client.send("/register hunter2");
    client.send("hello world");
    client.sync();
    let log = log_says(&served, ">> hello world");
    assert!(log.contains(">> /login alice ***"), "{log}");
    assert!(log.contains(">> /register ***"), "{log}");
    assert!(log.contains("<< OK welcome "), "{log}");
    assert!(!log.contains("hunter2"), "a password in the trace: {log}");
}

#[test]
fn vv_turns_the_trace_on_for_irc_too() {
    let (served, addrs) = serve_exactly(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
            "-vv",
        ],
        &["", "IRC"],
    );
    let mut irc = TestClient::connect_raw(addrs[1]);
    irc.send("PASS hunter2");
    irc.send("NICK tracy");
    irc.send("USER tracy 0 * :Tracy");
    irc.skip_to(":miochat.local 001 tracy ");
    let log = log_says(&served, ">> USER tracy");
    assert!(log.contains(">> PASS ***"), "{log}");
    assert!(log.contains("<< :miochat.local 001 tracy"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

/// Reads `client`'s lines until one contains `needle`, and returns that one.
fn line_with(client: &mut TestClient, needle: &str) -> String {
    loop {
        let line = client.line();
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn opers_of_the_file_work_in_both_protocols_and_a_reload_adds_one() {
    let dir = TempDir::new("config-opers");
    let config = dir.join("miochat.toml");
    let oper = |name: &str, password: &str| {
        let hash = hash_password(password);
        format!("[[oper]]\nname = \"{name}\"\npassword = \"{hash}\"\n\n")
    };
    let root = oper("root", "root-password");
    let listen = "[limits]\nconnect-rate = 0\n\n[store]\ndata-dir = \"none\"\n\n";
    let head = format!("[listen]\naddress = \"127.0.0.1:0\"\nirc = \"127.0.0.1:0\"\n\n{listen}");
    std::fs::write(&config, format!("{head}{root}")).unwrap();
    let args = ["serve", "--config", config.to_str().unwrap()];
    let (served, addrs) = serve_exactly(&args, &["", "IRC"]);

    let mut alice = TestClient::connect(addrs[0]);
    alice.set_nick("alice");
    alice.send("/oper root wrong-password");
    assert!(alice.expect("ERR ").starts_with("ERR oper-failed "));
    alice.send("/oper root root-password");
    assert_eq!(alice.expect("OK oper"), "OK oper root");

    let mut dave = TestClient::connect_raw(addrs[1]);
    dave.send("NICK dave");
    dave.send("USER dave 0 * :Dave");
    line_with(&mut dave, " 422 dave ");
    dave.send("OPER root :root-password");
    line_with(&mut dave, " 381 dave ");

    // The line operator kills the IRC one's session; dave is told in IRC.
    alice.send("/kill dave enough");
    assert_eq!(alice.expect("OK killed"), "OK killed dave");
    line_with(&mut dave, "KILL dave :enough");

    // A second operator added to the file works after SIGHUP, and root still does.
    let second = oper("second", "second-password");
    std::fs::write(&config, format!("{head}{root}{second}")).unwrap();
    signal(&served.child, "HUP");
    log_says(&served, "reload: configuration applied");
    let mut bob = TestClient::connect(addrs[0]);
    bob.set_nick("bob");
    bob.send("/oper second second-password");
    assert_eq!(bob.expect("OK oper"), "OK oper second");
    bob.send("/kill alice test over");
    assert_eq!(bob.expect("OK killed"), "OK killed alice");
    assert!(alice.expect("ERR ").starts_with("ERR killed "));
}
