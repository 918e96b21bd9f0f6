//! The durable store: accounts, registered rooms and history, in one SQLite file
//! under `--data-dir`, kept by threads of their own so that no shard turn ever
//! waits for a disk.
//!
//! ```text
//!   shard ──try_send(Job)──▶ [bounded queue] ──▶ store thread ── one transaction per
//!     ▲                                              │           --history-sync-ms
//!     └──────── ShardMsg::Stored (inbox + waker) ◀───┘           (durable jobs: now)
//!   shard ──try_send(AuthJob)─▶ [bounded queue] ──▶ auth thread (argon2id, accounts)
//! ```
//!
//! Why threads and queues rather than a write from the shard: a commit with
//! `synchronous=FULL` is an fsync, a few milliseconds on a good disk and seconds on
//! a busy one, and argon2id costs tens of milliseconds *by design*. A shard that paid
//! either would stall every connection it owns. So a shard only ever does a
//! `try_send`, which never blocks: a full queue is an answer (`ERR store-busy` to the
//! one user who asked, a count in `/stats`), not a wait. Answers come back the way
//! every other thread talks to a shard: its inbox and its waker.
//!
//! Two kinds of write, two promises:
//! - an account, a room registration, an access grant or a ban is committed (and
//!   fsynced) before the user is told `OK`: it survives `kill -9` and power loss;
//! - a history line is batched and committed within `--history-sync-ms` (default
//!   100): a `kill -9` loses at most that much of the newest lines.
//!
//! What a shard needs to decide at once (is this nick registered? is this room
//! registered, and who has access?) is kept in memory in [`super::registry`], loaded
//! once at start-up and changed only after the store has committed.

pub mod auth;
pub mod incarnations;
pub mod klines;
pub mod redis_book;
pub mod schema;
pub mod scram;
pub mod writer;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use crate::protocol::{Event, HistoryLine, Nick, ProtocolError, RoomName};

use super::registry::{Level, Registry};
use super::room_state::RoomSnapshot;
use super::token::ConnId;

pub use schema::DataDir;

/// Jobs that may wait for the store thread; a shard that finds the queue full is
/// refused at once.
pub const JOB_QUEUE: usize = 65_536;
/// Account requests that may wait for the auth thread (each costs an argon2id hash).
pub const AUTH_QUEUE: usize = 256;

/// Where the store lives and how long history may wait before it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data dir.
    pub dir: PathBuf,
    /// History lines are committed at least this often (`--history-sync-ms`).
    pub history_sync: Duration,
    /// History older than this many days is pruned (`--history-days`; 0 = kept).
    pub history_days: u32,
    /// At most this many lines per room are kept (`--history-max`; 0 = no limit).
    pub history_max: u64,
}

/// Why the store could not be opened: one line for the user, and a non-zero exit.
#[derive(Debug)]
pub enum StoreError {
    /// The data dir path names a file.
    NotADirectory(PathBuf),
    /// The data dir or a file in it could not be created, opened or locked.
    Io(PathBuf, io::Error),
    /// Another process holds the data dir.
    Locked(PathBuf),
    /// The database was written by a newer miochat.
    NewerVersion {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// The file is not a usable database.
    Corrupt(PathBuf, String),
    /// SQLite refused.
    Db(PathBuf, String),
    /// `miochat backup` could not write its destination.
    Backup(PathBuf, String),
}

impl StoreError {
    /// An SQLite error on the database at `path`.
    pub fn db(path: &Path, error: rusqlite::Error) -> StoreError {
        StoreError::Db(path.into(), error.to_string())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotADirectory(path) => write!(
                f,
                "data dir {} is a file, not a folder (give another --data-dir, or none)",
                path.display()
            ),
            StoreError::Io(path, e) => write!(f, "data dir: {}: {e}", path.display()),
            StoreError::Locked(path) => write!(
                f,
                "data dir {} is in use by another miochat process",
                path.display()
            ),
            StoreError::NewerVersion { path, found, known } => write!(
                f,
                "{} has schema version {found}, newer than this miochat knows ({known}); \
                 run a newer miochat or another --data-dir",
                path.display()
            ),
            StoreError::Corrupt(path, why) => {
                write!(f, "{} is not a usable database: {why}", path.display())
            }
            StoreError::Db(path, why) => write!(f, "{}: {why}", path.display()),
            StoreError::Backup(dest, why) => {
                write!(f, "backup destination {}: {why}", dest.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// A history line on its way to the disk.
#[derive(Debug, Clone)]
pub struct StoredLine {
    /// The room.
    pub room: RoomName,
    /// The line, with its id and time.
    pub line: HistoryLine,
    /// The incarnation of the room it was said in (the directory's `born`): the
    /// store drops an unregistered room's lines once it is another incarnation.
    pub born: u64,
}

pub use crate::protocol::HistoryQuery;

/// A private message on its way to the disk.
#[derive(Debug, Clone)]
pub struct StoredPrivate {
    /// Its id (from the same sequence as room lines).
    pub id: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Sender.
    pub from: Nick,
    /// Recipient.
    pub to: Nick,
    /// The text.
    pub text: Box<str>,
}

/// A change to a registered room, committed before its answer goes back.
#[derive(Debug, Clone)]
pub enum RoomWrite {
    /// A new registration.
    Register {
        /// The room.
        room: RoomName,
        /// The founder's account.
        founder: Nick,
        /// Its state now.
        snapshot: RoomSnapshot,
    },
    /// The room's modes, bans or topic changed: its whole state, as it is now.
    Update {
        /// The room.
        room: RoomName,
        /// Its state now.
        snapshot: RoomSnapshot,
    },
    /// An access grant (`Some`) or its removal (`None`).
    Access {
        /// The room.
        room: RoomName,
        /// Whose.
        account: Nick,
        /// Which.
        level: Option<Level>,
    },
    /// The registration is dropped.
    Drop {
        /// The room.
        room: RoomName,
    },
}

impl RoomWrite {
    /// The room written.
    pub fn room(&self) -> &RoomName {
        match self {
            RoomWrite::Register { room, .. }
            | RoomWrite::Update { room, .. }
            | RoomWrite::Access { room, .. }
            | RoomWrite::Drop { room } => room,
        }
    }
}

/// What to do once a durable write is committed.
#[derive(Debug)]
pub struct Then {
    /// Who asked (told the reply, or the failure).
    pub to: ConnId,
    /// The `OK` to send, if any.
    pub reply: Option<Event>,
    /// A room event to broadcast once the change is durable (a ban's mode change).
    pub broadcast: Option<(RoomName, Event)>,
}

/// Work for the store thread.
#[derive(Debug)]
pub enum Job {
    /// A room line, batched.
    Line(StoredLine),
    /// A private message, batched, kept for its two parties.
    Private(StoredPrivate),
    /// A registered room changed: committed (with any history waiting) before the
    /// answer goes back.
    Room(Box<RoomWrite>, Option<Box<Then>>),
    /// The server is stopping: commit and exit.
    Stop,
    /// A reload changed retention (`--history-days`, `--history-max`): prune by
    /// the new rules soon.
    Retention {
        /// Days history is kept (0 = no age limit).
        days: u32,
        /// Lines kept per room (0 = no limit).
        max: u64,
    },
    /// `CHATHISTORY TARGETS`: which of `rooms` had lines between two ids.
    Targets {
        /// Who asked.
        to: ConnId,
        /// The asker's rooms.
        rooms: Vec<RoomName>,
        /// Lines with ids strictly between these.
        span: (u64, u64),
        /// At most this many rooms.
        limit: usize,
    },
    /// A k-line set or lifted (already in force): committed, then its setter is
    /// told (`then.reply`, or that it could not be saved).
    Kline(klines::KlineWrite, Box<Then>),
    /// Old lines for one reader.
    Read {
        /// Who asked.
        to: ConnId,
        /// The room.
        room: RoomName,
        /// Which lines.
        query: HistoryQuery,
        /// Send nothing if there are none (the playback on join).
        quiet_if_empty: bool,
    },
}

/// Work for the auth thread: each costs one argon2id hash or check.
#[derive(Debug)]
pub enum AuthJob {
    /// The server is stopping.
    Stop,
    /// SASL SCRAM-SHA-256: the account's credentials, for the shard to check the
    /// client's proof (throttled like a login).
    ScramLookup {
        /// Who asked.
        to: ConnId,
        /// The account.
        account: Nick,
        /// Where from.
        from: IpAddr,
    },
    /// A SCRAM proof was wrong: counted as a failed login.
    ScramFailed {
        /// The account.
        account: Nick,
        /// Where from.
        from: IpAddr,
    },
    /// `/register PASSWORD`: `account` is the asker's nick.
    Register {
        /// Who asked.
        to: ConnId,
        /// The account to create.
        account: Nick,
        /// The password.
        password: Box<str>,
    },
    /// `/login NICK PASSWORD`.
    Login {
        /// Who asked.
        to: ConnId,
        /// The account.
        account: Nick,
        /// The password.
        password: Box<str>,
        /// Where from (failed logins are limited per address too).
        from: IpAddr,
    },
    /// `/passwd OLD NEW`.
    Passwd {
        /// Who asked.
        to: ConnId,
        /// The asker's account.
        account: Nick,
        /// The password now.
        old: Box<str>,
        /// The new one.
        new: Box<str>,
        /// Where from (wrong passwords are limited as for a login).
        from: IpAddr,
    },
    /// NickServ `SET PASSWORD`: the asker is logged in to `account`.
    SetPassword {
        /// Who asked.
        to: ConnId,
        /// The asker's account.
        account: Nick,
        /// The new password.
        new: Box<str>,
    },
    /// `/unregister PASSWORD`.
    Unregister {
        /// Who asked.
        to: ConnId,
        /// The asker's account.
        account: Nick,
        /// The password.
        password: Box<str>,
        /// Where from (wrong passwords are limited as for a login).
        from: IpAddr,
    },
}

/// The answer to an account request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAnswer {
    /// The account exists now (the asker is logged in to it).
    Registered(Nick),
    /// The password matched: the asker is logged in.
    LoggedIn(Nick),
    /// The password was changed.
    PasswordChanged(Nick),
    /// The account is gone (the asker is logged out).
    Unregistered(Nick),
}

/// What the store threads send back to a shard.
#[derive(Debug)]
pub enum Answer {
    /// An account request succeeded.
    Account(AccountAnswer),
    /// A durable write is committed.
    Done(Box<Then>),
    /// A request failed: tell the asker.
    Failed(ProtocolError),
    /// SCRAM-SHA-256 credentials of an account (its name as registered).
    Scram(Box<(Nick, scram::Credentials)>),
    /// Rooms and their newest line's time, newest first.
    Targets(Vec<(RoomName, u64)>),
    /// Lines read from the store, oldest first.
    History {
        /// The room.
        room: RoomName,
        /// The lines.
        lines: Vec<HistoryLine>,
    },
}

/// An answer for one connection.
#[derive(Debug)]
pub struct StoreReply {
    /// Who it is for (generation checked on arrival, as for every message).
    pub to: ConnId,
    /// What.
    pub answer: Answer,
}

/// The store's counters (`/stats`, `/metrics`).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// History lines committed.
    pub lines_written: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Jobs refused because a queue was full.
    pub queue_full: AtomicU64,
    /// Transactions or reads that failed (a full or failing disk).
    pub errors: AtomicU64,
    /// Jobs waiting in the store thread's queue.
    pub queued: AtomicU64,
    /// Lines removed by retention.
    pub pruned: AtomicU64,
}

/// The shards' side of the store: two bounded queues and the counters.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    jobs: SyncSender<Job>,
    auth: SyncSender<AuthJob>,
    /// Counters, shared with the store threads.
    pub stats: Arc<StoreStats>,
}

/// The store is busy (its queue is full): the request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBusy;

impl StoreHandle {
    /// Hands `job` to the store thread without waiting.
    pub fn submit(&self, job: Job) -> Result<(), StoreBusy> {
        // Counted before the send: the store thread may take the job (and count it
        // down) before `try_send` even returns.
        self.stats.queued.fetch_add(1, Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Relaxed);
                self.stats.queue_full.fetch_add(1, Relaxed);
                Err(StoreBusy)
            }
        }
    }

    /// Stops both threads once they have done what is queued (the shards have
    /// stopped: nothing more comes). Waits for room in the queues.
    pub fn stop(&self) {
        let _ = self.jobs.send(Job::Stop);
        let _ = self.auth.send(AuthJob::Stop);
    }

    /// Hands `job` to the auth thread without waiting.
    pub fn submit_auth(&self, job: AuthJob) -> Result<(), StoreBusy> {
        self.auth.try_send(job).map_err(|_| {
            self.stats.queue_full.fetch_add(1, Relaxed);
            StoreBusy
        })
    }
}

/// An opened store, before its threads run.
#[derive(Debug)]
pub struct OpenedStore {
    /// The locked data dir.
    pub dir: DataDir,
    /// The settings.
    pub config: StoreConfig,
    /// What the shards use.
    pub handle: StoreHandle,
    /// What was registered, loaded from the file.
    pub registry: Registry,
    /// The newest message id stored (new ids start above it).
    pub last_id: u64,
    /// The k-lines in force, loaded from the file.
    pub klines: Vec<crate::protocol::KlineInfo>,
    jobs: Receiver<Job>,
    auth: Receiver<AuthJob>,
}

/// Opens the data dir (creating it), checks the file, and loads what the shards
/// must know at once. Nothing runs yet.
pub fn open(config: &StoreConfig) -> Result<OpenedStore, StoreError> {
    let dir = DataDir::lock(&config.dir)?;
    let path = dir.db_path();
    let connection = schema::open(&path)?;
    let registry = writer::load_registry(&connection).map_err(|e| StoreError::db(&path, e))?;
    let last_id: i64 = connection
        .query_row(
            "SELECT max((SELECT coalesce(max(id), 0) FROM history), \
                        (SELECT coalesce(max(id), 0) FROM private))",
            [],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::db(&path, e))?;
    let now = super::room_state::unix_now();
    let klines = klines::load(&connection, now).map_err(|e| StoreError::db(&path, e))?;
    let (jobs_tx, jobs) = sync_channel(JOB_QUEUE);
    let (auth_tx, auth) = sync_channel(AUTH_QUEUE);
    Ok(OpenedStore {
        dir,
        config: config.clone(),
        handle: StoreHandle {
            jobs: jobs_tx,
            auth: auth_tx,
            stats: Arc::default(),
        },
        registry,
        last_id: u64::try_from(last_id).unwrap_or(0),
        klines,
        jobs,
        auth,
    })
}

impl OpenedStore {
    /// Starts the store and auth threads; they answer through `shared`'s shard
    /// handles and exit when every [`StoreHandle`] is gone.
    pub fn spawn(
        self,
        shared: Arc<super::shared::Shared>,
    ) -> Result<Vec<std::thread::JoinHandle<()>>, StoreError> {
        let path = self.dir.db_path();
        let writer_db = schema::connect(&path)?;
        let auth_db = schema::connect(&path)?;
        let stats = Arc::clone(&self.handle.stats);
        let writer = writer::Writer::new(writer_db, self.config, Arc::clone(&shared), stats);
        let auth = auth::Auth::new(auth_db, shared);
        let (jobs, auth_jobs, dir) = (self.jobs, self.auth, self.dir);
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| StoreError::Io(path.clone(), e))
        };
        let writer = spawn(
            "store",
            Box::new(move || {
                writer.run(jobs);
                drop(dir); // the lock is let go once the last write is done
            }),
        )?;
        let auth = spawn("auth", Box::new(move || auth.run(auth_jobs)))?;
        Ok(vec![writer, auth])
    }
}

/// `miochat backup DEST`: a consistent copy of the database, made while a server
/// may be running (SQLite's `VACUUM INTO` reads one snapshot; WAL lets the server
/// write meanwhile). The copy is an ordinary SQLite file.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(schema::DB_FILE);
    if !path.is_file() {
        return Err(StoreError::Io(
            path,
            io::Error::new(io::ErrorKind::NotFound, "no database here"),
        ));
    }
    if dest.exists() {
        return Err(StoreError::Backup(
            dest.into(),
            "exists already; a backup never overwrites".into(),
        ));
    }
    let connection = schema::connect(&path)?;
    let dest_text = dest.to_string_lossy();
    connection
        .execute("VACUUM INTO ?1", [dest_text.as_ref()])
        .map_err(|e| StoreError::Backup(dest.into(), format!("cannot write it: {e}")))?;
    Ok(())
}
