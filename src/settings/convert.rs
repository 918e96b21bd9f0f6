//! From a complete `FileConfig` (defaults, file and flags stacked) to the server's
//! `ServerConfig` and the logger's settings, with every problem tied to its key.
//!
//! The messages are worded as the command line's always were (`--hosts is cloak or
//! address`), because most servers are started with flags and scripts read those
//! lines; `mod.rs` rewords them in key names when the value came from the file.
//! The range checks are `ServerConfig::validate`'s, not repeated here: its message
//! names the flag, and the flag names the key.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use argon2::{ARGON2ID_IDENT, PasswordHash};
use simplelog::LevelFilter;

use crate::logging::LogSettings;
use crate::server::ServerConfig;
use crate::server::config::{BackplaneConfig, ConnectRate, FloodLimit, TlsFiles, default_workers};
use crate::server::operators::{OperSpec, OperatorsConfig};
use crate::server::store::StoreConfig;

use super::check::{Kind, Problem};
use super::tables::{FileConfig, OperTable};

/// What a complete configuration turns into.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The server's configuration, validated.
    pub server: ServerConfig,
    /// The logger's.
    pub log: LogSettings,
}

/// `--tls-cert` without `--tls-key`, or the reverse.
pub const TLS_PAIR: &str = "--tls-cert and --tls-key go together";

/// Turns a complete configuration into the server's, or says every problem found.
pub fn convert(c: &FileConfig) -> Result<Converted, Vec<Problem>> {
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut problems = listen(c, &mut config);
    let mut at = |key: &str, result: Result<(), String>| {
        if let Err(text) = result {
            problems.push(Problem::about(key, text));
        }
    };
    at("store.data-dir", store(c, &mut config));
    at("cluster.backplane", backplane(c, &mut config));
    at("irc.hosts", hosts(c, &mut config));
    at("http.trusted-proxies", proxies(c, &mut config));
    at("irc.motd", motd(c, &mut config));
    limits(c, &mut config);
    problems.extend(opers(&c.oper, &mut config.operators));
    let log = match log_settings(c) {
        Ok(log) => Some(log),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    if let Err(problem) = tls(c, &mut config) {
        problems.push(problem);
    }
    // The range checks run even after other problems (what failed above keeps its
    // default here), so that one `config check` reports them all.
    let config = config
        .validate()
        .map_err(|text| problems.push(flag_problem(text, Kind::Invalid)));
    match (config, log) {
        (Ok(server), Some(log)) if problems.is_empty() => Ok(Converted { server, log }),
        _ => Err(problems),
    }
}

/// A message that starts with `--flag`, tied to that flag's key.
fn flag_problem(text: String, kind: Kind) -> Problem {
    let flag = text
        .strip_prefix("--")
        .map(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .and_then(|mut words| words.next());
    let key = flag.and_then(super::keys::by_flag).map(|k| k.dotted());
    Problem {
        key,
        at: None,
        text,
        kind,
    }
}

fn secs(value: Option<u64>) -> Duration {
    Duration::from_secs(value.unwrap_or_default())
}

/// The listeners (each address its own key) and the threads.
fn listen(c: &FileConfig, config: &mut ServerConfig) -> Vec<Problem> {
    let l = &c.listen;
    let mut problems = Vec::new();
    let mut one = |key: &str, value: &Option<String>| {
        let resolved = value.as_deref().map(resolve).transpose();
        resolved.unwrap_or_else(|text| {
            problems.push(Problem::about(key, text));
            None
        })
    };
    let line = one(
        "listen.address",
        &Some(l.address.clone().unwrap_or_default()),
    );
    config.listen = line.unwrap_or(config.listen);
    config.irc_listen = one("listen.irc", &l.irc);
    config.tls_listen = one("listen.tls", &l.tls);
    config.irc_tls_listen = one("listen.irc-tls", &l.irc_tls);
    config.http_listen = one("listen.http", &l.http);
    config.workers = l.workers.unwrap_or_else(default_workers);
    config.nodelay = !l.nagle.unwrap_or_default();
    config.handle_signals = true;
    problems
}

/// Everything that is a plain number or name: it cannot be malformed once typed,
/// only out of range (`ServerConfig::validate`).
fn limits(c: &FileConfig, config: &mut ServerConfig) {
    let (l, f) = (&c.limits, &c.flood);
    config.max_connections = l.max_connections.unwrap_or_default();
    config.max_line = l.max_line.unwrap_or_default();
    config.sendq = l.sendq.unwrap_or_default();
    config.idle_timeout = Some(secs(l.idle_timeout)).filter(|t| !t.is_zero());
    config.max_per_address = l.max_per_ip.filter(|&n| n > 0);
    config.connect_rate = (l.connect_rate.filter(|&r| r > 0)).map(|rate| ConnectRate {
        rate,
        burst: l.connect_burst.unwrap_or_default(),
    });
    config.announce_max = l.announce_max.unwrap_or_default();
    config.shutdown_grace = Duration::from_millis(l.shutdown_grace_ms.unwrap_or_default());
    config.flood = (f.rate.filter(|&r| r > 0)).map(|rate| FloodLimit {
        rate,
        burst: f.burst.unwrap_or_default(),
    });
    config.flood_max_unread = f.max_unread.unwrap_or_default();
    config.flood_unread_timeout = secs(f.unread_timeout);
    config.history = c.store.history.unwrap_or_default();
    let irc = &c.irc;
    config.server_name = irc.server_name.clone().unwrap_or_default();
    config.irc_password = irc.password.clone();
    config.irc_ping = secs(irc.ping);
    config.irc_pong_timeout = secs(irc.pong_timeout);
    config.nick_grace = secs(irc.nick_grace);
    config.cloak_key = irc.cloak_key.clone();
    config.http_timeout = secs(c.http.timeout);
    config.ws_ping = secs(c.http.ws_ping);
    config.tls_handshake_timeout = secs(c.tls.handshake_timeout);
    config.max_tls_handshakes = c.tls.max_handshakes.unwrap_or_default();
}

fn store(c: &FileConfig, config: &mut ServerConfig) -> Result<(), String> {
    let s = &c.store;
    let dir = s.data_dir.as_deref().unwrap_or_default();
    if dir.trim().is_empty() {
        return Err("--data-dir needs a folder (or none, to keep nothing on disk)".into());
    }
    config.store = (dir != "none").then(|| StoreConfig {
        dir: dir.into(),
        history_sync: Duration::from_millis(s.history_sync_ms.unwrap_or_default().max(1)),
        history_days: s.history_days.unwrap_or_default(),
        history_max: s.history_max.unwrap_or_default(),
    });
    Ok(())
}

fn backplane(c: &FileConfig, config: &mut ServerConfig) -> Result<(), String> {
    let b = &c.cluster;
    config.backplane = match &b.backplane {
        Some(url) => {
            let (seeds, cluster) = redis_address(url)?;
            let seeds: Vec<SocketAddr> =
                seeds.into_iter().map(resolve).collect::<Result<_, _>>()?;
            Some(BackplaneConfig {
                redis: seeds[0],
                seeds,
                cluster,
                node: (b.node_name.clone()).unwrap_or_else(|| format!("n{}", std::process::id())),
                lease: secs(b.lease),
                log_max: c.store.history_max.unwrap_or_default(),
            })
        }
        None if b.node_name.is_some() => return Err("--node-name needs --backplane".into()),
        None => None,
    };
    Ok(())
}

fn hosts(c: &FileConfig, config: &mut ServerConfig) -> Result<(), String> {
    config.show_addresses = match c.irc.hosts.as_deref().unwrap_or("cloak") {
        "cloak" => false,
        "address" => true,
        other => return Err(format!("--hosts is cloak or address, not {other:?}")),
    };
    Ok(())
}

fn proxies(c: &FileConfig, config: &mut ServerConfig) -> Result<(), String> {
    let listed = c.http.trusted_proxies.iter().flatten();
    config.trusted_proxies = listed
        .map(|text| {
            text.parse::<IpAddr>()
                .map_err(|_| format!("--trusted-proxy takes an IP address, not {text:?}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// The MOTD file's lines (read now, and again on each reload).
fn motd(c: &FileConfig, config: &mut ServerConfig) -> Result<(), String> {
    let Some(path) = &c.irc.motd else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the MOTD file {path}: {e}"))?;
    config.operators.motd = text.lines().map(str::to_string).collect();
    config.operators.motd_path = Some(PathBuf::from(path));
    Ok(())
}

/// The `[[oper]]` tables: a name, an argon2id hash, masks.
fn opers(tables: &[OperTable], operators: &mut OperatorsConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, oper) in tables.iter().enumerate() {
        let n = index + 1;
        if oper.name.is_empty() || oper.name.contains(char::is_whitespace) {
            problems.push(Problem::about(
                format!("oper.{n}.name"),
                "an operator's name is one word",
            ));
        }
        if let Err(text) = check_hash(&oper.password) {
            problems.push(Problem::about(format!("oper.{n}.password"), text));
        }
        if operators.opers.iter().any(|o| o.name == oper.name) {
            let text = format!("operator {:?} is defined twice", oper.name);
            problems.push(Problem::about(format!("oper.{n}.name"), text));
        }
        operators.opers.push(OperSpec {
            name: oper.name.clone(),
            hash: oper.password.clone(),
            masks: oper.masks.clone(),
        });
    }
    problems
}

/// An argon2id PHC string with a salt and a hash (what `config hash-password` prints).
pub fn check_hash(phc: &str) -> Result<(), String> {
    const HOW: &str = "(make one with `miochat config hash-password`)";
    let hash = PasswordHash::new(phc)
        .map_err(|e| format!("the password is not an argon2id PHC string ({e}) {HOW}"))?;
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(format!(
            "the password hash is {}, not argon2id {HOW}",
            hash.algorithm
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(format!("the password hash has no salt or no hash {HOW}"));
    }
    argon2::Params::try_from(&hash)
        .map(|_| ())
        .map_err(|e| format!("the password hash has bad parameters ({e}) {HOW}"))
}

fn log_settings(c: &FileConfig) -> Result<LogSettings, Problem> {
    let l = &c.log;
    let text = l.level.as_deref().unwrap_or("info");
    let level = match text.to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => {
            let text = format!("the log level is error, warn, info, debug or trace, not {text:?}");
            return Err(Problem::about("log.level", text));
        }
    };
    let file = l.file.as_deref().map(PathBuf::from);
    if let Some(path) = &file {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|dir| !dir.is_dir()) {
            let text = format!("--log-file {}: its folder does not exist", path.display());
            return Err(Problem::about("log.file", text));
        }
    }
    Ok(LogSettings {
        level,
        file,
        trace: l.trace.unwrap_or_default(),
    })
}

/// The certificate files: both or neither, needed by the TLS listeners, and usable.
fn tls(c: &FileConfig, config: &mut ServerConfig) -> Result<(), Problem> {
    config.tls = match (&c.tls.cert, &c.tls.key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, None) => None,
        _ => {
            return Err(Problem::about("tls.cert", TLS_PAIR).of_kind(Kind::Tls));
        }
    };
    config
        .validate_tls()
        .map_err(|text| flag_problem(text, Kind::Tls))?;
    if let Some(files) = &config.tls {
        crate::server::tls::load_server_config(files)
            .map_err(|text| Problem::about("tls.cert", text).of_kind(Kind::Tls))?;
    }
    Ok(())
}

/// The `HOST:PORT` of a `redis://HOST:PORT` address (a bare `HOST:PORT` is accepted
/// too), or the seeds of `redis-cluster://HOST:PORT,HOST:PORT,...` (then true).
pub fn redis_address(url: &str) -> Result<(Vec<&str>, bool), String> {
    let (rest, cluster) = match url.strip_prefix("redis-cluster://") {
        Some(seeds) => (seeds, true),
        None => (url.strip_prefix("redis://").unwrap_or(url), false),
    };
    let seeds: Vec<&str> = rest.split(',').map(str::trim).collect();
    let bad = |seed: &&str| seed.is_empty() || seed.contains('/') || seed.contains('@');
    if seeds.iter().any(bad) || (!cluster && seeds.len() > 1) {
        return Err(format!(
            "--backplane must look like redis://HOST:PORT or \
             redis-cluster://HOST:PORT,HOST:PORT,..., not {url:?}"
        ));
    }
    Ok((seeds, cluster))
}

/// Resolves `host:port` once, before any event loop runs (DNS blocks, so never from
/// inside a loop). A bare port (`7878`) means that port on 127.0.0.1, the same
/// loopback default as the defaults of `--listen` and `connect`.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = addr.trim().parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::redis_address;

    #[test]
    fn backplane_addresses_are_one_redis_or_a_clusters_seeds() {
        assert_eq!(redis_address("redis://h:1"), Ok((vec!["h:1"], false)));
        assert_eq!(redis_address("h:1"), Ok((vec!["h:1"], false)));
        assert_eq!(
            redis_address("redis-cluster://a:1, b:2"),
            Ok((vec!["a:1", "b:2"], true))
        );
        for bad in [
            "redis://",
            "redis://a:1,b:2",
            "redis-cluster://a:1,",
            "redis://u@h:1",
        ] {
            assert!(redis_address(bad).is_err(), "{bad}");
        }
    }
}
