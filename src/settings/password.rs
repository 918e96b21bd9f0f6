//! `miochat config hash-password`: a password in, the argon2id PHC string for an
//! `[[oper]]` table out.
//!
//! On a terminal the password is typed twice without echo (crossterm's raw mode,
//! already a dependency for the client, instead of a crate for this alone); from a
//! pipe, one line of stdin is the password, so scripts and tests can feed it.

use std::io::{BufRead, IsTerminal, Read, Write};

use argon2::{Argon2, PasswordHasher};

/// Shortest password accepted for an operator.
pub const MIN_OPER_PASSWORD: usize = 8;

/// Reads the password (from the terminal, twice, or one line of stdin) and returns
/// its argon2id hash.
pub fn run() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt("Password: ")?;
        let again = prompt("Again: ")?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    hash(&password)
}

/// The argon2id PHC string of `password` (the accounts' parameters).
pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_OPER_PASSWORD {
        return Err(format!(
            "an operator password has at least {MIN_OPER_PASSWORD} characters"
        ));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// One line typed on the terminal without echo (Enter ends it, Ctrl-C gives up).
fn prompt(label: &str) -> Result<String, String> {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{label}");
    let _ = stderr.flush();
    crossterm::terminal::enable_raw_mode().map_err(|e| format!("terminal: {e}"))?;
    let typed = read_hidden();
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = writeln!(stderr);
    typed
}

fn read_hidden() -> Result<String, String> {
    let mut typed = Vec::new();
    for byte in std::io::stdin().lock().bytes() {
        match byte.map_err(|e| format!("reading the terminal: {e}"))? {
            b'\r' | b'\n' => break,
            3 | 4 => return Err("cancelled".into()),
            8 | 127 => {
                typed.pop();
            }
            byte => typed.push(byte),
        }
    }
    String::from_utf8(typed).map_err(|_| "the password is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_hash_is_a_valid_oper_password() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert_eq!(crate::settings::convert::check_hash(&phc), Ok(()));
        assert!(hash("short").is_err());
    }
}
