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

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

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
            .with_root_certificates(roots_from_file(path)?)
            .with_no_client_auth(),
        Trust::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("no usable CA certificate in {}", path.display()));
    }
    Ok(roots)
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
