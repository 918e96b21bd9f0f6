//! Log setup: `simplelog` to stderr, level from `-v`/`-q`.
//!
//! Logging from a shard thread writes to stderr synchronously, so hot paths log at
//! `debug` or below, and per-connection error logging is capped (see `server::shard`).
//!
//! Colours only when stderr is a terminal: the logger's own "auto" choice looks at
//! `TERM` and `NO_COLOR` but not at where stderr goes, so without this check escape
//! codes would land in redirected log files.

use std::io::IsTerminal;

use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};

/// The level for the `-v` and `-q` switches: debug, warn, or info by default.
pub fn level(verbose: bool, quiet: bool) -> LevelFilter {
    match (verbose, quiet) {
        (true, _) => LevelFilter::Debug,
        (false, true) => LevelFilter::Warn,
        (false, false) => LevelFilter::Info,
    }
}

/// Installs the logger; a second call (as in tests) is ignored.
pub fn init(level: LevelFilter) {
    let config = ConfigBuilder::new()
        .set_thread_level(LevelFilter::Debug)
        .set_target_level(LevelFilter::Off)
        .set_time_format_rfc3339()
        .build();
    let colors = color_choice(std::io::stderr().is_terminal());
    let _ = TermLogger::init(level, config, TerminalMode::Stderr, colors);
}

/// Colours (still subject to `NO_COLOR` and `TERM`) only on a terminal.
fn color_choice(stderr_is_terminal: bool) -> ColorChoice {
    if stderr_is_terminal {
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
    fn no_colours_unless_stderr_is_a_terminal() {
        assert_eq!(color_choice(false), ColorChoice::Never);
        assert_eq!(color_choice(true), ColorChoice::Auto);
    }
}
