//! The Prometheus text exposition format (version 0.0.4), written by hand because it
//! is a handful of `format!`s: `# HELP` and `# TYPE` once per metric family, then one
//! `name{label="value"} number` line per sample.
//!
//! Naming follows Prometheus conventions: a `miochat_` prefix, counters end in
//! `_total`, durations are in seconds and sizes in bytes (base units), and a
//! dimension such as the protocol or the close reason is a label, not a name.
//! What is measured is decided in `server::metrics`; this file only spells it.

use std::fmt::Write;

/// The content type of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A scrape being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (resets when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

impl Exposition {
    /// Starts the family `name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `labels` are (name, value) pairs (values need no escaping: they
    /// are our own identifiers).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                let comma = if index == 0 { "" } else { "," };
                let _ = write!(self.text, "{comma}{label}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One histogram series: `counts[i]` observations at most `bounds[i]` (not
    /// cumulative; the extra last count is above every bound), and their `sum`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (index, count) in counts.iter().enumerate() {
            cumulative += count;
            let le = bounds.get(index).map_or("+Inf".to_string(), f64::to_string);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_cumulative_buckets() {
        let mut out = Exposition::default();
        out.family("miochat_x_total", Kind::Counter, "Things.");
        out.sample("miochat_x_total", &[("reason", "quit")], 3.0);
        out.family("miochat_turn_seconds", Kind::Histogram, "Turns.");
        out.histogram(
            "miochat_turn_seconds",
            &[("shard", "0")],
            &[0.1, 1.0],
            &[2, 0, 1],
            1.5,
        );
        let text = out.finish();
        assert!(
            text.contains("# TYPE miochat_x_total counter\nmiochat_x_total{reason=\"quit\"} 3\n")
        );
        assert!(text.contains("miochat_turn_seconds_bucket{shard=\"0\",le=\"1\"} 2\n"));
        assert!(text.contains("miochat_turn_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("miochat_turn_seconds_count{shard=\"0\"} 3\n"));
    }
}
