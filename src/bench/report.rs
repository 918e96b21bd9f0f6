//! Bench results as an ordered list of named values, printed for people, as one
//! JSON object (`--json`) or as CSV (`--csv`), plus readings of another process
//! from `/proc`.
//!
//! The pass/fail outcome is called `verdict` everywhere: the last lines of the human
//! output, a `verdict` key (`PASS` or `FAIL`) in JSON and a `verdict` column in CSV,
//! each followed by the `problems`. Identical problem lines are collapsed into one
//! with a count (`... (×37)`), so a thousand clients failing the same way print one
//! line; and a problem a server protection caused (flood control, the per-address
//! limits, `--max-connections`) names the `serve` flags that switch it off
//! ([`advice_for`]): a load generator is one address sending fast, which is what
//! those protections exist to stop.

use std::fmt::Write as _;
use std::time::Duration;

/// Distinct problem lines kept; more are only counted.
const MAX_DISTINCT_PROBLEMS: usize = 20;

/// The advice added once when a server's `ERR flood` appears among the problems.
pub const FLOOD_ADVICE: &str = "the server's flood control dropped lines (ERR flood): \
     start it with --flood-rate 0 to benchmark it";

/// The advice added once when the server refused connections for coming from one
/// address (`--max-per-ip`) or too fast from it (`--connect-rate`).
pub const PER_ADDRESS_ADVICE: &str = "the server refused connections from one address \
     (ERR server-busy): start it with --max-per-ip 0 --connect-rate 0 to benchmark it";

/// The advice added once when the server was full.
pub const FULL_ADVICE: &str = "the server is full (ERR server-full): start it with \
     --max-connections above the number of bench clients";

/// The advice a problem line calls for, if a server protection caused it.
pub fn advice_for(problem: &str) -> Option<&'static str> {
    const PER_ADDRESS: [&str; 2] = [
        "too many connections from your address",
        "connecting too fast from your address",
    ];
    if problem.contains("ERR flood") {
        Some(FLOOD_ADVICE)
    } else if PER_ADDRESS.iter().any(|text| problem.contains(text)) {
        Some(PER_ADDRESS_ADVICE)
    } else if problem.contains("ERR server-full") || problem.contains("server is full") {
        Some(FULL_ADVICE)
    } else {
        None
    }
}

/// `problems`, then the advice they call for, each once.
pub fn with_advice(problems: Vec<String>) -> Vec<String> {
    let mut advice: Vec<&str> = problems.iter().filter_map(|p| advice_for(p)).collect();
    advice.dedup();
    let mut lines = problems;
    for line in advice {
        if !lines.iter().any(|seen| seen == line) {
            lines.push(line.to_string());
        }
    }
    lines
}

/// One reported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A measurement.
    Float(f64),
    /// Text.
    Text(String),
}

/// A scenario's results, in the order they should be shown.
#[derive(Debug, Default, Clone)]
pub struct Report {
    fields: Vec<(&'static str, Value)>,
    /// False if the run found loss, duplicates, reorders, leaks or broken connections.
    pub ok: bool,
    /// Why `ok` is false: distinct lines, each with how often it happened.
    problems: Vec<(String, u64)>,
    /// Problems beyond [`MAX_DISTINCT_PROBLEMS`] distinct lines.
    more_problems: u64,
}

impl Report {
    /// An empty, passing report.
    pub fn new() -> Self {
        Report {
            ok: true,
            ..Default::default()
        }
    }

    /// Adds a count.
    pub fn int(&mut self, key: &'static str, value: u64) {
        self.fields.push((key, Value::Int(value)));
    }

    /// Adds a measurement.
    pub fn float(&mut self, key: &'static str, value: f64) {
        self.fields.push((key, Value::Float(value)));
    }

    /// Adds text.
    pub fn text(&mut self, key: &'static str, value: impl Into<String>) {
        self.fields.push((key, Value::Text(value.into())));
    }

    /// Marks the run failed. A line identical to an earlier one only counts again.
    pub fn fail(&mut self, why: impl Into<String>) {
        let why = why.into();
        self.ok = false;
        let advice = advice_for(&why);
        if let Some((_, count)) = self.problems.iter_mut().find(|(seen, _)| *seen == why) {
            *count += 1;
        } else if self.problems.len() < MAX_DISTINCT_PROBLEMS {
            self.problems.push((why, 1));
        } else {
            self.more_problems += 1;
        }
        if let Some(advice) = advice
            && !self.problems.iter().any(|(seen, _)| seen == advice)
        {
            self.problems.push((advice.to_string(), 1));
        }
    }

    /// Looks a value up (tests, scripts).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `PASS` or `FAIL`.
    pub fn verdict(&self) -> &'static str {
        if self.ok { "PASS" } else { "FAIL" }
    }

    /// The problem lines, identical ones collapsed: `text (×N)`.
    pub fn problems(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .problems
            .iter()
            .map(|(why, count)| match count {
                1 => why.clone(),
                _ => format!("{why} (×{count})"),
            })
            .collect();
        if self.more_problems > 0 {
            lines.push(format!("... and {} more problems", self.more_problems));
        }
        lines
    }

    /// `key: value` lines, then the verdict and one line per problem.
    pub fn human(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let width = width.max("verdict".len());
        let mut out = String::new();
        for (key, value) in &self.fields {
            let _ = writeln!(out, "{key:>width$}: {}", shown(value));
        }
        let _ = writeln!(out, "{:>width$}: {}", "verdict", self.verdict());
        for problem in self.problems() {
            let _ = writeln!(out, "{:>width$}: {problem}", "problem");
        }
        out
    }

    /// One JSON object on one line. `ok` repeats the verdict as a boolean for older
    /// scripts.
    pub fn json(&self) -> String {
        let mut out = String::from("{");
        for (key, value) in &self.fields {
            let _ = write!(out, "\"{key}\":");
            match value {
                Value::Int(v) => {
                    let _ = write!(out, "{v}");
                }
                Value::Float(v) if v.is_finite() => {
                    let _ = write!(out, "{v}");
                }
                Value::Float(_) => out.push_str("null"),
                Value::Text(v) => json_string(v, &mut out),
            }
            out.push(',');
        }
        let _ = write!(
            out,
            "\"verdict\":\"{}\",\"ok\":{},\"problems\":[",
            self.verdict(),
            self.ok
        );
        for (index, problem) in self.problems().iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            json_string(problem, &mut out);
        }
        out.push_str("]}");
        out
    }

    /// Two CSV lines: a header of the keys (then `verdict`, `problems`) and the
    /// values, problems joined with `; `. Runs of the same scenario have the same
    /// columns, so their value lines can be appended under one header.
    pub fn csv(&self) -> String {
        let mut header: Vec<&str> = self.fields.iter().map(|(key, _)| *key).collect();
        header.extend(["verdict", "problems"]);
        let mut values: Vec<String> = self.fields.iter().map(|(_, value)| shown(value)).collect();
        values.push(self.verdict().to_string());
        values.push(self.problems().join("; "));
        let mut writer = csv::Writer::from_writer(Vec::new());
        // Writing to memory fails only on a bug (unequal row lengths, which cannot
        // happen: both rows come from the same fields).
        let written = writer
            .write_record(&header)
            .and_then(|()| writer.write_record(&values));
        written.expect("BUG: CSV rows into memory");
        let bytes = writer.into_inner().expect("BUG: CSV flush into memory");
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A value as text: counts plainly, measurements rounded for reading.
fn shown(value: &Value) -> String {
    match value {
        Value::Int(v) => v.to_string(),
        Value::Float(v) => format_float(*v),
        Value::Text(v) => v.clone(),
    }
}

fn format_float(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time (user + system) of the calling thread, from `/proc/thread-self/stat`.
pub fn thread_cpu() -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// utime + stime of a `/proc/.../stat` text.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // Fields after the ")" that ends the command name; utime and stime are the 12th
    // and 13th of those (14th and 15th overall), in clock ticks (USER_HZ = 100).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident memory of a process in KiB, from `/proc/PID/status`.
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open file descriptors of a process.
pub fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_and_human() {
        let mut report = Report::new();
        report.int("sent", 3);
        report.float("rate", 1.5);
        report.text("dialect", "line \"x\"");
        assert_eq!(
            report.json(),
            r#"{"sent":3,"rate":1.5,"dialect":"line \"x\"","verdict":"PASS","ok":true,"problems":[]}"#
        );
        assert!(report.human().contains("verdict: PASS"));
        report.fail("lost 2");
        assert!(report.human().contains("verdict: FAIL\n"));
        assert!(report.human().contains("problem: lost 2"));
        assert!(
            report
                .json()
                .contains(r#""verdict":"FAIL","ok":false,"problems":["lost 2"]"#)
        );
    }

    #[test]
    fn identical_problems_collapse_and_flood_gets_advice() {
        let mut report = Report::new();
        for _ in 0..37 {
            report.fail("server said: ERR flood slow down");
        }
        report.fail("3 deliveries lost");
        assert_eq!(
            report.problems(),
            vec![
                "server said: ERR flood slow down (×37)".to_string(),
                FLOOD_ADVICE.to_string(),
                "3 deliveries lost".to_string(),
            ]
        );
        let refused = "server said: ERR server-busy too many connections from your address";
        assert_eq!(
            with_advice(vec![refused.into(), refused.into()]),
            [refused, refused, PER_ADDRESS_ADVICE]
        );
        assert!(PER_ADDRESS_ADVICE.contains("--max-per-ip 0 --connect-rate 0"));
        for index in 0..100 {
            report.fail(format!("distinct {index}"));
        }
        assert!(report.problems().last().unwrap().contains("more problems"));
    }

    #[test]
    fn csv_has_a_header_and_a_quoted_row() {
        let mut report = Report::new();
        report.int("sent", 3);
        report.text("note", "a, \"b\"");
        report.fail("x");
        assert_eq!(
            report.csv(),
            "sent,note,verdict,problems\n3,\"a, \"\"b\"\"\",FAIL,x\n"
        );
    }

    #[test]
    fn proc_readings_of_self() {
        let me = std::process::id();
        assert!(proc_cpu(me).is_some());
        assert!(proc_rss_kib(me).unwrap() > 0);
        assert!(proc_fds(me).unwrap() >= 3);
    }
}
