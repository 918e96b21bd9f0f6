//! Log setup: `simplelog` to stderr or to a file, with a level, a file and a
//! protocol trace that a reload may change while the server runs.
//!
//! Logging from a shard thread writes synchronously, so hot paths log at `debug` or
//! below, and per-connection error logging is capped (see `server::shard`).
//!
//! Why a switch in front of `simplelog`: its loggers fix their level and their
//! output when built. Ours are built at `Trace` and the level is `log`'s global
//! maximum ([`log::set_max_level`]), which the `log!` macros check before anything
//! else, so a reload changes it with one atomic store and a filtered-out line costs
//! one comparison. A new output (another file, or the same path reopened after
//! logrotate moved the old file away) is a new logger swapped in behind a lock that
//! only logging takes.
//!
//! Colours only when stderr is a terminal and `NO_COLOR` is unset: the logger's own
//! "auto" choice looks at `TERM` but not at where stderr goes, so without this check
//! escape codes would land in redirected log files.
//!
//! The protocol trace (`[log] trace`, `-vv`) logs each line in and out with its
//! connection; [`tracing`] is one relaxed load, the only cost while it is off.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use log::{Log, Metadata, Record};
use simplelog::{
    ColorChoice, Config, ConfigBuilder, LevelFilter, TermLogger, TerminalMode, WriteLogger,
};

use crate::protocol::redact::redact;

/// What the logs look like and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The most detailed level written.
    pub level: LevelFilter,
    /// Append to this file instead of writing to stderr.
    pub file: Option<PathBuf>,
    /// Log every line in and out (passwords masked).
    pub trace: bool,
}

impl LogSettings {
    /// Stderr at `level`, no trace.
    pub fn stderr(level: LevelFilter) -> Self {
        LogSettings {
            level,
            file: None,
            trace: false,
        }
    }
}

/// The installed logger: the output in force and the settings it was made from.
struct Switch {
    output: RwLock<Box<dyn Log>>,
    settings: Mutex<LogSettings>,
}

impl Log for Switch {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        let output = self.output.read().unwrap_or_else(PoisonError::into_inner);
        output.log(record);
    }

    fn flush(&self) {
        let output = self.output.read().unwrap_or_else(PoisonError::into_inner);
        output.flush();
    }
}

static SWITCH: OnceLock<Switch> = OnceLock::new();
static TRACE: AtomicBool = AtomicBool::new(false);

/// Installs the logger on stderr at `level`; a second call (as in tests) is ignored.
pub fn init(level: LevelFilter) {
    if SWITCH.get().is_none() {
        let _ = install(&LogSettings::stderr(level));
    }
}

/// Installs the logger, or changes the one installed (a reload): level, trace and
/// output. A file that cannot be opened is an error and changes nothing.
pub fn install(settings: &LogSettings) -> Result<(), String> {
    let output = output_for(settings.file.as_deref())?;
    let mut installed = false;
    let switch = SWITCH.get_or_init(|| {
        installed = true;
        Switch {
            output: RwLock::new(stderr_output()),
            settings: Mutex::new(settings.clone()),
        }
    });
    if installed && log::set_logger(switch).is_err() {
        return Err("another logger is installed".into());
    }
    *switch
        .output
        .write()
        .unwrap_or_else(PoisonError::into_inner) = output;
    *switch
        .settings
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = settings.clone();
    TRACE.store(settings.trace, Relaxed);
    // The trace is logged at info: it shows even when the level is warn or error.
    let floor = if settings.trace {
        LevelFilter::Info
    } else {
        LevelFilter::Off
    };
    log::set_max_level(settings.level.max(floor));
    Ok(())
}

/// Opens the log file again at its path (SIGHUP: logrotate moved the old one away).
/// Logging to stderr, or before any logger, it does nothing; a file that cannot be
/// opened keeps the old one and is logged.
pub fn reopen() {
    let Some(switch) = SWITCH.get() else { return };
    let settings = switch
        .settings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(path) = &settings.file else { return };
    match open_append(path) {
        Ok(file) => {
            let output: Box<dyn Log> = WriteLogger::new(LevelFilter::Trace, config(), file);
            *switch
                .output
                .write()
                .unwrap_or_else(PoisonError::into_inner) = output;
            log::info!("log file {} reopened", path.display());
        }
        Err(e) => log::error!("cannot reopen the log file: {e}; still writing the old one"),
    }
}

/// True while the protocol trace is on: one relaxed load, all it costs when off.
#[inline]
pub fn tracing() -> bool {
    TRACE.load(Relaxed)
}

/// Logs one line of connection `conn` in the trace, secrets masked; `inbound` is
/// the client's line, else the server's.
pub fn trace_line(conn: &dyn std::fmt::Display, inbound: bool, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let arrow = if inbound { ">>" } else { "<<" };
    for line in text.lines().filter(|l| !l.is_empty()) {
        log::info!("trace {conn} {arrow} {}", redact(line));
    }
}

fn config() -> Config {
    ConfigBuilder::new()
        .set_thread_level(LevelFilter::Debug)
        .set_target_level(LevelFilter::Off)
        .set_time_format_rfc3339()
        .build()
}

/// A logger for `file`, or for stderr; built at `Trace` (the global maximum filters).
fn output_for(file: Option<&Path>) -> Result<Box<dyn Log>, String> {
    match file {
        Some(path) => Ok(WriteLogger::new(
            LevelFilter::Trace,
            config(),
            open_append(path)?,
        )),
        None => Ok(stderr_output()),
    }
}

fn stderr_output() -> Box<dyn Log> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colors = color_choice(std::io::stderr().is_terminal(), no_color);
    TermLogger::new(LevelFilter::Trace, config(), TerminalMode::Stderr, colors)
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log file {}: {e}", path.display()))
}

/// Colours (still subject to `TERM`) only on a terminal, and never with `NO_COLOR`.
fn color_choice(stderr_is_terminal: bool, no_color: bool) -> ColorChoice {
    if stderr_is_terminal && !no_color {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    }
}

/// For tests: logs at warn level unless `MIOCHAT_LOG` names another level.
pub fn init_for_tests() {
    let level = std::env::var("MIOCHAT_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(LevelFilter::Warn);
    init(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_colours_unless_stderr_is_a_terminal_and_no_color_is_unset() {
        assert_eq!(color_choice(false, false), ColorChoice::Never);
        assert_eq!(color_choice(true, false), ColorChoice::Auto);
        assert_eq!(color_choice(true, true), ColorChoice::Never);
    }
}
