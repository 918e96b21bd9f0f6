//! The `fanout` and `rooms` scenarios: C clients in R rooms, S of them sending.
//!
//! 1. **Connect** C clients (at most `--connect-window` handshakes at once, so the
//!    server's listen backlog never overflows), register them (nick), and join each
//!    to room `i % R` (named after `--room`: `bench`, or `bench0`, `bench1`, ... for
//!    several). Traffic starts only when every join is confirmed, so every message
//!    has a known set of recipients. With several servers (`--addr A,B`, cluster
//!    nodes), the k-th member of each room goes to address `k mod N`, so every room
//!    spans every node; the verdict is over all clients, whatever their node.
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
use super::report::{self, Report, proc_cpu};
use super::servers::ServerWatch;
use super::verdict::Verdict;
use super::{BenchError, Common};
use crate::dialer::{Conn, Ready, source_for};

/// How long to wait for stragglers after the last message was sent.
const SETTLE: Duration = Duration::from_secs(5);

/// Options of a traffic run.
#[derive(Debug, Clone)]
pub struct TrafficOpts {
    /// Addresses, dialect, timeout, sources, server pids, room.
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
    /// Bytes of the payload lines received, newlines included (for `bench floor`).
    payload_bytes: u64,
}

/// Runs `fanout` (R = 1) or `rooms`.
pub fn run(opts: TrafficOpts) -> Result<Report, BenchError> {
    validate(&opts)?;
    let mut watch = ServerWatch::find(&opts.common);
    let mut run = Run::new(opts)?;
    run.connect_all()?;
    let cpu_before = watch.cpu();
    let own_before = proc_cpu(std::process::id());
    run.traffic()?;
    let cpu_after = watch.cpu();
    let own_after = proc_cpu(std::process::id());
    watch.recheck();
    let used = |before: Option<Duration>, after: Option<Duration>| {
        before
            .zip(after)
            .map(|(before, after)| after.saturating_sub(before))
    };
    let server_cpu = used(cpu_before, cpu_after).filter(|_| watch.measured());
    let mut report = run.report(server_cpu, used(own_before, own_after));
    watch.describe(&mut report);
    Ok(report)
}

fn validate(opts: &TrafficOpts) -> Result<(), BenchError> {
    if opts.clients == 0 || opts.rooms == 0 || opts.senders == 0 {
        return Err(BenchError::Usage(
            "--clients, --rooms and --senders must be > 0".into(),
        ));
    }
    if !opts.common.dialect.separate_publishers() && opts.senders > opts.clients {
        return Err(BenchError::Usage(
            "--senders cannot exceed --clients".into(),
        ));
    }
    if opts.rooms > opts.clients {
        return Err(BenchError::Usage("--rooms cannot exceed --clients".into()));
    }
    if opts.window == 0 {
        return Err(BenchError::Usage("--window must be > 0".into()));
    }
    Ok(())
}

/// The room names: `--room` itself for one room, `ROOM0`, `ROOM1`, ... for several.
fn room_names(base: &str, rooms: usize) -> Vec<String> {
    if rooms == 1 {
        return vec![base.to_string()];
    }
    (0..rooms).map(|index| format!("{base}{index}")).collect()
}

impl Run {
    fn new(opts: TrafficOpts) -> Result<Run, BenchError> {
        let dialect = opts.common.dialect;
        let (clients, senders, rooms) = (opts.clients, opts.senders, opts.rooms);
        let members = |room: usize| (0..clients).filter(|i| i % rooms == room).count() as u64;
        let fanout = (0..senders)
            .map(|sender| members(sender % rooms) - u64::from(!dialect.echoes_sender()))
            .collect();
        let probe = (0..senders)
            .map(|sender| {
                // The first member of the sender's room that is not the sender.
                (0..clients)
                    .filter(|&i| i % rooms == sender % rooms)
                    .find(|&i| dialect.separate_publishers() || i != sender)
                    .map(|i| i as u32)
            })
            .collect();
        let latency = Histogram::new_with_bounds(1_000, 120_000_000_000, 3)
            .map_err(|e| BenchError::Usage(format!("histogram: {e}")))?;
        let now = Instant::now();
        Ok(Run {
            poll: Poll::new()?,
            clients: Vec::with_capacity(clients + senders),
            next_to_connect: 0,
            handshakes: 0,
            ready: 0,
            verdict: Verdict::default(),
            latency,
            sent: vec![0; senders],
            probe,
            fanout,
            start: now,
            traffic_start: None,
            last_progress: now,
            scheduled: 0,
            out: Vec::new(),
            payload: Vec::new(),
            scratch: vec![0; 64 * 1024],
            room_names: room_names(&opts.common.room, rooms),
            broken: 0,
            errors: Vec::new(),
            payload_bytes: 0,
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

    /// The connection that sends for `sender`.
    fn sender_conn(&self, sender: usize) -> usize {
        if self.opts.common.dialect.separate_publishers() {
            self.opts.clients + sender
        } else {
            sender
        }
    }

    fn start_connects(&mut self) -> io::Result<()> {
        while self.next_to_connect < self.total()
            && self.handshakes < self.opts.common.connect_window
        {
            let index = self.next_to_connect;
            let (clients, rooms) = (self.opts.clients, self.opts.rooms);
            let is_receiver = index < clients;
            // Receivers: the k-th member of each room goes to server k mod N.
            // Publishers (RESP): publisher p to server p mod N.
            let (room, slot) = if is_receiver {
                (index % rooms, index / rooms)
            } else {
                ((index - clients) % rooms, index - clients)
            };
            let common = &self.opts.common;
            let source = source_for(index, common.sources, common.source_offset);
            let registry = self.poll.registry();
            let (addr, tls) = (common.addr_for(slot), common.tls.as_ref());
            let mut conn = Conn::connect_with(addr, source, registry, Token(index), tls)?;
            common.dialect.prepare(&mut conn, addr);
            self.clients.push(Client {
                conn,
                parse: ParseState::default(),
                phase: Phase::Connecting,
                room: room as u32,
                receiver: is_receiver.then_some(index as u32),
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
                    report::with_advice(collapse(&self.errors)).join("; ")
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

    /// One readiness event: the dialer finishes the connect (then the greeting goes
    /// out) or flushes, then whatever arrived is read.
    fn on_event(&mut self, index: usize, writable: bool) -> io::Result<()> {
        let dialect = self.opts.common.dialect;
        let registry = self.poll.registry();
        let client = &mut self.clients[index];
        match client.conn.on_ready(writable, registry) {
            Ok(Ready::Connecting) => return Ok(()),
            Ok(Ready::Open) => {}
            Ok(Ready::JustConnected) => {
                let hello = dialect.hello(&format!("b{index}"), None);
                if let Err(err) = client.conn.send(&hello, registry) {
                    // Most likely refused and closed by the server: what it said
                    // first is read for the reason. The client is broken once.
                    let broken = self.broken;
                    self.errors.push(format!("write: {err}"));
                    let read = self.read(index);
                    self.broken = broken + 1;
                    return read;
                }
                client.phase = Phase::Registering;
                if dialect.registered_on_connect() {
                    self.advance(index)?;
                }
            }
            Err(err) => {
                self.broken += 1;
                self.errors.push(err.to_string());
                if !self.clients[index].conn.connected {
                    return Ok(());
                }
            }
        }
        self.read(index)
    }

    /// Registered → join (receivers) or ready (publishers); joined → ready.
    fn advance(&mut self, index: usize) -> io::Result<()> {
        let dialect = self.opts.common.dialect;
        let client = &mut self.clients[index];
        match client.phase {
            Phase::Registering if client.receiver.is_some() => {
                client.phase = Phase::Joining;
                let join = dialect.join(&self.room_names[client.room as usize]);
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

    /// Reads what arrived on client `index`: payloads go to the verdict and the
    /// latency histogram; registration and join confirmations move the client on.
    fn read(&mut self, index: usize) -> io::Result<()> {
        let dialect = self.opts.common.dialect;
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
        } = &mut self.clients[index];
        let (verdict, latency, errors) = (&mut self.verdict, &mut self.latency, &mut self.errors);
        let payload_bytes = &mut self.payload_bytes;
        let result = conn.read_lines(&mut scratch, |line| match dialect.classify(line, parse) {
            Incoming::Payload(bytes) => {
                *payload_bytes += line.len() as u64 + 1;
                if let (Some(payload), Some(receiver)) = (payload::decode(bytes), *receiver) {
                    let Payload { sender, seq, .. } = payload;
                    verdict.record(receiver, *room, sender, seq, payload.room);
                    let _ = latency.record(now_ns.saturating_sub(payload.sent_ns).max(1_000));
                }
            }
            Incoming::Registered => registered = true,
            Incoming::Joined => joined = true,
            Incoming::Reply(bytes) => replies.push(bytes),
            Incoming::Error(text) => {
                errors.push(format!("server said: {}", String::from_utf8_lossy(text)));
            }
            Incoming::Pong | Incoming::Other => {}
        });
        self.scratch = scratch;
        match result {
            Ok(true) => {}
            Ok(false) => {
                self.broken += 1;
                self.errors
                    .push("the server closed a client's connection".into());
            }
            Err(err) => {
                self.broken += 1;
                self.errors.push(format!("read: {err}"));
            }
        }
        for reply in replies {
            self.clients[index]
                .conn
                .send(&reply, self.poll.registry())?;
        }
        let phase = self.clients[index].phase;
        if (registered && phase == Phase::Registering) || (joined && phase == Phase::Joining) {
            self.advance(index)?;
        }
        Ok(())
    }

    // ----- traffic -------------------------------------------------------------------

    fn sending_over(&self, sender: usize, now: Instant) -> bool {
        match (self.opts.duration, self.traffic_start) {
            (Some(duration), Some(t0)) => now >= t0 + duration,
            _ => self.sent[sender] >= self.opts.messages,
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
                let sender = (self.scheduled % self.opts.senders as u64) as usize;
                self.queue_message(sender, due.duration_since(self.start).as_nanos() as u64);
                self.scheduled += 1;
                self.flush_sender(sender)?;
            }
            return Ok(());
        }
        let now_ns = now.duration_since(self.start).as_nanos() as u64;
        for sender in 0..self.opts.senders {
            let mut queued = false;
            while !self.sending_over(sender, now) && self.window_open(sender) {
                self.queue_message(sender, now_ns);
                queued = true;
            }
            if queued {
                self.flush_sender(sender)?;
            }
        }
        Ok(())
    }

    fn window_open(&self, sender: usize) -> bool {
        match self.probe[sender] {
            Some(probe) => {
                let progress = self.verdict.progress(probe, sender as u32);
                self.sent[sender] - progress < self.opts.window
            }
            None => true,
        }
    }

    fn queue_message(&mut self, sender: usize, sent_ns: u64) {
        let room = (sender % self.opts.rooms) as u32;
        let payload = Payload {
            sender: sender as u32,
            seq: self.sent[sender],
            sent_ns,
            room,
        };
        self.payload.clear();
        payload::encode(&payload, self.opts.size, &mut self.payload);
        self.opts.common.dialect.message(
            &self.room_names[room as usize],
            &self.payload,
            &mut self.out,
        );
        self.sent[sender] += 1;
    }

    fn flush_sender(&mut self, sender: usize) -> io::Result<()> {
        let conn = self.sender_conn(sender);
        let out = std::mem::take(&mut self.out);
        self.clients[conn].conn.send(&out, self.poll.registry())?;
        self.out = out;
        self.out.clear();
        Ok(())
    }

    // ----- results -------------------------------------------------------------------

    fn report(&self, server_cpu: Option<Duration>, own_cpu: Option<Duration>) -> Report {
        let opts = &self.opts;
        let mut report = Report::new();
        report.text("scenario", if opts.rooms == 1 { "fanout" } else { "rooms" });
        report.text(
            "dialect",
            format!("{:?}", opts.common.dialect).to_lowercase(),
        );
        report.text("servers", opts.common.addrs_text());
        report.int("clients", opts.clients as u64);
        report.int("senders", opts.senders as u64);
        report.int("rooms", opts.rooms as u64);
        report.int("size", opts.size as u64);
        match opts.rate {
            Some(rate) => report.float("rate_msgs_per_s", rate),
            None => report.int("window", opts.window),
        }
        self.report_throughput(&mut report, server_cpu, own_cpu);
        self.report_verdict(&mut report);
        report
    }

    /// Deliveries, latency percentiles and CPU.
    fn report_throughput(
        &self,
        report: &mut Report,
        server_cpu: Option<Duration>,
        own_cpu: Option<Duration>,
    ) {
        let elapsed = self
            .traffic_start
            .map_or(Duration::ZERO, |t0| self.last_progress.duration_since(t0))
            .max(Duration::from_millis(1));
        let received = self.verdict.received;
        report.int("messages_sent", self.sent.iter().sum());
        report.int("deliveries_expected", self.expected());
        report.int("deliveries_received", received);
        report.float("elapsed_s", elapsed.as_secs_f64());
        report.float("deliveries_per_s", received as f64 / elapsed.as_secs_f64());
        report.float(
            "bytes_per_delivery",
            self.payload_bytes as f64 / received.max(1) as f64,
        );
        for (key, quantile) in [
            ("latency_p50_us", 0.5),
            ("latency_p90_us", 0.9),
            ("latency_p99_us", 0.99),
            ("latency_p999_us", 0.999),
        ] {
            let nanos = self.latency.value_at_quantile(quantile);
            report.float(key, nanos as f64 / 1000.0);
        }
        report.float("latency_max_us", self.latency.max() as f64 / 1000.0);
        if let Some(cpu) = server_cpu {
            report.float("server_cpu_s", cpu.as_secs_f64());
            report.float(
                "server_ns_per_delivery",
                cpu.as_nanos() as f64 / received.max(1) as f64,
            );
        }
        if let Some(cpu) = own_cpu {
            report.float("bench_cpu_s", cpu.as_secs_f64());
        }
    }

    /// Loss, duplicates, reorders, leaks and broken connections, over all clients.
    fn report_verdict(&self, report: &mut Report) {
        let verdict = &self.verdict;
        let lost = verdict.lost(self.expected_pairs().into_iter(), &self.sent);
        report.int("lost", lost);
        report.int("duplicated", verdict.duplicates);
        report.int("reordered", verdict.reordered);
        report.int("leaked", verdict.leaked);
        report.int("broken_connections", self.broken);
        let counts = [
            (lost, "deliveries lost"),
            (verdict.duplicates, "deliveries duplicated"),
            (verdict.reordered, "deliveries out of order"),
            (verdict.leaked, "deliveries leaked into other rooms"),
            (self.broken, "connections broke"),
        ];
        for (count, what) in counts {
            if count > 0 {
                report.fail(format!("{count} {what}"));
            }
        }
        for error in &self.errors {
            report.fail(error.clone());
        }
    }

    fn expected_pairs(&self) -> Vec<(u32, u32)> {
        let opts = &self.opts;
        let separate = opts.common.dialect.separate_publishers();
        let mut pairs = Vec::new();
        for receiver in 0..opts.clients {
            for sender in 0..opts.senders {
                let same_room = receiver % opts.rooms == sender % opts.rooms;
                let is_self = !separate && receiver == sender;
                if same_room && !is_self {
                    pairs.push((receiver as u32, sender as u32));
                }
            }
        }
        pairs
    }
}

/// Identical lines once each, with a count (`text (×N)`), in first-seen order.
fn collapse(lines: &[String]) -> Vec<String> {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for line in lines {
        match counted.iter_mut().find(|(seen, _)| *seen == line.as_str()) {
            Some((_, count)) => *count += 1,
            None => counted.push((line, 1)),
        }
    }
    counted
        .into_iter()
        .map(|(line, count)| match count {
            1 => line.to_string(),
            _ => format!("{line} (×{count})"),
        })
        .collect()
}
