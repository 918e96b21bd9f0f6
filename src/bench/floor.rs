//! `bench floor`: how close the server comes to the physical limit of its own writes.
//!
//! A delivery ends in a `writev` to a loopback socket; nothing a chat server does can
//! make that call cheaper. So the floor of a scenario is a loop that does *only* that:
//! the same number of sockets, the same bytes per line, the same lines per call, with
//! no parsing, routing or rendering. The ratio of the server's CPU per delivery to the
//! floor's tells how much of a delivery's cost is the server's own.
//!
//! 1. Run the scenario against the server (line dialect, on this machine, so that the
//!    bench reads its CPU, and `deliveries_out` and `writes` from `/stats`).
//! 2. From that run take the bytes per delivered line and the lines per server write.
//! 3. Open as many socket pairs over loopback as there were clients. One thread (the
//!    writer) writes `batch` lines per `writev` to each socket in turn, until it
//!    would block, then waits for writability like the server (edge-triggered, with
//!    `mio`); another drains every socket. The writer's own CPU time, from
//!    `/proc/thread-self/stat`, over the lines it delivered is the floor.
//!
//! The floor runs at least [`FLOOR_MIN_TIME`], so the 10 ms tick of the kernel's
//! CPU accounting stays below 1% of what is measured.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::report::{Report, Value, thread_cpu};
use super::traffic::{self, TrafficOpts};
use super::{BenchError, dialect::Dialect};
use crate::nonblocking::{ReadOutcome, read_some};

/// The shortest floor measurement.
const FLOOR_MIN_TIME: Duration = Duration::from_millis(1500);

/// What the floor copies from the server's run.
#[derive(Debug, Clone, Copy)]
pub struct FloorShape {
    /// Sockets written to (the run's clients).
    pub sockets: usize,
    /// Bytes of one delivered line, newline included.
    pub line_bytes: usize,
    /// Lines per `writev` call.
    pub batch: usize,
    /// Lines to deliver at least (the run's deliveries).
    pub lines: u64,
}

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct FloorResult {
    /// Lines the readers received.
    pub lines: u64,
    /// `writev` calls that wrote something.
    pub writes: u64,
    /// The writer thread's CPU time.
    pub cpu: Duration,
    /// Wall time of the writing.
    pub elapsed: Duration,
}

/// Runs the scenario against the server, then its floor; one report with both.
pub fn run(opts: TrafficOpts) -> Result<Report, BenchError> {
    if opts.common.dialect != Dialect::Line {
        return Err(BenchError::Usage(
            "bench floor compares miochat with its own writes: use --dialect line".into(),
        ));
    }
    let mut report = traffic::run(opts)?;
    let shape = shape_of(&report)?;
    let floor = measure(shape)?;
    add_floor(&mut report, shape, floor);
    Ok(report)
}

/// The floor's shape, read from the server run's report.
fn shape_of(report: &Report) -> Result<FloorShape, BenchError> {
    let number = |key: &str| match report.get(key) {
        Some(Value::Int(v)) => Some(*v as f64),
        Some(Value::Float(v)) => Some(*v),
        _ => None,
    };
    let missing = |key: &str| {
        BenchError::Usage(format!(
            "bench floor: the server run has no {key} (the server must be a miochat on this machine, \
             so that its CPU and /stats can be read; leave out --server-pid, which reads a pid's \
             CPU only)"
        ))
    };
    let per_write = number("server_deliveries_per_write")
        .ok_or_else(|| missing("server_deliveries_per_write"))?;
    let line_bytes = number("bytes_per_delivery").ok_or_else(|| missing("bytes_per_delivery"))?;
    let lines = number("deliveries_received").ok_or_else(|| missing("deliveries_received"))?;
    number("server_ns_per_delivery").ok_or_else(|| missing("server_ns_per_delivery"))?;
    let sockets = number("clients").ok_or_else(|| missing("clients"))?;
    Ok(FloorShape {
        sockets: (sockets as usize).max(1),
        line_bytes: (line_bytes.round() as usize).max(2),
        batch: (per_write.round() as usize).max(1),
        lines: lines as u64,
    })
}

fn add_floor(report: &mut Report, shape: FloorShape, floor: FloorResult) {
    let floor_ns = floor.cpu.as_nanos() as f64 / floor.lines.max(1) as f64;
    report.int("floor_line_bytes", shape.line_bytes as u64);
    report.int("floor_batch_lines", shape.batch as u64);
    report.int("floor_deliveries", floor.lines);
    report.int("floor_writes", floor.writes);
    report.float("floor_cpu_s", floor.cpu.as_secs_f64());
    report.float(
        "floor_deliveries_per_s",
        floor.lines as f64 / floor.elapsed.as_secs_f64().max(1e-9),
    );
    report.float("floor_ns_per_delivery", floor_ns);
    if let Some(Value::Float(server_ns)) = report.get("server_ns_per_delivery").cloned()
        && floor_ns > 0.0
    {
        report.float("server_to_floor_ratio", server_ns / floor_ns);
    }
}

/// Measures the floor of `shape` over fresh loopback sockets.
pub fn measure(shape: FloorShape) -> Result<FloorResult, BenchError> {
    let (writers, readers) = socket_pairs(shape.sockets)?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
        thread::Builder::new()
            .name("floor-reader".into())
            .spawn(move || drain(readers, &stop, &received))?
    };
    let written = write_loop(writers, shape);
    let deadline = Instant::now() + Duration::from_secs(30);
    if let Ok(result) = &written {
        let want = result.lines * shape.line_bytes as u64;
        while received.load(Ordering::Acquire) < want && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Release);
    let drained = reader
        .join()
        .map_err(|_| BenchError::Broken("bench floor: the reader thread panicked".into()))?;
    let mut result = written?;
    drained?;
    let lines = received.load(Ordering::Acquire) / shape.line_bytes as u64;
    if lines != result.lines {
        return Err(BenchError::Broken(format!(
            "bench floor: wrote {} lines but {lines} arrived",
            result.lines
        )));
    }
    result.lines = lines;
    Ok(result)
}

/// `count` connected pairs over loopback: (the writer's ends, the reader's ends).
fn socket_pairs(count: usize) -> io::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = StdListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let (mut writers, mut readers) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for _ in 0..count {
        let near = std::net::TcpStream::connect(addr)?;
        let (far, _) = listener.accept()?;
        for end in [&near, &far] {
            end.set_nonblocking(true)?;
            end.set_nodelay(true)?;
        }
        writers.push(TcpStream::from_std(far));
        readers.push(TcpStream::from_std(near));
    }
    Ok((writers, readers))
}

/// One socket's place in the stream of lines it is sent.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Bytes written so far.
    bytes: u64,
    /// Waiting for a writable edge.
    blocked: bool,
}

/// Writes `batch` lines per call to each socket in turn, at least `shape.lines` lines
/// in all and for at least [`FLOOR_MIN_TIME`]; returns what it wrote and its CPU.
fn write_loop(mut sockets: Vec<TcpStream>, shape: FloorShape) -> Result<FloorResult, BenchError> {
    let mut poll = Poll::new()?;
    for (index, socket) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(socket, Token(index), Interest::WRITABLE)?;
    }
    let mut line = vec![b'x'; shape.line_bytes];
    line[shape.line_bytes - 1] = b'\n';
    let mut state = vec![Progress::default(); sockets.len()];
    let mut events = Events::with_capacity(1024);
    let (cpu_before, started) = (thread_cpu(), Instant::now());
    let (mut lines, mut writes) = (0u64, 0u64);
    while lines < shape.lines || started.elapsed() < FLOOR_MIN_TIME {
        let mut wrote_any = false;
        for (socket, progress) in sockets.iter_mut().zip(state.iter_mut()) {
            if progress.blocked {
                continue;
            }
            let before = progress.bytes / shape.line_bytes as u64;
            if write_batch(socket, progress, &line, shape.batch)? {
                writes += 1;
                wrote_any = true;
            }
            lines += progress.bytes / shape.line_bytes as u64 - before;
        }
        if !wrote_any {
            wait_writable(&mut poll, &mut events, &mut state)?;
        }
    }
    // Finish every partly written line, so that the reader sees whole lines only.
    for (socket, progress) in sockets.iter_mut().zip(state.iter_mut()) {
        lines += finish_line(&mut poll, socket, progress, &line)?;
    }
    let cpu = thread_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .ok_or_else(|| {
            BenchError::Broken("bench floor: /proc/thread-self/stat unreadable".into())
        })?;
    Ok(FloorResult {
        lines,
        writes,
        cpu,
        elapsed: started.elapsed(),
    })
}

/// One `writev` of up to `batch` lines (the first one's rest, if it was cut);
/// true if it wrote something, false (and `blocked`) if the socket was full.
fn write_batch(
    socket: &mut TcpStream,
    progress: &mut Progress,
    line: &[u8],
    batch: usize,
) -> Result<bool, BenchError> {
    let offset = (progress.bytes % line.len() as u64) as usize;
    let mut slices = [IoSlice::new(line); 64];
    slices[0] = IoSlice::new(&line[offset..]);
    let count = batch.min(slices.len());
    match socket.write_vectored(&slices[..count]) {
        Ok(0) => Err(BenchError::Broken("bench floor: a socket closed".into())),
        Ok(n) => {
            progress.bytes += n as u64;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            progress.blocked = true;
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits for writable edges and unblocks those sockets.
fn wait_writable(
    poll: &mut Poll,
    events: &mut Events,
    state: &mut [Progress],
) -> Result<(), BenchError> {
    match poll.poll(events, Some(Duration::from_secs(5))) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if events.is_empty() {
        return Err(BenchError::Broken(
            "bench floor: no socket became writable for 5 s (is the reader stuck?)".into(),
        ));
    }
    for event in events.iter() {
        if let Some(progress) = state.get_mut(event.token().0) {
            progress.blocked = false;
        }
    }
    Ok(())
}

/// Writes the rest of a partly written line; returns 1 if there was one.
fn finish_line(
    poll: &mut Poll,
    socket: &mut TcpStream,
    progress: &mut Progress,
    line: &[u8],
) -> Result<u64, BenchError> {
    if progress.bytes.is_multiple_of(line.len() as u64) {
        return Ok(0);
    }
    let mut events = Events::with_capacity(8);
    while !progress.bytes.is_multiple_of(line.len() as u64) {
        progress.blocked = false;
        write_batch(socket, progress, line, 1)?;
        if progress.blocked {
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        }
    }
    Ok(1)
}

/// Reads every socket until `stop`, counting the bytes.
fn drain(mut sockets: Vec<TcpStream>, stop: &AtomicBool, received: &AtomicU64) -> io::Result<()> {
    let mut poll = Poll::new()?;
    for (index, socket) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(socket, Token(index), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for event in events.iter() {
            let Some(socket) = sockets.get_mut(event.token().0) else {
                continue;
            };
            while let ReadOutcome::Data(n) = read_some(socket, &mut scratch)? {
                received.fetch_add(n as u64, Ordering::AcqRel);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_floor_delivers_every_line_it_writes_in_the_batches_asked() {
        let shape = FloorShape {
            sockets: 3,
            line_bytes: 50,
            batch: 7,
            lines: 3000,
        };
        let result = measure(shape).unwrap();
        assert!(result.lines >= 3000, "{result:?}");
        assert!(result.writes > 0, "{result:?}");
        // At most `batch` lines per call, so at least lines/batch calls.
        assert!(result.writes * 7 >= result.lines - 3, "{result:?}");
    }
}
