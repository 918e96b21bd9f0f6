//! The store thread: takes jobs from its bounded queue, batches history lines into
//! one transaction per `--history-sync-ms`, commits room changes at once, answers
//! reads, and prunes old history.
//!
//! The loop is the shape of a group commit: wait for the first job (or the batch's
//! deadline), take whatever else is already queued without waiting, then commit if
//! the batch is due or a job needs its answer now. A job that needs an answer
//! (a registration, a ban, a read) commits the lines before it first, so an answer
//! never overtakes a line sent before it.
//!
//! An unregistered room's lines die with the room (`incarnations.rs`): the lines of
//! an incarnation that is over are deleted before a line of the next is kept, before
//! every read, every [`SWEEP_EVERY`], and, for every unregistered room, at start-up.
//!
//! A failed commit (a full or failing disk, a lock held too long by someone else) is
//! logged and counted; its lines stay pending and are tried again with the next
//! batch, up to [`MAX_PENDING`] lines, past which the oldest are given up (counted):
//! memory stays bounded whatever the disk does, and chat never waits for it.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::incarnations::Incarnations;
use super::redis_book::SharedRooms;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, params};

use crate::protocol::modes::{self, changes_string};
use crate::protocol::{BanInfo, Event, HistoryLine, Nick, ProtocolError, RoomName, SayKind};

use super::super::inbox::ShardMsg;
use super::super::registry::{Level, RegisteredRoom, Registry};
use super::super::room_state::RoomSnapshot;
use super::super::shared::Shared;
use super::super::token::ConnId;
use super::{Answer, HistoryQuery, Job, RoomWrite, StoreConfig, StoreReply, StoreStats, Then};

/// Lines kept for a retry while the disk fails; older ones are given up.
pub const MAX_PENDING: usize = 200_000;
/// Lines one batch commits at most (a bigger backlog is several transactions).
pub const MAX_BATCH: usize = 20_000;
/// Most lines one history read returns.
pub const MAX_READ: usize = 1000;
/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the lines of unregistered rooms that emptied are looked for (and a
/// failed deletion tried again).
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A line or private message waiting for its transaction.
#[derive(Debug)]
enum Pending {
    Line(super::StoredLine),
    Private(super::StoredPrivate),
}

/// The store thread's state.
#[derive(Debug)]
pub struct Writer {
    db: Connection,
    config: StoreConfig,
    shared: Arc<Shared>,
    stats: Arc<StoreStats>,
    pending: Vec<Pending>,
    /// When the oldest pending line arrived: it must be committed by then + sync.
    oldest: Option<Instant>,
    last_prune: Option<Instant>,
    /// Which incarnation of each room the lines held belong to.
    incarnations: Incarnations,
    last_sweep: Instant,
    /// Logged failures (the log says the first few, then every hundredth).
    failures: u64,
    /// The server is stopping: commit and exit.
    stopping: bool,
    /// In a cluster, registered rooms are kept in Redis too (`redis_book.rs`).
    cluster: Option<SharedRooms>,
}

impl Writer {
    /// A writer over its own connection.
    pub fn new(
        db: Connection,
        config: StoreConfig,
        shared: Arc<Shared>,
        stats: Arc<StoreStats>,
    ) -> Self {
        let cluster = (shared.config.backplane.as_ref())
            .map(|c| SharedRooms::new(c.seeds.clone(), c.cluster, c.node.clone()));
        Writer {
            db,
            config,
            shared,
            stats,
            pending: Vec::new(),
            oldest: None,
            last_prune: None,
            incarnations: Incarnations::default(),
            last_sweep: Instant::now(),
            failures: 0,
            stopping: false,
            cluster,
        }
    }

    /// Runs until told to stop (or every sender is gone), then commits what is left.
    ///
    /// While lines wait for their batch, the thread *sleeps* until the batch is due
    /// instead of waiting on the queue: a wait on the queue would be woken by every
    /// line, and each wake is a futex call paid by the shard that sent it, tens of
    /// thousands a second under load. Asleep, the thread costs the senders nothing;
    /// a job that needs an answer waits at most one `--history-sync-ms` for it.
    pub fn run(mut self, jobs: Receiver<Job>) {
        self.forget_unregistered();
        self.prune_if_due();
        loop {
            if self.oldest.is_some() {
                std::thread::sleep(self.wait());
            } else {
                match jobs.recv_timeout(SWEEP_EVERY) {
                    Ok(job) => self.take(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            while self.pending.len() < MAX_BATCH && !self.stopping {
                let Ok(job) = jobs.try_recv() else { break };
                self.take(job);
            }
            if self.due() || self.stopping {
                self.commit_pending();
            }
            if self.stopping {
                break;
            }
            self.sweep_if_due();
            self.prune_if_due();
        }
        self.commit_pending();
        log::debug!("store thread stopped");
    }

    /// How long the loop may sleep: until the batch is due.
    fn wait(&self) -> Duration {
        match self.oldest {
            Some(oldest) => self.config.history_sync.saturating_sub(oldest.elapsed()),
            None => Duration::ZERO,
        }
    }

    fn due(&self) -> bool {
        self.pending.len() >= MAX_BATCH
            || self
                .oldest
                .is_some_and(|oldest| oldest.elapsed() >= self.config.history_sync)
    }

    fn take(&mut self, job: Job) {
        if !matches!(job, Job::Stop) {
            self.stats.queued.fetch_sub(1, Relaxed);
        }
        match job {
            Job::Line(line) => {
                let ended = (self.incarnations).line(&line.room, line.born, line.line.id);
                if let Some(newest) = ended {
                    self.end_incarnation(&line.room, newest);
                }
                self.hold(Pending::Line(line));
            }
            Job::Private(private) => self.hold(Pending::Private(private)),
            Job::Room(write, then) => self.room(*write, then),
            Job::Kline(write, then) => self.kline(&write, then),
            Job::Targets {
                to,
                rooms,
                span,
                limit,
            } => {
                self.fence(&rooms);
                self.commit_pending();
                let floors: Vec<u64> = rooms.iter().map(|room| self.floor(room)).collect();
                let answer = match targets(&self.db, &rooms, &floors, span, limit) {
                    Ok(found) => Answer::Targets(found),
                    Err(e) => {
                        self.failed("reading history targets", &e);
                        Answer::Failed(ProtocolError::StoreFailed)
                    }
                };
                self.answer(to, answer);
            }
            Job::Stop => self.stopping = true,
            Job::Retention { days, max } => {
                (self.config.history_days, self.config.history_max) = (days, max);
                self.last_prune = None;
            }
            Job::Read {
                to,
                room,
                query,
                quiet_if_empty,
            } => {
                self.fence(std::slice::from_ref(&room));
                self.commit_pending();
                let floor = self.floor(&room);
                let read = read(&self.db, &room, query);
                let read = read.map(|lines| {
                    let lines = lines.into_iter();
                    lines.filter(|l| l.id > floor).collect::<Vec<_>>()
                });
                let answer = match read {
                    Ok(lines) if lines.is_empty() && quiet_if_empty => return,
                    Ok(lines) => Answer::History { room, lines },
                    Err(e) => {
                        self.failed("reading history", &e);
                        Answer::Failed(ProtocolError::StoreFailed)
                    }
                };
                self.answer(to, answer);
            }
        }
    }

    fn hold(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
            self.stats.errors.fetch_add(1, Relaxed);
        }
        self.pending.push(pending);
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Commits the pending lines in one transaction; on failure they stay pending.
    fn commit_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let count = self.pending.len();
        let result = self.transaction(write_lines, false);
        match result {
            Ok(()) => {
                self.stats.lines_written.fetch_add(count as u64, Relaxed);
                self.pending.clear();
                self.oldest = None;
            }
            Err(e) => {
                self.failed("writing history", &e);
                self.oldest = Some(Instant::now()); // try again a batch later
            }
        }
    }

    /// Runs `body` and the pending lines in one transaction (`with_lines`), or
    /// `body` alone.
    fn transaction(
        &mut self,
        body: impl FnOnce(&Transaction<'_>, &[Pending]) -> rusqlite::Result<()>,
        with_lines: bool,
    ) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        if with_lines {
            write_lines(&tx, &self.pending)?;
        }
        body(&tx, &self.pending)?;
        tx.commit()?;
        self.stats.commits.fetch_add(1, Relaxed);
        Ok(())
    }

    /// A registered room changed: committed with the lines before it, then the
    /// index is changed and the asker answered.
    fn room(&mut self, write: RoomWrite, then: Option<Box<Then>>) {
        let write = self.latest(write);
        if let Err(error) = self.register_in_cluster(&write) {
            if let Some(then) = then {
                self.answer(then.to, Answer::Failed(error));
            }
            return;
        }
        let lines = self.pending.len();
        let mut refused = None;
        // In a cluster, a room registered on another node may have no row here yet.
        let mirrored = (self.cluster.is_some() && !matches!(write, RoomWrite::Register { .. }))
            .then(|| self.shared.registry.room(write.room()))
            .flatten();
        let result = self.transaction(
            |tx, _| match mirror_row(tx, write.room(), mirrored.as_ref())
                .and_then(|()| write_room(tx, &write))
            {
                Ok(None) => Ok(()),
                Ok(Some(error)) => {
                    refused = Some(error);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            true,
        );
        if let Err(e) = result {
            self.failed("writing a room", &e);
            match then {
                // A ban is in force already: the room is told anyway, its setter
                // that it was not saved.
                Some(mut then) if then.broadcast.is_some() => {
                    then.reply = Some(Event::Error(ProtocolError::NotSaved));
                    self.answer(then.to, Answer::Done(then));
                }
                Some(then) => self.answer(then.to, Answer::Failed(ProtocolError::StoreFailed)),
                None => {}
            }
            return;
        }
        self.stats.lines_written.fetch_add(lines as u64, Relaxed);
        self.pending.clear();
        self.oldest = None;
        if let Some(error) = refused {
            if let Some(then) = then {
                self.answer(then.to, Answer::Failed(error));
            }
            return;
        }
        let dropped = matches!(write, RoomWrite::Drop { .. }).then(|| write.room().clone());
        let changed = write.room().clone();
        apply_to_registry(&self.shared.registry, write);
        self.tell_cluster(&changed);
        if let Some(room) = dropped {
            // No longer registered: if the room is empty, its lines are over now;
            // if not, they are its current incarnation's.
            let room = std::slice::from_ref(&room);
            match self.shared.directory.borns(room)[0] {
                0 => self.end_incarnation(&room[0], self.shared.next_msgid()),
                _ => self.fence(room),
            }
        }
        if let Some(then) = then {
            self.answer(then.to, Answer::Done(then));
        }
    }

    /// In a cluster, a new registration is taken in Redis first: of two nodes
    /// registering one room at once, one is refused.
    fn register_in_cluster(&mut self, write: &RoomWrite) -> Result<(), ProtocolError> {
        let (
            Some(cluster),
            RoomWrite::Register {
                room,
                founder,
                snapshot,
            },
        ) = (&mut self.cluster, write)
        else {
            return Ok(());
        };
        let record = RegisteredRoom {
            founder: founder.clone(),
            access: Vec::new(),
            snapshot: snapshot.clone(),
        };
        match cluster.register(room, &record) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProtocolError::AlreadyRegistered(room.clone())),
            Err(e) => {
                log::error!("store: registering {room} in Redis failed: {e}");
                self.stats.errors.fetch_add(1, Relaxed);
                Err(ProtocolError::StoreFailed)
            }
        }
    }

    /// In a cluster, a committed change of a registered room goes to Redis and to
    /// every node.
    fn tell_cluster(&mut self, room: &RoomName) {
        let record = self.shared.registry.room(room);
        if let Some(cluster) = &mut self.cluster
            && let Err(e) = cluster.publish(room, record)
        {
            log::error!("store: sharing {room} through Redis failed: {e}");
            self.stats.errors.fetch_add(1, Relaxed);
        }
    }

    /// An update carries the state it was made with; the directory may have a newer
    /// one by now (changes from two shards can reach this queue out of order), and
    /// the newest is what must be on disk.
    fn latest(&self, write: RoomWrite) -> RoomWrite {
        match write {
            RoomWrite::Update { room, snapshot } => {
                let snapshot = self
                    .shared
                    .directory
                    .room_snapshot(&room)
                    .unwrap_or(snapshot);
                RoomWrite::Update { room, snapshot }
            }
            other => other,
        }
    }

    /// A k-line set or lifted, already in force: on disk before its setter is told
    /// `OK`, or told that it is lost on restart.
    fn kline(&mut self, write: &super::klines::KlineWrite, mut then: Box<Then>) {
        if let Err(e) = super::klines::write(&self.db, write) {
            self.failed("writing a k-line", &e);
            then.reply = Some(Event::Error(ProtocolError::NotSaved));
        }
        self.answer(then.to, Answer::Done(then));
    }

    fn answer(&self, to: ConnId, answer: Answer) {
        let reply = Box::new(StoreReply { to, answer });
        if let Some(shard) = self.shared.shards.get(to.shard()) {
            shard.send(ShardMsg::Stored(reply));
        }
    }

    fn failed(&mut self, what: &str, error: &rusqlite::Error) {
        self.stats.errors.fetch_add(1, Relaxed);
        self.failures += 1;
        if self.failures <= 10 || self.failures.is_multiple_of(100) {
            log::error!("store: {what} failed ({} so far): {error}", self.failures);
        }
    }

    /// Retention: lines older than `--history-days`, and past `--history-max` per
    /// room, are deleted once a minute (and at start-up).
    fn prune_if_due(&mut self) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        self.commit_pending();
        let (days, max) = (self.config.history_days, self.config.history_max);
        match prune(&mut self.db, days, max) {
            Ok(removed) => {
                if removed > 0 {
                    log::info!("store: retention removed {removed} old lines");
                }
                self.stats.pruned.fetch_add(removed, Relaxed);
            }
            Err(e) => self.failed("pruning history", &e),
        }
    }

    /// Before a read: the lines of each of `rooms` are the current incarnation's, or
    /// deleted (the directory says which incarnation each room is now).
    fn fence(&mut self, rooms: &[RoomName]) {
        let borns = self.shared.directory.borns(rooms);
        for (room, born) in rooms.iter().zip(borns) {
            let newest_now = || self.shared.next_msgid();
            if let Some(newest) = self.incarnations.now(room, born, newest_now) {
                self.end_incarnation(room, newest);
            }
        }
    }

    /// An incarnation of `room` is over (its lines up to id `newest`): unless the
    /// room is registered, its lines go, pending and on disk. If the disk refuses,
    /// reads leave them out and the deletion is tried again at the next sweep.
    fn end_incarnation(&mut self, room: &RoomName, newest: u64) {
        if self.shared.registry.is_registered(room) {
            return;
        }
        let before = self.pending.len();
        (self.pending).retain(|p| !matches!(p, Pending::Line(line) if line.room == *room));
        if self.pending.is_empty() {
            self.oldest = None;
        }
        let dropped = (before - self.pending.len()) as u64;
        let deleted = self
            .db
            .execute("DELETE FROM history WHERE room = ?1", [room.as_str()]);
        match deleted {
            Ok(rows) => {
                self.incarnations.deleted(room);
                self.stats.pruned.fetch_add(rows as u64 + dropped, Relaxed);
                log::debug!(
                    "store: {room} emptied: {} lines forgotten",
                    rows as u64 + dropped
                );
            }
            Err(e) => {
                self.failed("forgetting an emptied room's history", &e);
                self.incarnations.deletion_failed(room, newest);
            }
        }
    }

    /// Lines of `room` with ids up to this are an ended incarnation's (not deleted
    /// yet: the disk failed).
    fn floor(&self, room: &RoomName) -> u64 {
        let registered = self.shared.registry.is_registered(room);
        self.incarnations.floor(room, registered)
    }

    /// Every [`SWEEP_EVERY`]: the lines of rooms that emptied since (and were not
    /// made again: that is seen at once) go, and failed deletions are tried again.
    fn sweep_if_due(&mut self) {
        if self.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = Instant::now();
        let rooms: Vec<RoomName> = (self.incarnations.held().into_iter())
            .map(|(room, _)| room)
            .collect();
        self.fence(&rooms);
        for (room, newest) in self.incarnations.failed() {
            self.end_incarnation(&room, newest);
        }
        if self.incarnations.restart_pending() {
            self.forget_unregistered();
        }
    }

    /// At start-up every room is empty: the lines of unregistered rooms go.
    fn forget_unregistered(&mut self) {
        let deleted = self.db.execute(
            "DELETE FROM history WHERE room NOT IN (SELECT name FROM rooms)",
            [],
        );
        match deleted {
            Ok(rows) => {
                self.incarnations.restart_deleted();
                self.stats.pruned.fetch_add(rows as u64, Relaxed);
                if rows > 0 {
                    log::info!("store: {rows} lines of unregistered rooms forgotten");
                }
            }
            Err(e) => {
                self.failed("forgetting unregistered rooms' history", &e);
                let newest = self.shared.next_msgid();
                self.incarnations.restart_deletion_failed(newest);
            }
        }
    }
}

fn kind_text(kind: SayKind) -> &'static str {
    match kind {
        SayKind::Action => "ME",
        SayKind::Message | SayKind::Notice => "MSG",
    }
}

/// Room lines one `INSERT` writes: a statement per line costs more in binding and
/// stepping than the B-tree work itself, so a full batch goes in statements of
/// this many rows (the rest one by one).
const ROWS_PER_INSERT: usize = 64;

fn write_lines(tx: &Transaction<'_>, pending: &[Pending]) -> rusqlite::Result<()> {
    let lines: Vec<&super::StoredLine> = (pending.iter())
        .filter_map(|p| match p {
            Pending::Line(stored) => Some(stored),
            Pending::Private(_) => None,
        })
        .collect();
    let mut chunks = lines.chunks_exact(ROWS_PER_INSERT);
    let many = format!(
        "INSERT OR IGNORE INTO history (id, room, at_ms, sender, kind, text) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?)"; ROWS_PER_INSERT].join(", ")
    );
    let mut many = tx.prepare_cached(&many)?;
    for chunk in chunks.by_ref() {
        for (row, stored) in chunk.iter().enumerate() {
            bind_line(&mut many, row * 6, stored)?;
        }
        many.raw_execute()?;
    }
    let mut one = tx.prepare_cached(
        "INSERT OR IGNORE INTO history (id, room, at_ms, sender, kind, text) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?;
    for stored in chunks.remainder() {
        bind_line(&mut one, 0, stored)?;
        one.raw_execute()?;
    }
    let mut private_stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO private (id, at_ms, sender, recipient, text) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for pending in pending {
        match pending {
            Pending::Line(_) => {}
            Pending::Private(private) => {
                private_stmt.execute(params![
                    private.id as i64,
                    private.at_ms as i64,
                    private.from.as_str(),
                    private.to.as_str(),
                    &*private.text
                ])?;
            }
        }
    }
    Ok(())
}

/// Binds one line's six values from parameter `first + 1` on.
fn bind_line(
    statement: &mut rusqlite::CachedStatement<'_>,
    first: usize,
    stored: &super::StoredLine,
) -> rusqlite::Result<()> {
    let line = &stored.line;
    statement.raw_bind_parameter(first + 1, line.id as i64)?;
    statement.raw_bind_parameter(first + 2, stored.room.as_str())?;
    statement.raw_bind_parameter(first + 3, line.at_ms as i64)?;
    statement.raw_bind_parameter(first + 4, line.from.as_str())?;
    statement.raw_bind_parameter(first + 5, kind_text(line.kind))?;
    statement.raw_bind_parameter(first + 6, &*line.text)
}

/// Writes one room change; `Ok(Some(error))` when the change is refused (a room
/// registered twice, a drop of a room that is not registered).
fn write_room(tx: &Transaction<'_>, write: &RoomWrite) -> rusqlite::Result<Option<ProtocolError>> {
    match write {
        RoomWrite::Register {
            room,
            founder,
            snapshot,
        } => {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO rooms (name, founder, created, modes) VALUES (?1, ?2, ?3, '')",
                params![room.as_str(), founder.as_str(), snapshot.created as i64],
            )?;
            if inserted == 0 {
                return Ok(Some(ProtocolError::AlreadyRegistered(room.clone())));
            }
            write_state(tx, room, snapshot)?;
        }
        RoomWrite::Update { room, snapshot } => write_state(tx, room, snapshot)?,
        RoomWrite::Access {
            room,
            account,
            level: Some(level),
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO access (room, account_key, account, level) VALUES (?1, ?2, ?3, ?4)",
                params![
                    room.as_str(),
                    account.as_str().to_ascii_lowercase(),
                    account.as_str(),
                    level.as_str()
                ],
            )?;
        }
        RoomWrite::Access {
            room,
            account,
            level: None,
        } => {
            tx.execute(
                "DELETE FROM access WHERE room = ?1 AND account_key = ?2",
                params![room.as_str(), account.as_str().to_ascii_lowercase()],
            )?;
        }
        RoomWrite::Drop { room } => {
            if tx.execute("DELETE FROM rooms WHERE name = ?1", [room.as_str()])? == 0 {
                return Ok(Some(ProtocolError::RoomNotRegistered(room.clone())));
            }
        }
    }
    Ok(None)
}

/// The row of a room registered on another node of the cluster, made here (with its
/// founder and creation time) if it is missing, so its changes can be kept here too.
fn mirror_row(
    tx: &Transaction<'_>,
    room: &RoomName,
    registered: Option<&RegisteredRoom>,
) -> rusqlite::Result<()> {
    if let Some(registered) = registered {
        tx.execute(
            "INSERT OR IGNORE INTO rooms (name, founder, created, modes) VALUES (?1, ?2, ?3, '')",
            params![
                room.as_str(),
                registered.founder.as_str(),
                registered.snapshot.created as i64
            ],
        )?;
    }
    Ok(())
}

/// The room's modes, topic and bans, as `snapshot` has them.
fn write_state(
    tx: &Transaction<'_>,
    room: &RoomName,
    snapshot: &RoomSnapshot,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE rooms SET modes = ?2, topic = ?3 WHERE name = ?1",
        params![
            room.as_str(),
            changes_string(&snapshot.changes),
            snapshot.topic.as_deref()
        ],
    )?;
    tx.execute("DELETE FROM bans WHERE room = ?1", [room.as_str()])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO bans (room, mask, set_by, set_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for ban in &snapshot.bans {
        insert.execute(params![
            room.as_str(),
            &*ban.mask,
            &*ban.set_by,
            ban.set_at as i64
        ])?;
    }
    Ok(())
}

fn apply_to_registry(registry: &Registry, write: RoomWrite) {
    match write {
        RoomWrite::Register {
            room,
            founder,
            snapshot,
        } => registry.put_room(
            room,
            RegisteredRoom {
                founder,
                access: Vec::new(),
                snapshot,
            },
        ),
        RoomWrite::Update { room, snapshot } => registry.update_snapshot(&room, snapshot),
        RoomWrite::Access {
            room,
            account,
            level,
        } => registry.set_access(&room, &account, level),
        RoomWrite::Drop { room } => registry.drop_room(&room),
    }
}

/// Lines of `room` as `query` asks, oldest first.
pub fn read(
    db: &Connection,
    room: &RoomName,
    query: HistoryQuery,
) -> rusqlite::Result<Vec<HistoryLine>> {
    // Ids are `ms << 12` or just above, so every query is a range of the room's
    // (room, id) index: a time is an id range too.
    let range = |low: u64, high: u64, count: usize, newest: bool| Range {
        low,
        high,
        count,
        newest,
    };
    match query {
        HistoryQuery::Latest(count) => read_range(db, room, range(0, u64::MAX, count, true)),
        HistoryQuery::LatestAfter(id, count) => {
            read_range(db, room, range(id, u64::MAX, count, true))
        }
        HistoryQuery::AfterId(id, count) => read_range(db, room, range(id, u64::MAX, count, false)),
        HistoryQuery::AfterTime(at, count) => {
            let low = (at << 12).saturating_sub(1);
            read_range(db, room, range(low, u64::MAX, count, false))
        }
        HistoryQuery::Before(id, count) => read_range(db, room, range(0, id, count, true)),
        HistoryQuery::Between(low, high, count) => {
            read_range(db, room, range(low, high, count, false))
        }
        HistoryQuery::Around(id, count) => {
            let before = count / 2;
            let mut lines = read_range(db, room, range(0, id, before, true))?;
            let rest = count - before;
            lines.extend(read_range(
                db,
                room,
                range(id.saturating_sub(1), u64::MAX, rest, false),
            )?);
            Ok(lines)
        }
    }
}

/// Which of `rooms` had lines with ids in `span` (exclusive) and above their
/// `floors`, with their newest line's time, newest first, at most `limit`.
fn targets(
    db: &Connection,
    rooms: &[RoomName],
    floors: &[u64],
    span: (u64, u64),
    limit: usize,
) -> rusqlite::Result<Vec<(RoomName, u64)>> {
    let mut statement = db.prepare_cached(
        "SELECT max(id), max(at_ms) FROM history WHERE room = ?1 AND id > ?2 AND id < ?3",
    )?;
    let as_sql = |id: u64| i64::try_from(id).unwrap_or(i64::MAX);
    let mut found = Vec::new();
    for (room, &floor) in rooms.iter().zip(floors) {
        let low = span.0.max(floor);
        let newest: (Option<i64>, Option<i64>) = statement
            .query_row(params![room.as_str(), as_sql(low), as_sql(span.1)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        if let (Some(id), Some(at)) = newest {
            found.push((id, room.clone(), at as u64));
        }
    }
    found.sort_by_key(|&(id, _, _)| std::cmp::Reverse(id));
    Ok(found
        .into_iter()
        .take(limit)
        .map(|(_, room, at)| (room, at))
        .collect())
}

/// Ids strictly between `low` and `high`: the newest `count` (`newest`) or the
/// oldest, returned oldest first.
#[derive(Debug, Clone, Copy)]
struct Range {
    low: u64,
    high: u64,
    count: usize,
    newest: bool,
}

fn read_range(
    db: &Connection,
    room: &RoomName,
    range: Range,
) -> rusqlite::Result<Vec<HistoryLine>> {
    let sql = match range.newest {
        true => {
            "SELECT id, at_ms, sender, kind, text FROM history \
                 WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
        }
        false => {
            "SELECT id, at_ms, sender, kind, text FROM history \
                  WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id LIMIT ?4"
        }
    };
    let mut statement = db.prepare_cached(sql)?;
    let as_sql = |id: u64| i64::try_from(id).unwrap_or(i64::MAX);
    let count = range.count.min(MAX_READ) as i64;
    let bounds = params![room.as_str(), as_sql(range.low), as_sql(range.high), count];
    let rows = statement.query_map(bounds, |row| {
        let kind: String = row.get(3)?;
        let from: String = row.get(2)?;
        let text: String = row.get(4)?;
        Ok(HistoryLine {
            id: row.get::<_, i64>(0)? as u64,
            at_ms: row.get::<_, i64>(1)? as u64,
            from: Nick::parse(&from).unwrap_or_else(|_| Nick::parse("unknown").expect("valid")),
            kind: if kind == "ME" {
                SayKind::Action
            } else {
                SayKind::Message
            },
            text: text.into(),
        })
    })?;
    let mut lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if range.newest {
        lines.reverse();
    }
    Ok(lines)
}

/// Deletes lines older than `days` (0 = keep) and past `max` per room (0 = no
/// limit); returns how many.
fn prune(db: &mut Connection, days: u32, max: u64) -> rusqlite::Result<u64> {
    let tx = db.transaction()?;
    let mut removed = 0;
    if days > 0 {
        let cutoff =
            crate::protocol::outgoing::now_ms().saturating_sub(u64::from(days) * 86_400_000);
        // Ids are time << 12. History is keyed by (room, id) for reads and writes;
        // this once-a-minute delete scans it, on the store thread.
        let below = (cutoff << 12) as i64;
        removed += tx.execute("DELETE FROM history WHERE id < ?1", [below])?;
        removed += tx.execute("DELETE FROM private WHERE id < ?1", [below])?;
    }
    if max > 0 {
        let over: Vec<(String, i64)> = {
            let mut statement = tx
                .prepare("SELECT room, count(*) FROM history GROUP BY room HAVING count(*) > ?1")?;
            let rows = statement.query_map([max as i64], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (room, count) in over {
            let excess = count - max as i64;
            removed += tx.execute(
                "DELETE FROM history WHERE id IN \
                 (SELECT id FROM history WHERE room = ?1 ORDER BY id LIMIT ?2)",
                params![room, excess],
            )?;
        }
    }
    tx.commit()?;
    Ok(removed as u64)
}

/// Loads the accounts and registered rooms into a fresh index (start-up).
pub fn load_registry(db: &Connection) -> rusqlite::Result<Registry> {
    let registry = Registry::default();
    let mut accounts = db.prepare("SELECT name FROM accounts")?;
    for name in accounts.query_map([], |row| row.get::<_, String>(0))? {
        if let Ok(nick) = Nick::parse(&name?) {
            registry.add_account(&nick);
        }
    }
    let mut rooms = db.prepare("SELECT name, founder, created, modes, topic FROM rooms")?;
    let rows = rooms.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (name, founder, created, modes, topic) = row?;
        let (Ok(room), Ok(founder)) = (RoomName::parse(&name), Nick::parse(&founder)) else {
            log::warn!("store: skipping room {name:?} with an unreadable name or founder");
            continue;
        };
        let snapshot = RoomSnapshot {
            created: created as u64,
            changes: parse_modes(&modes),
            bans: load_bans(db, &room)?,
            topic: topic.map(Into::into),
        };
        let access = load_access(db, &room)?;
        registry.put_room(
            room,
            RegisteredRoom {
                founder,
                access,
                snapshot,
            },
        );
    }
    Ok(registry)
}

fn parse_modes(text: &str) -> Vec<crate::protocol::ModeChange> {
    let mut words = text.split(' ');
    let letters = words.next().unwrap_or("");
    let params: Vec<&str> = words.collect();
    modes::parse(letters, &params).changes
}

fn load_bans(db: &Connection, room: &RoomName) -> rusqlite::Result<Vec<BanInfo>> {
    let mut statement =
        db.prepare_cached("SELECT mask, set_by, set_at FROM bans WHERE room = ?1 ORDER BY rowid")?;
    let rows = statement.query_map([room.as_str()], |row| {
        Ok(BanInfo {
            mask: row.get::<_, String>(0)?.into(),
            set_by: row.get::<_, String>(1)?.into(),
            set_at: row.get::<_, i64>(2)? as u64,
        })
    })?;
    rows.collect()
}

fn load_access(db: &Connection, room: &RoomName) -> rusqlite::Result<Vec<(Nick, Level)>> {
    let mut statement =
        db.prepare_cached("SELECT account, level FROM access WHERE room = ?1 ORDER BY rowid")?;
    let rows = statement.query_map([room.as_str()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut access = Vec::new();
    for row in rows {
        let (account, level) = row?;
        if let (Ok(nick), Some(level)) = (Nick::parse(&account), Level::parse(&level)) {
            access.push((nick, level));
        }
    }
    Ok(access)
}
