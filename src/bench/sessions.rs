//! The `idle` and `churn` scenarios: connections rather than messages.
//!
//! - `idle` opens C connections (from several `127.0.0.x` source addresses when C is
//!   beyond one address's ephemeral ports), holds them for `--hold` seconds, then
//!   proves each is still alive with a ping round trip. When the server processes
//!   are known (see [`super::servers`]) it reads their RSS before and after, which
//!   gives the memory cost of one idle connection. Its three phases (connect, hold,
//!   verify) are one poll-and-dispatch loop, `IdleRun::drive`, run three times:
//!   the phases differ only in when they are complete.
//! - `churn` starts connections at `--churn-rate` per second for `--duration`: each
//!   registers, joins the bench's room, sends one message, quits and waits for the
//!   server to close. It reports completed sessions per second and every failure.
//!
//! Both use `on_event` for one connection's readiness: the dialer finishes the
//! connect, then the greeting goes out and the lines are classified.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use super::dialect::{Dialect, Incoming, ParseState};
use super::report::Report;
use super::servers::ServerWatch;
use super::{BenchError, Common};
use crate::dialer::{Conn, Ready, source_for};

/// How long one poll may wait while something is still being set up.
const POLL_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connecting,
    Registering,
    /// Joined before talking (churn).
    Joining,
    Idle,
    Pinged,
    Alive,
    Quitting,
}

#[derive(Debug)]
struct Session {
    conn: Conn,
    parse: ParseState,
    step: Step,
    /// Makes the nick unique: the connection's index (idle) or launch number (churn).
    number: u64,
    /// How long the first `MARK.UNIX_NS` message took to reach it, in ns (idle
    /// `--await-mark`). Kept beside the outcome, which a mark must not overwrite.
    mark: Option<u64>,
}

impl Session {
    fn new(conn: Conn, number: u64) -> Session {
        Session {
            conn,
            parse: ParseState::default(),
            step: Step::Connecting,
            number,
            mark: None,
        }
    }
}

/// What one event did to a session.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Nothing,
    Registered,
    Joined,
    Pong,
    Closed,
    Failed(String),
}

/// Handles one readiness event for a session: the dialer finishes the connect (then
/// the greeting `hello` makes is sent), then every complete line is classified.
fn on_event(
    session: &mut Session,
    dialect: Dialect,
    hello: impl FnOnce() -> Vec<u8>,
    writable: bool,
    registry: &Registry,
    scratch: &mut [u8],
) -> Outcome {
    match session.conn.on_ready(writable, registry) {
        Ok(Ready::Connecting) => return Outcome::Nothing,
        Ok(Ready::Open) => {}
        Ok(Ready::JustConnected) => {
            session.step = Step::Registering;
            if let Err(err) = session.conn.send(&hello(), registry) {
                return Outcome::Failed(format!("write: {err}"));
            }
            if dialect.registered_on_connect() {
                return Outcome::Registered;
            }
        }
        Err(err) => return Outcome::Failed(err.to_string()),
    }
    read_lines(session, dialect, registry, scratch)
}

/// Reads what arrived, answers what must be answered (IRC PING), and says what the
/// lines meant.
fn read_lines(
    session: &mut Session,
    dialect: Dialect,
    registry: &Registry,
    scratch: &mut [u8],
) -> Outcome {
    let mut outcome = Outcome::Nothing;
    let mut replies = Vec::new();
    let (parse, mark) = (&mut session.parse, &mut session.mark);
    let read = session
        .conn
        .read_lines(scratch, |line| match dialect.classify(line, parse) {
            // In a cluster the nick's answer waits for Redis, so `OK joined` may come
            // first: a join seen in the same read is not overwritten.
            Incoming::Registered if outcome != Outcome::Joined => outcome = Outcome::Registered,
            Incoming::Registered => {}
            Incoming::Joined => outcome = Outcome::Joined,
            Incoming::Pong => outcome = Outcome::Pong,
            Incoming::Reply(bytes) => replies.push(bytes),
            Incoming::Error(text) => {
                outcome = Outcome::Failed(format!("server said: {}", String::from_utf8_lossy(text)))
            }
            Incoming::Payload(text) => {
                if let Some(late) = mark_latency(text) {
                    mark.get_or_insert(late);
                }
            }
            Incoming::Other => {}
        });
    for reply in replies {
        let _ = session.conn.send(&reply, registry);
    }
    match read {
        Ok(true) => outcome,
        Ok(false) => Outcome::Closed,
        Err(err) => Outcome::Failed(format!("read: {err}")),
    }
}

/// How long ago a `MARK.UNIX_NS` message was sent (wall clocks: the sender is
/// another process on this machine); `None` for any other text.
fn mark_latency(text: &[u8]) -> Option<u64> {
    let sent: u64 = std::str::from_utf8(text.strip_prefix(b"MARK.")?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as u64;
    Some(now.saturating_sub(sent))
}

// ----- idle ---------------------------------------------------------------------------

/// The phases of `idle`; each is one run of [`IdleRun::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdlePhase {
    /// Open and register every connection.
    Connect,
    /// Keep them open (answering IRC PINGs) and watch for closes.
    Hold,
    /// One ping round trip each.
    Verify,
}

/// The state of an `idle` run.
#[derive(Debug)]
struct IdleRun<'a> {
    common: &'a Common,
    clients: usize,
    poll: Poll,
    /// One read buffer for every session, allocated once.
    scratch: Vec<u8>,
    sessions: Vec<Session>,
    handshakes: usize,
    registered: usize,
    alive: usize,
    failures: Vec<String>,
    /// `--await-mark`: the hold ends when every connection got the mark.
    await_mark: bool,
    /// How long the mark took to reach each connection that got it, in ns.
    mark_latencies: Vec<u64>,
}

impl<'a> IdleRun<'a> {
    fn new(common: &'a Common, clients: usize) -> Result<IdleRun<'a>, BenchError> {
        Ok(IdleRun {
            common,
            clients,
            poll: Poll::new()?,
            scratch: vec![0u8; 16 * 1024],
            sessions: Vec::with_capacity(clients),
            handshakes: 0,
            registered: 0,
            alive: 0,
            failures: Vec::new(),
            await_mark: false,
            mark_latencies: Vec::new(),
        })
    }

    /// Starts connects while the connect window has room.
    fn start_connects(&mut self) -> std::io::Result<()> {
        while self.sessions.len() < self.clients && self.handshakes < self.common.connect_window {
            let index = self.sessions.len();
            let addr = self.common.addr_for(index);
            let mut conn = Conn::connect_with(
                addr,
                source_for(index, self.common.sources, self.common.source_offset),
                self.poll.registry(),
                Token(index),
                self.common.tls.as_ref(),
            )?;
            self.common.dialect.prepare(&mut conn, addr);
            self.sessions.push(Session::new(conn, index as u64));
            self.handshakes += 1;
        }
        Ok(())
    }

    fn phase_complete(&self, phase: IdlePhase) -> bool {
        match phase {
            IdlePhase::Connect => self.registered >= self.clients,
            IdlePhase::Hold => self.await_mark && self.mark_latencies.len() >= self.clients,
            IdlePhase::Verify => self.alive >= self.sessions.len(),
        }
    }

    /// The one poll-and-dispatch loop: runs `phase` until it is complete, a
    /// connection fails, or `deadline` passes.
    fn drive(&mut self, phase: IdlePhase, deadline: Instant) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.phase_complete(phase) && self.failures.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if phase == IdlePhase::Connect {
                self.start_connects()?;
            }
            let mut wait = deadline.saturating_duration_since(now);
            if phase != IdlePhase::Hold {
                wait = wait.min(POLL_TICK);
            }
            self.poll.poll(&mut events, Some(wait))?;
            for event in events.iter() {
                self.dispatch(phase, event.token().0, event.is_writable());
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, phase: IdlePhase, index: usize, writable: bool) {
        let common = self.common;
        let (dialect, room) = (common.dialect, common.room.as_str());
        let session = &mut self.sessions[index];
        let (number, had_mark) = (session.number, session.mark.is_some());
        let tag = process_tag();
        let hello = || dialect.hello(&format!("i{tag}{}", base36(number)), Some(room));
        let outcome = on_event(
            session,
            dialect,
            hello,
            writable,
            self.poll.registry(),
            &mut self.scratch,
        );
        if let Some(late) = session.mark.filter(|_| !had_mark) {
            self.mark_latencies.push(late);
        }
        let during = if phase == IdlePhase::Hold {
            " during the hold"
        } else {
            ""
        };
        // With a line server the greeting also joins the room: wait for that too.
        let settled = match outcome {
            Outcome::Registered => !dialect.joins_in_hello(),
            Outcome::Joined => dialect.joins_in_hello(),
            _ => false,
        };
        match outcome {
            _ if settled && session.step == Step::Registering => {
                session.step = Step::Idle;
                self.registered += 1;
                self.handshakes -= 1;
            }
            Outcome::Pong if session.step == Step::Pinged => {
                session.step = Step::Alive;
                self.alive += 1;
            }
            Outcome::Failed(why) => self.failures.push(format!("{why}{during}")),
            Outcome::Closed => self
                .failures
                .push(format!("a connection was closed by the server{during}")),
            _ => {}
        }
    }

    /// Sends one ping on every connection (the verify phase waits for the answers).
    fn ping_all(&mut self) -> std::io::Result<()> {
        let ping = self.common.dialect.ping();
        for session in &mut self.sessions {
            session.conn.send(ping, self.poll.registry())?;
            session.step = Step::Pinged;
        }
        Ok(())
    }
}

/// `idle`: hold `clients` connections for `hold` (or, with `await_mark`, until a
/// `MARK.UNIX_NS` message reached every one of them, `hold` at most).
pub fn idle(
    common: &Common,
    clients: usize,
    hold: Duration,
    await_mark: bool,
) -> Result<Report, BenchError> {
    let mut watch = ServerWatch::find(common);
    let mut run = IdleRun::new(common, clients)?;
    run.await_mark = await_mark;
    let rss_before = watch.rss_kib();
    let started = Instant::now();
    run.drive(IdlePhase::Connect, started + common.timeout)?;
    let connect_time = started.elapsed();
    if await_mark {
        // The one line a script that starts many load processes waits for.
        eprintln!(
            "idle: {} of {clients} connected in {:.1} s; waiting for the mark",
            run.registered,
            connect_time.as_secs_f64()
        );
    }
    let rss_after = watch.rss_kib();
    run.drive(IdlePhase::Hold, Instant::now() + hold)?;
    if run.failures.is_empty() {
        run.ping_all()?;
        run.drive(IdlePhase::Verify, Instant::now() + common.timeout)?;
    }
    watch.recheck();
    let rss = watch
        .measured()
        .then_some(rss_before.zip(rss_after))
        .flatten();
    Ok(idle_report(&run, &watch, connect_time, hold, rss))
}

fn idle_report(
    run: &IdleRun<'_>,
    watch: &ServerWatch,
    connect_time: Duration,
    hold: Duration,
    rss: Option<(u64, u64)>,
) -> Report {
    let (common, clients, registered) = (run.common, run.clients, run.registered);
    let mut report = Report::new();
    report.text("scenario", "idle");
    report.text("dialect", format!("{:?}", common.dialect).to_lowercase());
    report.text("servers", common.addrs_text());
    report.int("clients", clients as u64);
    report.int("sources", common.sources.max(1) as u64);
    report.int("connected", registered as u64);
    report.float("connect_s", connect_time.as_secs_f64());
    report.float(
        "connects_per_s",
        registered as f64 / connect_time.as_secs_f64(),
    );
    report.float("hold_s", hold.as_secs_f64());
    report.int("alive_after_hold", run.alive as u64);
    watch.describe(&mut report);
    if let Some((before, after)) = rss {
        report.int("server_rss_before_kib", before);
        report.int("server_rss_after_kib", after);
        let per = (after.saturating_sub(before) * 1024) as f64 / registered.max(1) as f64;
        report.float("server_rss_bytes_per_conn", per);
    }
    if run.await_mark {
        mark_report(run, &mut report);
    }
    if run.alive < clients {
        report.fail(format!(
            "only {} of {clients} connections alive after the hold",
            run.alive
        ));
    }
    for failure in &run.failures {
        report.fail(failure.clone());
    }
    report
}

/// `--await-mark`: how many connections the mark reached, and how fast.
fn mark_report(run: &IdleRun<'_>, report: &mut Report) {
    let mut late = run.mark_latencies.clone();
    late.sort_unstable();
    let at = |q: f64| {
        late.get(((late.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    report.int("marked", late.len() as u64);
    let ms = |ns: u64| ns as f64 / 1e6;
    if let (Some(p50), Some(p99), Some(max)) = (at(0.5), at(0.99), late.last().copied()) {
        report.float("mark_latency_p50_ms", ms(p50));
        report.float("mark_latency_p99_ms", ms(p99));
        report.float("mark_latency_max_ms", ms(max));
    }
    if late.len() < run.clients {
        report.fail(format!(
            "the mark reached only {} of {} connections",
            late.len(),
            run.clients
        ));
    }
}

// ----- churn --------------------------------------------------------------------------

/// The state of a `churn` run.
#[derive(Debug)]
struct ChurnRun<'a> {
    common: &'a Common,
    /// Sessions started per second.
    rate: f64,
    poll: Poll,
    /// One read buffer for every session, allocated once.
    scratch: Vec<u8>,
    sessions: Slab<Session>,
    started: Instant,
    launched: u64,
    completed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl ChurnRun<'_> {
    /// When the next session is due.
    fn next_launch(&self) -> Instant {
        self.started + Duration::from_secs_f64(self.launched as f64 / self.rate)
    }

    /// Launches every session whose start time has come.
    fn launch_due(&mut self, now: Instant) {
        while self.next_launch() <= now {
            let entry = self.sessions.vacant_entry();
            let index = self.launched as usize;
            let registry = self.poll.registry();
            let (addr, source) = (
                self.common.addr_for(index),
                source_for(index, self.common.sources, self.common.source_offset),
            );
            let tls = self.common.tls.as_ref();
            match Conn::connect_with(addr, source, registry, Token(entry.key()), tls) {
                Ok(mut conn) => {
                    self.common.dialect.prepare(&mut conn, addr);
                    entry.insert(Session::new(conn, self.launched));
                }
                Err(err) => {
                    self.failed += 1;
                    self.failures.push(format!("connect: {err}"));
                }
            }
            self.launched += 1;
        }
    }

    /// One event: register → join → say one line and quit → closed by the server.
    fn dispatch(&mut self, key: usize, writable: bool) -> std::io::Result<()> {
        let dialect = self.common.dialect;
        let Some(session) = self.sessions.get_mut(key) else {
            return Ok(());
        };
        let number = session.number;
        let tag = process_tag();
        let hello = || dialect.hello(&format!("c{tag}{}", base36(number)), None);
        let registry = self.poll.registry();
        let outcome = on_event(
            session,
            dialect,
            hello,
            writable,
            registry,
            &mut self.scratch,
        );
        let room = self.common.room.as_str();
        let done = match (outcome, session.step) {
            (Outcome::Registered, Step::Registering) if dialect.joins_to_talk() => {
                session.conn.send(&dialect.join(room), registry)?;
                session.step = Step::Joining;
                false
            }
            (Outcome::Registered, Step::Registering) | (Outcome::Joined, Step::Joining) => {
                let mut out = Vec::new();
                dialect.message(room, b"hello-and-goodbye", &mut out);
                out.extend_from_slice(dialect.quit());
                session.conn.send(&out, registry)?;
                session.step = Step::Quitting;
                false
            }
            (Outcome::Closed, Step::Quitting) => {
                self.completed += 1;
                true
            }
            (Outcome::Closed, _) => {
                self.failed += 1;
                let why = "a session was closed by the server before quitting";
                self.failures.push(why.into());
                true
            }
            (Outcome::Failed(why), _) => {
                self.failed += 1;
                self.failures.push(why);
                true
            }
            _ => false,
        };
        if done {
            self.sessions.remove(key);
        }
        Ok(())
    }

    fn report(&self) -> Report {
        let elapsed = self.started.elapsed();
        let unfinished = self.sessions.len() as u64;
        let mut report = Report::new();
        report.text("scenario", "churn");
        report.text(
            "dialect",
            format!("{:?}", self.common.dialect).to_lowercase(),
        );
        report.text("servers", self.common.addrs_text());
        report.float("target_sessions_per_s", self.rate);
        report.int("launched", self.launched);
        report.int("completed", self.completed);
        report.int("failed", self.failed);
        report.int("unfinished", unfinished);
        report.float("elapsed_s", elapsed.as_secs_f64());
        report.float(
            "sessions_per_s",
            self.completed as f64 / elapsed.as_secs_f64(),
        );
        if self.failed > 0 || unfinished > 0 {
            let failed = self.failed;
            report.fail(format!("{failed} sessions failed, {unfinished} unfinished"));
        }
        for failure in &self.failures {
            report.fail(failure.clone());
        }
        report
    }
}

/// `churn`: sessions started at `rate` per second for `duration`.
pub fn churn(common: &Common, rate: f64, duration: Duration) -> Result<Report, BenchError> {
    let mut run = ChurnRun {
        common,
        rate,
        poll: Poll::new()?,
        scratch: vec![0u8; 16 * 1024],
        sessions: Slab::new(),
        started: Instant::now(),
        launched: 0,
        completed: 0,
        failed: 0,
        failures: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let stop_launching = run.started + duration;
    let hard_end = stop_launching + common.timeout;
    loop {
        let now = Instant::now();
        if now < stop_launching {
            run.launch_due(now);
        }
        if (now >= stop_launching && run.sessions.is_empty()) || now > hard_end {
            break;
        }
        let wait = run.next_launch().saturating_duration_since(now);
        run.poll.poll(&mut events, Some(wait.min(POLL_TICK)))?;
        for event in events.iter() {
            run.dispatch(event.token().0, event.is_writable())?;
        }
    }
    Ok(run.report())
}

/// Three base-36 digits of the process id: they keep nicks apart when several bench
/// processes share a cluster (nicks are unique cluster-wide), and keep a nick short
/// (`i` + 3 + at most 4 digits for 1.6 million connections): the idle figure is per
/// connection, and a nick longer than 8 bytes costs the server a larger allocation
/// per copy, which would make runs with different nick lengths incomparable.
fn process_tag() -> String {
    let tag = u64::from(std::process::id()) % (36 * 36 * 36);
    format!("{:0>3}", base36(tag))
}

/// `n` in base 36 (digits, then lower-case letters).
fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        let digit = (n % 36) as u32;
        digits.push(char::from_digit(digit, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Nick;

    #[test]
    fn nicks_are_short_valid_and_distinct() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        let tag = process_tag();
        assert_eq!(tag.len(), 3);
        let last = format!("i{tag}{}", base36(1_679_615));
        assert!(last.len() <= 8 && Nick::parse(&last).is_ok(), "{last}");
        assert_ne!(base36(18_999), base36(19_000));
    }
}
