//! Server operators and the message of the day: what the configuration says, as one
//! snapshot that a reload (SIGHUP or `/rehash`) swaps whole.
//!
//! Why a snapshot behind a lock rather than fields of the read-only `ServerConfig`:
//! both can change while the server runs, and both are read rarely (an `OPER`
//! attempt, a new connection's welcome), never per message, so one short read lock
//! costs nothing on the hot path and a reload never half-applies.
//!
//! It also holds the types the operators' threads exchange, data only (so that the
//! inbox, the shared state and the checking thread can all name them without
//! importing one another): the [`OperJob`] a shard hands the thread that checks
//! passwords (`oper_check.rs`), the [`OperMsg`] shards, that thread and the
//! backplane send a shard, and the [`OperCounts`] that say which shards have
//! operators.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::protocol::identity::UserHost;
use crate::protocol::{Event, Nick};

use super::token::ConnId;

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

/// Who asks to be an operator, as the check needs it: owned, to cross to the
/// checking thread.
#[derive(Debug, Clone)]
pub struct Asker {
    /// The connection (answered through its shard's inbox; failures are counted by
    /// it too).
    pub id: ConnId,
    /// Its nick.
    pub nick: String,
    /// Its user name as shown (`~name`).
    pub user: String,
    /// Its host as shown (a cloak, or the address).
    pub host: String,
    /// Its real address.
    pub address: IpAddr,
}

/// Work for the thread that checks `OPER` passwords (`oper_check.rs`).
#[derive(Debug)]
pub enum OperJob {
    /// Check `password` for the operator `name`, for `asker`.
    Check {
        /// Who asks.
        asker: Asker,
        /// The operator's name.
        name: Box<str>,
        /// The password given.
        password: Box<str>,
    },
    /// The server is stopping.
    Stop,
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperOutcome {
    /// The name, host and password are right.
    Granted,
    /// No operator of that name, or the wrong password (464).
    Refused,
    /// The operator may not connect from the asker's address or host (491).
    WrongHost,
    /// Too many failures lately: not checked, refused for this many more seconds.
    Throttled(u64),
}

/// What operators' commands send to a shard.
#[derive(Debug)]
pub enum OperMsg {
    /// The answer to an `OPER` of connection `to`.
    Checked {
        /// Who asked.
        to: ConnId,
        /// The operator's name asked for.
        name: Box<str>,
        /// What the check found.
        outcome: OperOutcome,
    },
    /// Kill this connection of this shard (the killer may be on any shard or node).
    Kill {
        /// The victim.
        id: ConnId,
        /// The operator.
        by: Nick,
        /// Why.
        reason: Box<str>,
        /// The operator's `user@host`, if it is known here.
        from: Option<UserHost>,
    },
    /// The k-lines changed: close this shard's connections that match one now.
    Sweep,
    /// To this shard's operators (`WALLOPS`; a server notice if `notice`, to those
    /// who take server notices).
    ToOpers {
        /// What.
        event: Arc<Event>,
        /// A server notice (IRC `+s`), not a `WALLOPS`.
        notice: bool,
        /// The `user@host` of its source, if it is known here.
        from: Option<UserHost>,
    },
    /// To every connection of this shard (`/wall`).
    ToAll {
        /// What.
        event: Arc<Event>,
        /// The `user@host` of its source, if it is known here.
        from: Option<UserHost>,
    },
}

/// How many operators each shard has: one atomic load tells a shard whether a server
/// notice has anyone to go to, so connections and floods cost nothing more while no
/// operator is on (the common case).
#[derive(Debug, Default)]
pub struct OperCounts(Vec<AtomicUsize>);

impl OperCounts {
    /// Counts for `shards` shards, all zero.
    pub fn new(shards: usize) -> Self {
        OperCounts((0..shards).map(|_| AtomicUsize::new(0)).collect())
    }

    /// Shard `shard` has one more operator.
    pub fn add(&self, shard: usize) {
        if let Some(count) = self.0.get(shard) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Shard `shard` has one operator fewer.
    pub fn remove(&self, shard: usize) {
        if let Some(count) = self.0.get(shard) {
            let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// The shards that have operators.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        (self.0.iter().enumerate())
            .filter(|(_, count)| count.load(Ordering::Relaxed) > 0)
            .map(|(shard, _)| shard)
    }

    /// Operators on this node.
    pub fn total(&self) -> usize {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
