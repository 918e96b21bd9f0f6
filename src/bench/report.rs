//! Bench results as an ordered list of named values, printed for people or as one
//! JSON object (`--json`), plus readings of another process from `/proc`.

use std::fmt::Write as _;
use std::time::Duration;

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
    /// Why `ok` is false, one line each.
    pub problems: Vec<String>,
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
    pub fn int(&mut self, key: &'static str, v: u64) {
        self.fields.push((key, Value::Int(v)));
    }

    /// Adds a measurement.
    pub fn float(&mut self, key: &'static str, v: f64) {
        self.fields.push((key, Value::Float(v)));
    }

    /// Adds text.
    pub fn text(&mut self, key: &'static str, v: impl Into<String>) {
        self.fields.push((key, Value::Text(v.into())));
    }

    /// Marks the run failed.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.ok = false;
        self.problems.push(why.into());
    }

    /// Looks a value up (tests, scripts).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `key: value` lines, then the verdict.
    pub fn human(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.fields {
            let shown = match value {
                Value::Int(v) => v.to_string(),
                Value::Float(v) => format_float(*v),
                Value::Text(v) => v.clone(),
            };
            let _ = writeln!(out, "{key:>width$}: {shown}");
        }
        if self.ok {
            let _ = writeln!(out, "{:>width$}: PASS", "verdict");
        } else {
            for p in &self.problems {
                let _ = writeln!(out, "{:>width$}: FAIL: {p}", "verdict");
            }
        }
        out
    }

    /// One JSON object on one line.
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
        let _ = write!(out, "\"ok\":{},\"problems\":[", self.ok);
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(p, &mut out);
        }
        out.push_str("]}");
        out
    }
}

fn format_float(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
        let mut r = Report::new();
        r.int("sent", 3);
        r.float("rate", 1.5);
        r.text("dialect", "line \"x\"");
        assert_eq!(
            r.json(),
            r#"{"sent":3,"rate":1.5,"dialect":"line \"x\"","ok":true,"problems":[]}"#
        );
        r.fail("lost 2");
        assert!(r.human().contains("verdict: FAIL: lost 2"));
        assert!(r.json().contains(r#""ok":false,"problems":["lost 2"]"#));
    }

    #[test]
    fn proc_readings_of_self() {
        let me = std::process::id();
        assert!(proc_cpu(me).is_some());
        assert!(proc_rss_kib(me).unwrap() > 0);
        assert!(proc_fds(me).unwrap() >= 3);
    }
}
