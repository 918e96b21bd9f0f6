//! Server operators and the message of the day: what the configuration says, as one
//! snapshot that a reload (SIGHUP or `/rehash`) swaps whole.
//!
//! Why a snapshot behind a lock rather than fields of the read-only `ServerConfig`:
//! both can change while the server runs, and both are read rarely (an `OPER`
//! attempt, a new connection's welcome), never per message, so one short read lock
//! costs nothing on the hot path and a reload never half-applies.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// One `[[oper]]` table of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperSpec {
    /// The name given to `OPER` / `/oper`.
    pub name: String,
    /// The argon2id PHC string (`$argon2id$v=19$...`) of the password.
    pub hash: String,
    /// `nick!user@host` or address masks the operator must connect from; empty = any.
    pub masks: Vec<String>,
}

/// What is in force now: the operators and the MOTD's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorsConfig {
    /// The operators, in file order.
    pub opers: Vec<OperSpec>,
    /// The MOTD file's lines (empty = no MOTD).
    pub motd: Vec<String>,
    /// Where the MOTD was read from, to read it again on reload.
    pub motd_path: Option<PathBuf>,
}

/// The live snapshot, shared by every thread.
#[derive(Debug, Default)]
pub struct LiveOperators(RwLock<Arc<OperatorsConfig>>);

impl LiveOperators {
    /// A snapshot holder starting with `config`.
    pub fn new(config: OperatorsConfig) -> Self {
        LiveOperators(RwLock::new(Arc::new(config)))
    }

    /// The snapshot in force (a poisoned lock still holds a whole snapshot).
    pub fn get(&self) -> Arc<OperatorsConfig> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the snapshot (a reload).
    pub fn set(&self, config: OperatorsConfig) {
        let next = Arc::new(config);
        match self.0.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
