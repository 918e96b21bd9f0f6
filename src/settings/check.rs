//! Reading a configuration file with positions: every problem is reported at its
//! line and column, and as many at once as can be found.
//!
//! Why not `toml::from_str` alone: `serde` stops at the first error and knows only
//! "unknown field". The document is first parsed into `toml`'s spanned tree; unknown
//! tables and keys are found by walking it against `keys.rs` (all of them, each with
//! a "did you mean" when a known key is close); then each table is deserialized on
//! its own, so a wrong type in `[limits]` does not hide one in `[flood]`. The spans
//! of the keys that were given are kept, so that a problem found later (a bad
//! address, a missing file, a limit out of range) can still point into the file.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::keys::{self, OPER_KEYS, TABLES};
use super::tables::{FileConfig, OperTable};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key it is about (`limits.max-line`, `oper.2.password`), if one.
    pub key: Option<String>,
    /// Where in the file: 1-based line and column.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub text: String,
    /// What kind of problem (how `serve` words it, and its exit status).
    pub kind: Kind,
}

/// How a problem is introduced when `serve` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// As it is (a bad address, a file that cannot be read).
    Plain,
    /// The limits contradict each other or are out of range.
    Invalid,
    /// A certificate or key that cannot be used (`serve` exits with status 2).
    Tls,
}

impl Kind {
    /// The words before the problem: `invalid configuration: `, `TLS: ` or none.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Plain => "",
            Kind::Invalid => "invalid configuration: ",
            Kind::Tls => "TLS: ",
        }
    }
}

impl Problem {
    /// A problem with `key`, not yet placed.
    pub fn about(key: impl Into<String>, text: impl Into<String>) -> Self {
        Problem {
            key: Some(key.into()),
            at: None,
            text: text.into(),
            kind: Kind::Plain,
        }
    }

    /// The same, of another kind.
    pub fn of_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{line}:{column}: {}", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// A file that parsed, with where each of its keys' values is.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// What it says.
    pub config: FileConfig,
    /// `table.key` (and `oper.N.key`, 1-based) → its value's line and column.
    positions: HashMap<String, (usize, usize)>,
}

impl Parsed {
    /// Where `key`'s value is in the file, if the file gives it.
    pub fn position(&self, key: &str) -> Option<(usize, usize)> {
        self.positions.get(key).copied()
    }

    /// True if the file gives `key`.
    pub fn gives(&self, key: &str) -> bool {
        self.positions.contains_key(key)
    }
}

/// Parses a configuration file; the problems are every unknown key and every value
/// of the wrong type, with positions.
pub fn parse(text: &str) -> Result<Parsed, Vec<Problem>> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => return Err(vec![from_toml(text, &e, None)]),
    };
    let mut walk = Walk {
        text,
        problems: Vec::new(),
        positions: HashMap::new(),
    };
    let config = walk.document(root.get_ref());
    if walk.problems.is_empty() {
        Ok(Parsed {
            config,
            positions: walk.positions,
        })
    } else {
        walk.problems.sort_by_key(|p| p.at);
        Err(walk.problems)
    }
}

struct Walk<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    positions: HashMap<String, (usize, usize)>,
}

impl Walk<'_> {
    fn document(&mut self, root: &DeTable<'_>) -> FileConfig {
        let mut config = FileConfig::default();
        for (name, value) in root.iter() {
            let table = name.get_ref().as_ref();
            if !TABLES.contains(&table) {
                let hint = match keys::closest(table, TABLES) {
                    Some(known) => format!("; did you mean `{known}`?"),
                    None => format!("; the tables are {}", TABLES.join(", ")),
                };
                self.problem(name.span(), format!("unknown table `{table}`{hint}"));
                continue;
            }
            if table == "oper" {
                config.oper = self.opers(value);
            } else {
                self.keys_of(table, value);
                self.table(&mut config, table, value);
            }
        }
        config
    }

    /// Records where each key of `[table]` is, and reports the unknown ones.
    fn keys_of(&mut self, table: &str, value: &Spanned<DeValue<'_>>) {
        let DeValue::Table(entries) = value.get_ref() else {
            return; // the deserializer says what it should be
        };
        let known = keys::KEYS.iter().filter(|k| k.table == table);
        for (key, value) in entries.iter() {
            let name = key.get_ref().as_ref();
            if keys::find(table, name).is_some() {
                let at = position(self.text, value.span().start);
                self.positions.insert(format!("{table}.{name}"), at);
                continue;
            }
            let elsewhere = keys::KEYS.iter().find(|k| k.name == name);
            let hint = match (
                keys::closest(name, known.clone().map(|k| k.name)),
                elsewhere,
            ) {
                (Some(close), _) => format!("; did you mean `{close}`?"),
                (None, Some(other)) => format!("; `{name}` belongs in [{}]", other.table),
                (None, None) => String::new(),
            };
            let text = format!("unknown key `{name}` in [{table}]{hint}");
            self.problem(key.span(), text);
        }
    }

    /// Deserializes one table into its place in `config`.
    fn table(&mut self, config: &mut FileConfig, table: &str, value: &Spanned<DeValue<'_>>) {
        match table {
            "listen" => config.listen = self.typed(value),
            "limits" => config.limits = self.typed(value),
            "flood" => config.flood = self.typed(value),
            "tls" => config.tls = self.typed(value),
            "irc" => config.irc = self.typed(value),
            "http" => config.http = self.typed(value),
            "cluster" => config.cluster = self.typed(value),
            "store" => config.store = self.typed(value),
            _ => config.log = self.typed(value),
        }
    }

    fn opers(&mut self, value: &Spanned<DeValue<'_>>) -> Vec<OperTable> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(value.span(), "`oper` must be [[oper]] tables".into());
            return Vec::new();
        };
        let mut opers = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let n = index + 1;
            if let DeValue::Table(entries) = item.get_ref() {
                for (key, value) in entries.iter() {
                    let name = key.get_ref().as_ref();
                    if OPER_KEYS.contains(&name) {
                        let at = position(self.text, value.span().start);
                        self.positions.insert(format!("oper.{n}.{name}"), at);
                    } else {
                        let hint = keys::closest(name, OPER_KEYS)
                            .map_or(String::new(), |k| format!("; did you mean `{k}`?"));
                        self.problem(
                            key.span(),
                            format!("unknown key `{name}` in [[oper]]{hint}"),
                        );
                    }
                }
            }
            opers.push(self.typed(item));
        }
        opers
    }

    fn typed<T: DeserializeOwned + Default>(&mut self, value: &Spanned<DeValue<'_>>) -> T {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(typed) => typed,
            Err(e) => {
                // Unknown keys were reported above, with a better message.
                if !e.message().starts_with("unknown field") {
                    self.problems
                        .push(from_toml(self.text, &e, Some(value.span())));
                }
                T::default()
            }
        }
    }

    fn problem(&mut self, span: Range<usize>, text: String) {
        self.problems.push(Problem {
            key: None,
            at: Some(position(self.text, span.start)),
            text,
            kind: Kind::Plain,
        });
    }
}

/// A `toml` error as a problem at its place (or at `fallback`).
fn from_toml(text: &str, e: &toml::de::Error, fallback: Option<Range<usize>>) -> Problem {
    let at = e.span().or(fallback).map(|span| position(text, span.start));
    let message = e.message().trim().replace('\n', " ");
    Problem {
        key: None,
        at,
        text: message,
        kind: Kind::Plain,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_good_file_parses_with_positions() {
        let text = "[limits]\nmax-per-ip = 3\n\n[[oper]]\nname = \"root\"\npassword = \"x\"\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.config.limits.max_per_ip, Some(3));
        assert_eq!(parsed.position("limits.max-per-ip"), Some((2, 14)));
        assert_eq!(parsed.position("oper.1.password"), Some((6, 12)));
        assert_eq!(parsed.config.oper[0].name, "root");
    }

    #[test]
    fn every_unknown_key_is_reported_with_a_suggestion() {
        let text =
            "[limits]\nmax-per-ipp = 3\nmax_line = 100\n[flod]\nrate = 1\n[flood]\nmax-line = 5\n";
        let problems = parse(text).unwrap_err();
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "2:1: unknown key `max-per-ipp` in [limits]; did you mean `max-per-ip`?",
                "3:1: unknown key `max_line` in [limits]; did you mean `max-line`?",
                "4:2: unknown table `flod`; did you mean `flood`?",
                "7:1: unknown key `max-line` in [flood]; `max-line` belongs in [limits]",
            ]
        );
    }

    #[test]
    fn wrong_types_are_reported_per_table() {
        let text = "[limits]\nmax-line = \"long\"\n[flood]\nrate = -1\n";
        let problems = parse(text).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].at, Some((2, 12)), "{problems:?}");
        assert_eq!(problems[1].at, Some((4, 8)), "{problems:?}");
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let problems = parse("[limits\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].at.map(|(line, _)| line), Some(1));
    }
}
