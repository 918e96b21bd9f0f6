//! `config example` and `config show`: a configuration printed back as TOML.
//!
//! Printed by hand from `keys.rs` rather than by `toml`'s serializer, so that the
//! keys come in a fixed, documented order with their help above them, keys that are
//! off by default can be shown commented out, and secrets can be masked.

use std::fmt::Write;

use super::keys::{KEYS, Key, TABLES};
use super::tables::FileConfig;

/// What secrets are shown as.
const MASKED: &str = "\"***\"";

/// Keys whose values are secrets (`config show` masks them; so does an `[[oper]]`
/// password).
const SECRETS: [&str; 2] = ["irc.password", "irc.cloak-key"];

/// The example file: every key with its default and its help; keys off by default
/// commented out with an example value; the `[[oper]]` table commented out.
pub fn example() -> Result<String, String> {
    let defaults = super::flatten(&FileConfig::defaults())?;
    let mut out = String::from(EXAMPLE_HEAD);
    for table in TABLES.iter().filter(|t| **t != "oper") {
        let _ = write!(out, "\n[{table}]\n");
        for key in KEYS.iter().filter(|k| k.table == *table) {
            let _ = writeln!(out, "# {}", help(key));
            match (defaults.get(&key.dotted()), key.example) {
                (Some(value), _) => {
                    let _ = writeln!(out, "{} = {value}", key.name);
                }
                (None, example) => {
                    let example = example.unwrap_or("\"\"");
                    let _ = writeln!(out, "# {} = {example}", key.name);
                }
            }
        }
    }
    out.push_str(EXAMPLE_OPER);
    Ok(out)
}

/// A key's comment: its help, its flag, and whether a reload applies it.
fn help(key: &Key) -> String {
    let flag = key.flag.map(|f| format!("--{f}, "));
    let when = if key.live { "live" } else { "restart" };
    format!("{} [{}{when}]", key.help, flag.unwrap_or_default())
}

/// The configuration in force, every key given, secrets masked.
pub fn show(effective: &FileConfig) -> Result<String, String> {
    let keys = super::flatten(effective)?;
    let mut out = String::from(
        "# The configuration in force: defaults, the file, then the flags (secrets masked).\n",
    );
    for table in TABLES.iter().filter(|t| **t != "oper") {
        let _ = write!(out, "\n[{table}]\n");
        for key in KEYS.iter().filter(|k| k.table == *table) {
            let dotted = key.dotted();
            let Some(value) = keys.get(&dotted) else {
                continue;
            };
            if SECRETS.contains(&dotted.as_str()) {
                let _ = writeln!(out, "{} = {MASKED}", key.name);
            } else {
                let _ = writeln!(out, "{} = {value}", key.name);
            }
        }
    }
    for oper in &effective.oper {
        let name = toml::Value::String(oper.name.clone());
        let _ = write!(out, "\n[[oper]]\nname = {name}\npassword = {MASKED}\n");
        if !oper.masks.is_empty() {
            let masks = toml::Value::Array(
                (oper.masks.iter())
                    .map(|m| toml::Value::String(m.clone()))
                    .collect(),
            );
            let _ = writeln!(out, "masks = {masks}");
        }
    }
    Ok(out)
}

const EXAMPLE_HEAD: &str = "\
# miochat configuration: `miochat serve --config miochat.toml`.
#
# Every key is shown with its default; keys that are off by default are commented
# out. The flag in brackets, given to `miochat serve`, overrides the key. SIGHUP
# (or /rehash) reads the file again: keys marked [live] change at once, keys
# marked [restart] when the server restarts. Check a file with
# `miochat config check FILE`; see what is in force with `miochat config show`.
# Durations are whole seconds unless the key says ms; relative paths are relative
# to the server's working directory.
";

const EXAMPLE_OPER: &str = "
# Server operators: one [[oper]] table each [live]. The password is
# an argon2id hash printed by `miochat config hash-password`, never the password
# itself. masks (optional) are nick!user@host or address masks the operator must
# connect from; without them, anywhere.
#
# [[oper]]
# name = \"admin\"
# password = \"$argon2id$v=19$m=19456,t=2,p=1$...\"
# masks = [\"*!*@127.0.0.1\", \"*!*@::1\"]
";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::check;

    #[test]
    fn the_example_parses_back_to_the_defaults() {
        let text = example().unwrap();
        let parsed = check::parse(&text).unwrap();
        assert_eq!(parsed.config, FileConfig::defaults());
    }

    #[test]
    fn uncommented_the_example_names_every_field_of_the_structs() {
        // Every commented-out key made live: the structs must know each of them, and
        // serializing them back must give exactly the keys of `keys.rs`.
        let text = example().unwrap();
        let keys_part = text.strip_suffix(EXAMPLE_OPER).unwrap();
        let mut live = String::new();
        for line in keys_part.lines() {
            let key_line = line.strip_prefix("# ").filter(|l| {
                let name = l.split(" = ").next().unwrap_or("");
                l.contains(" = ") && KEYS.iter().any(|k| k.name == name)
            });
            live.push_str(key_line.unwrap_or(line));
            live.push('\n');
        }
        let parsed = check::parse(&live).unwrap();
        let given = crate::settings::flatten(&parsed.config).unwrap();
        let named: Vec<String> = KEYS.iter().map(|k| k.dotted()).collect();
        let mut given: Vec<String> = given.into_keys().collect();
        let mut named = named;
        given.sort();
        named.sort();
        assert_eq!(given, named);
    }

    #[test]
    fn show_masks_secrets() {
        let mut config = FileConfig::defaults();
        config.irc.password = Some("hunter2".into());
        config.irc.cloak_key = Some("sesame".into());
        config.oper.push(crate::settings::tables::OperTable {
            name: "root".into(),
            password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            masks: vec!["*!*@127.0.0.1".into()],
        });
        let shown = show(&config).unwrap();
        assert!(
            !shown.contains("hunter2") && !shown.contains("sesame"),
            "{shown}"
        );
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("password = \"***\""), "{shown}");
        assert!(shown.contains("masks = [\"*!*@127.0.0.1\"]"), "{shown}");
    }
}
