//! The `fanout` and `rooms` scenarios: C clients in R rooms, S of them sending.
//!
//! 1. **Connect** C clients (at most `--connect-window` handshakes at once, so the
//!    server's listen backlog never overflows), register them (nick), and join each
//!    to room `i % R`. Traffic starts only when every join is confirmed, so every
//!    message has a known set of recipients.
//! 2. **Send.** Sender `s` is client `s` (in room `s % R`); with `--dialect resp` it
//!    is a separate publisher connection. At full speed each sender keeps at most
//!    `--window` messages in flight, measured at a *probe* receiver in its room; at
//!    `--rate` messages are scheduled at fixed times and stamped with the scheduled
//!    time.
//! 3. **Receive.** Every payload is checked by [`Verdict`] per (receiver, sender)
//!    pair, and its latency goes into an HDR histogram.
//! 4. **Finish** when every expected delivery has arrived, or nothing arrived for
//!    `SETTLE` after the last send (then what is missing is loss), or at `--timeout`.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};

use super::dialect::{Incoming, ParseState};
use super::payload::{self, Payload};
use super::report::{Report, proc_cpu};
use super::verdict::Verdict;
use super::{BenchError, Common};
use crate::dialer::{Conn, source_for};

/// How long to wait for stragglers after the last message was sent.
const SETTLE: Duration = Duration::from_secs(5);

/// Options of a traffic run.
#[derive(Debug, Clone)]
pub struct TrafficOpts {
    /// Address, dialect, timeout, sources, server pid.
    pub common: Common,
    /// Receivers (room members).
    pub clients: usize,
    /// Senders.
    pub senders: usize,
    /// Rooms.
    pub rooms: usize,
    /// Messages per sender (ignored with `duration`).
    pub messages: u64,
    /// Send for this long instead of a message count.
    pub duration: Option<Duration>,
    /// Payload bytes.
    pub size: usize,
    /// In-flight messages per sender at full speed.
    pub window: u64,
    /// Total messages per second (fixed rate), or full speed.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Registering,
    Joining,
    Ready,
}

#[derive(Debug)]
struct Client {
    conn: Conn,
    parse: ParseState,
    phase: Phase,
    room: u32,
    /// Receiver index for the verdict; `None` for a RESP publisher.
    receiver: Option<u32>,
}

#[derive(Debug)]
struct Run {
    opts: TrafficOpts,
    poll: Poll,
    clients: Vec<Client>,
    /// Clients not yet created (connect window).
    next_to_connect: usize,
    handshakes: usize,
    ready: usize,
    verdict: Verdict,
    latency: Histogram<u64>,
    sent: Vec<u64>,
    /// Receiver whose progress limits each sender's window.
    probe: Vec<Option<u32>>,
    /// Deliveries each message of sender `s` should make.
    fanout: Vec<u64>,
    start: Instant,
    traffic_start: Option<Instant>,
    last_progress: Instant,
    /// Next message number at a fixed rate.
    scheduled: u64,
    out: Vec<u8>,
    payload: Vec<u8>,
    /// Read buffer shared by every client (allocated once, never zeroed again).
    scratch: Vec<u8>,
    /// `bench0`, `bench1`, ...: rendered once, not once per message.
    room_names: Vec<String>,
    broken: u64,
    errors: Vec<String>,
}

/// Runs `fanout` (R = 1) or `rooms`.
pub fn run(opts: TrafficOpts) -> Result<Report, BenchError> {
    validate(&opts)?;
    let mut run = Run::new(opts)?;
    run.connect_all()?;
    let cpu_before = run.opts.common.server_pid.and_then(proc_cpu);
    let own_before = proc_cpu(std::process::id());
    run.traffic()?;
    let cpu_after = run.opts.common.server_pid.and_then(proc_cpu);
    let own_after = proc_cpu(std::process::id());
    Ok(run.report(
        cpu_before.zip(cpu_after).map(|(a, b)| b.saturating_sub(a)),
        own_before.zip(own_after).map(|(a, b)| b.saturating_sub(a)),
    ))
}

fn validate(o: &TrafficOpts) -> Result<(), BenchError> {
    if o.clients == 0 || o.rooms == 0 || o.senders == 0 {
        return Err(BenchError::Usage(
            "--clients, --rooms and --senders must be > 0".into(),
        ));
    }
    if !o.common.dialect.separate_publishers() && o.senders > o.clients {
        return Err(BenchError::Usage(
            "--senders cannot exceed --clients".into(),
        ));
    }
    if o.rooms > o.clients {
        return Err(BenchError::Usage("--rooms cannot exceed --clients".into()));
    }
    if o.window == 0 {
        return Err(BenchError::Usage("--window must be > 0".into()));
    }
    Ok(())
}

fn room_name(r: u32) -> String {
    format!("bench{r}")
}

impl Run {
    fn new(opts: TrafficOpts) -> Result<Run, BenchError> {
        let d = opts.common.dialect;
        let (c, s, r) = (opts.clients, opts.senders, opts.rooms);
        let members = |room: usize| (0..c).filter(|i| i % r == room).count() as u64;
        let fanout = (0..s)
            .map(|s| members(s % r) - u64::from(!d.echoes_sender()))
            .collect();
        let probe = (0..s)
            .map(|s| {
                // The first member of the sender's room that is not the sender.
                (0..c)
                    .filter(|&i| i % r == s % r)
                    .find(|&i| d.separate_publishers() || i != s)
                    .map(|i| i as u32)
            })
            .collect();
        let latency = Histogram::new_with_bounds(1_000, 120_000_000_000, 3)
            .map_err(|e| BenchError::Usage(format!("histogram: {e}")))?;
        let now = Instant::now();
        Ok(Run {
            poll: Poll::new()?,
            clients: Vec::with_capacity(c + s),
            next_to_connect: 0,
            handshakes: 0,
            ready: 0,
            verdict: Verdict::default(),
            latency,
            sent: vec![0; s],
            probe,
            fanout,
            start: now,
            traffic_start: None,
            last_progress: now,
            scheduled: 0,
            out: Vec::new(),
            payload: Vec::new(),
            scratch: vec![0; 64 * 1024],
            room_names: (0..r as u32).map(room_name).collect(),
            broken: 0,
            errors: Vec::new(),
            opts,
        })
    }

    /// Total connections: receivers, plus publishers for RESP.
    fn total(&self) -> usize {
        let publishers = if self.opts.common.dialect.separate_publishers() {
            self.opts.senders
        } else {
            0
        };
        self.opts.clients + publishers
    }

    /// The connection that sends for sender `s`.
    fn sender_conn(&self, s: usize) -> usize {
        if self.opts.common.dialect.separate_publishers() {
            self.opts.clients + s
        } else {
            s
        }
    }

    fn start_connects(&mut self) -> io::Result<()> {
        while self.next_to_connect < self.total()
            && self.handshakes < self.opts.common.connect_window
        {
            let i = self.next_to_connect;
            let source = source_for(i, self.opts.common.sources);
            let conn = Conn::connect_with(
                self.opts.common.addr,
                source,
                self.poll.registry(),
                Token(i),
                self.opts.common.tls.as_ref(),
            )?;
            let is_receiver = i < self.opts.clients;
            let room = if is_receiver {
                i % self.opts.rooms
            } else {
                (i - self.opts.clients) % self.opts.rooms
            };
            self.clients.push(Client {
                conn,
                parse: ParseState::default(),
                phase: Phase::Connecting,
                room: room as u32,
                receiver: is_receiver.then_some(i as u32),
            });
            self.next_to_connect += 1;
            self.handshakes += 1;
        }
        Ok(())
    }

    fn connect_all(&mut self) -> Result<(), BenchError> {
        let mut events = Events::with_capacity(1024);
        let deadline = Instant::now() + self.opts.common.timeout;
        while self.ready < self.total() {
            self.start_connects()?;
            self.poll
                .poll(&mut events, Some(Duration::from_millis(100)))?;
            for event in events.iter() {
                self.on_event(event.token().0, event.is_writable())?;
            }
            if self.broken > 0 {
                return Err(BenchError::Broken(format!(
                    "{} connection(s) failed while connecting: {}",
                    self.broken,
                    self.errors.join("; ")
                )));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Broken(format!(
                    "only {} of {} clients ready after {:?}",
                    self.ready,
                    self.total(),
                    self.opts.common.timeout
                )));
            }
        }
        Ok(())
    }

    fn on_event(&mut self, i: usize, writable: bool) -> io::Result<()> {
        let d = self.opts.common.dialect;
        let registry = self.poll.registry();
        let client = &mut self.clients[i];
        if client.phase == Phase::Connecting {
            if !writable {
                return Ok(());
            }
            match client.conn.finish_connect() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.broken += 1;
                    self.errors.push(format!("connect: {e}"));
                    return Ok(());
                }
            }
            client.conn.send(&d.hello(&format!("b{i}")), registry)?;
            client.phase = Phase::Registering;
            if d.registered_on_connect() {
                self.advance(i)?;
            }
        } else if writable && let Err(e) = client.conn.flush(registry) {
            self.broken += 1;
            self.errors.push(format!("write: {e}"));
        }
        self.read(i)
    }

    /// Registered → join (receivers) or ready (publishers); joined → ready.
    fn advance(&mut self, i: usize) -> io::Result<()> {
        let d = self.opts.common.dialect;
        let client = &mut self.clients[i];
        match client.phase {
            Phase::Registering if client.receiver.is_some() => {
                client.phase = Phase::Joining;
                let join = d.join(&self.room_names[client.room as usize]);
                client.conn.send(&join, self.poll.registry())?;
            }
            Phase::Registering | Phase::Joining => {
                client.phase = Phase::Ready;
                self.ready += 1;
                self.handshakes -= 1;
            }
            _ => {}
        }
        Ok(())
    }

    fn read(&mut self, i: usize) -> io::Result<()> {
        let d = self.opts.common.dialect;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut registered = false;
        let mut joined = false;
        let mut replies: Vec<Vec<u8>> = Vec::new();
        let now_ns = self.start.elapsed().as_nanos() as u64;
        let Client {
            conn,
            parse,
            room,
            receiver,
            ..
        } = &mut self.clients[i];
        let (verdict, latency, errors) = (&mut self.verdict, &mut self.latency, &mut self.errors);
        let result = conn.read_lines(&mut scratch, |line| match d.classify(line, parse) {
            Incoming::Payload(bytes) => {
                if let (Some(p), Some(r)) = (payload::decode(bytes), *receiver) {
                    verdict.record(r, *room, p.sender, p.seq, p.room);
                    let _ = latency.record(now_ns.saturating_sub(p.sent_ns).max(1_000));
                }
            }
            Incoming::Registered => registered = true,
            Incoming::Joined => joined = true,
            Incoming::Reply(bytes) => replies.push(bytes),
            Incoming::Error(e) => {
                if errors.len() < 10 {
                    errors.push(String::from_utf8_lossy(e).into_owned());
                }
            }
            Incoming::Pong | Incoming::Other => {}
        });
        self.scratch = scratch;
        match result {
            Ok(true) => {}
            Ok(false) => {
                self.broken += 1;
                self.errors
                    .push(format!("client {i}: server closed the connection"));
            }
            Err(e) => {
                self.broken += 1;
                self.errors.push(format!("client {i}: {e}"));
            }
        }
        for reply in replies {
            self.clients[i].conn.send(&reply, self.poll.registry())?;
        }
        let phase = self.clients[i].phase;
        if (registered && phase == Phase::Registering) || (joined && phase == Phase::Joining) {
            self.advance(i)?;
        }
        Ok(())
    }

    // ----- traffic -------------------------------------------------------------------

    fn sending_over(&self, s: usize, now: Instant) -> bool {
        match (self.opts.duration, self.traffic_start) {
            (Some(d), Some(t0)) => now >= t0 + d,
            _ => self.sent[s] >= self.opts.messages,
        }
    }

    fn all_sent(&self, now: Instant) -> bool {
        match self.opts.rate {
            Some(_) => self.rate_finished(now),
            None => (0..self.opts.senders).all(|s| self.sending_over(s, now)),
        }
    }

    fn rate_finished(&self, now: Instant) -> bool {
        match self.opts.duration {
            Some(_) => self.sending_over(0, now),
            None => self.scheduled >= self.opts.messages * self.opts.senders as u64,
        }
    }

    fn expected(&self) -> u64 {
        self.sent
            .iter()
            .zip(&self.fanout)
            .map(|(sent, fanout)| sent * fanout)
            .sum()
    }

    fn traffic(&mut self) -> Result<(), BenchError> {
        let mut events = Events::with_capacity(1024);
        let t0 = Instant::now();
        self.traffic_start = Some(t0);
        self.last_progress = t0;
        let deadline = t0 + self.opts.common.timeout;
        let mut last_received = 0;
        loop {
            let now = Instant::now();
            self.pump(now)?;
            let sent_all = self.all_sent(now);
            if sent_all && self.verdict.received >= self.expected() {
                break;
            }
            if self.verdict.received != last_received {
                last_received = self.verdict.received;
                self.last_progress = now;
            }
            if sent_all && now.duration_since(self.last_progress) > SETTLE {
                break;
            }
            if now > deadline {
                self.errors
                    .push(format!("timeout after {:?}", self.opts.common.timeout));
                break;
            }
            if self.broken > 0 {
                break;
            }
            let timeout = self.poll_timeout(now);
            self.poll.poll(&mut events, Some(timeout))?;
            for event in events.iter() {
                self.on_event(event.token().0, event.is_writable())?;
            }
        }
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        match (self.opts.rate, self.traffic_start) {
            (Some(rate), Some(t0)) if !self.rate_finished(now) => {
                let due = t0 + Duration::from_secs_f64(self.scheduled as f64 / rate);
                due.saturating_duration_since(now)
            }
            _ => Duration::from_millis(50),
        }
    }

    /// Sends whatever the window or the schedule allows now.
    fn pump(&mut self, now: Instant) -> io::Result<()> {
        let Some(t0) = self.traffic_start else {
            return Ok(());
        };
        if let Some(rate) = self.opts.rate {
            while !self.rate_finished(now) {
                let due = t0 + Duration::from_secs_f64(self.scheduled as f64 / rate);
                if due > now {
                    break;
                }
                let s = (self.scheduled % self.opts.senders as u64) as usize;
                self.queue_message(s, due.duration_since(self.start).as_nanos() as u64);
                self.scheduled += 1;
                self.flush_sender(s)?;
            }
            return Ok(());
        }
        let now_ns = now.duration_since(self.start).as_nanos() as u64;
        for s in 0..self.opts.senders {
            let mut queued = false;
            while !self.sending_over(s, now) && self.window_open(s) {
                self.queue_message(s, now_ns);
                queued = true;
            }
            if queued {
                self.flush_sender(s)?;
            }
        }
        Ok(())
    }

    fn window_open(&self, s: usize) -> bool {
        match self.probe[s] {
            Some(probe) => self.sent[s] - self.verdict.progress(probe, s as u32) < self.opts.window,
            None => true,
        }
    }

    fn queue_message(&mut self, s: usize, sent_ns: u64) {
        let room = (s % self.opts.rooms) as u32;
        let p = Payload {
            sender: s as u32,
            seq: self.sent[s],
            sent_ns,
            room,
        };
        self.payload.clear();
        payload::encode(&p, self.opts.size, &mut self.payload);
        self.opts.common.dialect.message(
            &self.room_names[room as usize],
            &self.payload,
            &mut self.out,
        );
        self.sent[s] += 1;
    }

    fn flush_sender(&mut self, s: usize) -> io::Result<()> {
        let i = self.sender_conn(s);
        let out = std::mem::take(&mut self.out);
        self.clients[i].conn.send(&out, self.poll.registry())?;
        self.out = out;
        self.out.clear();
        Ok(())
    }

    // ----- results -------------------------------------------------------------------

    fn report(&self, server_cpu: Option<Duration>, own_cpu: Option<Duration>) -> Report {
        let o = &self.opts;
        let mut r = Report::new();
        r.text("scenario", if o.rooms == 1 { "fanout" } else { "rooms" });
        r.text("dialect", format!("{:?}", o.common.dialect).to_lowercase());
        r.int("clients", o.clients as u64);
        r.int("senders", o.senders as u64);
        r.int("rooms", o.rooms as u64);
        r.int("size", o.size as u64);
        match o.rate {
            Some(rate) => r.float("rate_msgs_per_s", rate),
            None => r.int("window", o.window),
        }
        let elapsed = self
            .traffic_start
            .map_or(Duration::ZERO, |t0| self.last_progress.duration_since(t0))
            .max(Duration::from_millis(1));
        let sent: u64 = self.sent.iter().sum();
        let expected = self.expected();
        let received = self.verdict.received;
        r.int("messages_sent", sent);
        r.int("deliveries_expected", expected);
        r.int("deliveries_received", received);
        r.float("elapsed_s", elapsed.as_secs_f64());
        r.float("deliveries_per_s", received as f64 / elapsed.as_secs_f64());
        for (key, q) in [
            ("latency_p50_us", 0.5),
            ("latency_p90_us", 0.9),
            ("latency_p99_us", 0.99),
            ("latency_p999_us", 0.999),
        ] {
            r.float(key, self.latency.value_at_quantile(q) as f64 / 1000.0);
        }
        r.float("latency_max_us", self.latency.max() as f64 / 1000.0);
        if let Some(cpu) = server_cpu {
            r.float("server_cpu_s", cpu.as_secs_f64());
            r.float(
                "server_ns_per_delivery",
                cpu.as_nanos() as f64 / received.max(1) as f64,
            );
        }
        if let Some(cpu) = own_cpu {
            r.float("bench_cpu_s", cpu.as_secs_f64());
        }
        let pairs = self.expected_pairs();
        let lost = self.verdict.lost(pairs.into_iter(), &self.sent);
        r.int("lost", lost);
        r.int("duplicated", self.verdict.duplicates);
        r.int("reordered", self.verdict.reordered);
        r.int("leaked", self.verdict.leaked);
        r.int("broken_connections", self.broken);
        if lost > 0 {
            r.fail(format!("{lost} deliveries lost"));
        }
        if self.verdict.duplicates > 0 {
            r.fail(format!("{} deliveries duplicated", self.verdict.duplicates));
        }
        if self.verdict.reordered > 0 {
            r.fail(format!(
                "{} deliveries out of order",
                self.verdict.reordered
            ));
        }
        if self.verdict.leaked > 0 {
            r.fail(format!(
                "{} deliveries leaked into other rooms",
                self.verdict.leaked
            ));
        }
        if self.broken > 0 {
            r.fail(format!("{} connections broke", self.broken));
        }
        for e in &self.errors {
            r.fail(format!("server said or did: {e}"));
        }
        r
    }

    fn expected_pairs(&self) -> Vec<(u32, u32)> {
        let o = &self.opts;
        let d = o.common.dialect;
        let mut pairs = Vec::new();
        for receiver in 0..o.clients {
            for s in 0..o.senders {
                let same_room = receiver % o.rooms == s % o.rooms;
                let is_self = !d.separate_publishers() && receiver == s;
                if same_room && !is_self {
                    pairs.push((receiver as u32, s as u32));
                }
            }
        }
        pairs
    }
}
