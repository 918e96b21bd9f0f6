//! SCRAM-SHA-256 (RFC 5802, RFC 7677) for SASL: the credentials kept per account,
//! and the three messages of one exchange, as pure functions.
//!
//! Why SCRAM beside PLAIN: with PLAIN the password crosses the wire (inside TLS, one
//! hopes) and the server sees it; with SCRAM the client proves it knows the password
//! without sending it, and the server proves it knows the account's keys. The server
//! keeps no password either: only a salt, an iteration count and two keys derived
//! from the salted password (`StoredKey`, `ServerKey`), made when the password is set.
//! Computing them costs 4096 rounds of PBKDF2 (a few milliseconds), on the auth thread;
//! checking a proof costs three HMACs, cheap enough for a shard.

use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// PBKDF2 rounds for new credentials (RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// What the server keeps to check a SCRAM-SHA-256 login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The PBKDF2 salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 rounds.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The credentials of `password` with `salt`.
pub fn credentials(password: &str, salt: &[u8], iterations: u32) -> Credentials {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    Credentials {
        salt: salt.to_vec(),
        iterations,
        stored_key: Sha256::digest(&client_key).to_vec(),
        server_key: hmac(&salted, b"Server Key"),
    }
}

/// The client's first message (`n,,n=ACCOUNT,r=NONCE`), read: the account, the
/// client's nonce and the message without its GS2 header. `None` if malformed or
/// asking for channel binding (not offered).
pub fn client_first(message: &str) -> Option<(String, String, String)> {
    let bare = message
        .strip_prefix("n,,")
        .or_else(|| message.strip_prefix("y,,"))?;
    let mut account = None;
    let mut nonce = None;
    for field in bare.split(',') {
        match field.split_once('=') {
            Some(("n", name)) => account = Some(name.replace("=2C", ",").replace("=3D", "=")),
            Some(("r", value)) if !value.is_empty() => nonce = Some(value.to_string()),
            Some(("m", _)) => return None, // mandatory extensions: none known
            _ => {}
        }
    }
    Some((account?, nonce?, bare.to_string()))
}

/// The server's first message for `creds`: the combined nonce, the salt and the
/// rounds.
pub fn server_first(nonce: &str, creds: &Credentials) -> String {
    let salt = Base64::encode_string(&creds.salt);
    format!("r={nonce},s={salt},i={}", creds.iterations)
}

/// Checks the client's final message (`c=biws,r=NONCE,p=PROOF`) against the exchange
/// so far; returns the server's final message (`v=SIGNATURE`) if the proof is right.
pub fn client_final(
    message: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    creds: &Credentials,
) -> Option<String> {
    let (without_proof, proof) = message.rsplit_once(",p=")?;
    let mut fields = without_proof.split(',');
    let binding = fields.next()?.strip_prefix("c=")?;
    let echoed = fields.next()?.strip_prefix("r=")?;
    // "biws" is base64 of "n,,"; "eSws" of "y,,": no channel binding either way.
    if !matches!(binding, "biws" | "eSws") || echoed != nonce {
        return None;
    }
    let proof = Base64::decode_vec(proof).ok()?;
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&creds.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if Sha256::digest(&client_key).as_slice() != creds.stored_key.as_slice() {
        return None;
    }
    let server_signature = hmac(&creds.server_key, auth_message.as_bytes());
    Some(format!("v={}", Base64::encode_string(&server_signature)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The exchange of RFC 7677, section 3.
    #[test]
    fn the_rfc_7677_example_logs_in() {
        let salt = Base64::decode_vec("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = credentials("pencil", &salt, 4096);
        let (account, client_nonce, bare) =
            client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(
            (account.as_str(), client_nonce.as_str()),
            ("user", "rOprNGfwEbeRWgbNEkqO")
        );
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let first = server_first(nonce, &creds);
        assert_eq!(
            first,
            format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        );
        let last = format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_final = client_final(&last, &bare, &first, nonce, &creds).unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = format!("c=biws,r={nonce},p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(client_final(&wrong, &bare, &first, nonce, &creds), None);
        let other_nonce = "c=biws,r=someone-else,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            client_final(other_nonce, &bare, &first, nonce, &creds),
            None
        );
        assert_eq!(client_first("p=tls-unique,,n=user,r=x"), None);
    }
}
