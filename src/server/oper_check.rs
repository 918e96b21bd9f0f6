//! The thread that checks `OPER` passwords.
//!
//! An operator's password is an argon2id hash in the configuration, and checking one
//! costs tens of milliseconds on purpose: no shard may pay that. A shard hands the
//! attempt to this thread through a small bounded queue (`try_send`: a full queue
//! is answered `ERR oper-busy` at once, never waited for), and the answer comes back
//! through the shard's inbox, as the auth thread's do. It is a thread of its own,
//! not the auth thread's queue, because operators exist without a data dir too and
//! an `OPER` should not wait behind a burst of account logins.
//!
//! Failed attempts are limited here, where every attempt passes: after
//! [`MAX_FAILURES`] failures within [`FAILURE_WINDOW`] from one connection or one
//! address, further attempts are refused without even being checked until the
//! oldest failure is out of the window. Every failure is logged with the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::protocol::identity::User;
use crate::protocol::mask::Identity;

use super::inbox::ShardMsg;
use super::klines;
use super::operators::{Asker, OperJob, OperMsg, OperOutcome, OperSpec};
use super::shared::Shared;
use super::store::auth::verify;
use super::token::ConnId;

/// Failed attempts allowed per connection, and per address, within the window.
pub const MAX_FAILURES: usize = 3;
/// The window failed attempts are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(30);
/// Attempts that may wait to be checked.
pub const QUEUE: usize = 64;

/// A queue for the checking thread: the sending side goes to `Shared`.
pub fn queue() -> (SyncSender<OperJob>, Receiver<OperJob>) {
    sync_channel(QUEUE)
}

/// The checking thread's state.
#[derive(Debug)]
pub struct OperCheck {
    shared: Arc<Shared>,
    by_conn: HashMap<ConnId, Vec<Instant>>,
    by_address: HashMap<IpAddr, Vec<Instant>>,
}

impl OperCheck {
    /// The thread's state; it answers through `shared`'s shard handles.
    pub fn new(shared: Arc<Shared>) -> Self {
        OperCheck {
            shared,
            by_conn: HashMap::new(),
            by_address: HashMap::new(),
        }
    }

    /// Checks attempts until told to stop (or every sender is gone).
    pub fn run(mut self, jobs: Receiver<OperJob>) {
        while let Ok(job) = jobs.recv() {
            let OperJob::Check {
                asker,
                name,
                password,
            } = job
            else {
                break;
            };
            let outcome = self.check(&asker, &name, &password, Instant::now());
            let to = asker.id;
            let msg = ShardMsg::Oper(OperMsg::Checked { to, name, outcome });
            if let Some(shard) = self.shared.shards.get(to.shard()) {
                shard.send(msg);
            }
        }
        log::debug!("oper check thread stopped");
    }

    /// The outcome of one attempt; a failure is counted and logged.
    fn check(&mut self, asker: &Asker, name: &str, password: &str, now: Instant) -> OperOutcome {
        let from = asker.address;
        if let Some(secs) = self.throttled(asker, now) {
            log::warn!("OPER {name} from {from} ({}) throttled", asker.nick);
            return OperOutcome::Throttled(secs);
        }
        let operators = self.shared.operators.get();
        let spec = (operators.opers.iter()).find(|spec| spec.name == name);
        let outcome = match spec {
            None => OperOutcome::Refused,
            Some(spec) if !host_allowed(spec, asker) => OperOutcome::WrongHost,
            Some(spec) if verify(password, &spec.hash) => OperOutcome::Granted,
            Some(_) => OperOutcome::Refused,
        };
        match outcome {
            OperOutcome::Granted => {
                self.by_conn.remove(&asker.id);
                log::info!("{from} {} is now operator {name}", asker.nick);
            }
            failed => {
                let why = match failed {
                    OperOutcome::WrongHost => "not allowed from this host",
                    _ => "no such operator or wrong password",
                };
                log::warn!("OPER {name} from {from} ({}) refused: {why}", asker.nick);
                self.by_conn.entry(asker.id).or_default().push(now);
                self.by_address.entry(from).or_default().push(now);
            }
        }
        outcome
    }

    /// Seconds until `asker` may try again, if its connection or address failed
    /// [`MAX_FAILURES`] times within the window (old failures are forgotten here).
    fn throttled(&mut self, asker: &Asker, now: Instant) -> Option<u64> {
        let wait = |times: &mut Vec<Instant>| {
            times.retain(|&at| now.duration_since(at) < FAILURE_WINDOW);
            let oldest = *times.first()?;
            let left = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
            (times.len() >= MAX_FAILURES).then(|| left.as_secs().max(1))
        };
        let by_conn = self.by_conn.get_mut(&asker.id).and_then(wait);
        let by_address = self.by_address.get_mut(&asker.address).and_then(wait);
        self.by_conn.retain(|_, times| !times.is_empty());
        self.by_address.retain(|_, times| !times.is_empty());
        by_conn.max(by_address)
    }
}

/// True if `spec` has no masks or one of them matches `asker` (as a k-line would:
/// `nick!user@host` shown or real, globs, `ADDRESS/BITS`).
fn host_allowed(spec: &OperSpec, asker: &Asker) -> bool {
    let who = Identity {
        nick: &asker.nick,
        user: User::named(&asker.user),
        shown_host: &asker.host,
        address: asker.address,
    };
    spec.masks.is_empty()
        || (spec.masks.iter())
            .filter_map(|mask| klines::normalize(mask).ok())
            .any(|mask| klines::matches(&mask, &who))
}
