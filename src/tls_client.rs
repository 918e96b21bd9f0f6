//! The client side of TLS, for `miochat connect --tls` and `miochat bench --tls`:
//! which certificates to trust, and rustls driven by hand on a non-blocking socket
//! (the mirror image of `server/tls.rs`, with the same edge-triggered rule: plaintext
//! rustls already decrypted is read before the socket is asked for more).
//!
//! Trust: by default the server's certificate is verified against the system's root
//! certificates (`rustls-native-certs`: the operating system's store, so a CA the
//! administrator installed is trusted too), or only against `--ca FILE` if given.
//! `--insecure` skips verification (for a test server with a throwaway certificate;
//! the connection is then encrypted but not authenticated). The bench always skips
//! it: it measures cost, and verification is client-side work only.
//!
//! `--ca FILE` also *pins*: a server certificate that is byte for byte one of those in
//! FILE is trusted as itself, whatever its names, dates or CA flag. That is what an
//! operator means by handing the client the server's own self-signed certificate, and
//! without it the most common recipe fails: OpenSSL 3's `req -x509` marks its
//! certificate `CA:TRUE`, which webpki refuses as a server certificate
//! (`CaUsedAsEndEntity`). Any other certificate is verified as usual, chain and name.
//! The handshake signatures are checked with the provider's algorithms either way, so
//! a pinned certificate still proves the server holds its key.
//!
//! A refused certificate is explained in words ([`explain`]): what is wrong with it and
//! which flag fixes it, not rustls's enum names.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, DistinguishedName,
    RootCertStore,
};

use crate::nonblocking::{IoClass, ReadOutcome, classify, write_tls_records};

/// How the client decides whether to trust the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's root certificates.
    SystemRoots,
    /// Only the CA certificates in this PEM file.
    CaFile(std::path::PathBuf),
    /// No verification at all.
    Insecure,
}

/// What a client needs to open TLS sessions: the configuration and the name the
/// server's certificate must carry.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls client configuration.
    pub config: Arc<ClientConfig>,
    /// The name (or IP address) the certificate is checked against.
    pub name: ServerName<'static>,
    /// How the server is trusted (to explain a refused certificate).
    pub trust: Trust,
}

impl ClientTls {
    /// A client TLS setup for a server called `host` (a DNS name or an IP address).
    pub fn new(host: &str, trust: &Trust) -> Result<ClientTls, String> {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string())
                .map_err(|e| format!("bad server name {host:?}: {e}"))?,
        };
        Ok(ClientTls {
            config: client_config(trust)?,
            name,
            trust: trust.clone(),
        })
    }

    /// A new session for one connection.
    pub fn session(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(io::Error::other)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for this kind of trust.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki::from_file(path)?))
            .with_no_client_auth(),
        Trust::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `--ca FILE`: a server certificate found in FILE is pinned; any other must chain to
/// one of FILE's certificates and carry the server's name (webpki).
#[derive(Debug)]
struct PinnedOrWebPki {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl PinnedOrWebPki {
    fn from_file(path: &Path) -> Result<PinnedOrWebPki, String> {
        let pinned = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(pinned.iter().cloned());
        if added == 0 {
            return Err(format!("no usable CA certificate in {}", path.display()));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("TLS setup with {}: {e}", path.display()))?;
        Ok(PinnedOrWebPki { pinned, webpki })
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pin| pin.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        (self.webpki).verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(format!(
            "no system root certificates found ({why}); give --ca FILE or --insecure"
        ));
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate, but still checks handshake signatures with
/// the key the certificate carries (so the session is at least consistent).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `error` with a refused certificate put in words (see [`explain`]); any other error
/// as it was.
pub fn explain_io(error: io::Error, trust: &Trust) -> io::Error {
    let words = (error.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| explain(tls, trust));
    match words {
        Some(words) => io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {words}")),
        None => error,
    }
}

/// What is wrong with the server's certificate and the flag that fixes it, or `None`
/// when `error` is not about the certificate.
pub fn explain(error: &rustls::Error, trust: &Trust) -> Option<String> {
    let rustls::Error::InvalidCertificate(problem) = error else {
        return None;
    };
    let cert = "the server's certificate";
    let pin = "pass --ca FILE with that very certificate to pin it";
    Some(match problem {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => match trust {
            Trust::CaFile(path) => format!(
                "{cert} is neither in {} nor signed by a certificate there; pass --ca FILE \
                 with the server's certificate or its CA",
                path.display()
            ),
            _ => format!(
                "{cert} is not signed by a CA this client trusts (the system's root \
                 certificates); pass --ca FILE with the server's certificate or its CA"
            ),
        },
        CertificateError::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            let found = match trust {
                Trust::CaFile(path) => format!("and it is not one of those in {}", path.display()),
                _ => "and no --ca was given".to_string(),
            };
            format!(
                "{cert} is a CA certificate (CA:TRUE, as a plain `openssl req -x509` makes) \
                 that the server uses as its own, which only a pinned certificate may do, \
                 {found}; {pin}, or make a server certificate with `miochat config make-cert NAME`"
            )
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<&str> = presented.iter().map(|name| presented_name(name)).collect();
            let valid_for = match names.is_empty() {
                true => "carries no names".to_string(),
                false => format!("is valid for {}", names.join(", ")),
            };
            format!(
                "{cert} {valid_for}, not for {}, the address this client dialed; connect \
                 by one of its names (miochat connect --tls NAME:PORT), or {pin}",
                server_name_text(expected)
            )
        }
        CertificateError::NotValidForName => {
            format!(
                "{cert} is not valid for the name dialed; connect by one of its names, or {pin}"
            )
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "{cert} expired on {} (it is now {}); the server needs a new one (`miochat \
             config make-cert NAME` makes one for development; SIGHUP loads it)",
            date(*not_after),
            date(*time)
        ),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "{cert} is valid only from {} (it is now {}); check the clocks of this machine \
             and the server's",
            date(*not_before),
            date(*time)
        ),
        CertificateError::Expired | CertificateError::NotValidYet => {
            format!("{cert} is outside its validity dates; check the clocks or renew it")
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("{cert} is not meant for TLS servers (its extended key usage lacks serverAuth)")
        }
        CertificateError::BadEncoding => format!("{cert} is not a well-formed X.509 certificate"),
        other => format!("{cert} was refused: {other:?}"),
    })
}

/// `DnsName("localhost")` or `IpAddress(127.0.0.1)` (webpki's spelling) as `localhost`
/// or `127.0.0.1`.
fn presented_name(name: &str) -> &str {
    let inner = name
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| name.strip_prefix("IpAddress(")?.strip_suffix(')'));
    inner.unwrap_or(name)
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_string(),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// A certificate time as `2026-01-31 23:59:59 UTC`.
fn date(time: UnixTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| at.format(format).ok())
        .unwrap_or_else(|| format!("{} s after 1970", time.as_secs()))
}

/// Reads plaintext once: what the session already holds first, then the socket.
/// `WouldBlock` only when both are empty. Ciphertext the read produced (handshake
/// replies) is written at once, best effort.
pub fn read_plaintext(
    session: &mut ClientConnection,
    socket: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<ReadOutcome> {
    loop {
        match session.reader().read(buf) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOutcome::Eof),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match session.read_tls(socket) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the TLS handshake",
                ));
            }
            Ok(_) => {}
            Err(e) => match classify(&e) {
                IoClass::WouldBlock => return Ok(ReadOutcome::WouldBlock),
                IoClass::Interrupted => continue,
                IoClass::PeerGone | IoClass::Fatal => return Err(e),
            },
        }
        let processed = session.process_new_packets();
        write_ciphertext(session, socket)?;
        if let Err(e) = processed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// Encrypts as much of `bytes` as the session takes and writes what it can.
pub fn write_plaintext(
    session: &mut ClientConnection,
    socket: &mut impl Write,
    bytes: &[u8],
) -> io::Result<usize> {
    write_ciphertext(session, socket)?;
    if session.wants_write() {
        return Ok(0);
    }
    let taken = session.writer().write(bytes)?;
    write_ciphertext(session, socket)?;
    Ok(taken)
}

/// Writes ciphertext until the session has none or the socket would block.
pub fn write_ciphertext(session: &mut ClientConnection, socket: &mut impl Write) -> io::Result<()> {
    write_tls_records(session, socket).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(problem: CertificateError, trust: &Trust) -> String {
        explain(&rustls::Error::InvalidCertificate(problem), trust).unwrap_or_default()
    }

    #[test]
    fn names_and_dates_are_spelled_for_people() {
        let presented = vec![
            "DnsName(\"chat.test\")".into(),
            "IpAddress(10.0.0.1)".into(),
        ];
        let expected = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
        let text = words(
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            },
            &Trust::SystemRoots,
        );
        assert!(
            text.contains("is valid for chat.test, 10.0.0.1, not for 127.0.0.1"),
            "{text}"
        );
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(86_400 * 366)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(86_399)),
        };
        let text = words(expired, &Trust::SystemRoots);
        assert!(
            text.contains("expired on 1970-01-01 23:59:59 UTC (it is now 1971-01-02 00:00:00 UTC)"),
            "{text}"
        );
    }

    #[test]
    fn only_certificate_errors_are_explained() {
        let trust = Trust::CaFile("ca.pem".into());
        assert_eq!(explain(&rustls::Error::HandshakeNotComplete, &trust), None);
        let io = io::Error::other("plain");
        assert_eq!(explain_io(io, &trust).to_string(), "plain");
        let unknown = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let text = explain_io(unknown, &trust).to_string();
        assert!(
            text.starts_with("TLS: the server's certificate is neither in ca.pem"),
            "{text}"
        );
    }
}
