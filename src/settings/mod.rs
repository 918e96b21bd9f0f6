//! The configuration file (`miochat serve --config PATH`): TOML read with `serde`,
//! stacked under the command line's flags, checked with positions, printed back
//! (`config example`, `config show`) and read again on SIGHUP.
//!
//! Why a layer of its own, outside `server/`: the server takes a finished
//! `ServerConfig` and knows nothing of files or flags (tests build one in code);
//! this module is where a file's text becomes one, and where a reload's "what
//! changed, and can it change now" is answered ([`FileSource`]).
//!
//! Three layers, each a [`FileConfig`] whose keys are all optional: the built-in
//! defaults, the file, the flags actually given. Stacked in that order (a later
//! layer's keys win), they make the configuration in force, which `convert.rs`
//! turns into the server's types. No `--config` means the defaults and the flags:
//! exactly what `serve` did before there was a file.
//!
//! | file         | role                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `tables.rs`  | the `serde` structs, and the defaults                        |
//! | `keys.rs`    | every key: flag, live or restart, help; "did you mean"       |
//! | `check.rs`   | parsing with line and column, unknown keys, wrong types      |
//! | `convert.rs` | to `ServerConfig`, MOTD, operators, log settings             |
//! | `render.rs`  | `config example` and `config show`                           |
//! | `password.rs`| `config hash-password`                                       |

pub mod check;
pub mod convert;
pub mod keys;
pub mod password;
pub mod render;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::logging::LogSettings;
use crate::server::ServerConfig;
use crate::server::config::default_workers;
use crate::server::live::{ConfigSource, Reloaded};

use check::{Kind, Parsed, Problem};
pub use tables::FileConfig;

/// A configuration that loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The server's configuration, validated.
    pub server: ServerConfig,
    /// The logger's.
    pub log: LogSettings,
    /// Every key in force (defaults, file and flags stacked), for `config show`.
    pub effective: FileConfig,
}

/// A configuration that did not load: one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `PATH:LINE:COLUMN: what` for the file's problems; the flag's wording for
    /// a flag's.
    pub lines: Vec<String>,
    /// A certificate or key is the problem (`serve` exits with status 2).
    pub tls: bool,
}

impl Failure {
    fn one(line: String) -> Self {
        Failure {
            lines: vec![line],
            tls: false,
        }
    }
}

/// Loads the configuration: the file at `path` (if any) under `flags`.
pub fn load(path: Option<&Path>, flags: &FileConfig) -> Result<Loaded, Failure> {
    let parsed = match path {
        Some(path) => read(path)?,
        None => Parsed::default(),
    };
    let effective = effective(&parsed.config, flags).map_err(Failure::one)?;
    match convert::convert(&effective) {
        Ok(converted) => Ok(Loaded {
            server: converted.server,
            log: converted.log,
            effective,
        }),
        Err(problems) => {
            let flagged = given(flags).map_err(Failure::one)?;
            let file = path.map(|path| (path, &parsed));
            let mut placed: Vec<_> = (problems.iter())
                .map(|p| present(p, file, &flagged))
                .collect();
            placed.sort_by_key(|(at, _)| at.unwrap_or((usize::MAX, 0)));
            Err(Failure {
                tls: problems.iter().any(|p| p.kind == Kind::Tls),
                lines: placed.into_iter().map(|(_, line)| line).collect(),
            })
        }
    }
}

/// `config check PATH`: the file alone, as `serve --config PATH` would load it.
pub fn check(path: &Path) -> Result<Loaded, Failure> {
    load(Some(path), &FileConfig::default())
}

/// The file parsed, or its problems as `PATH:LINE:COLUMN: what`.
fn read(path: &Path) -> Result<Parsed, Failure> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::one(format!("cannot read {shown}: {e}")))?;
    check::parse(&text).map_err(|problems| Failure {
        lines: problems.iter().map(|p| format!("{shown}:{p}")).collect(),
        tls: false,
    })
}

/// Defaults, then `file`, then `flags`; `workers` filled in for this machine.
pub fn effective(file: &FileConfig, flags: &FileConfig) -> Result<FileConfig, String> {
    let mut stacked = stack(&stack(&FileConfig::defaults(), file)?, flags)?;
    stacked.listen.workers.get_or_insert_with(default_workers);
    Ok(stacked)
}

/// `upper`'s keys over `lower`'s.
fn stack(lower: &FileConfig, upper: &FileConfig) -> Result<FileConfig, String> {
    let mut table = toml::Table::try_from(lower).map_err(|e| e.to_string())?;
    merge(
        &mut table,
        toml::Table::try_from(upper).map_err(|e| e.to_string())?,
    );
    table.try_into().map_err(|e: toml::de::Error| e.to_string())
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(lower)), toml::Value::Table(upper)) => merge(lower, upper),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Every key `config` gives, as `table.key`, with its value (`oper` as one key).
pub fn flatten(config: &FileConfig) -> Result<BTreeMap<String, toml::Value>, String> {
    let table = toml::Table::try_from(config).map_err(|e| e.to_string())?;
    let mut keys = BTreeMap::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(entries) => {
                for (key, value) in entries {
                    keys.insert(format!("{name}.{key}"), value);
                }
            }
            value => {
                keys.insert(name, value);
            }
        }
    }
    Ok(keys)
}

fn given(flags: &FileConfig) -> Result<BTreeSet<String>, String> {
    Ok(flatten(flags)?.into_keys().collect())
}

/// One problem as `serve` or `config check` says it: at its place in the file, in
/// the file's words, if the file gave the value; else in the flags' words. The
/// position comes too, to sort by.
fn present(
    problem: &Problem,
    file: Option<(&Path, &Parsed)>,
    flagged: &BTreeSet<String>,
) -> (Option<(usize, usize)>, String) {
    let prefix = problem.kind.prefix();
    let (Some(key), Some((path, parsed))) = (&problem.key, file) else {
        return (None, format!("{prefix}{}", problem.text));
    };
    if flagged.contains(key) {
        return (None, format!("{prefix}{}", problem.text));
    }
    let mut text = in_key_terms(&problem.text);
    if !text.contains(key.as_str()) {
        text = format!("{key}: {text}");
    }
    let at = parsed.position(key);
    let line = match at {
        Some((line, column)) => format!("{}:{line}:{column}: {prefix}{text}", path.display()),
        None => format!("{}: {prefix}{text}", path.display()),
    };
    (at, line)
}

/// `text` with each `--flag` that has a key written as that key (`limits.sendq`).
pub fn in_key_terms(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        match keys::by_flag(&after[..end]) {
            Some(key) => out.push_str(&key.dotted()),
            None => out.push_str(&rest[at..at + 2 + end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// What a reload reads: the `--config` file (if any) under the same flags as at
/// start-up, so flags still win. It knows what was in force at start-up, to tell
/// which changed keys need a restart.
#[derive(Debug)]
pub struct FileSource {
    path: Option<PathBuf>,
    flags: FileConfig,
    /// What the server started with (restart-only keys stay so until a restart).
    started: FileConfig,
    /// What the last good load said (live keys change with each reload).
    previous: FileConfig,
    log: LogSettings,
}

impl FileSource {
    /// The source of a server started from `loaded`, read from `path` under `flags`.
    pub fn new(path: Option<PathBuf>, flags: FileConfig, loaded: &Loaded) -> Self {
        FileSource {
            path,
            flags,
            started: loaded.effective.clone(),
            previous: loaded.effective.clone(),
            log: loaded.log.clone(),
        }
    }
}

impl ConfigSource for FileSource {
    fn reload(&mut self) -> Result<Reloaded, String> {
        let loaded = load(self.path.as_deref(), &self.flags).map_err(|f| f.lines.join("; "))?;
        let started = flatten(&self.started)?;
        let (previous, now) = (flatten(&self.previous)?, flatten(&loaded.effective)?);
        let live = |key: &str| key == "oper" || keys::is_live(key);
        let differs = |a: &BTreeMap<String, toml::Value>, key: &String| a.get(key) != now.get(key);
        let every: BTreeSet<&String> = started.keys().chain(now.keys()).collect();
        let needs_restart: Vec<String> = (every.iter())
            .filter(|key| !live(key) && differs(&started, key))
            .map(|key| key.to_string())
            .collect();
        if loaded.log != self.log {
            crate::logging::install(&loaded.log)?;
        }
        let changed = previous.keys().chain(now.keys()).collect::<BTreeSet<_>>();
        for key in changed
            .into_iter()
            .filter(|key| live(key) && differs(&previous, key))
        {
            log::info!("reload: {key} changed");
        }
        let operators = &loaded.server.operators;
        log::info!(
            "reload: {} operator(s), MOTD of {} line(s)",
            operators.opers.len(),
            operators.motd.len()
        );
        self.previous = loaded.effective;
        self.log = loaded.log;
        Ok(Reloaded {
            config: loaded.server,
            needs_restart,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_defaults() {
        let file = check::parse("[limits]\nmax-per-ip = 3\nsendq = 99999\n").unwrap();
        let mut flags = FileConfig::default();
        flags.limits.max_per_ip = Some(7);
        let stacked = effective(&file.config, &flags).unwrap();
        assert_eq!(stacked.limits.max_per_ip, Some(7));
        assert_eq!(stacked.limits.sendq, Some(99999));
        assert_eq!(
            stacked.limits.max_line,
            FileConfig::defaults().limits.max_line
        );
        assert!(stacked.listen.workers.is_some());
    }

    #[test]
    fn no_file_and_no_flags_is_the_old_default_configuration() {
        let loaded = load(None, &FileConfig::default()).unwrap();
        let mut expected =
            ServerConfig::new(crate::settings::convert::resolve("127.0.0.1:7878").unwrap());
        expected.handle_signals = true;
        expected.store = Some(crate::server::store::StoreConfig {
            dir: "miochat-data".into(),
            history_sync: std::time::Duration::from_millis(100),
            history_days: 30,
            history_max: 100_000,
        });
        assert_eq!(format!("{:?}", loaded.server), format!("{expected:?}"));
    }

    #[test]
    fn flag_names_become_key_names() {
        assert_eq!(
            in_key_terms("--sendq must be at least twice --max-line plus 128"),
            "limits.sendq must be at least twice limits.max-line plus 128"
        );
        assert_eq!(in_key_terms("--nonsense stays"), "--nonsense stays");
    }
}
