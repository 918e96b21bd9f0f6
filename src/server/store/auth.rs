//! The auth thread: accounts, and the argon2id hashing they cost.
//!
//! argon2id is slow on purpose (tens of milliseconds and 19 MiB per hash with the
//! crate's defaults), so that a stolen database is expensive to guess at. A shard
//! must never pay that, and neither should the history writer, whose batches would
//! wait behind it: accounts get a thread of their own, with their own SQLite
//! connection, and their own bounded queue (a burst of logins is refused with
//! `ERR store-busy`, never queued without limit).
//!
//! Failed logins are limited here too: [`MAX_FAILURES`] per account and per address
//! within [`FAILURE_WINDOW`], then `ERR login-throttled` without even checking the
//! password, so guessing costs the guesser time and the server nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{Connection, OptionalExtension, params};

use crate::protocol::names::NickKey;
use crate::protocol::{Nick, ProtocolError};

use super::super::inbox::ShardMsg;
use super::super::shared::Shared;
use super::super::token::ConnId;
use super::redis_book::{AccountRecord, RedisBook};
use super::scram::{self, Credentials};
use super::{AccountAnswer, Answer, AuthJob, StoreReply};
use crate::server::backplane::wire::Wire;

/// Failed logins allowed per account, and per address, within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 6;
/// Longest password accepted (argon2 takes any length; a line has a limit anyway).
pub const MAX_PASSWORD: usize = 256;

/// Why an account request failed, as the asker is told.
type Refusal = ProtocolError;

/// The auth thread's state.
#[derive(Debug)]
pub struct Auth {
    db: Connection,
    /// In a cluster, the accounts are in Redis (`redis_book.rs`), with the node's
    /// name to announce changes as.
    redis: Option<(RedisBook, String)>,
    shared: Arc<Shared>,
    by_account: HashMap<NickKey, Vec<Instant>>,
    by_address: HashMap<IpAddr, Vec<Instant>>,
}

/// A new argon2id hash of `password`, as a PHC string.
pub fn hash(password: &str) -> Result<String, Refusal> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| {
            log::error!("auth: hashing failed: {e}");
            ProtocolError::StoreFailed
        })
}

/// New SCRAM-SHA-256 credentials for `password`, with a fresh random salt.
pub fn new_scram(password: &str) -> Credentials {
    let salt = argon2::password_hash::generate_salt();
    scram::credentials(password, &salt, scram::ITERATIONS)
}

/// True if `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// Is `password` acceptable for a new account or a new password?
pub fn check_new_password(password: &str) -> Result<(), Refusal> {
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&password.len()) {
        Ok(())
    } else {
        Err(ProtocolError::WeakPassword {
            min: MIN_PASSWORD,
            max: MAX_PASSWORD,
        })
    }
}

impl Auth {
    /// The auth thread over its own connection.
    pub fn new(db: Connection, shared: Arc<Shared>) -> Self {
        let redis = (shared.config.backplane.as_ref()).map(|cluster| {
            (
                RedisBook::new(cluster.seeds.clone(), cluster.cluster),
                cluster.node.clone(),
            )
        });
        Auth {
            db,
            redis,
            shared,
            by_account: HashMap::new(),
            by_address: HashMap::new(),
        }
    }

    /// Answers account requests until every sender is gone.
    pub fn run(mut self, jobs: Receiver<AuthJob>) {
        while let Ok(job) = jobs.recv() {
            let (to, answer) = match job {
                AuthJob::Stop => break,
                AuthJob::ScramLookup { to, account, from } => {
                    let answer = match self.scram_lookup(&account, from) {
                        Ok(found) => Answer::Scram(Box::new(found)),
                        Err(refusal) => Answer::Failed(refusal),
                    };
                    self.answer(to, answer);
                    continue;
                }
                AuthJob::ScramFailed { account, from } => {
                    self.failed_login(&account, from, Instant::now());
                    continue;
                }
                AuthJob::Register {
                    to,
                    account,
                    password,
                } => (to, self.register(&account, &password)),
                AuthJob::Login {
                    to,
                    account,
                    password,
                    from,
                } => (to, self.login(&account, &password, from)),
                AuthJob::Passwd {
                    to,
                    account,
                    old,
                    new,
                    from,
                } => (to, self.passwd(&account, &old, &new, from)),
                AuthJob::Unregister {
                    to,
                    account,
                    password,
                    from,
                } => (to, self.unregister(&account, &password, from)),
                AuthJob::SetPassword { to, account, new } => {
                    (to, self.set_password(&account, &new))
                }
            };
            let answer = match answer {
                Ok(done) => Answer::Account(done),
                Err(refusal) => Answer::Failed(refusal),
            };
            self.answer(to, answer);
        }
        log::debug!("auth thread stopped");
    }

    fn answer(&self, to: ConnId, answer: Answer) {
        let reply = Box::new(StoreReply { to, answer });
        if let Some(shard) = self.shared.shards.get(to.shard()) {
            shard.send(ShardMsg::Stored(reply));
        }
    }

    fn db_failed(&self, what: &str, error: &rusqlite::Error) -> Refusal {
        if let Some(store) = &self.shared.store {
            store.stats.errors.fetch_add(1, Relaxed);
        }
        log::error!("auth: {what} failed: {error}");
        ProtocolError::StoreFailed
    }

    fn redis_failed(&self, what: &str, error: &std::io::Error) -> Refusal {
        if let Some(store) = &self.shared.store {
            store.stats.errors.fetch_add(1, Relaxed);
        }
        log::error!("auth: {what} in Redis failed: {error}");
        ProtocolError::StoreFailed
    }

    /// `account`'s record in Redis (in a cluster).
    fn in_redis(&mut self, account: &Nick) -> Option<Result<Option<AccountRecord>, Refusal>> {
        let (book, _) = self.redis.as_mut()?;
        let got = book.get(account);
        Some(got.map_err(|e| self.redis_failed("reading an account", &e)))
    }

    /// What the other nodes are told of an account created or dropped here.
    fn announcement(&self, name: &Nick, present: bool) -> Vec<u8> {
        let origin = self
            .redis
            .as_ref()
            .map_or_else(String::new, |(_, node)| node.clone());
        let name = name.clone();
        Wire::Account {
            origin,
            name,
            present,
        }
        .encode()
    }

    /// The stored spelling and hash of `account`.
    fn stored(&mut self, account: &Nick) -> Result<Option<(String, String)>, Refusal> {
        if let Some(found) = self.in_redis(account) {
            return found.map(|record| record.map(|r| (r.name, r.hash)));
        }
        let key = account.as_str().to_ascii_lowercase();
        self.db
            .query_row(
                "SELECT name, hash FROM accounts WHERE name_key = ?1",
                [key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db_failed("reading an account", &e))
    }

    fn register(&mut self, account: &Nick, password: &str) -> Result<AccountAnswer, Refusal> {
        check_new_password(password)?;
        if self.stored(account)?.is_some() {
            return Err(ProtocolError::AccountExists(account.clone()));
        }
        let hashed = hash(password)?;
        let scram = new_scram(password);
        if self.redis.is_some() {
            return self.register_in_redis(account, hashed, scram);
        }
        let created = super::super::room_state::unix_now() as i64;
        let key = account.as_str().to_ascii_lowercase();
        let inserted = self
            .db
            .execute(
                "INSERT OR IGNORE INTO accounts (name_key, name, hash, created, scram_salt, \
                 scram_iterations, scram_stored_key, scram_server_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key,
                    account.as_str(),
                    hashed,
                    created,
                    scram.salt,
                    scram.iterations,
                    scram.stored_key,
                    scram.server_key
                ],
            )
            .map_err(|e| self.db_failed("creating an account", &e))?;
        if inserted == 0 {
            return Err(ProtocolError::AccountExists(account.clone()));
        }
        self.shared.registry.add_account(account);
        log::info!("account {account} registered");
        Ok(AccountAnswer::Registered(account.clone()))
    }

    /// `register` in a cluster: the account is created in Redis, and every node's
    /// registry hears of it.
    fn register_in_redis(
        &mut self,
        account: &Nick,
        hash: String,
        scram: Credentials,
    ) -> Result<AccountAnswer, Refusal> {
        let announce = self.announcement(account, true);
        let record = AccountRecord {
            name: account.to_string(),
            hash,
            scram: Some(scram),
        };
        let Some((book, _)) = self.redis.as_mut() else {
            return Err(ProtocolError::StoreFailed);
        };
        match book.create(&record, &announce) {
            Ok(true) => {}
            Ok(false) => return Err(ProtocolError::AccountExists(account.clone())),
            Err(e) => return Err(self.redis_failed("creating an account", &e)),
        }
        self.shared.registry.add_account(account);
        log::info!("account {account} registered (in Redis)");
        Ok(AccountAnswer::Registered(account.clone()))
    }

    fn login(
        &mut self,
        account: &Nick,
        password: &str,
        from: IpAddr,
    ) -> Result<AccountAnswer, Refusal> {
        let now = Instant::now();
        if self.throttled(account, from, now) {
            log::warn!("auth: login to {account} from {from} throttled");
            return Err(ProtocolError::LoginThrottled);
        }
        match self.stored(account)? {
            Some((name, stored)) if verify(password, &stored) => {
                self.by_account.remove(&account.key());
                let name = Nick::parse(&name).unwrap_or_else(|_| account.clone());
                log::info!("{from} logged in as {name}");
                Ok(AccountAnswer::LoggedIn(name))
            }
            _ => {
                self.failed_login(account, from, now);
                Err(ProtocolError::BadLogin)
            }
        }
    }

    /// Counts a failed login (a wrong password or SCRAM proof) for the throttle.
    fn failed_login(&mut self, account: &Nick, from: IpAddr, now: Instant) {
        self.by_account.entry(account.key()).or_default().push(now);
        self.by_address.entry(from).or_default().push(now);
        log::info!("auth: failed login to {account} from {from}");
    }

    /// The SCRAM credentials of `account`, unless logins to it or from `from` are
    /// throttled. An account made before SCRAM was kept has none: `bad-login`.
    fn scram_lookup(
        &mut self,
        account: &Nick,
        from: IpAddr,
    ) -> Result<(Nick, Credentials), Refusal> {
        if self.throttled(account, from, Instant::now()) {
            return Err(ProtocolError::LoginThrottled);
        }
        if let Some(found) = self.in_redis(account) {
            let record = found?.ok_or(ProtocolError::BadLogin)?;
            let name = Nick::parse(&record.name).unwrap_or_else(|_| account.clone());
            return Ok((name, record.scram.ok_or(ProtocolError::BadLogin)?));
        }
        let key = account.as_str().to_ascii_lowercase();
        type Row = (
            String,
            Option<Vec<u8>>,
            Option<i64>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
        );
        let row: Option<Row> = self
            .db
            .query_row(
                "SELECT name, scram_salt, scram_iterations, scram_stored_key, scram_server_key \
                 FROM accounts WHERE name_key = ?1",
                [key],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.db_failed("reading SCRAM credentials", &e))?;
        let Some((name, Some(salt), Some(iterations), Some(stored_key), Some(server_key))) = row
        else {
            return Err(ProtocolError::BadLogin);
        };
        let name = Nick::parse(&name).unwrap_or_else(|_| account.clone());
        let iterations = u32::try_from(iterations).unwrap_or(scram::ITERATIONS);
        let creds = Credentials {
            salt,
            iterations,
            stored_key,
            server_key,
        };
        Ok((name, creds))
    }

    /// True if `account` or `from` failed [`MAX_FAILURES`] times within the window
    /// (old failures are forgotten here, so the maps stay small).
    fn throttled(&mut self, account: &Nick, from: IpAddr, now: Instant) -> bool {
        let fresh = |times: &mut Vec<Instant>| {
            times.retain(|&at| now.duration_since(at) < FAILURE_WINDOW);
            times.len() >= MAX_FAILURES
        };
        let by_account = self.by_account.get_mut(&account.key()).is_some_and(fresh);
        let by_address = self.by_address.get_mut(&from).is_some_and(fresh);
        self.by_account.retain(|_, times| !times.is_empty());
        self.by_address.retain(|_, times| !times.is_empty());
        by_account || by_address
    }

    fn passwd(
        &mut self,
        account: &Nick,
        old: &str,
        new: &str,
        from: IpAddr,
    ) -> Result<AccountAnswer, Refusal> {
        check_new_password(new)?;
        self.check_password(account, old, from)?;
        self.set_password(account, new)
    }

    /// A new password (and SCRAM credentials) for `account`, whose owner is logged in.
    fn set_password(&mut self, account: &Nick, new: &str) -> Result<AccountAnswer, Refusal> {
        check_new_password(new)?;
        let hashed = hash(new)?;
        let scram = new_scram(new);
        if let Some((book, _)) = self.redis.as_mut() {
            return match book.set_password(account, &hashed, &scram) {
                Ok(true) => Ok(AccountAnswer::PasswordChanged(account.clone())),
                Ok(false) => Err(ProtocolError::NoAccount(account.clone())),
                Err(e) => Err(self.redis_failed("changing a password", &e)),
            };
        }
        let key = account.as_str().to_ascii_lowercase();
        self.db
            .execute(
                "UPDATE accounts SET hash = ?2, scram_salt = ?3, scram_iterations = ?4, \
                 scram_stored_key = ?5, scram_server_key = ?6 WHERE name_key = ?1",
                params![
                    key,
                    hashed,
                    scram.salt,
                    scram.iterations,
                    scram.stored_key,
                    scram.server_key
                ],
            )
            .map_err(|e| self.db_failed("changing a password", &e))?;
        Ok(AccountAnswer::PasswordChanged(account.clone()))
    }

    /// The password of `account` again (`/passwd`, `/unregister`): throttled and
    /// counted like a login, so a session left logged in is no guessing machine.
    fn check_password(
        &mut self,
        account: &Nick,
        password: &str,
        from: IpAddr,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        if self.throttled(account, from, now) {
            return Err(ProtocolError::LoginThrottled);
        }
        let Some((_, stored)) = self.stored(account)? else {
            return Err(ProtocolError::NoAccount(account.clone()));
        };
        if !verify(password, &stored) {
            self.failed_login(account, from, now);
            return Err(ProtocolError::BadLogin);
        }
        Ok(())
    }

    fn unregister(
        &mut self,
        account: &Nick,
        password: &str,
        from: IpAddr,
    ) -> Result<AccountAnswer, Refusal> {
        self.check_password(account, password, from)?;
        if self.redis.is_some() {
            let name = self
                .stored(account)?
                .map_or_else(|| account.to_string(), |(n, _)| n);
            let announce = self.announcement(account, false);
            if let Some((book, _)) = self.redis.as_mut()
                && let Err(e) = book.delete(account, &name, &announce)
            {
                return Err(self.redis_failed("dropping an account", &e));
            }
        }
        let key = account.as_str().to_ascii_lowercase();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.db.transaction()?;
            tx.execute("DELETE FROM accounts WHERE name_key = ?1", [&key])?;
            tx.execute("DELETE FROM access WHERE account_key = ?1", [&key])?;
            tx.commit()
        })();
        result.map_err(|e| self.db_failed("dropping an account", &e))?;
        self.shared.registry.remove_account(account);
        self.shared.directory.forget_account(account);
        log::info!("account {account} dropped");
        Ok(AccountAnswer::Unregistered(account.clone()))
    }
}
