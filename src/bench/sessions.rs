//! The `idle` and `churn` scenarios: connections rather than messages.
//!
//! - `idle` opens C connections (from several `127.0.0.x` source addresses when C is
//!   beyond one address's ephemeral ports), holds them for `--hold` seconds, then
//!   proves each is still alive with a ping round trip. With `--server-pid` it reads
//!   the server's RSS before and after, which gives the memory cost of one idle
//!   connection.
//! - `churn` starts connections at `--churn-rate` per second for `--duration`: each
//!   registers, sends one message, quits and waits for the server to close. It
//!   reports completed sessions per second and every failure.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use slab::Slab;

use super::dialect::{Dialect, Incoming, ParseState};
use super::report::{Report, proc_rss_kib};
use super::{BenchError, Common};
use crate::dialer::{Conn, source_for};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connecting,
    Registering,
    /// IRC only: joined before talking.
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

/// Handles one readiness event for a session.
fn on_event(
    s: &mut Session,
    d: Dialect,
    nick: &str,
    writable: bool,
    poll: &Poll,
    scratch: &mut [u8],
) -> Outcome {
    let registry = poll.registry();
    if s.step == Step::Connecting {
        if !writable {
            return Outcome::Nothing;
        }
        match s.conn.finish_connect() {
            Ok(true) => {}
            Ok(false) => return Outcome::Nothing,
            Err(e) => return Outcome::Failed(format!("connect: {e}")),
        }
        s.step = Step::Registering;
        if let Err(e) = s.conn.send(&d.hello(nick), registry) {
            return Outcome::Failed(format!("write: {e}"));
        }
        if d.registered_on_connect() {
            return Outcome::Registered;
        }
    } else if writable && let Err(e) = s.conn.flush(registry) {
        return Outcome::Failed(format!("write: {e}"));
    }
    let mut outcome = Outcome::Nothing;
    let mut replies = Vec::new();
    let parse = &mut s.parse;
    let read = s
        .conn
        .read_lines(scratch, |line| match d.classify(line, parse) {
            Incoming::Registered => outcome = Outcome::Registered,
            Incoming::Joined => outcome = Outcome::Joined,
            Incoming::Pong => outcome = Outcome::Pong,
            Incoming::Reply(bytes) => replies.push(bytes),
            Incoming::Error(e) => {
                outcome = Outcome::Failed(String::from_utf8_lossy(e).into_owned())
            }
            Incoming::Payload(_) | Incoming::Other => {}
        });
    for reply in replies {
        let _ = s.conn.send(&reply, registry);
    }
    match read {
        Ok(true) => outcome,
        Ok(false) => Outcome::Closed,
        Err(e) => Outcome::Failed(format!("read: {e}")),
    }
}

/// `idle`: hold `clients` connections for `hold`.
pub fn idle(common: &Common, clients: usize, hold: Duration) -> Result<Report, BenchError> {
    let d = common.dialect;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    // One read buffer for every session, allocated once.
    let mut scratch = vec![0u8; 16 * 1024];
    let mut sessions: Vec<Session> = Vec::with_capacity(clients);
    let rss_before = common.server_pid.and_then(proc_rss_kib);
    let started = Instant::now();
    let deadline = started + common.timeout;
    let (mut registered, mut handshakes, mut failures) = (0usize, 0usize, Vec::new());
    while registered < clients {
        while sessions.len() < clients && handshakes < common.connect_window {
            let i = sessions.len();
            let conn = Conn::connect_with(
                common.addr,
                source_for(i, common.sources),
                poll.registry(),
                Token(i),
                common.tls.as_ref(),
            )?;
            sessions.push(Session {
                conn,
                parse: ParseState::default(),
                step: Step::Connecting,
            });
            handshakes += 1;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let i = event.token().0;
            let s = &mut sessions[i];
            match on_event(
                s,
                d,
                &format!("i{i}"),
                event.is_writable(),
                &poll,
                &mut scratch,
            ) {
                Outcome::Registered if s.step == Step::Registering => {
                    s.step = Step::Idle;
                    registered += 1;
                    handshakes -= 1;
                }
                Outcome::Failed(e) => failures.push(format!("client {i}: {e}")),
                Outcome::Closed => failures.push(format!("client {i}: closed by the server")),
                _ => {}
            }
        }
        if !failures.is_empty() || Instant::now() > deadline {
            break;
        }
    }
    let connect_time = started.elapsed();
    let rss_after = common.server_pid.and_then(proc_rss_kib);

    // Hold: keep answering (IRC PINGs) and watch for closes.
    let hold_end = Instant::now() + hold;
    while failures.is_empty() && Instant::now() < hold_end {
        poll.poll(
            &mut events,
            Some(hold_end.saturating_duration_since(Instant::now())),
        )?;
        for event in events.iter() {
            let i = event.token().0;
            match on_event(
                &mut sessions[i],
                d,
                "",
                event.is_writable(),
                &poll,
                &mut scratch,
            ) {
                Outcome::Failed(e) => failures.push(format!("client {i} during hold: {e}")),
                Outcome::Closed => failures.push(format!("client {i}: closed during hold")),
                _ => {}
            }
        }
    }

    // Prove every connection is alive: one ping round trip each.
    let mut alive = 0;
    if failures.is_empty() {
        for s in sessions.iter_mut() {
            s.conn.send(d.ping(), poll.registry())?;
            s.step = Step::Pinged;
        }
        let verify_end = Instant::now() + common.timeout;
        while alive < sessions.len() && Instant::now() < verify_end && failures.is_empty() {
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
            for event in events.iter() {
                let i = event.token().0;
                let s = &mut sessions[i];
                match on_event(s, d, "", event.is_writable(), &poll, &mut scratch) {
                    Outcome::Pong if s.step == Step::Pinged => {
                        s.step = Step::Alive;
                        alive += 1;
                    }
                    Outcome::Failed(e) => failures.push(format!("client {i}: {e}")),
                    Outcome::Closed => failures.push(format!("client {i}: closed")),
                    _ => {}
                }
            }
        }
    }

    let mut r = Report::new();
    r.text("scenario", "idle");
    r.text("dialect", format!("{d:?}").to_lowercase());
    r.int("clients", clients as u64);
    r.int("sources", common.sources.max(1) as u64);
    r.int("connected", registered as u64);
    r.float("connect_s", connect_time.as_secs_f64());
    r.float(
        "connects_per_s",
        registered as f64 / connect_time.as_secs_f64(),
    );
    r.float("hold_s", hold.as_secs_f64());
    r.int("alive_after_hold", alive as u64);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        r.int("server_rss_before_kib", before);
        r.int("server_rss_after_kib", after);
        let per = (after.saturating_sub(before) * 1024) as f64 / registered.max(1) as f64;
        r.float("server_rss_bytes_per_conn", per);
    }
    if alive < clients {
        r.fail(format!(
            "only {alive} of {clients} connections alive after the hold"
        ));
    }
    for f in failures.iter().take(10) {
        r.fail(f.clone());
    }
    Ok(r)
}

/// `churn`: sessions started at `rate` per second for `duration`.
pub fn churn(common: &Common, rate: f64, duration: Duration) -> Result<Report, BenchError> {
    let d = common.dialect;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    // One read buffer for every session, allocated once.
    let mut scratch = vec![0u8; 16 * 1024];
    let mut sessions: Slab<Session> = Slab::new();
    let started = Instant::now();
    let (mut launched, mut completed, mut failures) = (0u64, 0u64, Vec::<String>::new());
    let mut failed = 0u64;
    let stop_launching = started + duration;
    let hard_end = stop_launching + common.timeout;
    loop {
        let now = Instant::now();
        // Launch every session whose start time has come.
        while now < stop_launching
            && Duration::from_secs_f64(launched as f64 / rate) <= now.duration_since(started)
        {
            let entry = sessions.vacant_entry();
            let source = source_for(launched as usize, common.sources);
            let token = Token(entry.key());
            match Conn::connect_with(
                common.addr,
                source,
                poll.registry(),
                token,
                common.tls.as_ref(),
            ) {
                Ok(conn) => {
                    entry.insert(Session {
                        conn,
                        parse: ParseState::default(),
                        step: Step::Connecting,
                    });
                }
                Err(e) => {
                    failed += 1;
                    failures.push(format!("connect: {e}"));
                }
            }
            launched += 1;
        }
        if (now >= stop_launching && sessions.is_empty()) || now > hard_end {
            break;
        }
        let next_launch = started + Duration::from_secs_f64(launched as f64 / rate);
        let timeout = next_launch
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(timeout))?;
        for event in events.iter() {
            let key = event.token().0;
            let Some(s) = sessions.get_mut(key) else {
                continue;
            };
            let outcome = on_event(
                s,
                d,
                &format!("c{key}x{launched}"),
                event.is_writable(),
                &poll,
                &mut scratch,
            );
            let done = match (outcome, s.step) {
                (Outcome::Registered, Step::Registering) if d == Dialect::Irc => {
                    s.conn.send(&d.join("churn"), poll.registry())?;
                    s.step = Step::Joining;
                    false
                }
                (Outcome::Registered, Step::Registering) | (Outcome::Joined, Step::Joining) => {
                    let mut out = Vec::new();
                    d.message("churn", b"hello-and-goodbye", &mut out);
                    out.extend_from_slice(d.quit());
                    s.conn.send(&out, poll.registry())?;
                    s.step = Step::Quitting;
                    false
                }
                (Outcome::Closed, Step::Quitting) => {
                    completed += 1;
                    true
                }
                (Outcome::Closed, _) => {
                    failed += 1;
                    failures.push("closed by the server before quitting".into());
                    true
                }
                (Outcome::Failed(e), _) => {
                    failed += 1;
                    failures.push(e);
                    true
                }
                _ => false,
            };
            if done {
                sessions.remove(key);
            }
        }
    }
    let elapsed = started.elapsed();
    let mut r = Report::new();
    r.text("scenario", "churn");
    r.text("dialect", format!("{d:?}").to_lowercase());
    r.float("target_sessions_per_s", rate);
    r.int("launched", launched);
    r.int("completed", completed);
    r.int("failed", failed);
    r.int("unfinished", sessions.len() as u64);
    r.float("elapsed_s", elapsed.as_secs_f64());
    r.float("sessions_per_s", completed as f64 / elapsed.as_secs_f64());
    if failed > 0 || !sessions.is_empty() {
        r.fail(format!(
            "{failed} sessions failed, {} unfinished",
            sessions.len()
        ));
    }
    for f in failures.iter().take(10) {
        r.fail(f.clone());
    }
    Ok(r)
}

impl From<io::Error> for BenchError {
    fn from(e: io::Error) -> Self {
        BenchError::Io(e)
    }
}
