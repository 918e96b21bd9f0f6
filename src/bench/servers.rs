//! Which server processes a run measures, and how the bench finds them.
//!
//! Server CPU per delivery is the figure that compares servers fairly, so the bench
//! reports it without extra flags whenever it honestly can:
//!
//! - **`--server-pid P,Q`** names the processes outright; their CPU is summed. With
//!   several nodes, or a Redis backplane behind them, list every process that does
//!   the work, or the sum understates it.
//! - **Otherwise, line dialect, every address on this machine (loopback):** one
//!   connection per server sends `/stats` before the run and reads `pid=N` from the
//!   answer; after the run the same connection asks again, which proves the server
//!   was not restarted in between. The CPU and memory then come from `/proc`.
//! - **Otherwise** (a remote address, the IRC or RESP dialect, a server whose
//!   `/stats` has no pid, a pid `/proc` cannot show): nothing is measured, and the
//!   report says which server could not be measured and why. A partial sum over some
//!   of the servers is never reported, because it would look like a real figure.
//!
//! The `/stats` link is a plain blocking socket with short timeouts, not part of the
//! event loop: it is used twice, outside the measured interval.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::Common;
use super::dialect::Dialect;
use super::report::{Report, proc_cpu, proc_rss_kib};

/// Longest wait for a server's `/stats` answer.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// The server processes of one run, or why there are none.
#[derive(Debug)]
pub struct ServerWatch {
    /// Processes measured, without duplicates; empty when nothing is measured.
    pids: Vec<u32>,
    /// Open `/stats` connections, asked again after the run.
    links: Vec<StatsLink>,
    /// Where the pids came from, for the report.
    source: &'static str,
    /// Why nothing is measured (set when `pids` is empty).
    unmeasured: Option<String>,
}

impl ServerWatch {
    /// Finds the processes to measure for `common` (see the module doc).
    pub fn find(common: &Common) -> ServerWatch {
        if let Some(given) = &common.server_pids {
            let mut watch = ServerWatch::new("--server-pid");
            for &pid in given {
                watch.add(pid);
            }
            if let Some(bad) = given.iter().find(|pid| proc_cpu(**pid).is_none()) {
                watch.give_up(format!("pid {bad} (--server-pid) is not readable in /proc"));
            }
            return watch;
        }
        let mut watch = ServerWatch::new("/stats");
        if common.dialect != Dialect::Line {
            let dialect = format!("{:?}", common.dialect).to_lowercase();
            watch.give_up(format!(
                "the {dialect} dialect has no /stats to ask the server's pid (give --server-pid)"
            ));
            return watch;
        }
        for &addr in &common.addrs {
            match StatsLink::open(addr).and_then(|mut link| {
                let pid = link.ask_pid()?;
                Ok((link, pid))
            }) {
                Ok((link, pid)) => {
                    watch.links.push(link);
                    watch.add(pid);
                }
                Err(why) => {
                    watch.give_up(why);
                    return watch;
                }
            }
        }
        watch
    }

    fn new(source: &'static str) -> ServerWatch {
        ServerWatch {
            pids: Vec::new(),
            links: Vec::new(),
            source,
            unmeasured: None,
        }
    }

    fn add(&mut self, pid: u32) {
        if !self.pids.contains(&pid) {
            self.pids.push(pid);
        }
    }

    fn give_up(&mut self, why: String) {
        self.pids.clear();
        self.links.clear();
        self.unmeasured = Some(why);
    }

    /// Whether any process is measured.
    pub fn measured(&self) -> bool {
        !self.pids.is_empty()
    }

    /// CPU time used so far by every measured process together; `None` if nothing
    /// is measured or one of them cannot be read.
    pub fn cpu(&self) -> Option<Duration> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| proc_cpu(*pid)).sum()
    }

    /// Resident memory of every measured process together, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| proc_rss_kib(*pid)).sum()
    }

    /// After the run: asks each server's pid again, and gives up on the figures if
    /// a server was restarted (its CPU time would have started again from zero).
    pub fn recheck(&mut self) {
        let mut restarted = None;
        for link in &mut self.links {
            let before = link.pid;
            match link.ask_pid() {
                Ok(now) if now == before => {}
                Ok(now) => {
                    restarted = Some(format!(
                        "the server at {} was restarted during the run (pid {before}, now {now})",
                        link.addr
                    ));
                }
                Err(why) => restarted = Some(format!("after the run, {why}")),
            }
        }
        if let Some(why) = restarted {
            self.give_up(why);
        }
    }

    /// Adds `server_processes`: which processes the server figures cover, or why
    /// there are none.
    pub fn describe(&self, report: &mut Report) {
        let text = match (&self.unmeasured, self.pids.as_slice()) {
            (Some(why), _) => format!("not measured: {why}"),
            (None, []) => "not measured".to_string(),
            (None, [pid]) => format!("pid {pid} (from {})", self.source),
            (None, pids) => {
                let list: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!(
                    "{} processes summed: pids {} (from {})",
                    pids.len(),
                    list.join(","),
                    self.source
                )
            }
        };
        report.text("server_processes", text);
        if let Some((deliveries, writes)) = self.write_batching() {
            report.int("server_deliveries_out", deliveries);
            report.int("server_writes", writes);
            report.float(
                "server_deliveries_per_write",
                deliveries as f64 / writes.max(1) as f64,
            );
        }
    }

    /// Deliveries and socket writes the servers made during the run, summed: how
    /// many lines one server write carried (what `bench floor` copies).
    pub fn write_batching(&self) -> Option<(u64, u64)> {
        if self.links.is_empty() || self.unmeasured.is_some() {
            return None;
        }
        let mut sum = (0, 0);
        for link in &self.links {
            let [first, last] = link.counters?;
            sum.0 += last.0.saturating_sub(first.0);
            sum.1 += last.1.saturating_sub(first.1);
        }
        (sum.1 > 0).then_some(sum)
    }
}

/// One connection that asks a line-protocol server for its pid.
#[derive(Debug)]
struct StatsLink {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The pid the first answer gave.
    pid: u32,
    /// `deliveries_out` and `writes` from the first answer and from the latest one.
    counters: Option<[(u64, u64); 2]>,
}

impl StatsLink {
    /// Connects, if `addr` is on this machine, and leaves `lobby` so nobody sees it.
    fn open(addr: SocketAddr) -> Result<StatsLink, String> {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not on this machine, so its /proc cannot be read (give --server-pid on the server's machine)"
            ));
        }
        let fail = |err: std::io::Error| format!("could not ask {addr} for /stats: {err}");
        let writer = TcpStream::connect_timeout(&addr, STATS_TIMEOUT).map_err(fail)?;
        writer.set_read_timeout(Some(STATS_TIMEOUT)).map_err(fail)?;
        writer
            .set_write_timeout(Some(STATS_TIMEOUT))
            .map_err(fail)?;
        let reader = BufReader::new(writer.try_clone().map_err(fail)?);
        let mut link = StatsLink {
            addr,
            reader,
            writer,
            pid: 0,
            counters: None,
        };
        link.writer.write_all(b"/leave lobby\n").map_err(fail)?;
        Ok(link)
    }

    /// Sends `/stats` and reads `pid=N` from the answer, checking `/proc` has it.
    fn ask_pid(&mut self) -> Result<u32, String> {
        let addr = self.addr;
        let fail = |err: std::io::Error| format!("could not ask {addr} for /stats: {err}");
        self.writer.write_all(b"/stats\n").map_err(fail)?;
        let deadline = Instant::now() + STATS_TIMEOUT;
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if self.reader.read_line(&mut line).map_err(fail)? == 0 {
                return Err(format!("{addr} closed the /stats connection"));
            }
            if line.starts_with("ERR unknown-command /stats") {
                return Err(format!("the server at {addr} has no /stats"));
            }
            if line.starts_with("OK stats ") {
                let pid = stats_pid(&line)
                    .ok_or_else(|| format!("the /stats of {addr} has no pid= key"))?;
                if proc_cpu(pid).is_none() {
                    return Err(format!(
                        "pid {pid} from the /stats of {addr} is not readable in /proc here"
                    ));
                }
                self.pid = pid;
                self.note_counters(&line);
                return Ok(pid);
            }
        }
        Err(format!("{addr} did not answer /stats in time"))
    }
}

impl StatsLink {
    /// Keeps `deliveries_out=` and `writes=`: the first reading, and the latest.
    fn note_counters(&mut self, line: &str) {
        let key = |name: &str| stats_value::<u64>(line, name);
        let Some(now) = key("deliveries_out").zip(key("writes")) else {
            return;
        };
        self.counters = Some(match self.counters {
            Some([first, _]) => [first, now],
            None => [now, now],
        });
    }
}

/// The value of `pid=` in an `OK stats key=value ...` line.
fn stats_pid(line: &str) -> Option<u32> {
    stats_value(line, "pid")
}

/// The value of `NAME=` in an `OK stats key=value ...` line.
fn stats_value<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pid_from_a_stats_line() {
        let line = "OK stats connections=3 shards=2,1 uptime_s=9 pid=4242 turns=1,2\n";
        assert_eq!(stats_pid(line), Some(4242));
        assert_eq!(stats_pid("OK stats connections=3"), None);
    }

    #[test]
    fn a_remote_address_is_not_measured_and_says_why() {
        let common = Common {
            addrs: vec!["192.0.2.1:7878".parse().unwrap()],
            dialect: Dialect::Line,
            timeout: Duration::from_secs(1),
            sources: 1,
            source_offset: 0,
            connect_window: 1,
            server_pids: None,
            room: "bench".into(),
            tls: None,
        };
        let watch = ServerWatch::find(&common);
        assert_eq!(watch.cpu(), None);
        let mut report = Report::new();
        watch.describe(&mut report);
        let text = format!("{:?}", report.get("server_processes"));
        assert!(text.contains("not on this machine"), "{text}");
    }

    #[test]
    fn given_pids_are_summed_once_each() {
        let me = std::process::id();
        let common = Common {
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
            dialect: Dialect::Irc,
            timeout: Duration::from_secs(1),
            sources: 1,
            source_offset: 0,
            connect_window: 1,
            server_pids: Some(vec![me, me]),
            room: "bench".into(),
            tls: None,
        };
        let watch = ServerWatch::find(&common);
        assert!(watch.cpu().is_some());
        let mut report = Report::new();
        watch.describe(&mut report);
        let text = format!("{:?}", report.get("server_processes"));
        assert!(
            text.contains(&format!("pid {me} (from --server-pid)")),
            "{text}"
        );
    }
}
