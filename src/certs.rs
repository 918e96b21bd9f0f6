//! `miochat config make-cert NAME`: a development certificate that works at once with
//! `serve --tls-cert/--tls-key` and with `connect --tls --ca`.
//!
//! Why a command rather than an `openssl` recipe: the recipe everyone copies,
//! `openssl req -x509`, makes a `CA:TRUE` certificate under OpenSSL 3, which strict
//! verifiers (webpki, so rustls) refuse as a server's own certificate; getting the
//! flags right (`CA:FALSE`, `serverAuth`, names for every way the machine is dialed)
//! is a known trap. This one is self-signed and an end entity (`CA:FALSE`, extended
//! key usage `serverAuth`, no key usage so OpenSSL also accepts it as its own trust
//! anchor), valid for NAME, `localhost`, `127.0.0.1` and `::1`, with a P-256 key
//! written mode 0600. Clients trust it by pinning: `--ca` with the certificate itself.
//!
//! Existing files are never overwritten: a key is not something to lose by a typo.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argh::FromArgs;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType, string::Ia5String,
};
use time::{Duration, OffsetDateTime};

/// Days a certificate is valid unless `--days` says otherwise.
pub const DEFAULT_DAYS: u32 = 365;

/// Names every development certificate carries besides NAME: the ways a server on
/// this machine is usually dialed.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Make a self-signed development certificate and key for serve --tls-cert/--tls-key and connect --tls --ca.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "make-cert")]
pub struct MakeCertArgs {
    /// the server's DNS name or IP address (localhost, 127.0.0.1 and ::1 are added)
    #[argh(positional)]
    pub name: String,
    /// folder to write NAME.cert.pem and NAME.key.pem in (default: the current folder)
    #[argh(option, default = "String::from(\".\")")]
    pub dir: String,
    /// days the certificate is valid (default 365)
    #[argh(option, default = "DEFAULT_DAYS")]
    pub days: u32,
}

/// Why no certificate was made.
#[derive(Debug)]
pub enum MakeCertError {
    /// NAME is neither a DNS name nor an IP address.
    BadName(String),
    /// `--days 0`, or so many days the date overflows.
    BadDays(u32),
    /// A file of that name is already there.
    Exists(PathBuf),
    /// Writing a file failed.
    Write(PathBuf, io::Error),
    /// rcgen could not make the key or the certificate.
    Generate(rcgen::Error),
}

impl fmt::Display for MakeCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MakeCertError::BadName(name) => write!(
                f,
                "make-cert: {name:?} is neither a DNS name (letters, digits, '-' and '.') nor an IP address"
            ),
            MakeCertError::BadDays(days) => {
                write!(f, "make-cert: --days must be from 1 to 36500, not {days}")
            }
            MakeCertError::Exists(path) => write!(
                f,
                "make-cert: {} exists; remove it first or choose another --dir",
                path.display()
            ),
            MakeCertError::Write(path, e) => {
                write!(f, "make-cert: cannot write {}: {e}", path.display())
            }
            MakeCertError::Generate(e) => write!(f, "make-cert: {e}"),
        }
    }
}

impl std::error::Error for MakeCertError {}

/// The files `make-cert` wrote.
#[derive(Debug)]
pub struct MadeCert {
    /// The certificate (PEM), to give `serve --tls-cert` and `connect --ca`.
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600), to give `serve --tls-key`.
    pub key: PathBuf,
    /// The names the certificate is valid for.
    pub names: Vec<String>,
}

impl MadeCert {
    /// What `make-cert` prints: the files and the command lines that use them.
    pub fn instructions(&self, days: u32) -> String {
        let (cert, key) = (self.cert.display(), self.key.display());
        let dial = match self.names[0].parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.names[0].clone(),
        };
        // Loopback unless NAME is for other machines to dial (the project's default).
        let listen = match self.names.len() > LOCAL_NAMES.len() {
            true => "0.0.0.0:7879",
            false => "127.0.0.1:7879",
        };
        format!(
            "certificate: {cert} (self-signed, valid {days} days for {names})\n\
             key:         {key} (mode 0600)\n\
             serve:       miochat serve --tls-listen {listen} --tls-cert {cert} --tls-key {key}\n\
             connect:     miochat connect --tls --ca {cert} {dial}:7879\n",
            names = self.names.join(", "),
        )
    }
}

/// Makes the certificate and key `args` describe.
pub fn make_cert(args: &MakeCertArgs) -> Result<MadeCert, MakeCertError> {
    let names = names_for(&args.name)?;
    if !(1..=36_500).contains(&args.days) {
        return Err(MakeCertError::BadDays(args.days));
    }
    let dir = std::path::absolute(&args.dir)
        .map_err(|e| MakeCertError::Write(PathBuf::from(&args.dir), e))?;
    let file_stem = args.name.replace(':', "_");
    let cert_path = dir.join(format!("{file_stem}.cert.pem"));
    let key_path = dir.join(format!("{file_stem}.key.pem"));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(MakeCertError::Exists(path.clone()));
        }
    }
    let (cert_pem, key_pem) = generate(&names, args.days).map_err(MakeCertError::Generate)?;
    std::fs::create_dir_all(&dir).map_err(|e| MakeCertError::Write(dir.clone(), e))?;
    write_new(&key_path, key_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&cert_path, cert_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(MadeCert {
        cert: cert_path,
        key: key_path,
        names,
    })
}

/// NAME first, then the local names it is not already.
fn names_for(name: &str) -> Result<Vec<String>, MakeCertError> {
    let is_ip = name.parse::<IpAddr>().is_ok();
    let is_dns = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !is_ip && !is_dns {
        return Err(MakeCertError::BadName(name.to_string()));
    }
    let mut names = vec![name.to_string()];
    for local in LOCAL_NAMES {
        let same = match (name.parse::<IpAddr>(), local.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => name.eq_ignore_ascii_case(local),
        };
        if !same {
            names.push(local.to_string());
        }
    }
    Ok(names)
}

/// A self-signed end-entity certificate for `names` and its key, both PEM.
fn generate(names: &[String], days: u32) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = (names.iter())
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ia5String::try_from(name.as_str()).map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "miochat development certificate");
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A few minutes back, so a client whose clock is a little behind accepts it.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(days));
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `bytes` to a file that must not exist yet, created with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), MakeCertError> {
    let failed = |e| MakeCertError::Write(path.to_path_buf(), e);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => MakeCertError::Exists(path.to_path_buf()),
            _ => failed(e),
        })?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_name_and_add_the_local_ones_once() {
        let names = |name| names_for(name).map_err(|e| e.to_string());
        assert_eq!(
            names("chat.example.org"),
            Ok(vec![
                "chat.example.org".to_string(),
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into()
            ])
        );
        assert_eq!(
            names("LOCALHOST").map(|n| n.len()),
            Ok(3),
            "localhost is not repeated"
        );
        assert_eq!(
            names("0:0::1").map(|n| n.len()),
            Ok(3),
            "::1 is not repeated"
        );
        for bad in ["", "a/b", "-x.org", "a..b", "x y", "../key"] {
            assert!(names(bad).is_err(), "{bad:?} accepted");
        }
    }
}
