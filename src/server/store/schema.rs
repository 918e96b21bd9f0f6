//! The database file: where it lives, how it is opened, and the tables in it.
//!
//! One SQLite file, `miochat.db`, in the data dir, in WAL mode: readers (a backup, a
//! `sqlite3` shell) never block the writer, and a commit is one append to the
//! write-ahead log. `synchronous=FULL` makes every commit reach the disk before it
//! returns, which is what lets an account or a ban be called durable before its `OK`.
//! History is batched (one commit per `--history-sync-ms`), so that fsync is paid a
//! few times a second, not once per line.
//!
//! The schema carries a version (`PRAGMA user_version`). A newer file than this
//! binary knows is refused, never rewritten: an older binary must not corrupt the
//! data of a newer one. A lock file (`miochat.lock`, held with an OS file lock for
//! the life of the process) keeps a second server off the same data dir.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// The schema version this binary writes and reads: 2 added the SCRAM-SHA-256
/// credentials to `accounts` (a version 1 file is upgraded in place at start-up).
pub const SCHEMA_VERSION: i64 = 2;

/// The database file inside the data dir.
pub const DB_FILE: &str = "miochat.db";

/// The lock file inside the data dir.
pub const LOCK_FILE: &str = "miochat.lock";

/// How long a statement waits for another connection's lock (another of our
/// threads, a backup, an operator's `sqlite3` shell) before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Every table (a k-line table was added without a new version: a binary that
/// does not know it leaves it alone).
pub const TABLES: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    name_key TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    hash     TEXT NOT NULL,
    created  INTEGER NOT NULL,
    scram_salt BLOB,
    scram_iterations INTEGER,
    scram_stored_key BLOB,
    scram_server_key BLOB
);
CREATE TABLE IF NOT EXISTS rooms (
    name      TEXT PRIMARY KEY,
    founder   TEXT NOT NULL,
    created   INTEGER NOT NULL,
    modes     TEXT NOT NULL,
    topic     TEXT,
    topic_by  TEXT,
    topic_at  INTEGER
);
CREATE TABLE IF NOT EXISTS bans (
    room    TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
    mask    TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  INTEGER NOT NULL,
    PRIMARY KEY (room, mask)
);
CREATE TABLE IF NOT EXISTS access (
    room        TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
    account_key TEXT NOT NULL,
    account     TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('op', 'voice')),
    PRIMARY KEY (room, account_key)
);
CREATE TABLE IF NOT EXISTS history (
    room    TEXT NOT NULL,
    id      INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    sender  TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('MSG', 'ME')),
    text    TEXT NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS private (
    id        INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    sender    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS klines (
    mask    TEXT PRIMARY KEY,
    set_by  TEXT NOT NULL,
    set_at  INTEGER NOT NULL,
    expires INTEGER,
    reason  TEXT NOT NULL
);
";

const UPGRADE_TO_2: &str = "
ALTER TABLE accounts ADD COLUMN scram_salt BLOB;
ALTER TABLE accounts ADD COLUMN scram_iterations INTEGER;
ALTER TABLE accounts ADD COLUMN scram_stored_key BLOB;
ALTER TABLE accounts ADD COLUMN scram_server_key BLOB;
";

// History is one B-tree keyed by (room, id), `WITHOUT ROWID`: a line is one insert
// (a rowid table plus a (room, id) index was two, and the store thread's CPU per
// line measured 15 % more), and every read is a range of that key.

/// The data dir, locked for this process.
#[derive(Debug)]
pub struct DataDir {
    /// The folder.
    pub path: PathBuf,
    /// Held (locked) for the life of the process; the OS lets go when it exits, even
    /// on `kill -9`.
    _lock: File,
}

impl DataDir {
    /// Creates the folder if needed and takes its lock; a second server on the same
    /// folder is refused here.
    pub fn lock(path: &Path) -> Result<DataDir, StoreError> {
        if path.exists() && !path.is_dir() {
            return Err(StoreError::NotADirectory(path.into()));
        }
        std::fs::create_dir_all(path).map_err(|e| StoreError::Io(path.into(), e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(lock_path.clone(), e))?;
        match lock.try_lock() {
            Ok(()) => Ok(DataDir {
                path: path.into(),
                _lock: lock,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(path.into())),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(lock_path, e)),
        }
    }

    /// The database file's path.
    pub fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }
}

/// Opens (creating if new) the database at `path`, checks its version and makes
/// sure every table exists.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = connect(path)?;
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| StoreError::db(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerVersion {
            path: path.into(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    connection
        .execute_batch(TABLES)
        .map_err(|e| StoreError::db(path, e))?;
    if version == 1 {
        // Version 2 keeps SCRAM credentials; accounts made before have none until
        // their password is next set (they log in with PLAIN meanwhile).
        connection
            .execute_batch(UPGRADE_TO_2)
            .map_err(|e| StoreError::db(path, e))?;
    }
    connection
        .pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| StoreError::db(path, e))?;
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| StoreError::db(path, e))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(path.into(), check));
    }
    Ok(connection)
}

/// One more connection to an existing database (each store thread has its own).
pub fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::db(path, e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::db(path, e))?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(|e| StoreError::db(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(
            path.into(),
            format!("journal mode is {mode}, not wal"),
        ));
    }
    connection
        .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(|e| StoreError::db(path, e))?;
    Ok(connection)
}
