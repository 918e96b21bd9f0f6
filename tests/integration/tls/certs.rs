//! Certificates as operators make them, against the real binary: a plain
//! `openssl req -x509` certificate (CA:TRUE under OpenSSL 3) pinned with
//! `connect --tls --ca`, `miochat config make-cert` used at once by `serve` and
//! `connect`, and every refused certificate (made with `openssl`, served by
//! `serve --tls-listen`) explained by `connect` in words with the flag that fixes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{Served, require, serve_exactly, spawn_binary};
use crate::tls::Certs;

/// A fresh folder in which `openssl` makes certificates (removed when dropped).
struct Pki {
    dir: Certs,
}

impl Pki {
    fn new() -> Pki {
        Pki { dir: Certs::new() }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.dir.join(file)
    }

    fn openssl(&self, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir.dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// `NAME.pem` and `NAME.key` by the usual one-line recipe: self-signed, CA:TRUE.
    fn self_signed(&self, name: &str, san: &str) {
        let (key, out) = (format!("{name}.key"), format!("{name}.pem"));
        let san = format!("subjectAltName={san}");
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=miochat test",
            "-addext",
            &san,
            "-keyout",
            &key,
            "-out",
            &out,
        ]);
    }

    /// `NAME.pem` and `NAME.key`: a server certificate (CA:FALSE) for `san`, signed by
    /// the CA `CA.pem` (made with [`Pki::self_signed`]), valid from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`).
    fn signed(&self, name: &str, ca: &str, san: &str, (start, end): (&str, &str)) {
        std::fs::write(self.path("index.txt"), "").unwrap();
        let config = "[ca]\ndefault_ca = dev\n[dev]\ndatabase = index.txt\nnew_certs_dir = .\n\
                      rand_serial = yes\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
                      [any]\ncommonName = supplied\n";
        std::fs::write(self.path("ca.cnf"), config).unwrap();
        let ext = format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n");
        std::fs::write(self.path("ext.cnf"), ext).unwrap();
        let (key, csr, out) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=miochat test server",
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-extfile",
            "ext.cnf",
            "-cert",
            &ca_cert,
            "-keyfile",
            &ca_key,
            "-in",
            &csr,
            "-out",
            &out,
            "-startdate",
            start,
            "-enddate",
            end,
        ]);
    }

    /// `miochat serve` on a TLS port with `NAME.pem` and `NAME.key`.
    fn serve(&self, name: &str) -> (Served, u16) {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        serve_tls(&cert, &key)
    }
}

/// Valid from yesterday-ish to well after any test run.
const NOW: (&str, &str) = ("20200101000000Z", "20900101000000Z");

fn serve_tls(cert: &Path, key: &Path) -> (Served, u16) {
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "-q",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (served, addrs) = serve_exactly(&args, &["TLS"]);
    (served, addrs[0].port())
}

/// `miochat connect --tls [extra] TARGET`, sending `/ping done`.
fn connect(target: &str, extra: &[&str]) -> Output {
    let mut args = vec!["connect", "--tls", "--wait", "1"];
    args.extend_from_slice(extra);
    args.push(target);
    let mut child = spawn_binary(&args).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"/ping done\n").unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn assert_chats(out: &Output, what: &str) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{what}: {stderr}");
    assert!(stdout.contains("PONG done"), "{what}: {stdout}");
}

/// The one line `connect` printed for a refused certificate: status 1, "cannot
/// connect", every phrase in `words`, and no rustls enum names.
fn assert_refused(out: &Output, port: u16, words: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let start =
        format!("miochat: cannot connect to 127.0.0.1:{port}: TLS: the server's certificate ");
    assert!(stderr.starts_with(&start), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "{word:?} missing: {stderr}");
    }
    for jargon in ["Other(", "CaUsedAsEndEntity", "UnknownIssuer", "Context"] {
        assert!(!stderr.contains(jargon), "{jargon:?} in {stderr}");
    }
    stderr
}

#[test]
fn a_plain_openssl_req_x509_certificate_is_pinned_by_ca() {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("server", "DNS:localhost,IP:127.0.0.1");
    let text = pki.openssl(&["x509", "-in", "server.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "not the CA:TRUE case: {text}");
    let (_server, port) = pki.serve("server");
    let ca = pki.path("server.pem");
    let ca = ca.to_str().unwrap();
    assert_chats(
        &connect(&format!("127.0.0.1:{port}"), &["--ca", ca]),
        "by address",
    );
    assert_chats(
        &connect(&format!("localhost:{port}"), &["--ca", ca]),
        "by name",
    );

    // Pinned means the very certificate is trusted: even among others in the file,
    // and even for a name it does not carry.
    pki.self_signed("other", "DNS:other.test");
    pki.self_signed("elsewhere", "DNS:elsewhere.test");
    let bundle = pki.path("bundle.pem");
    let pems =
        ["other.pem", "elsewhere.pem"].map(|f| std::fs::read_to_string(pki.path(f)).unwrap());
    std::fs::write(&bundle, pems.concat()).unwrap();
    let (_elsewhere, port) = pki.serve("elsewhere");
    let target = format!("127.0.0.1:{port}");
    assert_chats(
        &connect(&target, &["--ca", bundle.to_str().unwrap()]),
        "pinned in a bundle",
    );
}

#[test]
fn a_ca_certificate_used_as_the_servers_own_is_explained() {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("server", "DNS:localhost,IP:127.0.0.1");
    pki.self_signed("other", "DNS:localhost,IP:127.0.0.1");
    let (_server, port) = pki.serve("server");
    let target = format!("127.0.0.1:{port}");
    let ca_words = [
        "is a CA certificate (CA:TRUE",
        "--ca FILE with that very certificate",
    ];
    let line = assert_refused(&connect(&target, &[]), port, &ca_words);
    assert!(line.contains("no --ca was given"), "{line}");
    let other = pki.path("other.pem");
    let line = assert_refused(
        &connect(&target, &["--ca", other.to_str().unwrap()]),
        port,
        &ca_words,
    );
    assert!(
        line.contains(&format!("not one of those in {}", other.display())),
        "{line}"
    );
    // The fix the words name works.
    let server = pki.path("server.pem");
    assert_chats(
        &connect(&target, &["--ca", server.to_str().unwrap()]),
        "pinned",
    );
}

#[test]
fn a_certificate_from_an_unknown_ca_is_explained() {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("ca", "DNS:ca.test");
    pki.self_signed("otherca", "DNS:otherca.test");
    pki.signed("server", "ca", "DNS:localhost,IP:127.0.0.1", NOW);
    let (_server, port) = pki.serve("server");
    let target = format!("127.0.0.1:{port}");
    let other = pki.path("otherca.pem");
    let line = assert_refused(
        &connect(&target, &["--ca", other.to_str().unwrap()]),
        port,
        &["--ca FILE with the server's certificate or its CA"],
    );
    let expected = format!(
        "is neither in {} nor signed by a certificate there",
        other.display()
    );
    assert!(line.contains(&expected), "{line}");

    // Against the system's roots (none of which signed it).
    let out = connect(&target, &[]);
    if String::from_utf8_lossy(&out.stderr).contains("no system root certificates") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no system roots under CI"
        );
        eprintln!("skipped: the system-roots case (no system root certificates here)");
    } else {
        let words = ["is not signed by a CA this client trusts", "pass --ca FILE"];
        assert_refused(&out, port, &words);
    }
    let ca = pki.path("ca.pem");
    assert_chats(&connect(&target, &["--ca", ca.to_str().unwrap()]), "its CA");
}

#[test]
fn a_certificate_for_other_names_is_explained_with_the_names() {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("ca", "DNS:ca.test");
    pki.signed("server", "ca", "DNS:chat.example.org,IP:10.9.8.7", NOW);
    let (_server, port) = pki.serve("server");
    let target = format!("127.0.0.1:{port}");
    let ca = pki.path("ca.pem");
    let words = [
        "is valid for chat.example.org, 10.9.8.7, not for 127.0.0.1",
        "connect by one of its names (miochat connect --tls NAME:PORT)",
    ];
    assert_refused(
        &connect(&target, &["--ca", ca.to_str().unwrap()]),
        port,
        &words,
    );
    // The other fix the words name: pin the certificate itself.
    let server = pki.path("server.pem");
    assert_chats(
        &connect(&target, &["--ca", server.to_str().unwrap()]),
        "pinned",
    );
}

#[test]
fn certificates_outside_their_dates_are_explained_with_the_dates() {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("ca", "DNS:ca.test");
    let san = "DNS:localhost,IP:127.0.0.1";
    pki.signed("expired", "ca", san, ("20200101000000Z", "20200102030405Z"));
    pki.signed("future", "ca", san, ("20990101000000Z", "20990102000000Z"));
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();

    let (_expired, port) = pki.serve("expired");
    let words = [
        "expired on 2020-01-02 03:04:05 UTC (it is now 20",
        "make-cert",
    ];
    assert_refused(
        &connect(&format!("127.0.0.1:{port}"), &["--ca", ca]),
        port,
        &words,
    );

    let (_future, port) = pki.serve("future");
    let words = [
        "is valid only from 2099-01-01 00:00:00 UTC (it is now 20",
        "clocks",
    ];
    assert_refused(
        &connect(&format!("127.0.0.1:{port}"), &["--ca", ca]),
        port,
        &words,
    );
}

/// The value after `label` in `make-cert`'s output, split into words.
fn printed<'a>(output: &'a str, label: &str) -> Vec<&'a str> {
    let line = output.lines().find(|line| line.starts_with(label));
    let line = line.unwrap_or_else(|| panic!("no {label:?} line in {output}"));
    line[label.len()..].split_whitespace().collect()
}

#[test]
fn make_cert_makes_what_serve_and_connect_use_at_once() {
    let dir = Certs::new();
    let out_dir = dir.dir.join("made");
    let args = [
        "config",
        "make-cert",
        "localhost",
        "--dir",
        out_dir.to_str().unwrap(),
    ];
    let made = spawn_binary(&[&args[..], &["--days", "2"]].concat())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&made.stdout).into_owned();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (cert, key) = (
        out_dir.join("localhost.cert.pem"),
        out_dir.join("localhost.key.pem"),
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");

    // The printed command lines, as printed (on free ports instead of 7879).
    let serve = printed(&stdout, "serve:");
    assert_eq!(
        &serve[..4],
        ["miochat", "serve", "--tls-listen", "127.0.0.1:7879"]
    );
    assert_eq!(
        serve[4..],
        [
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap()
        ]
    );
    let (_server, port) = serve_tls(Path::new(serve[5]), Path::new(serve[7]));
    let connect_line = printed(&stdout, "connect:");
    assert_eq!(
        connect_line[..5],
        [
            "miochat",
            "connect",
            "--tls",
            "--ca",
            cert.to_str().unwrap()
        ]
    );
    assert_eq!(connect_line[5], "localhost:7879");
    for host in ["localhost", "127.0.0.1"] {
        assert_chats(
            &connect(&format!("{host}:{port}"), &connect_line[3..5]),
            host,
        );
    }

    // Never over an existing key; never a name that is not one.
    let again = spawn_binary(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exists; remove it first"), "{stderr}");
    let bad = spawn_binary(&["config", "make-cert", "../etc/x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a DNS name"));
    check_with_openssl(&cert, &key, port);
}

/// What OpenSSL sees in a `make-cert` certificate, and `s_client` verifying it.
fn check_with_openssl(cert: &Path, key: &Path, port: u16) {
    if require("openssl").is_none() {
        return;
    }
    let pki = Pki::new();
    let cert = cert.to_str().unwrap();
    let text = pki.openssl(&["x509", "-in", cert, "-noout", "-text"]);
    for part in [
        "CA:FALSE",
        "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Server Authentication",
    ] {
        assert!(text.contains(part), "{part:?} missing: {text}");
    }
    pki.openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout"]);
    let verified = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            cert,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
}
